"""``--format json`` (schema ``hipaa-audit.findings/1``) and ``--format jsonl``."""

from __future__ import annotations

import json
import shutil
import tempfile
from typing import IO, TYPE_CHECKING, Any

from hipaa_audit.model import SCHEMA, Coverage, Finding, RunInfo, tool_info

if TYPE_CHECKING:
    from hipaa_audit.document import DocumentHead

#: Findings beyond this many bytes of JSON go to a temporary file instead of memory.
SPOOL_BYTES = 8 * 1024 * 1024


PLACEHOLDER = "\u0000spooled-array\u0000"


def write_with_spool(stream: IO[str], document: str, spool: IO[str]) -> None:
    """Write ``document`` with its placeholder replaced by a JSON array of the spooled items."""
    before, after = document.split(json.dumps(PLACEHOLDER), 1)
    stream.write(before + "[\n")
    spool.seek(0)
    shutil.copyfileobj(spool, stream)
    stream.write("\n]" + after + "\n")
    spool.close()


def new_spool() -> IO[str]:
    """Return a temporary text spool: memory first, a temporary file past SPOOL_BYTES."""
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, mode="w+", encoding="utf-8")


def dumps(obj: Any) -> str:
    """Serialise one object the way every JSON output of the tool does."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def document_head(run: RunInfo, coverage: Coverage, version: str,
                  stats: dict[str, int]) -> DocumentHead:
    """Return the schema, tool, run and coverage parts of a findings document."""
    run_obj = run.as_dict()
    run_obj["assets"] = dict(sorted(stats.items()))
    return {
        "schema": SCHEMA,
        "tool": dict(tool_info(version)),
        "run": run_obj,
        "coverage": coverage.as_list(),
    }


class JsonRenderer:
    """One JSON document; findings spooled (masked) until the run is finished."""

    def __init__(self, stream: IO[str], version: str) -> None:
        self.stream = stream
        self.version = version
        self.spool = new_spool()
        self.count = 0

    def add(self, finding: Finding) -> None:
        """Spool one finding."""
        if self.count:
            self.spool.write(",\n")
        self.spool.write(dumps(finding.as_dict()))
        self.count += 1

    def finish(self, run: RunInfo, coverage: Coverage, stats: dict[str, int],
               exit_code: int) -> None:
        """Write the document: schema, tool, run, coverage, then every finding."""
        doc: dict[str, object] = {**document_head(run, coverage, self.version, stats),
                                  "findings": PLACEHOLDER}
        write_with_spool(self.stream, json.dumps(doc, ensure_ascii=False, indent=1), self.spool)


class JsonlRenderer:
    """One finding per line as found, then a last line with the run and coverage."""

    def __init__(self, stream: IO[str], version: str) -> None:
        self.stream = stream
        self.version = version

    def add(self, finding: Finding) -> None:
        """Write one finding line."""
        self.stream.write(dumps(finding.as_dict()) + "\n")

    def finish(self, run: RunInfo, coverage: Coverage, stats: dict[str, int],
               exit_code: int) -> None:
        """Write the closing line: schema, tool, run and coverage."""
        self.stream.write(dumps(document_head(run, coverage, self.version, stats)) + "\n")
