"""Build what the report templates show from a stored run: figures, register, matrix, vendors.

Everything here is read from the history store and the catalog, never from the scanned assets,
so the reports hold only what the store holds: masked evidence.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import socket
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

from hipaa_audit.assess import register_for, treated_register
from hipaa_audit.attest import evidence_files
from hipaa_audit.catalog import Catalog
from hipaa_audit.document import GroupDoc, RunMeta, SuppressedFinding
from hipaa_audit.evidence import (
    BucketSummary,
    EndpointSummary,
    PermissionSummary,
    RunEvidence,
    WatchedReach,
    stored_run_evidence,
)
from hipaa_audit.hipaa import security_rule_data
from hipaa_audit.risk import (
    LEVELS,
    RegisterRow,
    heat_map,
    level_counts,
    requirement_matrix,
)
from hipaa_audit.scanrun import utc_now
from hipaa_audit.store import Store, StoredRun
from hipaa_audit.treatment import Evaluation, Treatment

#: Runs shown in the trend chart.
TREND_RUNS = 8
#: BAAs signed before the Omnibus Rule took effect lack subcontractor and breach terms.
OMNIBUS_DATE = dt.date(2013, 9, 23)
#: Evidence domains the BAA report shows for each vendor's systems.
VENDOR_DOMAINS = ("Encryption at rest", "Transmission security", "Audit logging",
                  "Access control", "Exposure", "De-identification")
#: Provisions whose technical side the scanners can evidence.
TECHNICAL_PROVISIONS = frozenset({"BAA-03", "BAA-S1"})
#: Provisions a pre-Omnibus BAA is unlikely to contain.
OMNIBUS_PROVISIONS = frozenset({"BAA-04", "BAA-05", "BAA-16", "BAA-S1", "BAA-S2", "BAA-S3"})
STAT_LABELS = {
    "files": "files read", "dicom": "DICOM files", "text": "text exports examined",
    "containers": "containers opened", "container_members": "container members",
    "unrecognised": "files of other kinds", "images_read_by_ocr": "images read by OCR",
}


def _first_sentence(text: str) -> str:
    flat = " ".join(text.split())
    end = flat.find(". ")
    return flat if end < 0 else flat[:end + 1]


def _register_dicts(rows: Iterable[RegisterRow]) -> list[dict[str, Any]]:
    return [{**asdict(r), "severity": r.severity.value, "action": _first_sentence(r.remediation)}
            for r in rows]


def _trend(store: Store, run: StoredRun) -> list[dict[str, Any]]:
    done = [r for r in store.complete_runs() if r.seq <= run.seq]
    out = []
    for r in done[-TREND_RUNS:]:
        summary = r.meta.get("summary", {})
        out.append({"id": r.id, "date": r.started_at[:10], "risk": summary.get("risk", {}),
                    "findings": summary.get("findings", 0)})
    return out


def _scanners(catalog: Catalog, groups: list[GroupDoc],
              coverage: dict[str, list[int]]) -> tuple[list[dict[str, Any]], list[str]]:
    """What each scanner that ran checked, with coverage, and what it left out."""
    out = []
    for scanner in sorted({g["scanner"] for g in groups}):
        checks = []
        for c in catalog.for_scanner(scanner):
            evaluated, failed, errors = coverage.get(c.id, [0, 0, 0])
            checks.append({"id": c.id, "title": c.title, "evaluated": evaluated,
                           "failed": failed, "errors": errors})
        notes = [g["note"] for g in groups if g["scanner"] == scanner and g.get("note")]
        out.append({"scanner": scanner, "checks": checks, "notes": sorted(set(notes))})
    not_examined = []
    for g in groups:
        if g["scanner"] == "archive" and not g.get("options", {}).get("ocr"):
            not_examined.append(f"{g['name']}: pixel data was not read for burned-in text "
                                "(OCR off); only BurnedInAnnotation and overlays were checked")
    for g in groups:
        if g["scanner"] == "network" and g.get("options", {}).get("gentle"):
            not_examined.append(f"{g['name']}: gentle mode; the ROBOT and renegotiation tests "
                                "were not run")
    for g in groups:
        if g.get("note"):
            not_examined.append(f"{g['name']}: {g['note']}; its targets are listed as "
                                "not checked")
    not_examined += [
        "Policies, procedures, training, physical safeguards and contracts (see the "
        "requirement matrix: not assessable by automated scanning)",
        "Workstations, modalities and mobile devices not named in the assessment file",
    ]
    return out, not_examined


def _domain(name: str) -> dict[str, Any]:
    return {"name": name, "risks": [], "failed": 0, "errors": 0, "details": []}


def risk_context(store: Store, run: StoredRun, catalog: Catalog,
                 detail_limit: int) -> dict[str, Any]:
    """Return everything the risk-analysis template shows for ``run``."""
    register, evaluation, treatment = treated_register(store, run, catalog)
    meta = run.meta
    evidence = stored_run_evidence(meta)
    coverage = {c["check_id"]: [c["evaluated"], c["failed"], c["errors"]]
                for c in meta.get("coverage", [])}
    attested = meta.get("attestations")
    matrix = requirement_matrix(catalog, coverage, register,
                                attested.get("rows", {}) if isinstance(attested, dict) else None)
    groups = meta.get("groups", [])
    previous = store.previous(run)
    delta = None
    if previous is not None:
        d = store.diff(previous, run, limit=10)
        n_new = store.count_findings(run.seq) - d.persisting
        n_resolved = store.count_findings(previous.seq) - d.persisting
        delta = {"previous": previous.id, "previous_date": previous.started_at[:10],
                 "new": n_new, "resolved": n_resolved, "persisting": d.persisting,
                 "new_top": d.new, "resolved_top": d.resolved}
    total = store.count_findings(run.seq)
    details = list(store.findings(run.seq, limit=detail_limit))
    domains: dict[str, dict[str, Any]] = {}
    for r in register:
        dom_row = domains.setdefault(r.domain, _domain(r.domain))
        dom_row["risks"].append(r.id)
        dom_row["failed"] += r.failed_assets
        dom_row["errors"] += r.error_assets
    by_check = {c.id: c for c in catalog.values()}
    for f in details:
        check = by_check.get(f["check_id"])
        dom = catalog.categories[check.category].domain if check else ""
        domains.setdefault(dom, _domain(dom))["details"].append(f)
    scanners, not_examined = _scanners(catalog, groups, coverage)
    status_counts = Counter(r.status for r in matrix)
    summary = meta.get("summary", {})
    return {
        "kind": "risk",
        "assessment": meta.get("assessment", {}),
        "run": run, "run_meta": meta.get("run", {}), "summary": summary,
        "tool_version": run.tool_version, "generated_at": utc_now(),
        "host": socket.gethostname(),
        "register": _register_dicts(register), "levels": LEVELS,
        "level_counts": level_counts(register), "heat_map": heat_map(register),
        "matrix": matrix, "matrix_counts": dict(status_counts),
        "groups": groups, "stat_labels": STAT_LABELS, "scanners": scanners,
        "not_examined": not_examined,
        "storage": evidence.get("storage", []),
        "endpoints": sorted(evidence.get("endpoints", []),
                            key=lambda e: (e.get("group", ""), e["asset"])),
        "buckets": sorted(evidence.get("buckets", []),
                          key=lambda b: (b.get("group", ""), b["asset"])),
        "logs": evidence.get("logs", []),
        "permissions": _permissions(evidence),
        "endpoint_policies": sorted({f"{g['name']}: {g.get('options', {}).get('policy')}"
                                     for g in groups if g["scanner"] == "network"}),
        "domains": sorted(domains.values(), key=lambda d: -d["failed"]),
        "details": details, "detail_limit": detail_limit, "total_findings": total,
        "trend": _trend(store, run), "delta": delta,
        "pending_change": security_rule_data()["meta"].get("pending_change", ""),
        "treatment": _treatment(meta, treatment, evaluation, detail_limit),
        "attestations": ({"file": attested.get("file", ""), "sha256": attested.get("sha256", ""),
                          "evidence": evidence_files(attested)}
                         if isinstance(attested, dict) else None),
    }


#: Suppressed findings listed one by one in the appendix (all are counted).
SUPPRESSED_SHOWN = 200


def _treatment(meta: RunMeta, treatment: Treatment | None, ev: Evaluation,
               detail_limit: int) -> dict[str, Any] | None:
    """The treatment file of the run: its digest, and every suppression with what it hid."""
    stored = meta.get("treatment")
    if treatment is None or not isinstance(stored, dict):
        return None
    hidden: dict[int, list[SuppressedFinding]] = {}
    for slim, index in ev.suppressed:
        hidden.setdefault(index, []).append(slim)
    suppressions = []
    for i, sup in enumerate(treatment.suppression):
        found = hidden.get(i, [])
        suppressions.append({
            "label": treatment.label("suppression", i), "reason": sup.reason,
            "owner": sup.owner, "approver": sup.approver, "approved": str(sup.approved),
            "expires": str(sup.expires), "justification": sup.justification,
            "pattern": f"check {sup.check}, group {sup.group}, asset {sup.asset}"
                       + (f", {len(sup.finding)} finding id(s)" if sup.finding else ""),
            "count": len(found), "findings": found[:min(detail_limit, SUPPRESSED_SHOWN)]})
    return {"file": stored.get("file", ""), "sha256": stored.get("sha256", ""),
            "accepted": ev.accepted, "suppressed": len(ev.suppressed),
            "suppressions": suppressions, "decisions": len(treatment.risk)}


def _permissions(evidence: RunEvidence) -> PermissionSummary | None:
    """The permission scan's summary stored with the run (without its snapshot)."""
    found = evidence.get("permissions")
    if found is None:
        return None
    return cast(PermissionSummary, {k: v for k, v in found.items() if k != "snapshot"})


def _endpoint_url(text: str) -> str:
    """A vendor's endpoint as the scanner names it (``https://h`` → ``https://h:443``)."""
    from hipaa_audit.network.targets import TargetError, parse_target

    try:
        return parse_target(text).url
    except TargetError:
        return text


def _vendor_assets(vendor: dict[str, Any], groups: list[GroupDoc],
                   config_dir: Path, endpoints: Mapping[str, EndpointSummary],
                   buckets: Mapping[str, BucketSummary] | None = None,
                   principals: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The vendor's systems, each with the asset prefix findings are matched on."""
    by_name = {g["name"]: g for g in groups}
    out = []
    for kind, key in (("archive", "archives"), ("audit log", "logs")):
        for entry in vendor.get(key, []):
            if entry in by_name:
                out += [{"kind": kind, "target": t, "group": entry}
                        for t in by_name[entry]["targets"]]
            else:
                path = Path(entry)
                out.append({"kind": kind, "target": str(path if path.is_absolute()
                                                         else config_dir / path)})
    out += [{"kind": "bucket", "target": f"s3://{b}", "bucket": (buckets or {}).get(f"s3://{b}")}
            for b in vendor.get("s3_buckets", [])]
    out += [{"kind": "endpoint", "target": _endpoint_url(e),
             "endpoint": endpoints.get(_endpoint_url(e))} for e in vendor.get("endpoints", [])]
    perm_group = next((g["name"] for g in groups if g["scanner"] == "permissions"), None)
    # the vendor's principals: exact ids, and the ids the permission scan matched to a pattern
    patterns = vendor.get("principals", [])
    exact = [p for p in patterns if not any(c in p for c in "*?[")]
    matched = [p for p in principals if p not in exact
               and any(fnmatch.fnmatchcase(p, pat) for pat in patterns)]
    out += [{"kind": "principal", "target": p, "group": perm_group}
            for p in [*exact, *sorted(matched)]]
    targets = {t: g["name"] for g in groups for t in g["targets"]}
    for a in out:
        a.setdefault("group", targets.get(a["target"]))
        a["examined"] = a["group"] is not None
    return out


def _vendor_reach(vendor: dict[str, Any],
                  watched: Mapping[str, list[WatchedReach]]) -> list[dict[str, Any]] | None:
    """What the vendor's principals can reach, from the permission scan (``None``: not asked)."""
    patterns = vendor.get("principals", [])
    if not patterns:
        return None
    rows = []
    for principal, reach in sorted(watched.items()):
        if any(fnmatch.fnmatchcase(principal, p) for p in patterns):
            rows += [{"principal": principal, **r} for r in reach]
            if not reach:
                rows.append({"principal": principal, "resource": "", "actions": "", "phi": False})
    return rows


def baa_context(store: Store, run: StoredRun, catalog: Catalog) -> dict[str, Any]:
    """Return everything the BAA-evidence template shows for ``run``."""
    meta = run.meta
    rule = security_rule_data()
    provisions = rule["baa_required_provisions_164_504e"]
    groups = meta.get("groups", [])
    config = meta.get("config", {})
    config_dir = Path(meta.get("run", {}).get("options", {}).get("config", ".")).parent
    register = register_for(store, run, catalog)
    domain_of = {c.id: catalog.categories[c.category].domain for c in catalog.values()}
    group_cov = {g["name"]: {c["check_id"]: c for c in g.get("coverage", [])} for g in groups}
    run_evidence = stored_run_evidence(meta)
    endpoints = run_evidence.get("endpoints", [])
    endpoint_by_target = {e["target"]: e for e in endpoints}
    endpoint_by_target.update({e["asset"]: e for e in endpoints})
    vendors = []
    perm = run_evidence.get("permissions")
    watched = (perm.get("watched") or {}) if perm is not None else {}
    max_age = int(config.get("report", {}).get("evidence_max_age_days", 365))
    run_date = dt.date.fromisoformat(run.started_at[:10])
    received: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for d in meta.get("vendor_documents", []):
        age = (run_date - dt.date.fromisoformat(d["received"])).days
        for pid in d["provisions"]:
            received.setdefault((d["vendor"], pid), []).append(
                {**d, "age_days": age, "stale": age > max_age})
    for v in config.get("vendor", []):
        assets = _vendor_assets(v, groups, config_dir, endpoint_by_target,
                                {b["asset"]: b for b in run_evidence.get("buckets", [])},
                                principals=watched)
        rows = store.tally_assets(run.seq, [a["target"] for a in assets])
        evidence = []
        for dom in VENDOR_DOMAINS:
            failed = sum(n for c, st, n in rows if st == "fail" and domain_of.get(c) == dom)
            checks = sorted({c for c, st, _ in rows if st == "fail" and domain_of.get(c) == dom})
            checked = 0
            for a in assets:
                cov = group_cov.get(a["group"] or "", {})
                checked += sum(c["evaluated"] for cid, c in cov.items()
                               if domain_of.get(cid) == dom)
            # the permission scan judges access to every system, the vendor's included
            vendor_groups = {a["group"] for a in assets} | {
                g["name"] for g in groups if g["scanner"] == "permissions"}
            risks = sorted({r.id for r in register
                            if r.check_id in checks and r.group in vendor_groups})
            if failed:
                status, note = "gaps found", f"{failed:,} assets flagged ({', '.join(risks)})"
            elif checked:
                status, note = "no gaps found", f"{checked:,} checks passed on its systems"
            else:
                status, note = "not examined", "no scanner of this run covers it"
            evidence.append({"domain": dom, "status": status, "note": note, "checks": checks})
        errors = sum(n for _c, st, n in rows if st == "error")
        unexamined = [a["target"] for a in assets if not a["examined"]]
        if errors or unexamined:
            parts = [f"{errors:,} of its assets could not be checked"] if errors else []
            if unexamined:
                parts.append(f"{len(unexamined)} of its systems are not among the configured "
                             "targets")
            evidence.append({"domain": "Verifiability", "status": "could not be verified",
                             "note": "; ".join(parts), "checks": []})
        else:
            evidence.append({"domain": "Verifiability", "status": "all examined",
                             "note": "every listed system was examined", "checks": []})
        signed = v.get("baa_signed")
        signed_date = dt.date.fromisoformat(signed) if signed else None
        pre_omnibus = signed_date is not None and signed_date < OMNIBUS_DATE
        cells = []
        gaps = any(e["status"] == "gaps found" for e in evidence)
        seen = any(e["status"] == "no gaps found" for e in evidence)
        for p in provisions:
            if p["id"] in TECHNICAL_PROVISIONS:
                status = ("technical gaps found" if gaps else
                          "technical evidence collected" if seen else "no technical evidence")
            else:
                status = "documents requested"
            docs = received.get((v["name"], p["id"]), [])
            if docs and p["id"] not in TECHNICAL_PROVISIONS:
                status = "stale evidence" if all(d["stale"] for d in docs) else "received"
            cells.append({**p, "status": status, "documents": docs,
                          "omnibus_gap": pre_omnibus and p["id"] in OMNIBUS_PROVISIONS})
        vendors.append({**v, "assets": assets, "evidence": evidence, "provisions": cells,
                        "pre_omnibus": pre_omnibus, "technical_gaps": gaps,
                        "reach": _vendor_reach(v, watched)})
    return {
        "kind": "baa",
        "assessment": meta.get("assessment", {}),
        "run": run, "run_meta": meta.get("run", {}), "tool_version": run.tool_version,
        "generated_at": utc_now(), "vendors": vendors, "provisions": provisions,
        "domains": (*VENDOR_DOMAINS, "Verifiability"), "omnibus_date": OMNIBUS_DATE.isoformat(),
        "evidence_max_age_days": max_age,
        "breach": rule.get("breach_notification_subpart_d", []),
    }
