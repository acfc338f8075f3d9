"""The data every scanner produces: findings, their locations, coverage and run metadata.

Findings are plain frozen dataclasses: cheap to build in a worker, cheap to pickle back to the
parent, and easy to render. Validation of *inputs* (the catalog, configuration) lives elsewhere.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, cast

if TYPE_CHECKING:
    from hipaa_audit.document import CoverageRow, FindingDoc, LocationDoc, RunDoc
    from hipaa_audit.evidence import Evidence, EvidenceKey, RunEvidence

SCHEMA = "hipaa-audit.findings/1"
TOOL_NAME = "hipaa-audit"


class Severity(enum.Enum):
    """How bad a finding is, ordered from ``info`` (lowest) to ``critical``."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    #: Position in the order info < low < medium < high < critical (set below the class).
    rank: int

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank <= other.rank

    def lowered(self, steps: int = 1) -> Severity:
        """Return the severity ``steps`` levels lower (floored at info)."""
        order = list(Severity)
        return order[max(0, self.rank - steps)]


for _rank, _severity in enumerate(Severity):
    _severity.rank = _rank


class Category(enum.Enum):
    """The kinds of risk a finding can describe (DESIGN.md section 3)."""

    RESIDUAL_IDENTIFIER = "residual-identifier"
    BURNED_IN_PHI = "burned-in-phi"
    UNENCRYPTED_PHI = "unencrypted-phi"
    WEAK_ENCRYPTION = "weak-encryption"
    EXPOSURE = "exposure"
    WEAK_TLS = "weak-tls"
    PLAINTEXT_TRANSPORT = "plaintext-transport"
    CERTIFICATE = "certificate"
    MISCONFIGURATION = "misconfiguration"
    PERMISSION_DRIFT = "permission-drift"
    AUDIT_ANOMALY = "audit-anomaly"
    LOG_INTEGRITY = "log-integrity"
    UNVERIFIABLE = "unverifiable"


class Status(enum.Enum):
    """``fail``: a risk was found; ``error``: the asset could not be checked."""

    FAIL = "fail"
    ERROR = "error"


class Location(NamedTuple):
    """Where inside an asset a finding was seen.

    ``fields`` holds the scanner's own location keys in output order, e.g. for DICOM
    ``tag_path``, ``keyword``, ``path`` and ``evidence``; their shapes per check are the types
    of :mod:`hipaa_audit.evidence`. Values must already be masked.
    A tuple, so that building and pickling millions of them stays cheap.
    """

    fields: tuple[tuple[str, Any], ...]

    @classmethod
    def of(cls, **values: Any) -> Location:
        """Build a location from keyword arguments (``None`` values are not rendered)."""
        return cls(tuple(values.items()))

    @classmethod
    def of_evidence(cls, evidence: Evidence) -> Location:
        """Build a location from one typed evidence dict of :mod:`hipaa_audit.evidence`.

        The fields keep the dict's order, which is the order the JSON output shows.
        """
        return cls(tuple(evidence.items()))

    def as_dict(self) -> LocationDoc:
        """Return the location as a JSON-ready dict (its keys are evidence keys)."""
        return cast("LocationDoc", {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in self.fields if v is not None
        })

    def get(self, key: str, default: Any = None) -> Any:
        """Return one location key."""
        for k, v in self.fields:
            if k == key:
                return v
        return default

    def text(self, key: EvidenceKey) -> str:
        """Return one location key as text: ``""`` when absent or ``None``.

        ``key`` must be a key some evidence type declares, so mypy rejects a read of a key
        no check writes.
        """
        value = self.get(key)
        return "" if value is None else str(value)


class Finding(NamedTuple):
    """One risk found (or one asset that could not be checked) on one asset.

    ``key`` distinguishes several findings of the same check on the same asset; it feeds the
    stable id together with the check id and the asset, and is not rendered.
    """

    check_id: str
    title: str
    category: Category
    severity: Severity
    status: Status
    asset: str
    message: str
    hipaa: tuple[str, ...]
    remediation: str
    locations: tuple[Location, ...] = ()
    key: str = ""

    @property
    def id(self) -> str:
        """Stable fingerprint: the same check, asset and key give the same id in every run."""
        return finding_id(self.check_id, self.asset, self.key)

    def as_dict(self) -> FindingDoc:
        """Return the finding in the ``hipaa-audit.findings/1`` shape."""
        return {
            "id": self.id,
            "check_id": self.check_id,
            "title": self.title,
            "category": self.category.value,
            "severity": self.severity.value,
            "status": self.status.value,
            "asset": self.asset,
            "locations": [loc.as_dict() for loc in self.locations],
            "message": self.message,
            "hipaa": list(self.hipaa),
            "remediation": self.remediation,
        }


def finding_id(check_id: str, asset: str, key: str = "") -> str:
    """Return the stable id of a finding: a digest of check id, asset and key."""
    digest = hashlib.sha256(f"{check_id}\0{asset}\0{key}".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:20]


#: How one check ended on one asset: ``pass`` (examined, nothing found), ``fail`` (a risk
#: found), ``error`` (it could not be decided: unverifiable). A check that does not apply to an
#: asset records nothing.
Outcome = Literal["pass", "fail", "error"]
#: Which outcome stands when a check records several on one asset: a risk found is a fact even
#: when part of the asset could not be read, and a part left unread is never a pass.
OUTCOME_RANK: Mapping[str, int] = {"pass": 0, "error": 1, "fail": 2}
#: What one outcome adds to ``[evaluated, failed, errors]``.
_TALLY: Mapping[str, tuple[int, int, int]] = {"pass": (1, 0, 0), "fail": (1, 1, 0),
                                              "error": (1, 0, 1)}


def outcome_of(*, failed: bool, error: bool = False) -> Outcome:
    """The outcome of a check that found a risk (``failed``) or could not decide (``error``)."""
    return "fail" if failed else ("error" if error else "pass")


@dataclass(slots=True)
class Coverage:
    """The one coverage recorder of every scanner: how each check ended, per asset.

    A scanner records each check's outcome on the asset of an :class:`AssetResult` with
    :meth:`record` (``pass``, ``fail`` or ``error``; a check that does not apply records
    nothing). A check counts once per asset: when it records several outcomes on one asset, the
    strongest stands (``fail`` over ``error`` over ``pass``, :data:`OUTCOME_RANK`). Merging the
    results of a run adds them up, so ``counts`` maps a check id to ``[evaluated, failed,
    errors]``: the assets the check was run on, those where it found a risk, and those where it
    could not decide. ``failed`` and ``errors`` are parts of ``evaluated``, never overlapping;
    the assets that passed are ``evaluated - failed - errors``.
    """

    #: Counts merged in from other assets (``[evaluated, failed, errors]`` per check).
    totals: dict[str, list[int]] = field(default_factory=dict)
    #: This asset's own outcome per check, not yet merged anywhere.
    own: dict[str, Outcome] = field(default_factory=dict)

    def record(self, check_id: str, result: Outcome) -> None:
        """Record how ``check_id`` ended on this asset (the strongest outcome stands)."""
        held = self.own.get(check_id)
        if held is None or OUTCOME_RANK[result] > OUTCOME_RANK[held]:
            self.own[check_id] = result

    @property
    def counts(self) -> dict[str, list[int]]:
        """``[evaluated, failed, errors]`` per check: the merged totals plus this asset."""
        out = Coverage({check_id: list(row) for check_id, row in self.totals.items()})
        for check_id, result in self.own.items():
            out._add(check_id, *_TALLY[result])
        return out.totals

    def merge(self, other: Coverage, *, same_asset: bool = False) -> None:
        """Add ``other``'s counts to these; ``same_asset``: its outcomes are of this asset.

        Two parts of one asset's judgement (a bucket's settings and its object sample) merge
        with ``same_asset`` so that each check still counts once on that asset.
        """
        for check_id, row in other.totals.items():
            self._add(check_id, *row)
        for check_id, result in other.own.items():
            if same_asset:
                self.record(check_id, result)
            else:
                self._add(check_id, *_TALLY[result])

    def _add(self, check_id: str, evaluated: int, failed: int, errors: int) -> None:
        row = self.totals.setdefault(check_id, [0, 0, 0])
        row[0] += evaluated
        row[1] += failed
        row[2] += errors

    def as_list(self) -> list[CoverageRow]:
        """Return the coverage rows sorted by check id, JSON-ready."""
        return [
            {"check_id": k, "evaluated": c[0], "failed": c[1], "errors": c[2]}
            for k, c in sorted(self.counts.items())
        ]


@dataclass(slots=True)
class AssetResult:
    """What scanning one asset produced: its findings and its coverage counts."""

    asset: str
    findings: list[Finding] = field(default_factory=list)
    coverage: Coverage = field(default_factory=Coverage)
    stats: dict[str, int] = field(default_factory=dict)


def _no_evidence() -> RunEvidence:
    """No run-level evidence yet (each scanner adds its part)."""
    return {}


@dataclass(slots=True)
class RunInfo:
    """Metadata of one run, rendered as the ``run`` object."""

    id: str
    command: str
    started_at: str
    targets: list[str]
    finished_at: str | None = None
    reveal_phi: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    #: Run-level evidence for the reports (e.g. whether the scanned storage is encrypted).
    evidence: RunEvidence = field(default_factory=_no_evidence)

    def as_dict(self) -> RunDoc:
        """Return the run object of the findings schema."""
        out: RunDoc = {
            "id": self.id,
            "command": self.command,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "targets": list(self.targets),
            "reveal_phi": self.reveal_phi,
        }
        if self.options:
            out["options"] = dict(self.options)
        if self.evidence:
            out["evidence"] = self.evidence.copy()
        return out


def worst(severities: Iterable[Severity], default: Severity = Severity.INFO) -> Severity:
    """Return the highest severity of ``severities`` (``default`` when empty)."""
    best = default
    best_rank = default.rank
    for s in severities:
        if s.rank > best_rank:
            best, best_rank = s, s.rank
    return best


def parse_severity(value: str) -> Severity:
    """Parse a severity name; raise ``ValueError`` naming the allowed values."""
    try:
        return Severity(value.lower())
    except ValueError:
        allowed = ", ".join(s.value for s in Severity)
        raise ValueError(f"unknown severity {value!r}; expected one of {allowed}") from None


def tool_info(version: str) -> Mapping[str, str]:
    """Return the ``tool`` object of the findings schema."""
    return {"name": TOOL_NAME, "version": version}
