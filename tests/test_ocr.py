"""--ocr: Tesseract reads identifiers burned into the pixels; findings give boxes, not words."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import run_bench, run_cli
from helpers import leaks, load_generator, scan_here

from hipaa_audit.archive.dicom.ocr import burned_in_finding, frames, read_words
from hipaa_audit.archive.dicom.parser import parse_header
from hipaa_audit.catalog import load_catalog
from hipaa_audit.model import Location

pytestmark = pytest.mark.e2e

gen = load_generator()
CHECK = "dicom-burned-in-text"


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ocr") / "images"
    root.mkdir()
    (root / "burned.dcm").write_bytes(gen.burned_in_text_image())
    (root / "blank.dcm").write_bytes(gen.burned_in_text_image(with_text=False))
    return root


@pytest.fixture(scope="module")
def ocr_scan(images: Path) -> tuple[int, dict[str, str]]:
    """One OCR scan of ``images`` in this process, as the command runs it (``--fail-on none``):
    its exit code and every format's writer's text. The command itself is :func:`zip_run`."""
    return scan_here("archive", cwd=images.parent, paths=[images.name], ocr=True)


@pytest.fixture(scope="module")
def zip_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The command's OCR scan, in JSON, of a zip holding the image of ``images/burned.dcm``."""
    import io
    import zipfile

    folder = tmp_path_factory.mktemp("ocr-zip")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("us/IM0001.dcm", gen.burned_in_text_image())
    (folder / "referral.zip").write_bytes(buf.getvalue())
    return run_cli("scan", "archive", "referral.zip", "--ocr", "--format", "json", cwd=folder)


def test_burned_in_identifiers_are_found(ocr_scan: tuple[int, dict[str, str]]) -> None:
    code, texts = ocr_scan
    assert code == 0
    doc = json.loads(texts["json"])
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
    assert not leaks(texts["json"])


def test_words_never_leave(ocr_scan: tuple[int, dict[str, str]], zip_run: Any) -> None:
    # the command's output (the same image in a zip), and every format's writer
    texts = {"command": zip_run.stdout + zip_run.stderr, **ocr_scan[1]}
    for fmt, text in texts.items():
        assert CHECK in text, fmt
        assert "ELEANOR" not in text.upper(), fmt
        assert "4471902" not in text, fmt
        assert "04/27/1961" not in text, fmt


def test_without_ocr_pixels_are_not_examined(images: Path) -> None:
    result = run_cli("scan", "archive", images.name, cwd=images.parent)
    assert "Pixels were not examined" in result.stdout
    assert CHECK not in result.stdout


def test_ocr_reads_container_members(zip_run: Any) -> None:
    assert zip_run.code == 3, zip_run.stderr  # a high finding fails the default --fail-on
    doc = zip_run.json()
    found = {f["asset"] for f in doc["findings"] if f["check_id"] == CHECK}
    assert found == {"referral.zip!/us/IM0001.dcm"}
    assert doc["run"]["assets"]["images_read_by_ocr"] == 1 and doc["run"]["options"]["ocr"]
    assert not leaks(zip_run.stdout)


# Realistic burned-in annotations (fixtures/ocr_images.py): small fonts, grey on dark noise,
# JPEG-degraded ultrasound, text on some frames of a multi-frame image. Images from the tuning
# seed; bench/ocr_recall.py reports recall on the held-out seed.


def load_ocr_images() -> ModuleType:
    name = "hipaa_audit_fixture_ocr_images"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).resolve().parent.parent / "fixtures" / "ocr_images.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


ocr_images = load_ocr_images()
#: Multi-frame images whose text is on frames other than the first, middle and last.
TEXT_ON_SOME_FRAMES = (3, 17, 20)
#: Single-frame images with 8-12 px text, grey on noise, two of them JPEG-degraded RGB.
SMALL_GREY_TEXT = (4, 8, 22)


def test_text_burned_into_some_frames_is_found(tmp_path: Path) -> None:
    root = tmp_path / "cine"
    root.mkdir()
    cases = {}
    for index in TEXT_ON_SOME_FRAMES:
        item = ocr_images.case(ocr_images.TUNE_SEED, index)
        assert item.identifying and item.style["frames"] > 1
        assert not {0, item.style["frames"] // 2, item.style["frames"] - 1} & set(
            item.frames_with_text)
        cases[f"cine/{item.name}.dcm"] = item
    for index in (11, 40):  # negatives: one with "L", "kVp 120"... on a few frames
        item = ocr_images.case(ocr_images.TUNE_SEED, index, identifying=False)
        cases[f"cine/{item.name}.dcm"] = item
    for path, item in cases.items():
        (tmp_path / path).write_bytes(item.data)
    result = run_cli("scan", "archive", "cine", "--ocr", "--format", "json", "--fail-on", "none",
                     cwd=tmp_path)
    assert result.code == 0, result.stderr
    found = {f["asset"]: f for f in result.json()["findings"] if f["check_id"] == CHECK}
    assert set(found) == {p for p, item in cases.items() if item.identifying}, sorted(found)
    for path, finding in found.items():
        kinds = {k for loc in finding["locations"] for k in loc["found"]}
        assert kinds & {"patient-name-value", "patient-id-value"}, (path, kinds)
        assert {loc["frame"] for loc in finding["locations"]} <= set(cases[path].frames_with_text)
        assert ocr_images.located(cases[path], [
            Location.of(**loc) for loc in finding["locations"]]), path


@pytest.mark.parametrize("index", SMALL_GREY_TEXT)
def test_every_identifier_line_is_located(index: int) -> None:
    item = ocr_images.case(ocr_images.TUNE_SEED, index)
    header = parse_header(item.data, complete=True)
    assert header is not None and item.style["frames"] == 1 and item.style["px"] <= 12
    words = [w for frame, img in frames(item.data) for w in read_words(frame, img)]
    finding = burned_in_finding(words, header, item.name, load_catalog()[CHECK])
    assert finding is not None
    wanted = [line.kind for line in item.lines if line.identifying]
    assert [line.kind for line in ocr_images.located(item, list(finding.locations))] == wanted


@pytest.mark.bench
def test_recall_bench_prints_both_readers() -> None:
    proc = run_bench("ocr_recall.py", "--images", "2")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "heldout set (seed 2924), 2 images" in out
    for label in ("baseline: Tesseract on the raw image", "hipaa-audit --ocr"):
        assert re.search(rf"{re.escape(label)} +recall +\d+/\d+ += +[\d.]+%", out), out
    assert len(re.findall(r"CPU \d+ ms/image median", out)) == 2


def test_odd_frames_are_read_within_bounds() -> None:
    import numpy as np

    from hipaa_audit.archive.dicom import ocr

    rng = np.random.default_rng(17)
    texture = (np.kron(rng.integers(0, 2, (128, 128)), np.ones((4, 4))) * 255).astype(np.uint8)
    assert 0 < len(ocr.text_lines(texture)) <= ocr.MAX_LINES
    noise = rng.integers(0, 256, (512, 512), dtype=np.uint8)  # strokes everywhere: no lines
    assert ocr.text_lines(noise) == []
    # a 3 x 700 strip once became a 119,700 px wide image that Tesseract refused
    for img in (np.full((3, 700), 200, np.uint8), np.zeros((1, 1), np.uint8)):
        assert ocr.read_words(0, img) == []
