"""Burned-in text (``--ocr``): read the pixels' words with Tesseract and look for identifiers.

Frames: the first, and for multi-frame images the one with the most text-like strokes plus one
more that clearly holds more of them than the others (text burned into a few frames only),
each windowed with its VOI LUT and scaled to 8 bits. Text lines are found per frame (thin
bright strokes, joined along the row) and each is cut out, scaled so that small fonts reach a
height Tesseract reads well, thresholded on its own (so grey text on noise and white text
beside bright anatomy both binarise cleanly) and read at two scales; the whole frame is read
once as it is for dark text on a light ground. Words are matched against the file's own
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
from hipaa_audit.errors import HipaaAuditError
from hipaa_audit.evidence import Box, OcrText
from hipaa_audit.model import Finding, Location
from hipaa_audit.phi.patterns import safe_harbor_counts, words_of

MIN_CONFIDENCE = 40
MIN_SIDE = 512
#: Upscaling the whole frame stops at this side (Tesseract refuses images over 32767 px).
MAX_SIDE = 4096
#: Multi-frame images: frames read at most, and frames scored to choose them.
MAX_FRAMES = 3
MAX_SCORED_FRAMES = 64
#: Strokes are at most this wide (pixels, odd): wider bright structures are not text.
STROKE_MAX = 7
#: Heights (pixels) of the text lines looked for, and the heights they are read at.
LINE_HEIGHT = (5, 48)
#: Bounds on the line search: frame side searched (larger frames are reduced), stroke runs
#: (more is texture, not text) and lines read per frame.
DETECT_SIDE = 1024
MAX_RUNS = 60_000
MAX_LINES = 64
LINE_SCALES = (32, 48)
MAX_SCALE = 6.0
#: White margin around each line on the page given to Tesseract.
PAD = 12


class OcrUnavailable(HipaaAuditError, RuntimeError):
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

    Single-frame images give their one frame. Multi-frame images give at most
    :data:`MAX_FRAMES`: the first, the one with the most text-like strokes, and one more that
    holds clearly more of them than the typical frame (text burned into some frames only).
    At most :data:`MAX_SCORED_FRAMES` evenly spaced frames are scored. Raises whatever
    pydicom raises when the pixels cannot be decoded.
    """
    import numpy as np
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    count = int(getattr(ds, "NumberOfFrames", 1) or 1)
    pixels = ds.pixel_array
    if count == 1:
        return [(0, _to_8bit(pixels, ds))]
    step = max(1, -(-count // MAX_SCORED_FRAMES))
    scores = {index: int(np.count_nonzero(_strokes(_reduced(_to_8bit(pixels[index], ds)))))
              for index in range(0, count, step)}  # one frame in 8 bits at a time
    chosen = [0, max(scores, key=lambda i: (scores[i], -i))]
    typical = sorted(scores.values())[len(scores) // 2]
    for index in sorted(scores, key=lambda i: (-scores[i], i)):
        if len(set(chosen)) >= MAX_FRAMES or scores[index] <= typical * 1.1 + 40:
            break
        if all(abs(index - c) > 1 for c in chosen):
            chosen.append(index)
    return [(index, _to_8bit(pixels[index], ds)) for index in sorted(set(chosen))]


def _reduced(img: Any) -> Any:
    """The frame reduced (by box averaging) so that no side exceeds :data:`DETECT_SIDE`."""
    import numpy as np
    from PIL import Image

    factor = max(1, -(-max(img.shape) // DETECT_SIDE))
    return img if factor == 1 else np.asarray(Image.fromarray(img).reduce(factor))


def _to_8bit(arr: Any, ds: Any) -> Any:
    """One frame windowed with its VOI LUT (colour: luminance), stretched to 0..255."""
    import numpy as np
    from pydicom.pixels.processing import apply_voi_lut

    if arr.ndim == 3:  # colour: luminance
        arr = arr[..., :3].astype("float64") @ np.array([0.299, 0.587, 0.114])
    elif "WindowCenter" in ds or "VOILUTSequence" in ds:
        arr = apply_voi_lut(arr, ds)
    arr = arr.astype("float64")
    low, high = float(arr.min()), float(arr.max())
    scaled = np.zeros(arr.shape) if high <= low else (arr - low) * (255.0 / (high - low))
    img = scaled.astype("uint8")
    if getattr(ds, "PhotometricInterpretation", "") == "MONOCHROME1":
        img = 255 - img
    return img


def _strokes(img: Any) -> Any:
    """Mask of thin bright strokes: a white top-hat (the frame minus its opening), thresholded.

    Structures wider than :data:`STROKE_MAX` pixels (anatomy, the ultrasound sector) are
    removed; the threshold sits above the noise of the frame itself.
    """
    import numpy as np
    from PIL import Image, ImageFilter

    base = Image.fromarray(img)
    opened = base.filter(ImageFilter.MinFilter(STROKE_MAX)).filter(
        ImageFilter.MaxFilter(STROKE_MAX))
    tophat = np.asarray(base, dtype=np.int16) - np.asarray(opened, dtype=np.int16)
    return tophat > max(40.0, 2.5 * float(np.median(tophat)) + 10)


def text_lines(img: Any) -> list[tuple[int, int, int, int]]:
    """Find the boxes ``(left, top, right, bottom)`` of short bright text lines in a frame.

    Strokes are smeared along the row so that the letters of a line join, then joined into
    8-connected components; components as tall as a line of small to medium text are kept.
    Bounded work: a frame larger than :data:`DETECT_SIDE` is searched reduced (text on such
    frames is drawn larger), a frame whose strokes form more than :data:`MAX_RUNS` runs is
    texture rather than text and gives no lines (it is still read whole), and at most
    :data:`MAX_LINES` boxes are returned, those nearest a corner first.
    """
    import numpy as np

    rows, cols = img.shape
    factor = max(1, -(-max(rows, cols) // DETECT_SIDE))
    mask = _strokes(_reduced(img))
    width = 7
    padded = np.pad(mask.astype(np.int32), ((0, 0), (width // 2 + 1, width // 2)))
    summed = np.cumsum(padded, axis=1)
    dense = (summed[:, width:] - summed[:, :-width]) >= 2
    if np.count_nonzero(dense[:, 1:] & ~dense[:, :-1]) > MAX_RUNS:
        return []
    boxes = []
    for left, top, right, bottom in _components(dense):
        if LINE_HEIGHT[0] <= bottom - top <= LINE_HEIGHT[1] and right - left >= 4:
            boxes.append((left * factor, top * factor, min(cols, right * factor),
                          min(rows, bottom * factor)))
    # annotations sit in the corners: nearest first (to a side edge, plus to the top or bottom)
    boxes.sort(key=lambda b: (min(b[0], cols - b[2]) + min(b[1], rows - b[3]), b))
    return boxes[:MAX_LINES]


def _components(mask: Any) -> list[tuple[int, int, int, int]]:
    """Bounding boxes of the 8-connected components of a boolean mask (run-length union-find)."""
    import numpy as np

    parent: list[int] = []
    boxes: list[list[int]] = []

    def find(label: int) -> int:
        while parent[label] != label:
            parent[label] = parent[parent[label]]
            label = parent[label]
        return label

    previous: list[tuple[int, int, int]] = []
    edges = np.diff(np.pad(mask.astype(np.int8), ((0, 0), (1, 1))), axis=1)
    for y in range(mask.shape[0]):
        starts = np.flatnonzero(edges[y] == 1).tolist()
        ends = np.flatnonzero(edges[y] == -1).tolist()
        current = []
        j = 0
        for start, end in zip(starts, ends, strict=True):
            label = len(parent)
            parent.append(label)
            boxes.append([start, y, end, y + 1])
            while j < len(previous) and previous[j][1] < start:
                j += 1
            k = j
            while k < len(previous) and previous[k][0] <= end:
                a, b = find(previous[k][2]), find(label)
                if a != b:
                    parent[b] = a
                k += 1
            current.append((start, end, label))
        previous = current
    merged: dict[int, list[int]] = {}
    for label, (x0, y0, x1, y1) in enumerate(boxes):
        root = find(label)
        box = merged.setdefault(root, [x0, y0, x1, y1])
        box[0], box[1] = min(box[0], x0), min(box[1], y0)
        box[2], box[3] = max(box[2], x1), max(box[3], y1)
    return [(b[0], b[1], b[2], b[3]) for b in merged.values()]


def read_words(frame: int, img: Any) -> list[Word]:
    """Read the words of one 8-bit frame.

    Each bright text line found by :func:`text_lines` is cut out with a margin, scaled so that
    its text is :data:`LINE_SCALES` pixels tall, contrast-stretched and thresholded on its own
    (Otsu), inverted to dark-on-light, and the lines are read together, one Tesseract call per
    scale. The whole frame is read once more as it is (dark text on a light ground, text larger
    than the lines looked for).
    """
    import pytesseract
    from PIL import Image

    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    seen: dict[tuple[str, int, int], Word] = {}

    def keep(text: str, conf: float, left: float, top: float, width: float,
             height: float) -> None:
        text = text.strip()
        if not text or conf < MIN_CONFIDENCE:
            return
        word = Word(text, int(left), int(top), max(1, int(width)), max(1, int(height)), frame)
        seen.setdefault((text.lower(), word.left // 8, word.top // 8), word)

    lines = text_lines(img)
    if lines:
        for target in LINE_SCALES:
            montage, placed = _montage(img, lines, target)
            data = pytesseract.image_to_data(montage, config="--psm 6",
                                             output_type=pytesseract.Output.DICT)
            for i, text in enumerate(data["text"]):
                middle = data["top"][i] + data["height"][i] / 2
                for top, bottom, x0, y0, scale in placed:
                    if top <= middle < bottom:
                        keep(text, float(data["conf"][i]), x0 + (data["left"][i] - PAD) / scale,
                             y0 + (data["top"][i] - top) / scale, data["width"][i] / scale,
                             data["height"][i] / scale)
                        break
    base = Image.fromarray(img)
    scale = max(1, -(-MIN_SIDE // max(1, min(base.size))))
    scale = max(1, min(scale, MAX_SIDE // max(base.size)))  # a 3 x 700 strip stays readable
    if scale > 1:
        base = base.resize((base.width * scale, base.height * scale))
    data = pytesseract.image_to_data(base, config="--psm 11", output_type=pytesseract.Output.DICT)
    for i, text in enumerate(data["text"]):
        keep(text, float(data["conf"][i]), data["left"][i] / scale, data["top"][i] / scale,
             data["width"][i] / scale, data["height"][i] / scale)
    return list(seen.values())


def _montage(img: Any, lines: list[tuple[int, int, int, int]],
             target: int) -> tuple[Any, list[tuple[int, int, int, int, float]]]:
    """Stack the lines, each scaled to ``target`` px tall and binarised, on one white page.

    Returns the page and, per line, its rows on the page and how to map back:
    ``(top, bottom, left on the frame, top on the frame, scale)``.
    """
    import numpy as np
    from PIL import Image

    rows, cols = img.shape
    pieces = []
    for left, top, right, bottom in sorted(lines, key=lambda b: (b[1], b[0])):
        margin = max(2, (bottom - top) // 3)
        x0, y0 = max(0, left - margin), max(0, top - margin)
        x1, y1 = min(cols, right + margin), min(rows, bottom + margin)
        scale = min(MAX_SCALE, max(1.0, target / (bottom - top)))
        crop = Image.fromarray(img[y0:y1, x0:x1]).resize(
            (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))),
            Image.Resampling.BICUBIC)
        arr = np.asarray(crop, dtype=np.uint8)
        ink = arr > _otsu(arr)
        pieces.append((np.where(ink, 0, 255).astype(np.uint8), x0, y0, scale))
    width = max(p[0].shape[1] for p in pieces) + 2 * PAD
    height = sum(p[0].shape[0] + PAD for p in pieces) + PAD
    page = np.full((height, width), 255, dtype=np.uint8)
    placed = []
    y = PAD
    for piece, x0, y0, scale in pieces:
        h, w = piece.shape
        page[y:y + h, PAD:PAD + w] = piece
        placed.append((y, y + h, x0, y0, scale))
        y += h + PAD
    return Image.fromarray(page), placed


def _otsu(arr: Any) -> float:
    """Otsu's threshold of an 8-bit array (the level that best splits text from ground)."""
    import numpy as np

    hist = np.bincount(arr.ravel(), minlength=256).astype("float64")
    total = hist.sum()
    levels = np.arange(256)
    weight = np.cumsum(hist)
    mean = np.cumsum(hist * levels)
    between = (mean[-1] * weight / total - mean) ** 2 / np.maximum(weight * (total - weight),
                                                                   1e-9)
    return float(np.argmax(between[:-1]))


def burned_in_finding(words: list[Word], header: ParsedHeader, asset: str,
                      check: Check) -> Finding | None:
    """Return the finding for words that match the file's identifiers or Safe Harbor patterns."""
    tokens, phrases = identifier_terms(header)
    lines: dict[tuple[int, int], list[Word]] = {}
    for word in words:
        lines.setdefault((word.frame, word.top // 12), []).append(word)
    locations: list[OcrText] = []
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
        locations.append(OcrText(
            frame=frame, box=Box(left=left, top=top, width=right - left, height=bottom - top),
            found=dict(sorted(kinds.items())), words=len(line)))
    if not locations:
        return None
    summary = sorted({k for loc in locations for k in loc["found"]})
    return check.finding(
        asset,
        f"Text burned into the pixels matches identifiers ({', '.join(summary)}) in "
        f"{len(locations)} place(s); boxes are given, words are not.",
        locations=tuple(Location.of_evidence(loc) for loc in locations),
    )
