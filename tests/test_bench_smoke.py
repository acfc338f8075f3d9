"""The archive header benchmark runs end to end and prints its ratios (never timed here)."""

from __future__ import annotations

import os
import re

import pytest
from conftest import run_bench

pytestmark = pytest.mark.bench


def test_bench_quick_prints_every_ratio() -> None:
    proc = run_bench("archive_header.py", "--quick")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    two_cores = len(os.sched_getaffinity(0)) >= 2 if hasattr(os, "sched_getaffinity") else True
    for key in "abcdef" if two_cores else "abcde":
        assert re.search(rf"^\({key}\) .+ [\d,]+ ", out, re.MULTILINE), f"no row ({key})\n{out}"
    for label in ("ours (d) / naive (c)", "ours (d) / parse-only (b)", "scaling (f) / (e)",
                  "raw read (a) / ours (d)"):
        assert re.search(rf"^  {re.escape(label)}.*[=:] ", out, re.MULTILINE), f"{label}\n{out}"
    assert re.search(r"bar >= 3\.0x\s+(PASS|FAIL)", out)
    assert re.search(r"bar >= 1\.0x\s+(PASS|FAIL)", out)
    assert "peak RSS growth N -> 4N" in out
    # the scan did the real work: every planted identifier was reported in every file
    assert re.search(r"^planted identifiers reported in every file .*: PASS$", out, re.MULTILINE)
    assert re.search(r"^overall: (PASS|FAIL)", out, re.MULTILINE)


@pytest.mark.slow
def test_small_ct_bench_prints_both_ratios_for_the_scan_and_the_command() -> None:
    # three studies: one clinical, one leaky export, one de-identified (fixtures/smallct.py)
    proc = run_bench("archive_small.py", "--files", "300", "--repeats", "1")
    out = proc.stdout
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr
    assert "100 clinical, 100 deidentified, 100 leaky" in out, out
    for key in "abcdeg":
        assert re.search(rf"^\({key}\) .+ [\d,]+ ", out, re.MULTILINE), f"no row ({key})\n{out}"
    for label in ("ours (d)", "pipeline (e)", "command (g)"):
        for base, bar in (("naive (c)", "3.0"), ("parse-only (b)", "1.0")):
            assert re.search(rf"^  {re.escape(f'{label} / {base}')} += +[\d.]+x .*"
                             rf"bar >= {bar}x +(PASS|FAIL)$", out, re.MULTILINE), out
    # a fast scan that skipped the work would fail here
    assert re.search(r"^every file got the findings it must .*: PASS$", out, re.MULTILINE), out
    assert re.search(r"^overall: (PASS|FAIL)$", out, re.MULTILINE)


def test_ocr_bench_prints_ms_per_image() -> None:
    proc = run_bench("ocr.py", "--images", "1")
    assert proc.returncode == 0, proc.stderr
    assert "ms/image" in proc.stdout and "ratio ours / baseline" in proc.stdout
    assert "identifier lines found: 3 of 3" in proc.stdout


def test_memory_bench_prints_growth() -> None:
    proc = run_bench("memory_tree.py", "--files", "2000", "--base", "200")
    assert proc.returncode == 0, proc.stderr
    assert "memory against tree size: 200 -> 2,000 files" in proc.stdout
    assert "peak RSS" in proc.stdout
