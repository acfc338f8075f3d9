"""``findings.sarif`` of a stored assessment run, with its suppressions and accepted risks.

Every finding of the run is a SARIF result. A finding the run's treatment file suppressed (a
false positive) or accepted (an accepted risk) carries ``suppressions`` as SARIF 2.1.0 defines
them (section 3.35): ``kind: "external"`` (the decision lives outside the scanned assets),
``status: "accepted"``, and a ``justification`` naming the entry, its approver and expiry. Code
scanning dashboards then show them as dismissed, not gone.
"""

from __future__ import annotations

from pathlib import Path

from hipaa_audit.catalog import Catalog
from hipaa_audit.model import Coverage, RunInfo
from hipaa_audit.outfiles import open_output
from hipaa_audit.output.sarif import SarifRenderer
from hipaa_audit.store import Store, StoredRun
from hipaa_audit.treatment import Disposition, Evaluation, Treatment


def suppression_of(t: Treatment, d: Disposition) -> dict[str, str] | None:
    """The SARIF ``suppression`` object of a finding's disposition (``None``: open)."""
    if d.entry is None or d.state == "open":
        return None
    kind, index = d.entry
    name = t.label(kind, index)
    if kind == "suppression":
        s = t.suppression[index]
        why = (f"false positive ({name}): {s.reason}; approved by {s.approver} on "
               f"{s.approved}, expires {s.expires}")
    else:
        r = t.risk[index]
        why = (f"risk accepted ({name}) at residual level {r.residual}: {r.justification}; "
               f"approved by {r.approver} on {r.approved}, expires {r.expires}")
    return {"kind": "external", "status": "accepted", "justification": why}


def export_sarif(store: Store, run: StoredRun, catalog: Catalog, path: Path,
                 evaluation: Evaluation, treatment: Treatment | None) -> None:
    """Write every finding of ``run`` to ``path`` as SARIF 2.1.0 (written whole, then moved)."""
    meta = run.meta.get("run", {})
    info = RunInfo(id=run.id, command=run.command, started_at=run.started_at,
                   targets=list(meta.get("targets", [])), finished_at=run.finished_at,
                   reveal_phi=bool(meta.get("reveal_phi", False)))
    coverage = Coverage({c["check_id"]: [c["evaluated"], c["failed"], c["errors"]]
                         for c in run.meta.get("coverage", [])})
    with open_output(path) as stream:
        renderer = SarifRenderer(stream, catalog, run.tool_version)
        for doc in store.findings(run.seq):
            doc.pop("group", None)
            d = evaluation.states.get(doc["id"])
            renderer.add_doc(doc, suppression_of(treatment, d)
                             if treatment is not None and d is not None else None)
        renderer.finish(info, coverage, dict(run.meta.get("stats", {})),
                        int(run.meta.get("exit_code", 0)))
