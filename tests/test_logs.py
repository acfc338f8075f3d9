"""``analyze logs`` end to end: accuracy per detector and format, integrity, bad input, no PHI.

``fixtures/loggen.py`` generates 40 days (its minimum with anomalies) of a hospital's imaging
activity (shifts, roles, patients, studies, service streams) with injected anomalies and their
labels, written in every format. Each format is analysed on its own (JSONL with the CLI, the
others in the test's process through the same calls, as the CLI around them is the same); a
finding matches a label when its kind agrees, it names the label's user (or source, system,
device) and their windows overlap. The floors: every injected anomaly present in a format is
found (recall 1.0) and every finding of a detector matches an injected anomaly (precision 1.0),
except where noted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, CliResult, run_cli
from helpers import EQUIVALENT, EXCEPTIONS, analyse_logs_in_process, matches, squash

from hipaa_audit.logs.options import LogsOptions
from hipaa_audit.model import Severity

sys.path.insert(0, str(ROOT / "fixtures"))
import logchain
import loggen

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
FORMATS = {"jsonl": "events.jsonl", "csv": "events.csv", "atna": "audit-atna.log",
           "fhir": "auditevents.ndjson", "cloudtrail": "cloudtrail.json.gz"}
@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, loggen.Activity]:
    folder = tmp_path_factory.mktemp("logs")
    activity = loggen.generate(seed=7, days=40, users=40, patients=600)
    loggen.write_all(folder, activity)
    return folder, activity


def analyze(folder: Path, *files: str, fmt: str = "json", extra: tuple[str, ...] = ()
            ) -> CliResult:
    result = run_cli("analyze", "logs", *files, "--roster", str(folder / "roster.csv"),
                     "--vip", str(folder / "vip_patients.txt"), "--coworkers",
                     str(folder / "coworker_patients.txt"), "--timezone", "America/New_York",
                     "--format", fmt, "--fail-on", "none", *extra, timeout=600)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def in_process(folder: Path, files: list[str], formats: tuple[str, ...]) -> dict[str, str]:
    """What :func:`analyze` prints in each of ``formats``, from one analysis in this process."""
    options = LogsOptions.from_command_line(
        paths=files, timezone="America/New_York", roster=folder / "roster.csv",
        vip=folder / "vip_patients.txt", coworkers=folder / "coworker_patients.txt")
    code, texts = analyse_logs_in_process(options, formats)
    assert code == 0  # --fail-on none
    return texts


def here(*paths: Path, fail_on: Severity | None = None, **options: Any
         ) -> tuple[int, dict[str, Any]]:
    """The exit code and JSON of ``analyze logs PATHS`` with ``options`` (the command line's
    values by field name, e.g. ``cache=False`` for ``--no-cache``) and ``--fail-on fail_on``
    (None: none), analysed in this process as the CLI does. The CLI itself is run by the tests
    of its exit codes and messages."""
    opts = LogsOptions.from_command_line(paths=[str(p) for p in paths], **options)
    code, texts = analyse_logs_in_process(opts, ["json"], fail_on)
    doc: dict[str, Any] = json.loads(texts["json"])
    return code, doc


@pytest.fixture(scope="module")
def analysed(estate: tuple[Path, loggen.Activity]) -> dict[str, dict[str, Any]]:
    """Each format's logs analysed on their own; the JSONL run with the builtin Sigma rules too.

    The JSONL logs go through the CLI, the other formats' through the same calls in this process.
    Sigma rules only add ``log-sigma`` findings, which the accuracy floors leave out.
    """
    folder, _ = estate
    result = analyze(folder, str(folder / FORMATS["jsonl"]), extra=("--sigma", "builtin"))
    assert result.code == 0, result.stderr  # --fail-on none
    out = {"jsonl": result.json()}
    for fmt, name in FORMATS.items():
        if fmt != "jsonl":
            out[fmt] = json.loads(in_process(folder, [str(folder / name)], ("json",))["json"])
    return out


@pytest.mark.parametrize("fmt", FORMATS)
def test_accuracy_per_detector(estate: tuple[Path, loggen.Activity],
                               analysed: dict[str, dict[str, Any]], fmt: str) -> None:
    folder, _ = estate
    labels = [lab for lab in json.loads((folder / "labels.json").read_text())
              if fmt in lab["formats"]]
    findings = [f for f in analysed[fmt]["findings"] if f["status"] == "fail"
                and f["check_id"] not in ("log-integrity", "log-sigma")]
    kinds = {lab["kind"] for lab in labels}
    assert len(kinds) >= 7
    report = []
    for kind in sorted(kinds):
        if (fmt, kind) in EXCEPTIONS:
            continue
        mine = [lab for lab in labels if lab["kind"] == kind]
        found = [f for f in findings
                 if f["check_id"].removeprefix("log-") in EQUIVALENT.get(kind, {kind})]
        recall = sum(any(matches(f, lab) for f in found) for lab in mine) / len(mine)
        precision = (sum(any(matches(f, lab) for lab in labels) for f in found) / len(found)
                     if found else 0.0)
        report.append((kind, recall, precision))
    assert all(r == 1.0 and p == 1.0 for _, r, p in report), report
    # and nothing else fires on normal activity
    fired = {f["check_id"].removeprefix("log-") for f in findings}
    assert fired <= kinds | {"storage-change"}, fired - kinds


def test_findings_carry_evidence_not_phi(estate: tuple[Path, loggen.Activity],
                                         analysed: dict[str, dict[str, Any]]) -> None:
    _, activity = estate
    doc = analysed["jsonl"]
    [bulk] = [f for f in doc["findings"] if f["check_id"] == "log-bulk-export"]
    loc = bulk["locations"][0]
    assert loc["user"] and loc["counts"]["patients"] >= 20 and "median" in loc["baseline"]
    assert len(loc["event_ids"]) == 20 and "164.312(b)" in bulk["hipaa"]
    summary = doc["run"]["evidence"]["logs"][0]
    assert summary["events"] == len(activity.events) and summary["anomalies"]["bulk-export"] == 1


def planted(activity: loggen.Activity) -> set[str]:
    values: set[str] = set()
    for event in activity.events:
        for key in ("patient", "patient_name", "study"):
            value = event.get(key)
            if isinstance(value, str) and len(value) >= 6:
                values.add(value)
                if key == "patient_name":
                    values.update(part for part in value.split("^") if len(part) >= 6)
    return values


OUTPUTS = ("table", "json", "jsonl", "sarif", "csv")


@pytest.fixture(scope="module")
def outputs(estate: tuple[Path, loggen.Activity]) -> dict[str, tuple[str, str]]:
    """Every format's output text of one analysis of all the formats' logs (stdout, stderr).

    The table comes from a real CLI run with ``--progress`` (stdout and stderr); every format,
    the table again among them, from one in-process analysis fed to each writer.
    """
    folder, _ = estate
    files = [str(folder / n) for n in FORMATS.values()]
    result = analyze(folder, *files, fmt="table", extra=("--progress",))
    assert result.code == 0, result.stderr  # --fail-on none
    texts = {fmt: (text, "") for fmt, text in in_process(folder, files, OUTPUTS).items()}
    return {**texts, "cli-table": (result.stdout, result.stderr)}


@pytest.mark.parametrize("fmt", ["cli-table", *OUTPUTS])
def test_no_phi_in_any_output(estate: tuple[Path, loggen.Activity],
                              outputs: dict[str, tuple[str, str]], fmt: str) -> None:
    _, activity = estate
    stdout, stderr = outputs[fmt]
    needles = {squash(v) for v in planted(activity)}
    # family names shared with the workforce are user names, not PHI here
    needles -= {squash(u["family"]) for u in activity.users}
    for where, text in (("stdout", stdout), ("stderr", stderr)):
        flat = squash(text)
        leaked = sorted(n for n in needles if n in flat)
        assert not leaked, f"{fmt} {where}: {leaked[:5]}"
    assert "log-bulk-export" in stdout or "bulk" in stdout.lower()


def test_hash_chain_tampering(tmp_path: Path) -> None:
    good = tmp_path / "audit-chain.jsonl"
    logchain.write_chain(good, logchain.sample_records(50))
    code, doc = here(good, fail_on=Severity.HIGH)
    assert code == 0, doc["findings"]
    assert not [f for f in doc["findings"] if f["check_id"] == "log-integrity"]
    cov = {c["check_id"]: c for c in doc["coverage"]}
    assert cov["log-integrity"]["evaluated"] == 1 and cov["log-integrity"]["failed"] == 0
    bad = tmp_path / "audit-chain-bad.jsonl"
    logchain.delete(good, bad, 20)
    _, doc = here(bad)
    kinds = {f["locations"][0]["kind"] for f in doc["findings"] if f["check_id"] == "log-integrity"}
    assert {"SEQ_GAP", "BROKEN_LINK"} <= kinds
    assert all(f["severity"] == "critical" for f in doc["findings"]
               if f["check_id"] == "log-integrity")


def test_cloudtrail_digests(tmp_path: Path) -> None:
    root, key = logchain.make_trail(tmp_path / "trail")
    result = run_cli("analyze", "logs", str(root), "--cloudtrail-key", str(key), "--format",
                     "json")
    doc = result.json()
    assert not [f for f in doc["findings"] if f["check_id"] == "log-integrity"], doc["findings"]
    assert doc["run"]["assets"]["cloudtrail_digests"] >= 3
    logchain.tamper_log(root, 1)
    _, doc = here(root, cloudtrail_keys=[key])
    kinds = {f["locations"][0]["kind"] for f in doc["findings"] if f["check_id"] == "log-integrity"}
    assert "LOG_HASH_MISMATCH" in kinds
    # without the public key the digests are not verified, and the run says so
    _, doc = here(root)
    assert any(f["check_id"] == "log-unverifiable" and "no public key" in f["message"]
               for f in doc["findings"])


def test_malformed_records_are_counted_with_their_lines(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    good = {"time": "2026-10-01T10:00:00Z", "user": "ann", "action": "view"}
    lines = [json.dumps(good), "{not json", json.dumps(good),
             json.dumps({**good, "time": "yesterday"}), json.dumps(good)]
    log.write_text("\n".join(lines) + "\n")
    result = run_cli("analyze", "logs", str(log), "--format", "json")
    assert result.code == 4
    [bad] = [f for f in result.json()["findings"] if f["check_id"] == "log-unverifiable"]
    assert bad["locations"][0]["lines"] == [2, 4] and "2 record(s)" in bad["message"]
    assert result.json()["run"]["assets"]["events"] == 3


def test_bad_usage(tmp_path: Path) -> None:
    # a missing or unreadable log is a finding (exit 4, as the CLI test of malformed records
    # shows); a bad rule or time zone is a usage error of the CLI (exit 2)
    code, doc = here(tmp_path / "missing.log", fail_on=Severity.HIGH)
    assert code == 4 and "No log file matches" in json.dumps(doc)
    rule = tmp_path / "bad.yml"
    rule.write_text("title: broken\ndetection:\n  sel:\n    action|nosuchmodifier: x\n"
                    "  condition: sel\n")
    log = tmp_path / "x.jsonl"
    log.write_text('{"time": "2026-10-01T10:00:00Z", "user": "a", "action": "view"}\n')
    result = run_cli("analyze", "logs", str(log), "--sigma", str(rule))
    assert result.code == 2 and "bad.yml" in result.stderr
    result = run_cli("analyze", "logs", str(log), "--timezone", "Mars/Olympus")
    assert result.code == 2 and "time zone" in result.stderr
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(bytes(range(256)) * 4)
    code, doc = here(garbage, fail_on=Severity.HIGH)
    assert code == 4 and "could not be read" in json.dumps(doc)


def test_builtin_sigma_rules(analysed: dict[str, dict[str, Any]]) -> None:
    doc = analysed["jsonl"]
    sigma = [f for f in doc["findings"] if f["check_id"] == "log-sigma"]
    assert any("spray" in f["message"].lower() for f in sigma), [f["message"] for f in sigma]


def test_resource_bombs_end_in_findings_not_exit_1(tmp_path: Path) -> None:
    """JSON nested 1,000 deep, numbers past 2^63, a Sigma rule nested 5,000 deep: bounded."""
    deep = "[" * 1000 + "]" * 1000
    record = {"eventVersion": "1.08", "eventTime": "2026-10-01T10:00:00Z",
              "eventName": "GetObject", "eventSource": "s3.amazonaws.com"}
    trail = tmp_path / "trail.json"
    trail.write_text('{"Records": [' + json.dumps(record)[:-1] + f', "x": {deep}}}, '
                     + json.dumps(record)[:-1] + ', "additionalEventData": '
                     '{"bytesTransferredOut": 99999999999999999999999}}, '
                     + json.dumps(record) + "]}")
    code, doc = here(trail, fail_on=Severity.HIGH, cache=False)  # an exception ends the test
    assert code == 4
    [bad] = [f for f in doc["findings"] if f["check_id"] == "log-unverifiable"]
    assert bad["locations"][0]["lines"] == [1, 2]
    assert doc["run"]["assets"]["events"] == 1
    rule = tmp_path / "deep.yml"
    rule.write_text("title: deep\nlogsource:\n  product: x\ndetection:\n  sel: "
                    + "[" * 5000 + "]" * 5000 + "\n  condition: sel\n")
    result = run_cli("analyze", "logs", str(trail), "--sigma", str(rule))
    assert result.code == 2 and "deep.yml" in result.stderr and "Traceback" not in result.stderr


def test_csv_stray_quote_is_reported_not_exit_0(tmp_path: Path) -> None:
    """One unbalanced quote used to swallow 190 rows with exit 0 and 0 malformed."""
    rows = [f"2026-10-01T{i // 60:02d}:{i % 60:02d}:00Z,u{i},view,"
            + {10: '"ws10', 200: 'ws200"'}.get(i, f"ws{i}") for i in range(300)]
    log = tmp_path / "access.csv"
    log.write_text("time,user,action,device\n" + "\n".join(rows) + "\n")
    code, doc = here(log, cache=False)
    assert code == 4
    [bad] = [f for f in doc["findings"] if f["check_id"] == "log-unverifiable"]
    assert bad["locations"][0]["lines"] == [12, 202] and "unbalanced quote" in bad["message"]
    assert doc["run"]["assets"]["events"] == 298


def test_run_says_which_rules_loaded_matched_and_cannot_fire(tmp_path: Path) -> None:
    log = tmp_path / "x.jsonl"
    log.write_text("".join(json.dumps({"time": f"2026-10-01T10:0{i}:00Z", "user": "a",
                                       "action": "view", "code": "GetObject"}) + "\n"
                           for i in range(3)))
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "get.yml").write_text(
        "title: Gets\nid: 6f1c2b1e-0d7a-4b8e-9a51-3c2d1e0f9a11\nlevel: low\n"
        "logsource:\n  product: aws\ndetection:\n  sel:\n    eventName: GetObject\n"
        "  condition: sel\n")
    (rules / "error.yml").write_text(
        "title: Denied\nid: 6f1c2b1e-0d7a-4b8e-9a51-3c2d1e0f9a12\nlevel: low\n"
        "logsource:\n  product: aws\ndetection:\n  sel:\n    requestParameters.userName: x\n"
        "  condition: sel\n")
    code, doc = here(log, sigma=[rules], cache=False)
    assert code == 0, doc["findings"]
    [summary] = doc["run"]["evidence"]["logs"]
    sigma = summary["sigma"]
    assert (sigma["loaded"], sigma["matched"], sigma["with_unknown_fields"]) == (2, 1, 1)
    by_title = {r["title"]: r for r in sigma["rules"]}
    assert by_title["Gets"]["matches"] == 3 and by_title["Gets"]["unknown_fields"] == []
    assert by_title["Denied"]["unknown_fields"] == ["requestParameters.userName"]
    # no record carries a UTC offset and no --timezone: the run says hours are judged in UTC
    assert summary["timezone"]["zone"] == "UTC"
    assert "judged in UTC" in summary["timezone"]["source"]
    # and the run's options do not claim a zone was chosen
    assert doc["run"]["options"]["timezone"].startswith("inferred")


def test_patient_list_feeds_the_relationship_checks(tmp_path: Path) -> None:
    log = tmp_path / "access.csv"
    log.write_text("time,user,action,patient\n" + "".join(
        f"2026-10-0{d}T10:00:00Z,jdoe,view,MRN{d}0000\n" for d in range(1, 8))
        + "2026-10-08T10:00:00Z,jdoe,view,MRN77031234\n")
    roster = tmp_path / "roster.csv"
    roster.write_text("user,family,address\njdoe,Doe,\"27 Quillby Road\"\n")
    patients = tmp_path / "patients.csv"
    base = ("analyze", "logs", str(log), "--roster", str(roster), "--format", "json",
            "--fail-on", "none", "--no-cache", "--timezone", "UTC")
    # without the patient list nothing relates the user to the patient
    code, doc = here(log, roster=roster, cache=False, timezone="UTC")
    assert code == 0, doc["findings"]
    assert not [f for f in doc["findings"] if f["check_id"] == "log-snooping"]
    patients.write_text("patient_id,address,deceased\nMRN77031234,27 Quillby Road,\n")
    result = run_cli(*base, "--patients", str(patients))
    assert result.code == 0, result.stderr
    [found] = [f for f in result.json()["findings"] if f["check_id"] == "log-snooping"]
    assert "lives at their address" in found["message"]
    for value in ("Quillby", "QUILLBY", "77031234"):
        assert value not in result.stdout and value not in result.stderr
    patients.write_text("patient_id,deceased\nMRN77031234,last spring\n")
    result = run_cli(*base, "--patients", str(patients))
    assert result.code == 2 and "line 2" in result.stderr and "deceased" in result.stderr
    assert "Traceback" not in result.stderr
