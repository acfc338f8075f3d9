"""The report benchmark runs end to end and prints its figures and bars (never timed here)."""

from __future__ import annotations

import re

import pytest
from conftest import run_bench

pytestmark = pytest.mark.bench

SIZE = r"(?:\d+ MiB|\d+\.\d GiB)"
LINES = (
    r"findings: 1,000 in 5 groups \(.+\)",
    r"\(a\) both PDFs, capped detail: \d+\.\d s wall, peak child RSS \d+ MiB, "
    r"pages (?P<risk>\d+) \+ (?P<baa>\d+)",
    rf"\(b\) uncapped table baseline: 200 rows \d+\.\d s, \d+ MiB -> extrapolated \d+ s, "
    rf"{SIZE} for 1,000",
    r"  ours / uncapped-extrapolated: time \d+\.\d\d, peak RSS \d+\.\d\d",
    r"  speed-up \(b\)/\(a\): \d+\.\dx",
    r"parent peak RSS \d+ MiB .*",
    r"bar: both PDFs < 60 s  (PASS|FAIL)",
    r"bar: peak < 1 GiB  (PASS|FAIL)",
    # correctness, not speed: the risk analysis carries every finding, whatever the timings
    r"attachments: findings\.json findings\.csv  PASS",
    r"attached findings: 1,000 in findings\.json, 1,000 in findings\.csv of 1,000  PASS",
    r"overall: (PASS|FAIL)",
)


def test_report_bench_quick_prints_every_figure() -> None:
    proc = run_bench("report.py", "--quick")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for line in LINES:
        assert re.search(rf"^{line}$", out, re.MULTILINE), f"missing: {line}\n{out}"
    pages = re.search(LINES[1], out)
    assert pages is not None
    assert int(pages["risk"]) > 1 and int(pages["baa"]) > 1, out
