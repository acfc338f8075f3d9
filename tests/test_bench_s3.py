"""The S3 benchmark runs end to end and prints its figures and ratio (never timed here)."""

from __future__ import annotations

import re

import pytest
from conftest import run_bench

pytestmark = pytest.mark.bench

QUICK_OBJECTS = "5,000"
QUICK_SAMPLE = "200"


@pytest.mark.timeout(600)
def test_s3_bench_quick_prints_every_figure() -> None:
    proc = run_bench("s3.py", "--quick", timeout=480)
    out = proc.stdout
    assert proc.returncode == 0, f"{out}\n{proc.stderr}"
    # listing: list calls per 1,000 objects, against the bar
    for tag in ("L1", "L2"):
        assert re.search(rf"^\({tag}\) .+ +\d+ +{QUICK_OBJECTS} +\d+\.\d\d +\d+\.\d ", out,
                         re.MULTILINE), f"no listing row ({tag})\n{out}"
    assert re.search(r"^list calls per 1,000 objects: \d+\.\d\d \(.+\): PASS$", out,
                     re.MULTILINE), out
    # memory: the reservoir against the naive listing, at two bucket sizes
    for tag in ("L1", "L2"):
        assert re.search(rf"^\({tag}\) .+ +\d+\.\d\d +\d+\.\d\d +[+-]\d+\.\d\d +\d+\.\d\dx$", out,
                         re.MULTILINE), f"no memory row ({tag})\n{out}"
    assert re.search(r"^memory flat \(L1\): (yes|NO) \(growth .+\); baseline \(L2\) grew ", out,
                     re.MULTILINE), out
    # sampled object checks: objects/s one after another, concurrently, and the ratio
    for tag in "abc":
        assert re.search(rf"^\({tag}\) .+ +{QUICK_SAMPLE} +\d+\.\d +[\d.]+ / [\d.]+ +"
                         r"[\d,]+\.\d +[\d,]+$", out, re.MULTILINE), f"no row ({tag})\n{out}"
    assert re.search(r"^ratio \(b\)/\(a\) objects/s: \d+\.\d\dx with \d+ threads$", out,
                     re.MULTILINE), out
    assert re.search(r"^correctness guard: PASS$", out, re.MULTILINE), out
    assert re.search(r"^peak RSS of this process: \d+ MiB", out, re.MULTILINE), out
    assert re.search(r"^overall: PASS$", out, re.MULTILINE), out
