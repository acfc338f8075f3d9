"""The risk register (NIST SP 800-30 Rev. 1) and the HIPAA requirement matrix: pure functions.

A register row is one risk an officer acts on: one check across one asset group (a configured
archive, endpoint list, bucket set...). Its likelihood and impact start from the catalog and are
adjusted by what the evidence shows; the level of risk comes from Table I-2, which is not
symmetric (a very likely event of low impact is still a Low risk).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from hipaa_audit.catalog import Catalog
from hipaa_audit.hipaa import security_rule_data
from hipaa_audit.model import Category, Severity

LEVELS = ("Very Low", "Low", "Moderate", "High", "Very High")
#: Assets affected at which impact is raised: a disclosure that large likely reaches the
#: 500-individual threshold of 164.406 and 164.408.
VOLUME_THRESHOLD = 500
PHI_CATEGORIES = frozenset({Category.RESIDUAL_IDENTIFIER, Category.BURNED_IN_PHI,
                            Category.UNENCRYPTED_PHI, Category.WEAK_ENCRYPTION})

ReqStatus = Literal["gaps found", "incomplete", "supported", "not assessed",
                    "not assessable", "attested", "attestation open"]


def risk_level(likelihood: str, impact: str) -> str:
    """Return the level of risk of Table I-2 for an overall likelihood and an impact."""
    table = security_rule_data()["nist_sp800_30r1"]["table_I2_level_of_risk"]
    level: str = table["matrix"][likelihood][table["order"].index(impact)]
    return level


def shift(level: str, steps: int) -> str:
    """Move a NIST level up (positive) or down by ``steps``, staying within the scale."""
    return LEVELS[max(0, min(len(LEVELS) - 1, LEVELS.index(level) + steps))]


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """An asset group: one scanner section of the assessment."""

    name: str
    scanner: str
    criticality: str = "moderate"
    targets: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Tally:
    """Stored findings of one check on one group, with one status, severity and category."""

    check_id: str
    group: str
    status: str
    severity: str
    category: str
    findings: int
    assets: int


@dataclass(slots=True)
class RegisterRow:
    """One risk of the register."""

    check_id: str
    group: str
    title: str
    category: str
    domain: str
    findings: int = 0
    assets: int = 0
    failed_assets: int = 0
    error_assets: int = 0
    severity: Severity = Severity.INFO
    base_likelihood: str = "Moderate"
    base_impact: str = "Moderate"
    likelihood: str = "Moderate"
    impact: str = "Moderate"
    risk: str = "Moderate"
    rationale: list[str] = field(default_factory=list)
    hipaa: tuple[str, ...] = ()
    controls: tuple[str, ...] = ()
    threat_source: str = ""
    threat_event: str = ""
    vulnerability: str = ""
    remediation: str = ""
    samples: list[str] = field(default_factory=list)
    id: str = ""
    #: the decision on the risk from the treatment file, as the reports show it
    #: (``treatment.row_view``: decision, owner, due, status, residual, overdue...)
    treatment: dict[str, Any] = field(default_factory=dict)

    def sort_key(self) -> tuple[int, int, int, int, int]:
        """Most risky first: level, likelihood, impact, severity, assets."""
        return (-LEVELS.index(self.risk), -LEVELS.index(self.likelihood),
                -LEVELS.index(self.impact), -self.severity.rank, -self.assets)


@cache
def standard_of() -> dict[str, str]:
    """Map every Security Rule citation to the citation of its standard."""
    out: dict[str, str] = {}
    current = ""
    for row in security_rule_data()["security_rule"]:
        if row["kind"] == "standard":
            current = row["citation"]
        out[row["citation"]] = current
    return out


def controls_for(citations: Iterable[str]) -> tuple[str, ...]:
    """Return the SP 800-53 Rev. 5 controls NIST SP 800-66r2 maps to the cited standards."""
    mapping: Mapping[str, Any] = security_rule_data()["nist_sp800_66r2_by_standard"]
    found: set[str] = set()
    for c in citations:
        std = standard_of().get(c)
        if std and std in mapping:
            found.update(mapping[std].get("sp800_53r5", []))
    def family_then_number(control: str) -> tuple[str, int]:
        family, _, number = control.partition("-")
        return family, int(number) if number.isdigit() else 0

    return tuple(sorted(found, key=family_then_number))


def build_register(tallies: Iterable[Tally], catalog: Catalog,
                   groups: Mapping[str, GroupInfo],
                   samples: Mapping[tuple[str, str], list[str]]) -> list[RegisterRow]:
    """Group findings into risks, score them and number them, most risky first."""
    rows: dict[tuple[str, str], RegisterRow] = {}
    exposed: set[str] = set()
    for t in tallies:
        check = catalog.get(t.check_id)
        hipaa: tuple[str, ...]
        if check is None:  # a check of a newer catalog: keep it visible, scored neutrally
            title, category, lk, im, hipaa, fix = (t.check_id, Category(t.category), "Moderate",
                                                   "Moderate", (), "")
        else:
            title, category, lk, im, hipaa, fix = (check.title, check.category, check.likelihood,
                                                   check.impact, check.hipaa, check.remediation)
        info = catalog.categories.get(category)
        row = rows.get((t.check_id, t.group))
        if row is None:
            row = rows[(t.check_id, t.group)] = RegisterRow(
                check_id=t.check_id, group=t.group, title=title, category=category.value,
                domain=info.domain if info else "", base_likelihood=lk, base_impact=im,
                hipaa=hipaa, controls=controls_for(hipaa), remediation=fix,
                threat_source=info.threat_source if info else "",
                threat_event=info.threat_event if info else "",
                vulnerability=info.vulnerability if info else "",
                samples=list(samples.get((t.check_id, t.group), [])))
        row.findings += t.findings
        row.assets += t.assets
        if t.status == "error":
            row.error_assets += t.assets
        else:
            row.failed_assets += t.assets
            row.severity = max(row.severity, Severity(t.severity))
            if category is Category.EXPOSURE:
                exposed.add(t.group)
    for row in rows.values():
        _score(row, groups.get(row.group), row.group in exposed)
    ordered = sorted(rows.values(), key=RegisterRow.sort_key)
    for i, row in enumerate(ordered, 1):
        row.id = f"R-{i:03d}"
    return ordered


def _score(row: RegisterRow, group: GroupInfo | None, exposed: bool) -> None:
    likelihood, impact = row.base_likelihood, row.base_impact
    why = [f"catalog: likelihood {likelihood}, impact {impact}"]
    if exposed and Category(row.category) in PHI_CATEGORIES:
        likelihood = shift(likelihood, 1)
        why.append("likelihood raised: the same group holds files anyone may read")
    if row.failed_assets >= VOLUME_THRESHOLD:
        impact = shift(impact, 1)
        why.append(f"impact raised: {row.failed_assets:,} assets affected "
                   f"(at least {VOLUME_THRESHOLD})")
    criticality = group.criticality if group else "moderate"
    if criticality == "high":
        impact = shift(impact, 1)
        why.append("impact raised: the asset group is marked high criticality")
    elif criticality == "low":
        impact = shift(impact, -1)
        why.append("impact lowered: the asset group is marked low criticality")
    row.likelihood, row.impact = likelihood, impact
    row.risk = risk_level(likelihood, impact)
    row.rationale = why


def level_counts(rows: Iterable[RegisterRow]) -> dict[str, int]:
    """Count register rows per level of risk, every level present."""
    counts = dict.fromkeys(LEVELS, 0)
    for row in rows:
        counts[row.risk] += 1
    return counts


def heat_map(rows: Iterable[RegisterRow]) -> list[dict[str, Any]]:
    """Return the likelihood x impact grid: rows from Very High down, with counts and levels."""
    counts: dict[tuple[str, str], int] = {}
    for r in rows:
        counts[(r.likelihood, r.impact)] = counts.get((r.likelihood, r.impact), 0) + 1
    return [{"likelihood": lk,
             "cells": [{"impact": im, "count": counts.get((lk, im), 0),
                        "level": risk_level(lk, im)} for im in LEVELS]}
            for lk in reversed(LEVELS)]


@dataclass(slots=True)
class Requirement:
    """The status of one Security Rule standard or implementation specification in a run."""

    citation: str
    safeguard: str
    standard: str
    spec: str | None
    kind: str
    required: str
    summary: str
    checks: list[str]
    evaluated: int = 0
    failed: int = 0
    errors: int = 0
    status: ReqStatus = "not assessable"
    note: str = ""
    risks: list[str] = field(default_factory=list)
    #: the organization's attestation for the row (``attest.py``), empty when none
    attestation: dict[str, Any] = field(default_factory=dict)


_NOT_ASSESSABLE = {
    "Administrative": "policy, procedure, training or assignment: needs documents and "
                      "interviews, not a scan",
    "Physical": "physical safeguard: needs a site review",
    "Technical": "not examined by the scanners of this version",
    "Organizational": "contracts and arrangements: see the BAA-evidence report",
    "Policies and documentation": "documents and their retention: needs a document review",
}


def requirement_matrix(catalog: Catalog, coverage: Mapping[str, list[int]],
                       register: Iterable[RegisterRow],
                       attestations: Mapping[str, Mapping[str, Any]] | None = None
                       ) -> list[Requirement]:
    """Return a status for every standard and specification of 164.308-316.

    A row no scanner can evidence takes its status from ``attestations`` (by citation):
    ``attested`` when answered, ``attestation open`` when asked but unanswered. A row the
    scanners evidence keeps the scan's status; its attestation is shown beside it.
    """
    risks_by_check: dict[str, list[str]] = {}
    for r in register:
        if r.failed_assets:
            risks_by_check.setdefault(r.check_id, []).append(r.id)
    rows = security_rule_data()["security_rule"]
    std = standard_of()
    out: list[Requirement] = []
    for row in rows:
        cite = row["citation"]
        cites = {cite}
        if row["kind"] == "standard":  # a standard is met through its specifications
            cites |= {c for c, s in std.items() if s == cite}
        checks = [c.id for c in catalog.values() if cites & set(c.hipaa)]
        req = Requirement(
            citation=cite, safeguard=row["safeguard"], standard=row["standard"],
            spec=row["implementation_spec"], kind=row["kind"],
            required={"R": "Required", "A": "Addressable"}.get(row["status"] or "", "Standard"),
            summary=row["summary"], checks=checks)
        for c in checks:
            evaluated, failed, errors = coverage.get(c, [0, 0, 0])
            req.evaluated += evaluated
            req.failed += failed
            req.errors += errors
            req.risks.extend(risks_by_check.get(c, []))
        req.status, req.note = _requirement_status(req)
        att = (attestations or {}).get(cite)
        if att:
            req.attestation = dict(att)
            if req.status == "not assessable":
                answered = att.get("status", "unanswered") != "unanswered"
                req.status = "attested" if answered else "attestation open"
                req.note = "" if answered else f"to answer: {att.get('question', '')}"
        out.append(req)
    return out


def _requirement_status(req: Requirement) -> tuple[ReqStatus, str]:
    if not req.checks:
        return "not assessable", _NOT_ASSESSABLE.get(req.safeguard, "not examined by a scan")
    if req.failed:
        return "gaps found", f"{req.failed:,} of {req.evaluated:,} checked assets flagged"
    if not req.evaluated and not req.errors:
        return "not assessed", "no configured scanner examined it in this run"
    if req.errors:
        return "incomplete", (f"no gaps on {req.evaluated:,} checked assets, but {req.errors:,} "
                              "could not be checked")
    return "supported", f"{req.evaluated:,} assets checked, none flagged"
