"""Burned-in text recall: how many generated annotation images ``--ocr`` catches, and at what cost.

Images come from ``fixtures/ocr_images.py``: identifiers in the corners in small fonts (8 to 14
px) on 256 to 512 px images, white or grey on dark noisy backgrounds, 8- and 16-bit
MONOCHROME2, RGB ultrasound, multi-frame images with the text on some frames only; about one
in five is a negative (no text, or only "L", "5 cm", "kVp 120"...). The held-out set (the
default) was never looked at while tuning; ``--set tune`` is the set the preprocessing was
tuned on.

Two readers, same images, same matcher (the file's own identifiers and the Safe Harbor
patterns, ``burned_in_finding``):

- baseline: Tesseract on the raw image, as a naive check does: the first frame, scaled to
  8 bits, one ``image_to_data`` call (page segmentation 3);
- hipaa-audit ``--ocr``: ``frames`` + ``read_words``, what the archive scanner runs.

An image counts as found when the finding fires and matches the file's own name, ID, birth
date or accession number. A false positive is a finding on a negative. Lines: identifier lines
that a finding's box covers (on a frame that carries them). Boxes elsewhere: finding boxes that
cover no identifier line. Milliseconds per image are CPU time of this process and of the
tesseract processes it starts (steadier than wall time on a shared machine), and wall time.
Prints the figures; never fails.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_THREAD_LIMIT", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fixtures"))

import ocr_images  # noqa: E402
import pytesseract  # noqa: E402
from PIL import Image  # noqa: E402

from hipaa_audit.archive.dicom.ocr import Word, burned_in_finding, frames, read_words  # noqa: E402
from hipaa_audit.archive.dicom.parser import parse_header  # noqa: E402
from hipaa_audit.catalog import load_catalog  # noqa: E402
from hipaa_audit.model import Finding  # noqa: E402

OWN = {"patient-name-value", "patient-id-value"}


def raw_words(data: bytes) -> list[Word]:
    """Baseline: the first frame scaled to 8 bits, one Tesseract call on the whole image."""
    import numpy as np
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    arr = ds.pixel_array
    if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1:
        arr = arr[0]
    if arr.ndim == 3:
        arr = arr[..., :3].astype("float64") @ np.array([0.299, 0.587, 0.114])
    arr = arr.astype("float64")
    low, high = float(arr.min()), float(arr.max())
    img = ((arr - low) * (255.0 / max(high - low, 1e-9))).astype("uint8")
    out = pytesseract.image_to_data(Image.fromarray(img), output_type=pytesseract.Output.DICT)
    return [Word(t.strip(), out["left"][i], out["top"][i], out["width"][i], out["height"][i], 0)
            for i, t in enumerate(out["text"])
            if t.strip() and float(out["conf"][i]) >= 40]


def our_words(data: bytes) -> list[Word]:
    """What ``scan archive --ocr`` reads."""
    return [w for index, img in frames(data) for w in read_words(index, img)]


def score(item: ocr_images.OcrCase, finding: Finding | None) -> dict[str, int]:
    """Found (0/1), identifier lines covered, boxes that cover no identifier line."""
    locations: list[Any] = list(finding.locations) if finding else []
    kinds = {k for loc in locations for k in loc.get("found", {})}
    wanted = [line for line in item.lines if line.identifying]
    covered = len(ocr_images.located(item, locations))
    stray = sum(1 for loc in locations
                if not any(ocr_images.covers(loc.get("box"), line) for line in wanted))
    return {"found": int(bool(kinds & OWN)), "fired": int(finding is not None),
            "lines": covered, "wanted": len(wanted), "stray": stray}


def evaluate(items: list[ocr_images.OcrCase],
             reader: Callable[[bytes], list[Word]]) -> dict[str, Any]:
    """Run one reader over the images; totals and per-image milliseconds."""
    check = load_catalog()["dicom-burned-in-text"]
    totals = {"pos": 0, "found": 0, "neg": 0, "fp": 0, "lines": 0, "wanted": 0, "stray": 0}
    ms: list[float] = []
    cpu: list[float] = []
    missed: list[str] = []
    for item in items:
        header = parse_header(item.data, complete=True)
        assert header is not None
        start, start_cpu = time.perf_counter(), _cpu()
        words = reader(item.data)
        ms.append((time.perf_counter() - start) * 1000)
        cpu.append((_cpu() - start_cpu) * 1000)
        result = score(item, burned_in_finding(words, header, item.name, check))
        if item.identifying:
            totals["pos"] += 1
            totals["found"] += result["found"]
            if not result["found"]:
                missed.append(f"{item.name} {item.style}")
        else:
            totals["neg"] += 1
            totals["fp"] += result["fired"]
        for key in ("lines", "wanted", "stray"):
            totals[key] += result[key]
    return {**totals, "ms": statistics.median(ms), "cpu": statistics.median(cpu),
            "cpu_mean": statistics.fmean(cpu), "missed": missed}


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the tesseract processes)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=60, help="images in the set (default 60)")
    parser.add_argument("--set", choices=("heldout", "tune"), default="heldout")
    parser.add_argument("--only", choices=("both", "ours", "baseline"), default="both")
    parser.add_argument("--missed", action="store_true", help="list the images each reader missed")
    args = parser.parse_args()
    seed = ocr_images.HELDOUT_SEED if args.set == "heldout" else ocr_images.TUNE_SEED
    items = ocr_images.cases(seed, args.images)
    readers = {"baseline: Tesseract on the raw image": raw_words,
               "hipaa-audit --ocr": our_words}
    if args.only != "both":
        readers = {k: v for k, v in readers.items() if (args.only == "ours") == k.startswith("h")}
    pos = sum(1 for i in items if i.identifying)
    print(f"burned-in text recall: {args.set} set (seed {seed}), {len(items)} images "
          f"({pos} with identifiers, {len(items) - pos} without), "
          f"OMP_THREAD_LIMIT={os.environ['OMP_THREAD_LIMIT']}")
    for label, reader in readers.items():
        r = evaluate(items, reader)
        recall = r["found"] / max(r["pos"], 1)
        print(f"  {label:<38} recall {r['found']:>3}/{r['pos']:<3} = {recall:5.1%}   "
              f"false positives {r['fp']}/{r['neg']}   identifier lines {r['lines']}/{r['wanted']}"
              f"   boxes elsewhere {r['stray']}")
        print(f"  {'':<38} CPU {r['cpu']:.0f} ms/image median ({r['cpu_mean']:.0f} mean), "
              f"wall {r['ms']:.0f} ms/image median")
        if args.missed:
            for name in r["missed"]:
                print(f"    missed {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
