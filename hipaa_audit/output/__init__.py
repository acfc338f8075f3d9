"""Renderers: turn a stream of findings into table, json, jsonl, sarif or csv output.

Every renderer takes findings one at a time (``add``) and is closed with the run and its
coverage (``finish``), so a scan of millions of files never holds its findings in memory: json
and sarif spool findings to a temporary file (already masked) and write the document at the end,
jsonl and csv write as they go, and the table keeps only the most severe rows.
"""

from __future__ import annotations

import enum
from typing import IO, Protocol

from hipaa_audit.catalog import Catalog
from hipaa_audit.model import Coverage, Finding, RunInfo


class OutputFormat(enum.Enum):
    """The ``--format`` choices."""

    TABLE = "table"
    JSON = "json"
    JSONL = "jsonl"
    SARIF = "sarif"
    CSV = "csv"


class Renderer(Protocol):
    """What every output format implements."""

    def add(self, finding: Finding) -> None:
        """Take one finding."""

    def finish(self, run: RunInfo, coverage: Coverage, stats: dict[str, int],
               exit_code: int) -> None:
        """Write whatever remains, given the finished run."""


def make_renderer(fmt: OutputFormat, stream: IO[str], catalog: Catalog, version: str) -> Renderer:
    """Return the renderer for ``fmt`` writing to ``stream``."""
    from hipaa_audit.output import csvout, jsonout, sarif, table

    if fmt is OutputFormat.JSON:
        return jsonout.JsonRenderer(stream, version)
    if fmt is OutputFormat.JSONL:
        return jsonout.JsonlRenderer(stream, version)
    if fmt is OutputFormat.SARIF:
        return sarif.SarifRenderer(stream, catalog, version)
    if fmt is OutputFormat.CSV:
        return csvout.CsvRenderer(stream)
    return table.TableRenderer(stream)
