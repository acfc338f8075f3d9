"""Burned-in text benchmark: milliseconds per image for ``--ocr`` beside a plain Tesseract call.

The baseline is what a naive check does: decode the frame and call ``image_to_string`` once
(page segmentation 3), as Presidio's DICOM verifier does. hipaa-audit finds the text lines
of each frame, reads them cut out, binarised and scaled at two sizes, reads the whole frame
once as it is, and matches the words against the file's identifiers (recall is measured by
``bench/ocr_recall.py``). Both run in this process on the same synthetic images, with
OMP_THREAD_LIMIT=1. Prints milliseconds per image and the ratio; never fails.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_THREAD_LIMIT", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fixtures"))

import generate  # noqa: E402
import pytesseract  # noqa: E402
from PIL import Image  # noqa: E402

from hipaa_audit.archive.dicom.ocr import burned_in_finding, frames, read_words  # noqa: E402
from hipaa_audit.archive.dicom.parser import parse_header  # noqa: E402
from hipaa_audit.catalog import load_catalog  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=6)
    args = parser.parse_args()
    data = generate.burned_in_text_image()
    header = parse_header(data, complete=True)
    assert header is not None
    check = load_catalog()["dicom-burned-in-text"]

    def baseline() -> int:
        (_, img), *_ = frames(data)
        return len(pytesseract.image_to_string(Image.fromarray(img)))

    def ours() -> int:
        words = [w for index, img in frames(data) for w in read_words(index, img)]
        finding = burned_in_finding(words, header, "bench.dcm", check)
        return len(finding.locations) if finding else 0

    found = ours()
    timings: dict[str, list[float]] = {"baseline": [], "ours": []}
    for _ in range(args.images):
        for name, fn in (("baseline", baseline), ("ours", ours)):
            start = time.perf_counter()
            fn()
            timings[name].append((time.perf_counter() - start) * 1000)
    base = statistics.median(timings["baseline"])
    mine = statistics.median(timings["ours"])
    print(f"burned-in text benchmark: {args.images} images of 512x512, median, "
          f"OMP_THREAD_LIMIT={os.environ['OMP_THREAD_LIMIT']}")
    print(f"  baseline: decode + one image_to_string      {base:8.0f} ms/image")
    print(f"  hipaa-audit --ocr: lines x2 scales + frame   {mine:8.0f} ms/image")
    print(f"  ratio ours / baseline = {mine / base:.2f}x (the cost of reading small and "
          f"white-on-dark text); identifier lines found: {found} of {len(generate.BURNED_LINES)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
