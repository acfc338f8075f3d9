"""``--format csv``: one row per finding, written as found; safe to open in a spreadsheet."""

from __future__ import annotations

import csv
from typing import IO, TYPE_CHECKING

from hipaa_audit.model import Coverage, Finding, RunInfo
from hipaa_audit.output.jsonout import dumps

if TYPE_CHECKING:
    from hipaa_audit.document import FindingDoc

COLUMNS = ("id", "check_id", "title", "category", "severity", "status", "asset", "locations",
           "message", "hipaa", "remediation")


def cell(value: str) -> str:
    """Neutralise spreadsheet formulas: a cell starting with = + - @ gets a leading quote."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def finding_row(finding: Finding) -> list[str]:
    """Return one finding as CSV cells (locations as compact JSON, citations joined by ``;``)."""
    return dict_row(finding.as_dict())


def dict_row(d: FindingDoc) -> list[str]:
    """Return a finding object of the findings schema as CSV cells."""
    return [cell(x) for x in (
        d["id"], d["check_id"], d["title"], d["category"], d["severity"], d["status"],
        d["asset"], dumps(d["locations"]), d["message"], "; ".join(d["hipaa"]),
        " ".join(d["remediation"].split()),
    )]


class CsvRenderer:
    """Header row first, then a row per finding."""

    def __init__(self, stream: IO[str]) -> None:
        self.writer = csv.writer(stream, lineterminator="\n")
        self.writer.writerow(COLUMNS)

    def add(self, finding: Finding) -> None:
        """Write one row."""
        self.writer.writerow(finding_row(finding))

    def finish(self, run: RunInfo, coverage: Coverage, stats: dict[str, int],
               exit_code: int) -> None:
        """Nothing left to write: the run and coverage belong to the json formats."""
