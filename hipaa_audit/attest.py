"""Attestations: the organization's answers for the safeguards no scanner can see.

An attestation file (TOML, named by ``attestations`` in ``[assessment]``) has one table per
requirement row of 164.308-316, keyed by its citation (``["164.308(a)(1)(ii)(C)"]``): the
question an assessor asks, a status, the answer, evidence files, a reviewer and the review
date. The file is validated when the assessment file is loaded: an unknown citation, an
unknown status, an answer without a reviewer or an evidence file that cannot be read is an
error naming the file and the key. Evidence files are hashed then, and the hashes are stored
with the run; the risk-analysis PDF attaches the files whose content is unchanged.

The shipped starter file (``hipaa-audit attest init FILE`` writes it) covers all 69 rows with
the question an assessor asks, every status ``unanswered``: fill it in next to the assessment.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import tomllib
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hipaa_audit.errors import HipaaAuditError
from hipaa_audit.hipaa import security_rule_data
from hipaa_audit.validation import problems as validation_problems

AttestStatus = Literal["implemented", "partially implemented", "not implemented",
                       "alternative measure", "not applicable", "unanswered"]
#: The starter file shipped in the package (``hipaa-audit attest init FILE`` copies it).
STARTER = "attestations-starter.toml"


class AttestationError(HipaaAuditError):
    """The attestation file is missing, not TOML, or holds an unknown key or a bad value."""


class Attestation(BaseModel):
    """The answer to one requirement row."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    question: str = ""
    status: AttestStatus = "unanswered"
    answer: str = ""
    evidence: list[str] = Field(default_factory=list)
    reviewer: str = ""
    reviewed: dt.date | None = None

    @model_validator(mode="after")
    def _answered(self) -> Attestation:
        if self.status != "unanswered":
            missing = [k for k in ("answer", "reviewer") if not getattr(self, k).strip()]
            if self.reviewed is None:
                missing.append("reviewed")
            if missing:
                raise ValueError(f"an answered row needs {', '.join(missing)}")
        return self


def starter_text() -> str:
    """The shipped starter file: every row with its question, every status unanswered."""
    return resources.files("hipaa_audit.data").joinpath(STARTER).read_text(encoding="utf-8")


def citations() -> list[str]:
    """The 69 requirement rows of 164.308-316, in rule order."""
    return [row["citation"] for row in security_rule_data()["security_rule"]]


def _hash(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def load_attestations(path: Path) -> dict[str, Any]:
    """Read, validate and hash an attestation file; return it as stored with a run.

    The record maps each citation to its attestation, each evidence file given as
    ``{"path", "name", "sha256", "bytes"}``. Raises :class:`AttestationError` naming the file
    and the key (``"164.308(a)(1)(ii)(C)".status``).
    """
    try:
        raw = path.read_bytes()
        doc = tomllib.loads(raw.decode("utf-8"))
    except OSError as exc:
        raise AttestationError(f"{path}: cannot read the attestation file: {exc.strerror}"
                               ) from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise AttestationError(f"{path}: not valid TOML: {exc}") from None
    known = set(citations())
    rows: dict[str, Any] = {}
    problems: list[str] = []
    for cite, value in doc.items():
        if cite not in known:
            problems.append(f"{path}: {cite!r}: not a requirement row of 164.308-316")
            continue
        try:
            att = Attestation.model_validate(value)
        except ValidationError as exc:
            problems += validation_problems(exc, str(path), prefix=repr(cite))
            continue
        files = []
        for i, name in enumerate(att.evidence, 1):
            file = Path(name) if Path(name).is_absolute() else path.resolve().parent / name
            try:
                files.append({"path": str(file), "name": file.name, "sha256": _hash(file),
                              "bytes": file.stat().st_size})
            except OSError as exc:
                problems.append(f"{path}: {cite!r}.evidence[{i}]: cannot read {file}: "
                                f"{exc.strerror}")
        rows[cite] = {**att.model_dump(mode="json"), "evidence": files}
    if problems:
        raise AttestationError("\n".join(problems))
    return {"file": str(path), "sha256": hashlib.sha256(raw).hexdigest(), "rows": rows}


def vendor_documents(vendors: Iterable[Any]) -> list[dict[str, Any]]:
    """Hash the documents received from each vendor (``[[vendor.document]]``) for the run.

    A file that cannot be read now is kept with ``sha256`` empty: the report says so.
    """
    out = []
    for v in vendors:
        for d in v.document:
            try:
                digest = _hash(d.file)
            except OSError:
                digest = ""
            out.append({"vendor": v.name, "provisions": list(d.provisions), "name": d.file.name,
                        "title": d.title, "sha256": digest, "received": str(d.received),
                        "reviewer": d.reviewer, "reviewed": str(d.reviewed)})
    return out


def evidence_files(record: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Every evidence file of an attestation record, once, with whether it is unchanged now."""
    seen: dict[str, dict[str, Any]] = {}
    for cite, att in (record or {}).get("rows", {}).items():
        for f in att.get("evidence", []):
            entry = seen.setdefault(f["path"], {**f, "citations": []})
            entry["citations"].append(cite)
    for entry in seen.values():
        try:
            entry["unchanged"] = _hash(Path(entry["path"])) == entry["sha256"]
        except OSError:
            entry["unchanged"] = False
    return list(seen.values())
