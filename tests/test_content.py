"""Files that are neither DICOM nor containers: encryption envelopes, high entropy, storage."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import run_cli

from hipaa_audit.archive.content import _crypt_below, envelope, high_entropy, storage_encryption

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"Salted__" + bytes(24), "openssl-enc"),
        (b"age-encryption.org/v1\n-> X25519 abc\n", "age"),
        (b"-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n", "age"),
        (b"-----BEGIN PGP MESSAGE-----\n\nhQEM\n", "openpgp"),
        (bytes([0xC3, 0x0D, 0x04, 0x09, 0x03, 0x08]) + bytes(16), "openpgp"),  # SKESK v4, new
        (bytes([0x85, 0x01, 0x0C, 0x03]) + bytes(16), "openpgp"),  # PKESK v3, old format
        (b"-----BEGIN PKCS7-----\nMIAG\n", "cms"),
        (bytes.fromhex("3080060" "92a864886f70d010703a080") + bytes(16), "cms"),
        (b"patient,mrn\nWhitmore,4471902\n", None),
        (bytes([0x85, 0x01, 0x0C, 0x09]) + bytes(16), None),  # not a version PKESK has
        (b"\x89PNG\r\n\x1a\n" + bytes(16), None),
    ],
)
def test_envelopes(head: bytes, kind: str | None) -> None:
    assert envelope(head) == kind


def test_high_entropy() -> None:
    assert high_entropy(os.urandom(20000))
    assert not high_entropy(b"MRN,name\n" * 3000)
    assert not high_entropy(os.urandom(100))  # too little to tell


def test_real_openssl_and_gpg_output_is_recognised(tmp_path: Path) -> None:
    tree = tmp_path / "exports"
    tree.mkdir()
    (tree / "plain.csv").write_text("patient,mrn\nWhitmore^Eleanor,MRN4471902\n" * 50)
    subprocess.run(["openssl", "enc", "-aes-256-cbc", "-pbkdf2", "-salt", "-pass", "pass:x",
                    "-in", str(tree / "plain.csv"), "-out", str(tree / "export.csv.enc")],
                   check=True)
    expected = {"encrypted_openssl-enc": 1}
    if shutil.which("gpg"):
        try:
            subprocess.run(["gpg", "--batch", "--yes", "--homedir", str(tmp_path), "--passphrase",
                            "x", "--pinentry-mode", "loopback", "-c", "-o",
                            str(tree / "export.csv.gpg"), str(tree / "plain.csv")],
                           check=True, capture_output=True)
        finally:  # gpg leaves its agent running as a daemon: stop it
            if shutil.which("gpgconf"):
                subprocess.run(["gpgconf", "--homedir", str(tmp_path), "--kill", "gpg-agent"],
                               check=False, capture_output=True)
        expected["encrypted_openpgp"] = 1
    result = run_cli("scan", "archive", "exports", "--format", "json", cwd=tmp_path)
    assets = result.json()["run"]["assets"]
    for key, count in expected.items():
        assert assets[key] == count
    assert assets["text"] == 1  # the plain CSV, examined as text
    findings = {f["asset"]: f["check_id"] for f in result.json()["findings"]}
    assert findings.get("exports/plain.csv") == "archive-unencrypted-phi"


def test_storage_evidence_on_this_machine(tmp_path: Path) -> None:
    evidence = storage_encryption(str(tmp_path))
    assert evidence["target"] == str(tmp_path)
    assert evidence["encrypted"] in (True, False, None)
    result = run_cli("scan", "archive", ".", "--format", "json", cwd=tmp_path)
    (storage,) = result.json()["run"]["evidence"]["storage"]
    assert storage["target"] == "."


def test_dm_crypt_found_below_lvm(tmp_path: Path) -> None:
    """A fake /sys: dm-1 (LVM) sits on dm-0 (LUKS2), which sits on vda2."""
    block = tmp_path / "block"
    for name, uuid in (("dm-0", "CRYPT-LUKS2-0123abcd-root"), ("dm-1", "LVM-xyz")):
        (block / name / "dm").mkdir(parents=True)
        (block / name / "dm" / "uuid").write_text(uuid + "\n")
        (block / name / "slaves").mkdir()
    (block / "vda" / "vda2").mkdir(parents=True)
    (block / "dm-1" / "slaves" / "dm-0").symlink_to(block / "dm-0")
    (block / "dm-0" / "slaves" / "vda2").symlink_to(block / "vda" / "vda2")
    assert _crypt_below(block / "dm-1", 0) == "CRYPT-LUKS2"
    assert _crypt_below(block / "vda" / "vda2", 0) is None


def test_encrypted_file_named_dcm_is_protected_not_unverifiable(tmp_path: Path) -> None:
    (tmp_path / "IM0001.dcm").write_bytes(b"Salted__" + os.urandom(4096))
    (tmp_path / "IM0002.dcm").write_bytes(os.urandom(4096))
    result = run_cli("scan", "archive", ".", "--format", "json", cwd=tmp_path)
    doc = result.json()
    assert doc["run"]["assets"]["encrypted_openssl-enc"] == 1
    (unknown,) = doc["findings"]
    assert unknown["asset"] == "./IM0002.dcm" and "look random" in unknown["message"]
    assert result.code == 4
