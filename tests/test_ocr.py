"""--ocr: Tesseract reads identifiers burned into the pixels; findings give boxes, not words."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli
from test_fixtures import load_generator
from test_phi_never_leaves import leaks

gen = load_generator()
CHECK = "dicom-burned-in-text"


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ocr") / "images"
    root.mkdir()
    (root / "burned.dcm").write_bytes(gen.burned_in_text_image())
    (root / "blank.dcm").write_bytes(gen.burned_in_text_image(with_text=False))
    return root


def test_burned_in_identifiers_are_found(images: Path) -> None:
    result = run_cli("scan", "archive", images.name, "--ocr", "--format", "json",
                     "--fail-on", "none", cwd=images.parent)
    assert result.code == 0, result.stderr
    doc = result.json()
    found = {f["asset"]: f for f in doc["findings"] if f["check_id"] == CHECK}
    assert set(found) == {"images/burned.dcm"}, doc["findings"]
    finding = found["images/burned.dcm"]
    kinds = {k for loc in finding["locations"] for k in loc["found"]}
    assert "patient-name-value" in kinds and "patient-id-value" in kinds
    for loc in finding["locations"]:
        box = loc["box"]
        assert 0 <= box["left"] < 512 and 0 <= box["top"] < 200 and box["width"] > 0
    assert doc["run"]["assets"]["images_read_by_ocr"] == 2
    assert doc["run"]["options"]["ocr"] is True
    assert not leaks(result.stdout)


def test_words_never_leave(images: Path) -> None:
    for fmt in ("json", "table", "csv"):
        out = run_cli("scan", "archive", images.name, "--ocr", "--format", fmt, cwd=images.parent)
        assert "ELEANOR" not in out.stdout.upper()
        assert "4471902" not in out.stdout
        assert "04/27/1961" not in out.stdout


def test_without_ocr_pixels_are_not_examined(images: Path) -> None:
    result = run_cli("scan", "archive", images.name, cwd=images.parent)
    assert "Pixels were not examined" in result.stdout
    assert CHECK not in result.stdout


def test_ocr_reads_container_members(tmp_path: Path) -> None:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("us/IM0001.dcm", gen.burned_in_text_image())
    (tmp_path / "referral.zip").write_bytes(buf.getvalue())
    result = run_cli("scan", "archive", "referral.zip", "--ocr", "--format", "json",
                     cwd=tmp_path)
    found = {f["asset"] for f in result.json()["findings"] if f["check_id"] == CHECK}
    assert found == {"referral.zip!/us/IM0001.dcm"}
