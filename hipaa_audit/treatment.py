"""The risk treatment register: decisions on risks and suppressions of false positives.

A treatment file (TOML, named by ``treatment`` in ``[assessment]``) holds ``[[risk]]`` decisions
(mitigate, accept, transfer, avoid) and ``[[suppression]]`` entries. Each entry matches findings
by check id, asset group and asset (shell patterns) and, optionally, by finding ids. It is
validated when the assessment file is loaded, and a copy is stored with each run, so a past
run's reports show the decisions as they stood on the day of the run.

What an entry does to a finding is decided here, by pure functions, as of the run's date:

* a finding matched by a valid suppression (approved, not expired) is ``suppressed``;
* a finding matched by a valid acceptance (approved, not expired, and its risk not scored
  above the level that was accepted) is ``accepted``;
* every other finding stays ``open``: it counts for ``--fail-on``, with a note when an
  acceptance or suppression lapsed (expired, or the risk rose since it was accepted).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hipaa_audit.errors import HipaaAuditError
from hipaa_audit.validation import problems

if TYPE_CHECKING:
    from hipaa_audit.document import StoredFinding, SuppressedFinding

LEVELS = ("Very Low", "Low", "Moderate", "High", "Very High")
Level = Literal["Very Low", "Low", "Moderate", "High", "Very High"]
DecisionKind = Literal["mitigate", "accept", "transfer", "avoid"]
State = Literal["open", "accepted", "suppressed"]
_FINDING_ID = re.compile(r"^[0-9a-f]{20}$")


class TreatmentError(HipaaAuditError):
    """The treatment file is missing, not TOML, or holds an unknown key or a bad value."""


class _Entry(BaseModel):
    """What decisions and suppressions share: which findings they match, and who signed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: a label for the entry in the reports (default: its position, e.g. ``risk[2]``)
    id: str | None = Field(default=None, min_length=1)
    check: str = Field(default="*", min_length=1)
    group: str = Field(default="*", min_length=1)
    asset: str = Field(default="*", min_length=1)
    finding: list[str] = Field(default_factory=list)
    owner: str = Field(min_length=1)
    justification: str = ""
    approver: str | None = Field(default=None, min_length=1)
    approved: dt.date | None = None
    expires: dt.date | None = None

    @field_validator("finding")
    @classmethod
    def _ids(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not _FINDING_ID.match(v)]
        if bad:
            raise ValueError(f"not finding ids (20 lower-case hex digits): {', '.join(bad)}")
        return value

    @model_validator(mode="after")
    def _dates(self) -> _Entry:
        if self.approved and self.expires and self.expires < self.approved:
            raise ValueError("expires is before approved")
        if (self.approver is None) != (self.approved is None):
            raise ValueError("approver and approved go together")
        return self

    def matches(self, check_id: str, group: str, asset: str, fid: str) -> bool:
        """Whether this entry applies to a finding."""
        return (fnmatch.fnmatchcase(check_id, self.check)
                and fnmatch.fnmatchcase(group, self.group)
                and fnmatch.fnmatchcase(asset, self.asset)
                and (not self.finding or fid in self.finding))

    def valid_on(self, day: dt.date) -> bool:
        """Whether the entry is approved on ``day`` and has not expired (expiry day included)."""
        return (self.approved is not None and self.approved <= day
                and (self.expires is None or day <= self.expires))


class RiskDecision(_Entry):
    """``[[risk]]``: the decision on a risk, its owner and due date, and its approval."""

    decision: DecisionKind
    due: dt.date | None = None
    #: accept: the level of risk that was accepted; a higher score later lapses the acceptance
    level: Level | None = None
    #: accept: the level of risk left after compensating controls, as the approver judged it
    residual: Level | None = None

    @model_validator(mode="after")
    def _complete(self) -> RiskDecision:
        if self.decision == "accept":
            missing = [k for k in ("approver", "approved", "expires", "level", "residual")
                       if getattr(self, k) is None]
            if not self.justification.strip():
                missing.append("justification")
            if missing:
                raise ValueError(f"an accepted risk needs {', '.join(missing)}")
            assert self.level is not None and self.residual is not None
            if LEVELS.index(self.residual) > LEVELS.index(self.level):
                raise ValueError("residual is above level")
        elif self.decision == "mitigate" and self.due is None:
            raise ValueError("a mitigation needs a due date (due)")
        return self


class Suppression(_Entry):
    """``[[suppression]]``: findings that are false positives, with the reason and approval."""

    reason: str = Field(min_length=1)
    approver: str = Field(min_length=1)
    approved: dt.date
    expires: dt.date

    @model_validator(mode="after")
    def _narrow(self) -> Suppression:
        if not self.finding and self.asset == "*":
            raise ValueError("a suppression names its findings (finding) or assets (asset); "
                             "a whole check is not a false positive")
        return self


class Treatment(BaseModel):
    """The whole treatment file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    risk: list[RiskDecision] = Field(default_factory=list)
    suppression: list[Suppression] = Field(default_factory=list)

    def label(self, kind: str, index: int) -> str:
        """The name an entry goes by in the reports."""
        entry: _Entry = self.risk[index] if kind == "risk" else self.suppression[index]
        return entry.id or f"{kind}[{index + 1}]"


def load_treatment(path: Path) -> tuple[Treatment, str]:
    """Read and validate a treatment file; return it and the SHA-256 of its bytes.

    Raises :class:`TreatmentError` naming the file and the key (``risk[2].expires``).
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TreatmentError(f"{path}: cannot read the treatment file: {exc.strerror}") from None
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TreatmentError(f"{path}: not valid TOML: {exc}") from None
    return parse_treatment(doc, str(path)), hashlib.sha256(raw).hexdigest()


def parse_treatment(doc: Mapping[str, Any], source: str) -> Treatment:
    """Validate a treatment document (as read from TOML or from a stored run)."""
    try:
        return Treatment.model_validate(doc)
    except ValidationError as exc:
        raise TreatmentError("\n".join(problems(exc, source))) from None


@dataclass(frozen=True, slots=True)
class Disposition:
    """What the treatment file does to one finding."""

    state: State
    #: ``("risk", i)`` or ``("suppression", i)``: the entry that decided it, if any
    entry: tuple[str, int] | None = None
    note: str = ""


OPEN = Disposition("open")


def dispose(t: Treatment, check_id: str, group: str, asset: str, fid: str, level: str,
            day: dt.date) -> Disposition:
    """Decide one finding's state on ``day``, its risk being scored ``level`` now."""
    lapsed: list[str] = []
    for i, s in enumerate(t.suppression):
        if s.matches(check_id, group, asset, fid):
            if s.valid_on(day):
                return Disposition("suppressed", ("suppression", i))
            lapsed.append(f"suppression {t.label('suppression', i)} "
                          + (f"expired on {s.expires}" if day > s.expires
                             else f"is not approved until {s.approved}"))
    for i, r in enumerate(t.risk):
        if not r.matches(check_id, group, asset, fid):
            continue
        name = t.label("risk", i)
        if r.decision != "accept":
            return Disposition("open", ("risk", i), "; ".join(lapsed))
        assert r.level is not None and r.approved is not None and r.expires is not None
        if day > r.expires:
            lapsed.append(f"acceptance {name} expired on {r.expires}")
        elif day < r.approved:
            lapsed.append(f"acceptance {name} is not approved until {r.approved}")
        elif LEVELS.index(level) > LEVELS.index(r.level):
            lapsed.append(f"acceptance {name} was for a {r.level} risk; it is now {level}")
        else:
            return Disposition("accepted", ("risk", i))
        return Disposition("open", ("risk", i), "; ".join(lapsed))
    return Disposition("open", None, "; ".join(lapsed))


@dataclass(slots=True)
class RowTreatment:
    """The treatment of one register row (one check over one asset group)."""

    failed: int = 0
    accepted: int = 0
    suppressed: int = 0
    decision: int | None = None
    notes: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Evaluation:
    """A run's findings seen through the treatment file."""

    day: dt.date
    rows: dict[tuple[str, str], RowTreatment] = field(default_factory=dict)
    #: the findings that count for the exit code: failed, not accepted or suppressed
    open_failures: dict[str, str] = field(default_factory=dict)
    open_errors: int = 0
    accepted: int = 0
    #: every suppressed finding: its slim form and the suppression's index
    suppressed: list[tuple[SuppressedFinding, int]] = field(default_factory=list)
    states: dict[str, Disposition] = field(default_factory=dict)


def evaluate(t: Treatment | None, findings: Iterable[StoredFinding],
             levels: Mapping[tuple[str, str], str], day: dt.date) -> Evaluation:
    """Decide every finding of a run (dicts with ``group``) as of ``day``.

    ``levels`` maps ``(check, group)`` to the register row's level of risk.
    ``open_failures`` maps each open failed finding's id to its severity.
    """
    out = Evaluation(day)
    for f in findings:
        key = (f["check_id"], f["group"])
        row = out.rows.setdefault(key, RowTreatment())
        d = OPEN if t is None else dispose(t, f["check_id"], f["group"], f["asset"], f["id"],
                                           levels.get(key, "Moderate"), day)
        if d.entry is not None and d.entry[0] == "risk" and row.decision is None:
            row.decision = d.entry[1]
        if d.note:
            row.notes.add(d.note)
        failed = f["status"] == "fail"
        row.failed += failed
        if d.state != "open":
            out.states[f["id"]] = d
        if d.state == "suppressed":
            assert d.entry is not None
            row.suppressed += 1
            out.suppressed.append(({"id": f["id"], "check_id": f["check_id"],
                                    "severity": f["severity"], "status": f["status"],
                                    "asset": f["asset"], "group": f["group"]}, d.entry[1]))
        elif d.state == "accepted":
            row.accepted += failed
            out.accepted += 1
        elif failed:
            out.open_failures[f["id"]] = f["severity"]
        else:
            out.open_errors += 1
    return out


def row_view(t: Treatment | None, rt: RowTreatment | None, risk: str,
             day: dt.date) -> dict[str, Any]:
    """What the register and the remediation plan show for one row's treatment."""
    view: dict[str, Any] = {"decision": "", "owner": "", "due": "", "status": "",
                            "residual": risk, "overdue": False, "approval": "",
                            "justification": "", "lapsed": "", "entry": ""}
    if rt is None:
        return view
    view["lapsed"] = "; ".join(sorted(rt.notes))
    if t is not None and rt.decision is not None:
        r = t.risk[rt.decision]
        view.update(decision=r.decision, owner=r.owner, due=str(r.due or ""),
                    justification=r.justification,
                    approval=f"{r.approver}, {r.approved}" if r.approver else "")
        view["entry"] = t.label("risk", rt.decision)
    open_n = rt.failed - rt.accepted - rt.suppressed
    if rt.failed and rt.suppressed >= rt.failed:
        view["status"] = "suppressed: false positive"
        view["residual"] = "none"
    elif rt.accepted and open_n <= 0 and t is not None and rt.decision is not None:
        r = t.risk[rt.decision]
        view["status"] = f"accepted until {r.expires}"
        view["residual"] = r.residual
    elif rt.accepted:
        view["status"] = f"accepted for {rt.accepted:,} of {rt.failed:,} findings"
    elif view["decision"]:
        view["status"] = "open"
    if rt.suppressed and rt.suppressed < rt.failed:
        view["status"] = (view["status"] + "; " if view["status"] not in ("", "open") else "") \
            + f"{rt.suppressed:,} of {rt.failed:,} findings suppressed"
    if view["lapsed"]:
        kept = view["status"] not in ("", "open")
        view["status"] = (view["status"] + "; " if kept else "") + "back in the plan: " \
            + view["lapsed"]
    if view["decision"] in ("mitigate", "avoid", "transfer") and view["due"] and open_n > 0 \
            and dt.date.fromisoformat(view["due"]) < day:
        view["overdue"] = True
        view["status"] = f"OVERDUE since {view['due']}" + (
            "; " + view["status"] if view["status"] and view["status"] != "open" else "")
    return view


def record(t: Treatment, path: Path, digest: str) -> dict[str, Any]:
    """The treatment file as stored with a run (JSON-ready)."""
    return {"file": str(path), "sha256": digest, **t.model_dump(mode="json")}


def from_record(meta: Mapping[str, Any]) -> Treatment | None:
    """The treatment file stored with a run (``None`` when the run had none)."""
    stored = meta.get("treatment")
    if not isinstance(stored, dict):
        return None
    doc = {k: v for k, v in stored.items() if k in ("risk", "suppression")}
    return parse_treatment(doc, f"the treatment stored with the run ({stored.get('file')})")


def run_day(started_at: str) -> dt.date:
    """The date a run's decisions are judged on: the day it started (UTC)."""
    return dt.date.fromisoformat(started_at[:10])


def decision_label(view: Mapping[str, Any]) -> str:
    """One line for a row's decision and where it stands (``accept: accepted until ...``)."""
    if not view or not (view.get("decision") or view.get("status")):
        return "no decision"
    decision = view.get("decision") or "no decision"
    return f"{decision}: {view['status']}" if view.get("status") else decision


def decision_changes(base: Mapping[tuple[str, str], Mapping[str, Any]],
                     head: Mapping[tuple[str, str], Mapping[str, Any]]) -> list[dict[str, str]]:
    """The risks (check, group) whose decision or its standing differ between two runs.

    A risk present in only one run is compared with "no decision" on the other side.
    """
    out = []
    for key in sorted(set(base) | set(head)):
        before, after = decision_label(base.get(key, {})), decision_label(head.get(key, {}))
        if before != after:
            out.append({"check_id": key[0], "group": key[1], "before": before, "after": after})
    return out
