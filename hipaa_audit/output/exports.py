"""Exports of a stored assessment run for other people's tools: JUnit XML and OCSF JSONL.

* ``junit.xml``: one ``testsuite`` per asset group, one ``testcase`` per check the group ran.
  A check with open findings is a ``failure``, one with assets that could not be checked an
  ``error``; a check whose findings were all accepted or suppressed by the treatment file is
  ``skipped`` with the reason, so CI dashboards show known, decided risks apart. Valid for
  Jenkins' ``junit-10.xsd`` (the Maven Surefire format CI dashboards read).
* ``findings.ocsf.jsonl``: every finding as an OCSF Compliance Finding (class 2003, category 2
  Findings, activity 1 Create), one JSON object per line. Accepted and suppressed findings carry
  ``status_id`` 3 (Suppressed); the treatment is in ``unmapped``. An asset that could not be
  checked has compliance status Warning (no result), a risk found Fail. Valid for OCSF 1.3.0.

Both are built from the history store (masked findings) and the run's register.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hipaa_audit.document import StoredFinding
from hipaa_audit.model import TOOL_NAME
from hipaa_audit.outfiles import open_binary_output, open_output
from hipaa_audit.risk import RegisterRow
from hipaa_audit.store import Store, StoredRun
from hipaa_audit.treatment import Evaluation

OCSF_VERSION = "1.3.0"
#: OCSF severity_id for each hipaa-audit severity
OCSF_SEVERITY = {"info": (1, "Informational"), "low": (2, "Low"), "medium": (3, "Medium"),
                 "high": (4, "High"), "critical": (5, "Critical")}


#: characters XML 1.0 cannot hold, such as a control character in a file name
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    r"""``text`` with every character XML 1.0 cannot hold written as ``\xNN`` or ``\uNNNN``."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                        else f"\\u{ord(m.group()):04x}", text)


def junit_tree(run: StoredRun, register: Iterable[RegisterRow]) -> ET.ElementTree:
    """The JUnit XML document of a run: suites per asset group, cases per check."""
    rows = {(r.check_id, r.group): r for r in register}
    root = ET.Element("testsuites", name=f"{TOOL_NAME} assessment {run.id}")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for g in run.meta.get("groups", []):
        checks = {c["check_id"] for c in g.get("coverage", [])}
        checks |= {c for c, grp in rows if grp == g["name"]}
        suite = ET.SubElement(root, "testsuite", name=g["name"],
                              timestamp=run.started_at.rstrip("Z"),
                              time=f"{float(g.get('seconds', 0)):.3f}")
        counts = dict.fromkeys(totals, 0)
        for check in sorted(checks):
            case = ET.SubElement(suite, "testcase", classname=f"{g['scanner']}.{g['name']}",
                                 name=check)
            counts["tests"] += 1
            row = rows.get((check, g["name"]))
            if row is None:
                continue
            view = row.treatment
            status = str(view.get("status", ""))
            decided = status.startswith(("accepted until", "suppressed"))
            if row.failed_assets and decided:
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=f"{row.id} {status}")
            elif row.failed_assets:
                counts["failures"] += 1
                failure = ET.SubElement(
                    case, "failure", type=row.severity.value,
                    message=f"{row.id} {row.risk} risk: {row.failed_assets:,} asset(s) flagged")
                failure.text = "\n".join(
                    [row.title, *row.samples, *([f"treatment: {status}"] if status else [])])
            if row.error_assets:
                counts["errors"] += 1
                ET.SubElement(case, "error", type="unverifiable",
                              message=f"{row.error_assets:,} asset(s) could not be checked")
        for k, n in counts.items():
            suite.set(k, str(n))
            totals[k] += n
    for k, n in totals.items():
        if k != "skipped":  # junit-10.xsd allows skipped on a testsuite, not on testsuites
            root.set(k, str(n))
    for element in root.iter():  # file and group names may hold any character
        element.text = _xml_text(element.text) if element.text else element.text
        for k, v in element.attrib.items():
            element.set(k, _xml_text(v))
    return ET.ElementTree(root)


def export_junit(run: StoredRun, register: Iterable[RegisterRow], path: Path) -> None:
    """Write ``junit.xml`` for a run (written whole, then moved into place)."""
    tree = junit_tree(run, register)
    ET.indent(tree)
    with open_binary_output(path) as out:
        tree.write(out, encoding="utf-8", xml_declaration=True)


def ocsf_finding(doc: StoredFinding, run: StoredRun, state: str,
                 epoch_ms: int) -> dict[str, Any]:
    """One finding (``hipaa-audit.findings/1`` with ``group``) as an OCSF Compliance Finding."""
    sev_id, sev = OCSF_SEVERITY[doc["severity"]]
    failed = doc["status"] == "fail"
    status_id, status = (3, "Suppressed") if state != "open" else (1, "New")
    # OCSF 1.3 compliance status: Warning is a check that did not yield a result
    check_id, check = (3, "Fail") if failed else (2, "Warning")
    return {
        "activity_id": 1, "activity_name": "Create",
        "category_uid": 2, "category_name": "Findings",
        "class_uid": 2003, "class_name": "Compliance Finding",
        "type_uid": 200301, "type_name": "Compliance Finding: Create",
        "time": epoch_ms,
        "severity_id": sev_id, "severity": sev,
        "status_id": status_id, "status": status,
        "message": doc["message"],
        "metadata": {"version": OCSF_VERSION, "uid": doc["id"],
                     "product": {"name": TOOL_NAME, "vendor_name": TOOL_NAME,
                                 "version": run.tool_version}},
        "finding_info": {"uid": doc["id"], "title": doc["title"], "desc": doc["message"],
                         "types": [doc["category"]], "analytic": {
                             "uid": doc["check_id"], "name": doc["check_id"], "type_id": 1,
                             "type": "Rule"}},
        "compliance": {"standards": ["HIPAA"], "requirements": list(doc.get("hipaa", [])),
                       "control": doc["check_id"],
                       "status_id": check_id, "status": check},
        "resources": [{"uid": doc["asset"], "name": doc["asset"], "type": "asset",
                       "group": {"name": doc.get("group", "")}}],
        "remediation": {"desc": doc.get("remediation", "")},
        "unmapped": {"run_id": run.id, "treatment": state,
                     "locations": doc.get("locations", [])},
    }


def export_ocsf(store: Store, run: StoredRun, evaluation: Evaluation, path: Path) -> None:
    """Write every finding of ``run`` as OCSF Compliance Finding JSON lines."""
    started = dt.datetime.fromisoformat(run.started_at.replace("Z", "+00:00"))
    epoch_ms = int(started.timestamp() * 1000)
    with open_output(path) as out:
        for doc in store.findings(run.seq):
            d = evaluation.states.get(doc["id"])
            out.write(json.dumps(ocsf_finding(doc, run, d.state if d else "open", epoch_ms),
                                 ensure_ascii=False, sort_keys=True) + "\n")
