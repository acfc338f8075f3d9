"""One command over a mixed estate (issue "archive in depth", done-when): every part at once.

Loose DICOM, nested containers, plaintext and encrypted exports, a zip bomb, a symlink loop, a
world-writable PHI file and an image with burned-in text, scanned with ``--ocr`` in one run.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from helpers import leaks, load_generator

pytestmark = pytest.mark.e2e

gen = load_generator()


@pytest.fixture(scope="module")
def estate() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="hipaa-audit-estate-"))
    base.chmod(0o755)
    root = base / "estate"
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    (root / "loose.dcm").write_bytes(gen.fail_top_level())
    (root / "loose.dcm").chmod(0o600)
    (root / "shared.dcm").write_bytes(gen.fail_top_level())
    (root / "shared.dcm").chmod(0o666)  # world-writable PHI
    cases = gen.container_cases()
    for name in ("containers/fail_nested.tar.gz", "containers/corrupt_bomb.zip",
                 "containers/fail_zipcrypto.zip", "containers/pass_aes.zip"):
        target = root / Path(name).name
        target.write_bytes(cases[name][0])
        target.chmod(0o600)
    gen.write_exports(root)
    plain = root / "exports" / "worklist.csv"
    subprocess.run(["openssl", "enc", "-aes-256-cbc", "-pbkdf2", "-salt", "-pass", "pass:x",
                    "-in", str(plain), "-out", str(root / "exports" / "worklist.csv.enc")],
                   check=True)
    (root / "us.dcm").write_bytes(gen.burned_in_text_image())
    (root / "us.dcm").chmod(0o600)
    (root / "loop").symlink_to(root / "loop")
    for path in (root / "exports").iterdir():
        path.chmod(0o600)
    yield root
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def scan(estate: Path) -> dict[str, Any]:
    result = run_cli("scan", "archive", "estate", "--ocr", "--format", "json",
                     cwd=estate.parent, timeout=600)
    assert result.code == 3, result.stderr
    assert result.stderr == ""
    doc: dict[str, Any] = result.json()
    doc["_raw"] = result.stdout
    return doc


def checks_of(doc: dict[str, Any]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in doc["findings"]:
        out.setdefault(f["asset"], set()).add(f["check_id"])
    return out


def test_every_part_in_one_run(scan: dict[str, Any]) -> None:
    got = checks_of(scan)
    assert "dicom-residual-identifier" in got["estate/loose.dcm"]
    assert "dicom-residual-identifier" in got[
        "estate/fail_nested.tar.gz!/inner.zip!/referral/IM0001.dcm"]
    assert "archive-unencrypted-phi" in got["estate/exports/worklist.csv"]
    assert "archive-unencrypted-phi" in got["estate/exports/worklist.csv.gz!/worklist.csv"]
    assert "archive-unverifiable" in got["estate/corrupt_bomb.zip!/zeros.bin"]
    assert "archive-unverifiable" in got["estate/loop"]
    assert "archive-exposed-phi" in got["estate/shared.dcm"]
    assert "archive-exposed-phi" not in got["estate/loose.dcm"]  # 0600
    assert "dicom-burned-in-text" in got["estate/us.dcm"]
    assert got["estate/fail_zipcrypto.zip!/study/IM0001.dcm"] == {"archive-zipcrypto"}


def test_encrypted_exports_are_not_called_unencrypted(scan: dict[str, Any]) -> None:
    got = checks_of(scan)
    assert "estate/exports/worklist.csv.enc" not in got
    assert not any(a.startswith("estate/pass_aes.zip") for a in got)
    assets = scan["run"]["assets"]
    assert assets["encrypted_openssl-enc"] == 1 and assets["encrypted_members_aes"] == 1


def test_nested_identifiers_carry_tag_paths(scan: dict[str, Any]) -> None:
    (nested,) = [f for f in scan["findings"]
                 if f["asset"] == "estate/fail_nested.tar.gz!/loose/IM0003.dcm"
                 and f["check_id"] == "dicom-residual-identifier"]
    paths = {tuple(loc["tag_path"]) for loc in nested["locations"]}
    assert ("00100010",) in paths and ("00100020",) in paths


def test_no_planted_value_appears(scan: dict[str, Any]) -> None:
    assert not leaks(scan["_raw"])
