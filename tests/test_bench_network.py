"""The network benchmark runs end to end and prints its figures and ratio (never timed here)."""

from __future__ import annotations

import re

import pytest
from conftest import run_bench

pytestmark = pytest.mark.bench

QUICK = 6


@pytest.mark.timeout(900)
def test_network_bench_quick_every_endpoint_finishes() -> None:
    proc = run_bench("network.py", "--quick", timeout=600)
    out = proc.stdout
    assert proc.returncode == 0, f"{out}\n{proc.stderr}"
    row = re.search(r"^\(a\) hipaa-audit scan_network, \d+ at once +(?P<n>\d+) +\d+\.\d +"
                    r"\d+\.\d\d +(?P<finished>\d+) +(?P<stopped>\d+) +\d+ / (\d+|n/a)$",
                    out, re.MULTILINE)
    assert row is not None, out
    assert (int(row["n"]), int(row["finished"]), int(row["stopped"])) == (QUICK, QUICK, 0), out
    assert re.search(rf"^\(b\) sslyze defaults, one after another +{QUICK} ", out, re.MULTILINE)
    assert re.search(rf"^sslyze \(b\): {QUICK} of {QUICK} scans completed", out, re.MULTILINE)
    assert re.search(r"^grades \(a\): .+", out, re.MULTILINE), out
    assert re.search(r"^\(c\) deadline 10 s: silent port .+ within deadline \+ 3 s: yes$", out,
                     re.MULTILINE), out
    assert re.search(r"^ratio: \d+\.\dx faster than sslyze defaults one after another$", out,
                     re.MULTILINE), out
    assert re.search(rf"^bar: PASS \({QUICK} endpoints in one run", out, re.MULTILINE), out
