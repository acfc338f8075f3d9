"""Masked evidence: shape, length, keyed fingerprint; the value only on request."""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import stat
from pathlib import Path

import pytest

from hipaa_audit.archive.pathnames import component_kinds, mask_path, masked_component
from hipaa_audit.redaction import DATA_DIR_ENV, Masker, installation_key, shape

pytestmark = pytest.mark.unit


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


# -- path names that identify a patient ---------------------------------------------------------

@pytest.mark.parametrize(("component", "kinds"), [
    ("Doe_John_MRN12345678", {"mrn"}),
    ("MRN12345678", {"mrn"}),
    ("219-09-9999.csv", {"ssn"}),
    ("1961-04-27", {"date"}),
    ("19610427_ct", {"date"}),
    ("pt_0093317", {"identifier-number"}),
    ("DOB19610427", {"date"}),
    ("(555) 201-4477", {"phone"}),
    ("eleanor.whitmore@example.org", {"email"}),
    ("1418 Larkspur Lane", {"address"}),
    ("Patient_Eleanor_Whitmore", {"name"}),
    # what must pass: counters, UIDs, series and vendor folders
    ("IM000001", set()), ("00000001", set()), ("series_3", set()), ("CT_CHEST", set()),
    ("1.2.840.113619.2.55.3.20240311.dcm", set()), ("study.zip", set()), ("..", set()),
])
def test_identifier_looking_path_components(component: str, kinds: set[str]) -> None:
    assert set(component_kinds(component)) == kinds


def test_path_components_equal_to_the_files_own_identifiers() -> None:
    tokens, phrases = frozenset({"whitmore", "eleanor"}), frozenset({"acc4471"})
    assert component_kinds("Whitmore") == ()  # a bare surname is only known from the file
    assert component_kinds("Whitmore", tokens, phrases) == ("patient-name",)
    assert component_kinds("ACC4471_scans", tokens, phrases) == ("patient-id",)
    assert component_kinds("CT_scans", tokens, phrases) == ()


def test_mask_path_is_keyed_stable_and_idempotent() -> None:
    masker = Masker(b"k" * 32)
    path = "estate/Doe_John_MRN12345678/study.zip!/219-09-9999/IM0001.dcm"
    masked = mask_path(path, masker)
    assert "12345678" not in masked and "Doe" not in masked and "219-09" not in masked
    assert masked.startswith("estate/[Aaa_Aaaa_AAA99999999 #")
    assert masked.endswith("/IM0001.dcm") and "/study.zip!/[999-99-9999 #" in masked
    assert mask_path(path, masker) == masked  # the same name masks the same way: ids hold
    assert mask_path(masked, masker) == masked  # a masked form is never masked again
    assert mask_path(path, Masker(b"j" * 32)) != masked  # keyed per installation
    assert masked_component("Doe_John_MRN12345678.dcm", masker).endswith("].dcm")
    assert mask_path(path, Masker(b"k" * 32, reveal=True)) == masked  # masking is asked for


def test_very_long_components_are_judged_by_their_head_and_not_cached() -> None:
    from hipaa_audit.archive import pathnames

    before = pathnames._shape_kinds.cache_info().currsize
    assert component_kinds("MRN12345678_" + "x" * 200_000) == ("mrn",)
    assert component_kinds("x" * 200_000 + "MRN12345678") == ()  # past the judged head
    assert pathnames._shape_kinds.cache_info().currsize == before


def test_mask_result_masks_path_valued_locations_too() -> None:
    from hipaa_audit.archive.pathnames import mask_result
    from hipaa_audit.catalog import load_catalog
    from hipaa_audit.evidence import FileAccess
    from hipaa_audit.model import AssetResult, Location

    masker = Masker(b"k" * 32)
    asset = "share/Doe_John_MRN12345678/IM1.dcm"
    finding = load_catalog()["archive-exposed-phi"].finding(asset, "open", locations=(
        Location.of_evidence(FileAccess(
            setting="file-system permissions", owner="root", group="root", mode="0644",
            permissions="-rw-r--r--", acl=None,
            writable_folder="/srv/share/Doe_John_MRN12345678")),))
    result = mask_result(AssetResult(asset, findings=[finding]), masker)
    text = repr(result)
    assert "MRN12345678" not in text and "Doe_John" not in text
    assert result.findings[0].asset == result.asset == mask_path(asset, masker)
    assert result.findings[0].locations[0].get("mode") == "0644"
