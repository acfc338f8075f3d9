"""Containers read in place: zip (zip64), tar, gzip, bzip2, xz, nested, encrypted, hostile."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import pytest
from conftest import by_asset, run_cli
from helpers import leaks, load_generator, render_every_format

pytestmark = pytest.mark.e2e

gen = load_generator()


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("containers") / "estate"
    expectations = gen.write_containers(root)
    return root, expectations


@pytest.fixture(scope="module")
def scan(estate: tuple[Path, dict[str, Any]]) -> dict[str, Any]:
    root, _ = estate
    result = run_cli("scan", "archive", root.name, "--format", "json", "--fail-on", "none",
                     cwd=root.parent)
    assert result.code == 4, result.stderr  # the bomb, the depth cap, the broken zip
    assert result.stderr == ""
    doc: dict[str, Any] = result.json()
    return doc


def test_every_container_expectation(estate: tuple[Path, dict[str, Any]],
                                     scan: dict[str, Any]) -> None:
    root, expectations = estate
    found = by_asset(scan)
    for relpath, per_asset in expectations.items():
        for suffix, expects in per_asset.items():
            asset = f"{root.name}/{relpath}{suffix}"
            got = found.get(asset, [])
            for expect in expects:
                matches = [f for f in got if f["check_id"] == expect.check_id
                           and f["status"] == expect.status]
                assert matches, f"{asset}: no {expect.check_id} in {[f['check_id'] for f in got]}"
                if expect.severity:
                    assert matches[0]["severity"] == expect.severity, asset
                have = {tuple(loc.get("tag_path", [])) for f in matches for loc in f["locations"]}
                for path in expect.tag_paths:
                    assert path in have, f"{asset}: {path} not among {sorted(have)}"


def test_nested_names_and_counts(estate: tuple[Path, dict[str, Any]],
                                 scan: dict[str, Any]) -> None:
    root, _ = estate
    assets = set(by_asset(scan))
    assert f"{root.name}/containers/fail_nested.tar.gz!/inner.zip!/referral/IM0001.dcm" in assets
    # the clean member of the nested zip was checked and holds nothing at medium or above
    clean = by_asset(scan).get(
        f"{root.name}/containers/fail_nested.tar.gz!/inner.zip!/referral/IM0002.dcm", [])
    assert all(f["severity"] in ("low", "info") for f in clean)
    stats = scan["run"]["assets"]
    assert stats["files"] == len(list(root.rglob("*.*")))
    assert stats["containers"] == 11 + 3  # every file, then inner.zip, level2.zip, level3.zip
    assert stats["encrypted_members_aes"] == 1


def test_aes_is_protected_and_zipcrypto_is_weak(estate: tuple[Path, dict[str, Any]],
                                                scan: dict[str, Any]) -> None:
    root, _ = estate
    found = by_asset(scan)
    assert not any(a.startswith(f"{root.name}/containers/pass_aes.zip") for a in found)
    coverage = {row["check_id"]: row for row in scan["coverage"]}
    assert coverage["archive-zipcrypto"]["evaluated"] == 2  # the AES member and the weak one
    assert coverage["archive-zipcrypto"]["failed"] == 1
    (weak,) = found[f"{root.name}/containers/fail_zipcrypto.zip!/study/IM0001.dcm"]
    assert weak["category"] == "weak-encryption"


def test_bomb_and_depth_are_reported(estate: tuple[Path, dict[str, Any]],
                                     scan: dict[str, Any]) -> None:
    root, _ = estate
    found = by_asset(scan)
    (bomb,) = found[f"{root.name}/containers/corrupt_bomb.zip!/zeros.bin"]
    assert "bomb" in bomb["message"] and bomb["status"] == "error"
    (deep,) = found[
        f"{root.name}/containers/corrupt_too_deep.zip!/level2.zip!/level3.zip!/level4.zip"]
    assert "nested deeper than 3" in deep["message"]
    (broken,) = found[f"{root.name}/containers/corrupt_broken.zip"]
    assert "cannot be read" in broken["message"]


def test_member_names_are_labels_only(estate: tuple[Path, dict[str, Any]],
                                      scan: dict[str, Any]) -> None:
    root, _ = estate
    assert f"{root.name}/containers/fail_bundle.tar!/../../escape/IM0001.dcm" in by_asset(scan)
    assert not list(root.parent.parent.rglob("escape")), "nothing is ever extracted"


def test_max_depth_option(estate: tuple[Path, dict[str, Any]]) -> None:
    root, _ = estate
    result = run_cli("scan", "archive", f"{root.name}/containers/corrupt_too_deep.zip",
                     "--format", "json", "--max-depth", "4", cwd=root.parent)
    assets = {f["asset"] for f in result.json()["findings"]}
    assert any(a.endswith("level4.zip!/deep.dcm") for a in assets)


def test_non_utf8_member_name(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", encoding="utf-8",
                      errors="surrogateescape") as archive:
        data = gen.fail_top_level()
        info = tarfile.TarInfo("caf\udce9.dcm")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    (tmp_path / "names.tar").write_bytes(buf.getvalue())
    result = run_cli("scan", "archive", "names.tar", "--format", "json", cwd=tmp_path)
    assert {f["asset"] for f in result.json()["findings"]} == {"names.tar!/caf\\xe9.dcm"}


def test_no_planted_value_leaves_from_members(estate: tuple[Path, dict[str, Any]]) -> None:
    """The command's output (two workers), and every format's writer on one in-process scan
    with two workers."""
    root, _ = estate
    result = run_cli("scan", "archive", root.name, "--format", "table", "--workers", "2",
                     cwd=root.parent)
    texts = {"command": result.stdout + result.stderr,
             **render_every_format("archive", {}, paths=[str(root)], workers=2)}
    assert {"json", "table", "csv", "sarif"} <= set(texts)
    for fmt, text in texts.items():
        assert "IM0001" in text, fmt  # the members were reported on
        assert not leaks(text), fmt
