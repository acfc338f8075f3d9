"""OSCAL exports of a stored assessment run: assessment results and a plan of action (POA&M).

* ``oscal-assessment-results.json``: one ``result`` for the run. Every stored finding is an
  ``observation`` (its evidence masked as in ``findings.json``); every register row is a
  ``risk`` with its NIST SP 800-30 likelihood, impact and level as ``characterizations`` and
  the treatment file's decision: an accepted risk is ``deviation-approved`` (a ``risk-log``
  entry names the approver and date, the expiry is the ``deadline``), and so is a row whose
  findings were all suppressed as false positives (property ``false-positive``; each
  suppressed observation names the suppression and its approver in ``remarks``); a decided
  mitigation (transfer, avoidance) is ``remediating`` with a planned
  ``remediation`` whose milestone is the due date and whose responsible party is the owner,
  anything else ``open``. OSCAL ``findings`` are keyed to the HIPAA Security Rule citations
  (``target``: ``objective-id``), ``not-satisfied`` when a check citing them failed.
* ``oscal-poam.json``: the same risks and observations, and a ``poam-item`` for every risk not
  closed: open ones, those being remediated (overdue ones flagged), and approved deviations,
  which come back when their approval expires.

UUIDs are version-5 UUIDs derived from stable names (the organization and assessment, then the
check and asset group, the finding id, the citation, the owner's name), so the same risk or
owner keeps its UUID from run to run; only the documents and the result, which describe one
run, get the run's. Nothing else (no clock) goes in: the documents depend on the stored run only.

Only OSCAL 1.1 constructs are used; the tests validate both documents with the OSCAL models of
compliance-trestle.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hipaa_audit.catalog import Catalog
from hipaa_audit.document import StoredFinding
from hipaa_audit.model import TOOL_NAME
from hipaa_audit.outfiles import open_output
from hipaa_audit.output.sarifrun import suppression_of
from hipaa_audit.risk import RegisterRow
from hipaa_audit.store import Store, StoredRun
from hipaa_audit.treatment import Evaluation, RiskDecision, Treatment

OSCAL_VERSION = "1.1.3"
#: the NIST namespace of OSCAL's own property and facet names
NIST_NS = "http://csrc.nist.gov/ns/oscal"
#: the namespace of this tool's own property names
TOOL_NS = "https://hipaa-audit.invalid/ns/oscal"
#: root of every UUID this module derives
_ROOT = uuid.uuid5(uuid.NAMESPACE_URL, TOOL_NS)
_NOT_TOKEN = re.compile(r"[^A-Za-z0-9._-]+")


def citation_id(citation: str) -> str:
    """An OSCAL token for a HIPAA citation: ``164.312(a)(2)(iv)`` -> ``hipaa-164.312-a-2-iv``."""
    return "hipaa-" + _NOT_TOKEN.sub("-", citation).strip("-")


def _datetime(stamp: str) -> str:
    """A stored UTC timestamp (``...Z``) as OSCAL wants it (with a time zone)."""
    return stamp if stamp.endswith(("Z", "+00:00")) else stamp + "Z"


def _end_of(day: str) -> str:
    """The last second of a day (UTC), for due dates and expiries."""
    return f"{day}T23:59:59Z"


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _line(text: str) -> str:
    r"""``text`` as an OSCAL one-line string (titles, names, property values).

    Control characters, such as a newline in a file name, are written as ``\xNN``;
    surrounding whitespace is dropped; an empty string becomes ``-``.
    """
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text).strip() or "-"


def _prop(name: str, value: str) -> dict[str, str]:
    """A property in this tool's namespace (OSCAL's own names are not used for its data)."""
    return {"name": name, "value": _line(value), "ns": TOOL_NS}


class _Ids:
    """Version-5 UUIDs scoped to one organization's assessment."""

    def __init__(self, run: StoredRun) -> None:
        a = run.meta.get("assessment", {})
        self.scope = uuid.uuid5(_ROOT, f"{a.get('organization', '')}\x00{a.get('name', '')}")

    def __call__(self, *parts: str) -> str:
        return str(uuid.uuid5(self.scope, "\x00".join(parts)))


class OscalRun:
    """The pieces both documents share, built once from a stored run."""

    def __init__(self, store: Store, run: StoredRun, catalog: Catalog,
                 register: Iterable[RegisterRow], evaluation: Evaluation,
                 treatment: Treatment | None) -> None:
        self.run = run
        self.ids = _Ids(run)
        self.treatment = treatment
        self.evaluation = evaluation
        self.register = list(register)
        self.tool_uuid = self.ids("component", TOOL_NAME)
        #: the type of each named party
        self.parties: dict[str, str] = {}
        self.observations: list[dict[str, Any]] = []
        self.assets: dict[str, str] = {}
        #: observation UUIDs of each (check, group)
        self.by_row: dict[tuple[str, str], list[str]] = {}
        self._seen: dict[tuple[str, str], int] = {}
        for doc in store.findings(run.seq):
            self.observations.append(self._observation(doc))
        self.risks = [self._risk(row) for row in self.register]
        self.findings = self._findings(catalog)

    # parties --------------------------------------------------------------------------
    def party(self, name: str, kind: str = "organization") -> str:
        """The UUID of a named party from the treatment file.

        An owner is an ``organization`` (OSCAL: also a group of people, e.g. a team); an
        approver a ``person``.
        """
        if name not in self.parties or kind == "person":
            self.parties[name] = kind
        return self.ids("party", name)

    def metadata(self, title: str) -> dict[str, Any]:
        """OSCAL ``metadata``: title, last-modified (the run's end), version, parties."""
        a = self.run.meta.get("assessment", {})
        org = str(a.get("organization", ""))
        meta: dict[str, Any] = {
            "title": _line(f"{title}: {org}, {a.get('name', '')}"),
            "last-modified": _datetime(self.run.finished_at or self.run.started_at),
            "version": self.run.id,
            "oscal-version": OSCAL_VERSION,
            "props": [_prop("tool-version", self.run.tool_version)],
            "roles": [{"id": "assessor", "title": "Assessor"},
                      {"id": "risk-owner", "title": "Risk owner"},
                      {"id": "approver", "title": "Approver of a risk decision"}],
        }
        assessor = str(a.get("assessor", ""))
        parties = {org: "organization", assessor: "person", **self.parties}
        meta["parties"] = [{"uuid": self.ids("party", n), "type": kind, "name": _line(n)}
                           for n, kind in sorted(parties.items())]
        meta["responsible-parties"] = [
            {"role-id": "assessor", "party-uuids": [self.ids("party", assessor)]}]
        return meta

    # observations ---------------------------------------------------------------------
    def _observation(self, doc: StoredFinding) -> dict[str, Any]:
        fid, asset = str(doc["id"]), str(doc["asset"])
        key = (str(doc["check_id"]), str(doc.get("group", "")))
        # a finding id names the check, asset and location, not the group: two asset groups
        # that reach the same asset have the same finding; and a scanner may report two
        # findings under one id (numbered here in the order the store keeps them)
        seen = self._seen.get((key[1], fid), 0)
        self._seen[(key[1], fid)] = seen + 1
        obs_uuid = self.ids("observation", key[1], fid, *([str(seen)] if seen else []))
        self.by_row.setdefault(key, []).append(obs_uuid)
        subject = self.assets.setdefault(asset, self.ids("asset", asset))
        d = self.evaluation.states.get(fid)
        state = d.state if d else "open"
        props = [_prop("finding-id", fid), _prop("check-id", key[0]),
                 _prop("asset-group", key[1] or "-"), _prop("severity", str(doc["severity"])),
                 _prop("status", str(doc["status"])), _prop("treatment", state)]
        evidence = [{"description": str(loc.get("evidence") or loc.get("path") or "-"),
                     "props": [_prop("location", str(loc.get("path") or "-"))]}
                    for loc in doc.get("locations", [])]
        obs: dict[str, Any] = {
            "uuid": obs_uuid,
            "title": _line(str(doc["title"])),
            "description": str(doc["message"]),
            "props": props,
            "methods": ["TEST"],
            "types": ["finding"],
            "origins": [{"actors": [{"type": "tool", "actor-uuid": self.tool_uuid}]}],
            "subjects": [{"subject-uuid": subject, "type": "inventory-item",
                          "title": _line(asset)}],
            "collected": _datetime(self.run.started_at),
        }
        if evidence:
            obs["relevant-evidence"] = evidence
        if self.treatment is not None and d is not None:
            why = suppression_of(self.treatment, d)
            if why:
                obs["remarks"] = why["justification"]
        return obs

    # risks ----------------------------------------------------------------------------
    def risk_uuid(self, row: RegisterRow) -> str:
        """The UUID of a register row's risk (the same in every run)."""
        return self.ids("risk", row.check_id, row.group)

    def status(self, row: RegisterRow) -> str:
        """The OSCAL risk status of a register row."""
        view = row.treatment
        shown = str(view.get("status", ""))
        if shown.startswith(("accepted until", "suppressed")):
            return "deviation-approved"
        if not row.failed_assets and not row.error_assets:
            return "closed"
        if view.get("decision") in ("mitigate", "transfer", "avoid"):
            return "remediating"
        return "open"

    def _risk(self, row: RegisterRow) -> dict[str, Any]:
        view = row.treatment
        status = self.status(row)
        facets = [{"name": n, "system": NIST_NS, "value": v}
                  for n, v in (("likelihood", row.likelihood), ("impact", row.impact),
                               ("risk", row.risk))]
        props = [_prop("check-id", row.check_id), _prop("asset-group", row.group),
                 _prop("register-id", row.id or "-"), _prop("severity", row.severity.value),
                 _prop("residual-risk", str(view.get("residual") or row.risk))]
        for k in ("decision", "entry"):
            if view.get(k):
                props.append(_prop(f"treatment-{k}", str(view[k])))
        if view.get("overdue"):
            props.append(_prop("overdue", "true"))
        if str(view.get("status", "")).startswith("suppressed"):
            props.append(_prop("false-positive", "yes"))
        risk: dict[str, Any] = {
            "uuid": self.risk_uuid(row),
            "title": _line(f"{row.id} {row.title} ({row.group})"),
            "description": row.threat_event or row.title,
            "statement": row.vulnerability or row.title,
            "props": props,
            "status": status,
            "origins": [{"actors": [{"type": "tool", "actor-uuid": self.tool_uuid}]}],
            "characterizations": [{
                "origin": {"actors": [{"type": "tool", "actor-uuid": self.tool_uuid}]},
                "facets": facets}],
        }
        remarks = [f"{row.failed_assets:,} asset(s) flagged, {row.error_assets:,} could not be "
                   f"checked; HIPAA: {', '.join(row.hipaa)}"]
        if view.get("status"):
            remarks.append(f"Treatment: {view['status']}")
        if view.get("justification"):
            remarks.append(f"Justification: {view['justification']}")
        risk["description"] = "\n\n".join([risk["description"], *remarks])
        responses: list[dict[str, Any]] = []
        if row.remediation:
            responses.append({"uuid": self.ids("recommendation", row.check_id, row.group),
                              "lifecycle": "recommendation", "title": "Recommended remediation",
                              "description": row.remediation})
        rt = self.evaluation.rows.get((row.check_id, row.group))
        decision = (self.treatment.risk[rt.decision] if self.treatment is not None
                    and rt is not None and rt.decision is not None else None)
        if decision is not None:
            owner = self.party(decision.owner)
            plan: dict[str, Any] = {
                "uuid": self.ids("response", row.check_id, row.group, decision.decision),
                "lifecycle": "planned",
                "title": f"Decision: {decision.decision}",
                "description": decision.justification or f"{decision.decision} ({view['entry']})",
                "props": [_prop("decision", decision.decision)],
            }
            due = decision.due if decision.decision != "accept" else decision.expires
            if due is not None:
                plan["tasks"] = [{
                    "uuid": self.ids("task", row.check_id, row.group, decision.decision),
                    "type": "milestone",
                    "title": "Due" if decision.decision != "accept" else "Acceptance expires",
                    "description": f"{decision.decision} by {due}, owner {decision.owner}",
                    "timing": {"on-date": {"date": _end_of(str(due))}},
                    "responsible-roles": [{"role-id": "risk-owner", "party-uuids": [owner]}]}]
                if status != "closed":
                    risk["deadline"] = _end_of(str(due))
            responses.append(plan)
            if decision.approver and decision.approved:
                risk["risk-log"] = {"entries": self._log(row, decision)}
        if responses:
            risk["remediations"] = responses
        observed = self.by_row.get((row.check_id, row.group), [])
        if observed:
            risk["related-observations"] = [{"observation-uuid": u} for u in observed]
        return risk

    def _log(self, row: RegisterRow, decision: RiskDecision) -> list[dict[str, Any]]:
        """The approval of a decision, and the expiry of an acceptance that has lapsed."""
        assert decision.approver is not None
        approver = self.party(decision.approver, "person")
        entries: list[dict[str, Any]] = [{
            "uuid": self.ids("approval", row.check_id, row.group, str(decision.approved)),
            "title": f"{decision.decision} approved",
            "description": f"Approved by {decision.approver}"
                           + (f"; expires {decision.expires}" if decision.expires else ""),
            "start": f"{decision.approved}T00:00:00Z",
            "logged-by": [{"party-uuid": approver, "role-id": "approver"}],
            "status-change": "deviation-approved" if decision.decision == "accept"
            else "remediating"}]
        if decision.expires is not None and decision.expires < self.evaluation.day:
            entries.append({
                "uuid": self.ids("expiry", row.check_id, row.group, str(decision.expires)),
                "title": f"{decision.decision} expired",
                "description": f"The approval expired on {decision.expires}; the risk is "
                               "back in the plan.",
                "start": _end_of(str(decision.expires)),
                "status-change": "open"})
        return entries

    # findings -------------------------------------------------------------------------
    def _findings(self, catalog: Catalog) -> list[dict[str, Any]]:
        """One OSCAL finding per HIPAA citation of the checks the run evaluated."""
        cited: dict[str, dict[str, Any]] = {}
        checked = {str(c["check_id"]) for c in self.run.meta.get("coverage", [])}
        for check in sorted(checked):
            if check in catalog:
                for c in catalog[check].hipaa:
                    cited.setdefault(c, {"risks": [], "obs": [], "failed": False})
        for row, risk in zip(self.register, self.risks, strict=True):
            for c in row.hipaa:
                entry = cited.setdefault(c, {"risks": [], "obs": [], "failed": False})
                entry["risks"].append(risk["uuid"])
                entry["obs"] += self.by_row.get((row.check_id, row.group), [])
                entry["failed"] |= risk["status"] != "closed"
        out = []
        for c in sorted(cited):
            e = cited[c]
            state = "not-satisfied" if e["failed"] else "satisfied"
            f: dict[str, Any] = {
                "uuid": self.ids("finding", c),
                "title": _line(f"45 CFR {c}"),
                "description": (f"{len(e['risks'])} risk(s) of this run cite 45 CFR {c}."
                                if e["risks"] else
                                f"The checks citing 45 CFR {c} found nothing."),
                "props": [_prop("hipaa-citation", c)],
                "target": {"type": "objective-id", "target-id": citation_id(c),
                           "title": _line(f"45 CFR {c}"), "status": {"state": state}},
                "origins": [{"actors": [{"type": "tool", "actor-uuid": self.tool_uuid}]}],
            }
            if e["obs"]:
                f["related-observations"] = [{"observation-uuid": u} for u in e["obs"]]
            if e["risks"]:
                f["related-risks"] = [{"risk-uuid": u} for u in e["risks"]]
            out.append(f)
        return out

    def local_definitions(self) -> dict[str, Any]:
        """The tool as a component and every flagged asset as an inventory item."""
        return {
            "components": [{"uuid": self.tool_uuid, "type": "software", "title": TOOL_NAME,
                            "description": f"{TOOL_NAME} {self.run.tool_version}",
                            "status": {"state": "operational"}}],
            **({"inventory-items": [{"uuid": u, "description": a}
                                    for a, u in sorted(self.assets.items())]}
               if self.assets else {}),
        }

    # documents ------------------------------------------------------------------------
    def assessment_results(self) -> dict[str, Any]:
        """The ``assessment-results`` document."""
        run = self.run
        controls = sorted({citation_id(f["props"][0]["value"]) for f in self.findings})
        result: dict[str, Any] = {
            "uuid": self.ids("result", run.id),
            "title": f"{TOOL_NAME} assessment run {run.id}",
            "description": f"Command: {run.command}; exit code "
                           f"{run.meta.get('exit_code', 0)}; --fail-on "
                           f"{run.meta.get('fail_on', 'none')}.",
            "start": _datetime(run.started_at),
            "props": [_prop("run-id", run.id)],
            "local-definitions": self.local_definitions(),
            "reviewed-controls": {"control-selections": [
                {"include-controls": [{"control-id": c} for c in controls]} if controls
                else {"include-all": {}}]},
        }
        if run.finished_at:
            result["end"] = _datetime(run.finished_at)
        if self.observations:
            result["observations"] = self.observations
        if self.risks:
            result["risks"] = self.risks
        if self.findings:
            result["findings"] = self.findings
        doc = {"uuid": self.ids("assessment-results", run.id),
               "metadata": self.metadata("HIPAA Security Rule assessment results"),
               "import-ap": {"href": f"#{self.ids('assessment-plan', run.id)}"},
               "results": [result],
               "back-matter": {"resources": [{
                   "uuid": self.ids("assessment-plan", run.id),
                   "title": "The assessment file",
                   "description": "The assessment file the run read (its SHA-256 digest); "
                                  "no separate OSCAL assessment plan is written.",
                   "props": [_prop("config-sha256", run.config_digest or "-")]}]}}
        return {"assessment-results": doc}

    def poam(self) -> dict[str, Any]:
        """The ``plan-of-action-and-milestones`` document."""
        run = self.run
        pending = [(row, r) for row, r in zip(self.register, self.risks, strict=True)
                   if r["status"] != "closed"]
        wanted = {o["observation-uuid"] for _, r in pending
                  for o in r.get("related-observations", [])}
        items = []
        for row, r in pending:
            view = row.treatment
            item: dict[str, Any] = {
                "uuid": self.ids("poam-item", row.check_id, row.group),
                "title": r["title"],
                "description": row.remediation or row.title,
                "props": [_prop("risk-status", r["status"]),
                          _prop("risk-level", row.risk),
                          _prop("residual-risk", str(view.get("residual") or row.risk))],
                "origins": [{"actors": [{"type": "tool", "actor-uuid": self.tool_uuid}]}],
                "related-risks": [{"risk-uuid": r["uuid"]}],
            }
            if view.get("owner"):
                item["props"].append(_prop("owner", str(view["owner"])))
            if view.get("overdue"):
                item["props"].append(_prop("overdue", "true"))
            if r.get("related-observations"):
                item["related-observations"] = r["related-observations"]
            if view.get("status"):
                item["remarks"] = f"Treatment: {view['status']}"
            items.append(item)
        doc: dict[str, Any] = {
            "uuid": self.ids("poam", run.id),
            "metadata": self.metadata("HIPAA Security Rule plan of action and milestones"),
            "system-id": {"identifier-type": TOOL_NS,
                          "id": _line(str(run.meta.get("assessment", {}).get("name", "")))},
            "local-definitions": self.local_definitions(),
        }
        observations = [o for o in self.observations if o["uuid"] in wanted]
        if observations:
            doc["observations"] = observations
        if pending:
            doc["risks"] = [r for _, r in pending]
        doc["poam-items"] = items
        return {"plan-of-action-and-milestones": doc}


def export_oscal(store: Store, run: StoredRun, catalog: Catalog,
                 register: Iterable[RegisterRow], evaluation: Evaluation,
                 treatment: Treatment | None, results_path: Path, poam_path: Path) -> None:
    """Write ``oscal-assessment-results.json`` and ``oscal-poam.json`` for a run."""
    built = OscalRun(store, run, catalog, register, evaluation, treatment)
    for path, doc in ((results_path, built.assessment_results()), (poam_path, built.poam())):
        with open_output(path) as out:
            json.dump(doc, out, ensure_ascii=False, indent=1)
            out.write("\n")
