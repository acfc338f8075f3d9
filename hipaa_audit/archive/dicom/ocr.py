"""Burned-in text (``--ocr``): read the pixels' words with Tesseract and look for identifiers.

For every image with pixel data: the first frame (and, for multi-frame images, the middle and
last), windowed with its VOI LUT, scaled to 8 bits, then read three ways (as is, inverted, and
thresholded-then-inverted so white-on-dark text reads). Words are matched against the file's own
identifier values and the Safe Harbor patterns; findings give boxes and kinds, never words.
Tesseract runs single-threaded (``OMP_THREAD_LIMIT=1``); parallelism comes from the workers.
"""

from __future__ import annotations

import io
import os
import shutil
from dataclasses import dataclass
from typing import Any

from hipaa_audit.archive.dicom.parser import ParsedHeader
from hipaa_audit.archive.dicom.rules import identifier_terms
from hipaa_audit.catalog import Check
from hipaa_audit.model import Finding, Location
from hipaa_audit.phi.patterns import safe_harbor_counts, words_of

MIN_CONFIDENCE = 40
MIN_SIDE = 512


class OcrUnavailable(RuntimeError):
    """``--ocr`` was asked for but Tesseract or its Python packages are missing."""


def check_available() -> None:
    """Raise :class:`OcrUnavailable` naming what is missing."""
    missing = [name for name in ("numpy", "PIL", "pytesseract") if not _importable(name)]
    if missing:
        raise OcrUnavailable(f"--ocr needs the Python packages {', '.join(missing)} "
                             "(pip install 'hipaa-audit[ocr]')")
    if shutil.which("tesseract") is None:
        raise OcrUnavailable("--ocr needs the tesseract program (apt-get install tesseract-ocr)")


def _importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Word:
    """One word Tesseract read, with its box on the original frame."""

    text: str
    left: int
    top: int
    width: int
    height: int
    frame: int


def frames(data: bytes) -> list[tuple[int, Any]]:
    """Decode the sampled frames of a DICOM file as 8-bit greyscale arrays (frame number, array).

    Raises whatever pydicom raises when the pixels cannot be decoded.
    """
    import numpy as np
    import pydicom
    from pydicom.pixels.processing import apply_voi_lut

    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    count = int(getattr(ds, "NumberOfFrames", 1) or 1)
    wanted = sorted({0, count // 2, count - 1})
    out = []
    for index in wanted:
        arr = ds.pixel_array if count == 1 else ds.pixel_array[index]
        if arr.ndim == 3:  # colour: luminance
            arr = arr[..., :3].astype("float64") @ np.array([0.299, 0.587, 0.114])
        else:
            arr = apply_voi_lut(arr, ds) if "WindowCenter" in ds or "VOILUTSequence" in ds else arr
        arr = arr.astype("float64")
        low, high = float(arr.min()), float(arr.max())
        scaled = np.zeros(arr.shape) if high <= low else (arr - low) * (255.0 / (high - low))
        img = scaled.astype("uint8")
        if getattr(ds, "PhotometricInterpretation", "") == "MONOCHROME1":
            img = 255 - img
        out.append((index, img))
    return out


def read_words(frame: int, img: Any) -> list[Word]:
    """Read the words of one 8-bit frame, trying the variants that make faint text legible."""
    import pytesseract
    from PIL import Image

    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    base = Image.fromarray(img)
    scale = max(1, -(-MIN_SIDE // max(1, min(base.size))))
    if scale > 1:
        base = base.resize((base.width * scale, base.height * scale))
    variants = [base, base.point(lambda v: 255 - v), base.point(lambda v: 0 if v > 200 else 255)]
    seen: dict[tuple[str, int, int], Word] = {}
    for image in variants:
        data = pytesseract.image_to_data(image, config="--psm 11",
                                         output_type=pytesseract.Output.DICT)
        for i, text in enumerate(data["text"]):
            text = text.strip()
            if not text or float(data["conf"][i]) < MIN_CONFIDENCE:
                continue
            left, top = data["left"][i] // scale, data["top"][i] // scale
            key = (text.lower(), left // 8, top // 8)
            seen.setdefault(key, Word(text, left, top, data["width"][i] // scale,
                                      data["height"][i] // scale, frame))
    return list(seen.values())


def burned_in_finding(words: list[Word], header: ParsedHeader, asset: str,
                      check: Check) -> Finding | None:
    """Return the finding for words that match the file's identifiers or Safe Harbor patterns."""
    tokens, phrases = identifier_terms(header)
    lines: dict[tuple[int, int], list[Word]] = {}
    for word in words:
        lines.setdefault((word.frame, word.top // 12), []).append(word)
    locations = []
    for (frame, _), line in sorted(lines.items()):
        text = " ".join(w.text for w in sorted(line, key=lambda w: w.left)).replace("*", "^")
        kinds = dict(safe_harbor_counts(text))
        names = len(words_of(text) & tokens)
        if names:
            kinds["patient-name-value"] = names
        lowered = text.lower().replace(" ", "")
        copies = sum(1 for p in phrases if p.replace(" ", "") in lowered)
        if copies:
            kinds["patient-id-value"] = copies
        if not kinds:
            continue
        left = min(w.left for w in line)
        top = min(w.top for w in line)
        right = max(w.left + w.width for w in line)
        bottom = max(w.top + w.height for w in line)
        locations.append(Location.of(
            frame=frame, box={"left": left, "top": top, "width": right - left,
                              "height": bottom - top},
            found=dict(sorted(kinds.items())), words=len(line)))
    if not locations:
        return None
    summary = sorted({k for loc in locations for k in loc.get("found", {})})
    return check.finding(
        asset,
        f"Text burned into the pixels matches identifiers ({', '.join(summary)}) in "
        f"{len(locations)} place(s); boxes are given, words are not.",
        locations=tuple(locations),
    )
