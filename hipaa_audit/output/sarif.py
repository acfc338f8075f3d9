"""``--format sarif``: SARIF 2.1.0 with one rule per catalog check."""

from __future__ import annotations

import json
import urllib.parse
from typing import IO, TYPE_CHECKING, Any

from hipaa_audit.catalog import Catalog, Check
from hipaa_audit.model import TOOL_NAME, Coverage, Finding, RunInfo, Severity, Status
from hipaa_audit.output.jsonout import PLACEHOLDER, dumps, new_spool, write_with_spool

if TYPE_CHECKING:
    from hipaa_audit.document import FindingDoc

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/hipaa-audit/hipaa-audit"
LEVELS = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
#: GitHub code scanning reads this property to rank results (0.0-10.0).
SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}


def _text(value: str) -> str:
    return " ".join(value.split())


def rule(check: Check) -> dict[str, Any]:
    """Return the SARIF ``reportingDescriptor`` of one catalog check."""
    return {
        "id": check.id,
        "name": "".join(w.capitalize() for w in check.id.split("-")),
        "shortDescription": {"text": check.title},
        "fullDescription": {"text": _text(check.description)},
        "help": {"text": _text(check.remediation)},
        "defaultConfiguration": {"level": LEVELS[check.severity]},
        "properties": {
            "category": check.category.value,
            "severity": check.severity.value,
            "security-severity": SECURITY_SEVERITY[check.severity],
            "likelihood": check.likelihood,
            "impact": check.impact,
            "hipaa": list(check.hipaa),
            "references": list(check.references),
            "tags": ["security", "hipaa", check.category.value],
        },
    }


class SarifRenderer:
    """A SARIF log with one run; results spooled until the run is finished."""

    def __init__(self, stream: IO[str], catalog: Catalog, version: str) -> None:
        self.stream = stream
        self.version = version
        self.checks = list(catalog.values())
        self.index = {c.id: i for i, c in enumerate(self.checks)}
        self.spool = new_spool()
        self.count = 0

    def add(self, finding: Finding) -> None:
        """Spool one result."""
        if self.count:
            self.spool.write(",\n")
        self.spool.write(dumps(self.result(finding)))
        self.count += 1

    def add_doc(self, doc: FindingDoc,
                suppression: dict[str, str] | None = None) -> None:
        """Spool one result from a stored finding object, with its suppression if any."""
        if self.count:
            self.spool.write(",\n")
        out = self.result_doc(doc)
        if suppression is not None:
            out["suppressions"] = [suppression]
        self.spool.write(dumps(out))
        self.count += 1

    def result(self, finding: Finding) -> dict[str, Any]:
        """Return the SARIF ``result`` of one finding."""
        return self.result_doc(finding.as_dict())

    def result_doc(self, doc: FindingDoc) -> dict[str, Any]:
        """Return the SARIF ``result`` of one finding object (``hipaa-audit.findings/1``)."""
        uri = urllib.parse.quote(doc["asset"], safe="/!:")
        locations = doc["locations"]
        logical = [
            {"fullyQualifiedName": str(loc.get("path") or "/".join(loc.get("tag_path") or ())),
             "kind": "element"}
            for loc in locations
            if loc.get("path") or loc.get("tag_path")
        ]
        location: dict[str, Any] = {"physicalLocation": {"artifactLocation": {"uri": uri}}}
        if logical:
            location["logicalLocations"] = logical[:50]
        severity = Severity(doc["severity"])
        out: dict[str, Any] = {
            "ruleId": doc["check_id"],
            "level": LEVELS[severity] if doc["status"] == Status.FAIL.value else "warning",
            "message": {"text": doc["message"]},
            "locations": [location],
            "partialFingerprints": {"hipaaAuditFindingId/v1": doc["id"]},
            "properties": {
                "id": doc["id"],
                "severity": doc["severity"],
                "status": doc["status"],
                "category": doc["category"],
                "hipaa": list(doc["hipaa"]),
                "locations": locations,
            },
        }
        if doc["check_id"] in self.index:
            out["ruleIndex"] = self.index[doc["check_id"]]
        return out

    def finish(self, run: RunInfo, coverage: Coverage, stats: dict[str, int],
               exit_code: int) -> None:
        """Write the SARIF log."""
        head: dict[str, Any] = {
            "$schema": SARIF_SCHEMA,
            "version": "2.1.0",
            "runs": [{
                "tool": {"driver": {
                    "name": TOOL_NAME,
                    "version": self.version,
                    "semanticVersion": self.version,
                    "informationUri": INFORMATION_URI,
                    "rules": [rule(c) for c in self.checks],
                }},
                "automationDetails": {"id": f"{run.command}/{run.id}"},
                "invocations": [{
                    "executionSuccessful": exit_code in (0, 3, 4),
                    "exitCode": exit_code,
                    "startTimeUtc": run.started_at,
                    "endTimeUtc": run.finished_at,
                    "properties": {"coverage": coverage.as_list(), "assets": stats,
                                   "revealPhi": run.reveal_phi},
                }],
                "columnKind": "unicodeCodePoints",
            }],
        }
        head["runs"][0]["results"] = PLACEHOLDER
        write_with_spool(self.stream, json.dumps(head, ensure_ascii=False, indent=1), self.spool)
