"""Masked evidence: shape, length, keyed fingerprint; the value only on request."""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import stat
from pathlib import Path

import pytest

from hipaa_audit.redaction import DATA_DIR_ENV, Masker, installation_key, shape


@pytest.mark.parametrize("key", [b"k" * 32, b"short", b"x" * 100])
@pytest.mark.parametrize("value", ["Whitmore^Eleanor", "", "Müller^Jörg", "219-09-9999"])
def test_fingerprint_is_hmac_sha256(key: bytes, value: str) -> None:
    expected = hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:16]
    assert Masker(key).fingerprint(value) == expected


def test_evidence_hides_the_value() -> None:
    masker = Masker(b"k" * 32)
    ev = masker.evidence("Whitmore^Eleanor", "PN")
    assert "Whitmore" not in ev and "Eleanor" not in ev
    assert ev.startswith("PN len=16 shape=Aaaaaaaa^Aaaaaaa hmac=")
    assert "value=" not in ev
    shown = Masker(b"k" * 32, reveal=True).evidence("Whitmore^Eleanor", "PN")
    assert "Whitmore^Eleanor" in shown


def test_shape() -> None:
    assert shape("Doe^John 12-3") == "Aaa^Aaaa 99-9"
    assert shape("Müller") == "Aaaaaa"
    assert shape("a" * 40).endswith("…")
    assert shape("x\x00y") == "a?a"


def test_masker_pickles_for_workers() -> None:
    masker = Masker(b"k" * 32, reveal=True)
    copy = pickle.loads(pickle.dumps(masker))
    assert copy.fingerprint("abc") == masker.fingerprint("abc")
    assert copy.reveal


def test_installation_key_is_private_and_stable(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "data"))
    key = installation_key()
    assert len(key) == 32
    assert installation_key() == key
    mode = stat.S_IMODE(os.stat(tmp_path / "data" / "fingerprint.key").st_mode)
    assert mode == 0o600
