"""Scan pydicom's own test files: nothing crashes, nothing is lost, known facts hold.

The folder is globbed from the installed package. Never call ``get_testdata_files()`` or
``get_testdata_file()``: they also look for online files and hang offline.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pydicom.data
import pytest
from conftest import run_cli

pytestmark = pytest.mark.e2e

TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"


@pytest.fixture(scope="module")
def regular_files() -> list[Path]:
    files = [p for p in TEST_FILES.rglob("*") if p.is_file() and not p.is_symlink()]
    assert len(files) > 150, "pydicom's test files are missing"
    return files


@pytest.fixture(scope="module")
def scan() -> dict[str, Any]:
    result = run_cli("scan", "archive", str(TEST_FILES), "--format", "json")
    assert result.code != 1, result.stderr
    assert result.code in (0, 3, 4)
    assert "Traceback" not in result.stderr
    return result.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def by_asset(scan: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    prefix = f"{TEST_FILES}/"
    for f in scan["findings"]:
        assert f["asset"].startswith(prefix), f["asset"]
        out[f["asset"][len(prefix):]].append(f)
    return out


def findings(by_asset: dict[str, list[dict[str, Any]]], rel: str, check_id: str
             ) -> list[dict[str, Any]]:
    return [f for f in by_asset.get(rel, []) if f["check_id"] == check_id]


def tag_paths(found: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    return [tuple(loc["tag_path"]) for f in found for loc in f["locations"] if "tag_path" in loc]


def test_nothing_is_lost(regular_files: list[Path], scan: dict[str, Any],
                         by_asset: dict[str, list[dict[str, Any]]]) -> None:
    assets = scan["run"]["assets"]
    assert assets["files"] == len(regular_files)
    # every file or container member is DICOM (checked), not DICOM (counted), or unverifiable
    # with no part read; containers (zipMR.gz) are opened, and their members count instead
    unread = {
        a for a, fs in by_asset.items()
        if any(f["check_id"] == "archive-unverifiable" and not f["locations"] for f in fs)
    }
    members = assets.get("container_members", 0)
    leaves = assets["files"] + members - assets.get("containers", 0)
    kinds = ("unrecognised", "text", "high_entropy")
    others = sum(assets.get(k, 0) for k in kinds) + sum(
        n for k, n in assets.items() if k.startswith("encrypted_") and k != "encrypted_members_aes")
    assert assets["dicom"] + others + len(unread) == leaves
    named = {str(p.relative_to(TEST_FILES)) for p in regular_files}
    assert {a.split("!/")[0] for a in by_asset} <= named
    assert "zipMR.gz!/zipMR" in by_asset  # the gzip member is read in place and audited
    for row in scan["coverage"]:
        assert row["evaluated"] >= row["failed"]
    coverage = {row["check_id"]: row for row in scan["coverage"]}
    assert coverage["archive-unverifiable"]["evaluated"] == len(regular_files) + members
    assert coverage["dicom-residual-identifier"]["evaluated"] == assets["dicom"]


def test_every_error_is_an_unverifiable_finding(scan: dict[str, Any]) -> None:
    for f in scan["findings"]:
        assert (f["status"] == "error") == (f["check_id"] == "archive-unverifiable"), f
        assert f["category"] != "unverifiable" or f["status"] == "error"


def test_false_declaration_in_dicomdir_tree(by_asset: dict[str, list[dict[str, Any]]]) -> None:
    found = findings(by_asset, "dicomdirtests/77654033/CR1/6154", "dicom-false-deidentification")
    assert found and found[0]["severity"] == "critical"
    assert ("00100010",) in tag_paths(found)


def test_overlay(by_asset: dict[str, list[dict[str, Any]]]) -> None:
    found = findings(by_asset, "examples_overlay.dcm", "dicom-overlay")
    assert found
    assert any(p[-1].startswith("60") and p[-1].endswith("3000") for p in tag_paths(found))


def test_truncated_file_is_unverifiable_yet_checked(
    by_asset: dict[str, list[dict[str, Any]]],
) -> None:
    errors = findings(by_asset, "rtplan_truncated.dcm", "archive-unverifiable")
    assert errors and errors[0]["status"] == "error"
    fails = [f for f in by_asset["rtplan_truncated.dcm"] if f["status"] == "fail"]
    assert fails, "the elements before the truncation must still be checked"
    assert ("00100020",) in tag_paths(findings(by_asset, "rtplan_truncated.dcm",
                                               "dicom-residual-identifier"))  # PatientID


def test_sr_person_name_nested(by_asset: dict[str, list[dict[str, Any]]]) -> None:
    paths = tag_paths(findings(by_asset, "reportsi.dcm", "dicom-residual-identifier"))
    nested = [p for p in paths if len(p) >= 2 and p[-1] == "0040A123"]
    assert nested and nested[0][0] == "0040A730"


def test_nested_private_sequence(by_asset: dict[str, list[dict[str, Any]]]) -> None:
    found = findings(by_asset, "nested_priv_SQ.dcm", "dicom-private-elements")
    assert found
    assert any(len(p) >= 2 for p in tag_paths(found)), "the nested private block is reported"


def test_ct_small_residuals(by_asset: dict[str, list[dict[str, Any]]]) -> None:
    found = findings(by_asset, "CT_small.dcm", "dicom-residual-identifier")
    assert found and found[0]["severity"] == "high"
    paths = tag_paths(found)
    assert ("00100020",) in paths  # PatientID
    assert ("00080080",) in paths  # InstitutionName
    assert ("00101002", "00100020") in paths  # OtherPatientIDsSequence > PatientID


def test_ct_small_patient_name(by_asset: dict[str, list[dict[str, Any]]]) -> None:
    """A name with digits is only a pseudonym where the file declares de-identification."""
    paths = tag_paths(findings(by_asset, "CT_small.dcm", "dicom-residual-identifier"))
    assert ("00100010",) in paths
