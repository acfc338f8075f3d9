"""The synthetic fixtures say the answer: one scan of the whole tree, one test per file.

``fixtures/generate.py`` writes the files and carries, beside each builder, the findings the
scan must report (check id, severity, tag paths). These tests run the real CLI once and compare.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from helpers import load_generator

pytestmark = pytest.mark.e2e

SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


generator = load_generator()
EXPECTATIONS: dict[str, dict[str, Any]] = generator.EXPECTATIONS


@pytest.fixture(scope="session")
def fixture_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fixtures") / "tree"
    returned = generator.generate(root)
    assert returned == EXPECTATIONS
    return root


@pytest.fixture(scope="session")
def scan(fixture_tree: Path) -> dict[str, Any]:
    result = run_cli("scan", "archive", str(fixture_tree), "--format", "json", "--fail-on", "none")
    assert result.code in (0, 4), result.stderr
    assert "Traceback" not in result.stderr
    return result.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def findings_by_file(fixture_tree: Path, scan: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    prefix = f"{fixture_tree}/"
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for finding in scan["findings"]:
        assert finding["asset"].startswith(prefix), finding["asset"]
        out[finding["asset"][len(prefix):]].append(finding)
    return out


def describe(findings: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"  {f['check_id']} {f['severity']} {f['status']} "
        f"{[loc.get('tag_path') for loc in f['locations']]}"
        for f in findings
    ) or "  (no findings)"


@pytest.mark.parametrize("relpath", sorted(EXPECTATIONS))
def test_fixture(relpath: str, findings_by_file: dict[str, list[dict[str, Any]]]) -> None:
    expected = EXPECTATIONS[relpath]
    found = findings_by_file.get(relpath, [])
    report = f"{relpath} gave:\n{describe(found)}"
    by_check: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for f in found:
        by_check[f["check_id"]].append(f)
    for want in expected["findings"]:
        candidates = [f for f in by_check[want["check_id"]] if f["status"] == want["status"]]
        assert candidates, f"missing {want['check_id']} ({want['status']}); {report}"
        finding = candidates[0]
        if want["severity"]:
            assert finding["severity"] == want["severity"], report
        if want["at_least"]:
            assert SEVERITY_RANK[finding["severity"]] >= SEVERITY_RANK[want["at_least"]], report
        reported = {tuple(loc.get("tag_path") or ()) for f in candidates for loc in f["locations"]}
        for path in want["tag_paths"]:
            assert tuple(path) in reported, f"{want['check_id']} lacks tag path {path}; {report}"
    for check_id in expected["forbid"]:
        assert check_id not in by_check, f"unexpected {check_id}; {report}"
    if expected["max_severity"]:
        limit = SEVERITY_RANK[expected["max_severity"]]
        too_high = [f for f in found if SEVERITY_RANK[f["severity"]] > limit]
        assert not too_high, f"a pass file gave findings above {expected['max_severity']}; {report}"
    if expected["outcome"] == "unverifiable":
        assert all(f["status"] == "error" for f in found), report
    if expected["outcome"] != "pass":
        assert found, report


def test_every_fixture_is_named_for_its_outcome() -> None:
    prefixes = {"pass": ("pass_",), "fail": ("fail_",), "unverifiable": ("corrupt_", "bad_")}
    for relpath, expected in EXPECTATIONS.items():
        assert Path(relpath).name.startswith(prefixes[expected["outcome"]]), relpath


def test_every_file_is_counted(fixture_tree: Path, scan: dict[str, Any]) -> None:
    files = [p for p in fixture_tree.rglob("*") if p.is_file()]
    assert scan["run"]["assets"]["files"] == len(files) == len(EXPECTATIONS)
    assert scan["run"]["reveal_phi"] is False


def test_exit_code_fail_tree(fixture_tree: Path) -> None:
    result = run_cli("scan", "archive", str(fixture_tree / "fail"), "--format", "json")
    assert result.code == 3, result.stderr


def test_exit_code_pass_tree(fixture_tree: Path) -> None:
    result = run_cli("scan", "archive", str(fixture_tree / "pass"), "--format", "json")
    assert result.code == 0, result.stdout[-2000:] + result.stderr


def test_exit_code_corrupt_tree(fixture_tree: Path) -> None:
    result = run_cli("scan", "archive", str(fixture_tree / "corrupt"), "--format", "json")
    assert result.code == 4, result.stderr
    doc = result.json()
    errors = {f["asset"] for f in doc["findings"] if f["status"] == "error"}
    assert len(errors) == sum(1 for r in EXPECTATIONS if r.startswith("corrupt/"))


def test_ids_stable_and_assets_named_from_the_argument(fixture_tree: Path) -> None:
    """Asset names are ``<argument>/<relative path>``; two runs give the same finding ids."""
    parent = fixture_tree.parent
    runs = [
        run_cli("scan", "archive", fixture_tree.name, "--format", "json", "--fail-on", "none",
                cwd=parent).json()
        for _ in range(2)
    ]
    keys = [
        sorted((f["id"], f["check_id"], f["asset"]) for f in doc["findings"]) for doc in runs
    ]
    assert keys[0] == keys[1]
    assert runs[0]["run"]["id"] != runs[1]["run"]["id"]
    assets = {f["asset"] for f in runs[0]["findings"]}
    assert assets <= {f"{fixture_tree.name}/{r}" for r in EXPECTATIONS}
    assert f"{fixture_tree.name}/fail/fail_top_level.dcm" in assets
    ids = [f["id"] for f in runs[0]["findings"]]
    assert len(ids) == len(set(ids)), "finding ids must be unique within a run"
