"""Exposure: PHI files that any local account may read or change, judged from real modes."""

from __future__ import annotations

import stat
import struct
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from helpers import load_generator

from hipaa_audit.archive.exposure import Access, exposure_finding, parse_acl
from hipaa_audit.catalog import load_catalog

pytestmark = pytest.mark.e2e

gen = load_generator()
CHECK = "archive-exposed-phi"


def exposures(root: Path, arg: str) -> dict[str, dict[str, Any]]:
    result = run_cli("scan", "archive", arg, "--format", "json", "--fail-on", "none", cwd=root)
    assert result.code in (0, 4), result.stderr
    return {f["asset"]: f for f in result.json()["findings"] if f["check_id"] == CHECK}


def test_world_readable_phi_is_exposed(open_tree: Path) -> None:
    share = open_tree / "share"
    share.mkdir(mode=0o755)
    share.chmod(0o755)
    for name, mode in (("open.dcm", 0o644), ("shut.dcm", 0o640), ("writable.dcm", 0o666)):
        (share / name).write_bytes(gen.fail_top_level())
        (share / name).chmod(mode)
    (share / "clean.dcm").write_bytes(gen.pass_dummies())
    (share / "clean.dcm").chmod(0o644)
    found = exposures(open_tree, "share")
    assert set(found) == {"share/open.dcm", "share/writable.dcm"}  # not clean (no PHI), not 0640
    loc = found["share/open.dcm"]["locations"][0]
    assert loc["mode"] == "0644" and loc["permissions"] == "-rw-r--r--"
    assert loc["owner"] and loc["group"]
    assert found["share/open.dcm"]["category"] == "exposure"
    assert "change it" in found["share/writable.dcm"]["message"]


def test_private_folder_blocks_exposure(open_tree: Path) -> None:
    private = open_tree / "private"
    private.mkdir()
    private.chmod(0o700)
    (private / "open.dcm").write_bytes(gen.fail_top_level())
    (private / "open.dcm").chmod(0o644)
    assert exposures(open_tree, "private") == {}


def test_world_writable_folder_without_sticky_bit(open_tree: Path) -> None:
    drop = open_tree / "drop"
    drop.mkdir()
    (drop / "IM1.dcm").write_bytes(gen.fail_top_level())
    (drop / "IM1.dcm").chmod(0o600)
    drop.chmod(0o777)
    found = exposures(open_tree, "drop")
    assert "replace or delete" in found["drop/IM1.dcm"]["message"]
    drop.chmod(0o1777)  # the sticky bit: others may not delete what they do not own
    assert exposures(open_tree, "drop") == {}


def test_container_with_phi_is_judged_as_a_file(open_tree: Path) -> None:
    (open_tree / "bundle.tar.gz").write_bytes(gen.container_cases()[
        "containers/fail_nested.tar.gz"][0])
    (open_tree / "bundle.tar.gz").chmod(0o644)
    found = exposures(open_tree, "bundle.tar.gz")
    assert set(found) == {"bundle.tar.gz"}


def test_acl_entries_are_parsed() -> None:
    data = struct.pack("<I", 2) + b"".join(
        struct.pack("<HHI", tag, perm, ident)
        for tag, perm, ident in ((0x01, 6, 0xFFFFFFFF), (0x02, 4, 1001), (0x04, 4, 0xFFFFFFFF),
                                 (0x08, 6, 50), (0x10, 6, 0xFFFFFFFF), (0x20, 0, 0xFFFFFFFF))
    )
    assert parse_acl(data) == ("user:1001:r-", "group:50:rw")
    assert parse_acl(b"") == ()


def test_rule_is_pure() -> None:
    check = load_catalog()[CHECK]
    closed = Access(stat.S_IFREG | 0o600, "pacs", "radiology", (), None, None)
    assert exposure_finding(closed, "a.dcm", check) is None
    blocked = Access(stat.S_IFREG | 0o644, "pacs", "radiology", (), "/srv/private", None)
    assert exposure_finding(blocked, "a.dcm", check) is None
    acl = Access(stat.S_IFREG | 0o644, "pacs", "radiology", ("user:1001:r-",), None, None)
    finding = exposure_finding(acl, "a.dcm", check)
    assert finding is not None and finding.locations[0].get("acl") == "user:1001:r-"
    assert "mode 0644" in finding.message and "owner pacs" in finding.message


def test_exposure_needs_an_identifier_not_a_mere_risk(open_tree: Path) -> None:
    """Issue 17 item 3: a missing BurnedInAnnotation or one private element is no PHI found.

    Both files are world-readable and fail a check of the burned-in-phi or residual-identifier
    category, yet hold no identifier's value: "holds PHI" would be a false claim. A private
    element that holds the patient's name is located and does make the file PHI.
    """
    share = open_tree / "share"
    share.mkdir(mode=0o755)
    share.chmod(0o755)
    no_flag = gen.image("us-no-flag", sop_class=gen.US_IMAGE, modality="US")
    gen.deidentify(no_flag, burned_in=None)
    private = gen.deidentify(gen.image("one-private"))
    private.private_block(0x0029, "ACME 1.0", create=True).add_new(0x10, "LO", "series tag 7")
    named = gen.deidentify(gen.image("private-name"))
    named.private_block(0x0029, "ACME 1.0", create=True).add_new(0x10, "LO", "Whitmore^Eleanor")
    for name, ds in (("us.dcm", no_flag), ("private.dcm", private), ("named.dcm", named)):
        (share / name).write_bytes(gen.encode(ds))
        (share / name).chmod(0o644)
    result = run_cli("scan", "archive", "share", "--format", "json", "--fail-on", "none",
                     cwd=open_tree)
    assert result.code == 0, result.stderr
    checks: dict[str, set[str]] = {}
    for f in result.json()["findings"]:
        checks.setdefault(f["asset"], set()).add(f["check_id"])
    assert "dicom-burned-in-annotation" in checks["share/us.dcm"]  # the risk is still reported
    assert "dicom-private-elements" in checks["share/private.dcm"]
    assert CHECK not in checks["share/us.dcm"] | checks["share/private.dcm"]
    assert CHECK in checks["share/named.dcm"]
