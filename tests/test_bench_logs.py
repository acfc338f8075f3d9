"""The log benchmark runs end to end and prints its figures and ratio (never timed here)."""

from __future__ import annotations

import re

import pytest
from conftest import run_bench

pytestmark = pytest.mark.bench

DETECTORS = ("bulk-export", "off-hours", "failed-logins", "break-glass", "snooping",
             "mass-deletion", "permission-change", "new-source", "dormant-account", "logging-gap",
             "clock-skew")
SECONDS = r"\d+\.\d\d s"


@pytest.mark.timeout(240)
def test_logs_bench_quick_prints_every_figure() -> None:
    proc = run_bench("logs.py", "--quick", timeout=180)
    out = proc.stdout
    assert proc.returncode == 0, f"{out}\n{proc.stderr}"
    assert re.search(r"^generated with bulk_events in \d+\.\d s", out, re.MULTILINE), out
    # the load and every detector: seconds and peak RSS, the baseline beside the shared ones
    assert re.search(rf"^load +{SECONDS} +[\d,]+ +{SECONDS} +\d+\.\dx +300,000 events$", out,
                     re.MULTILINE), out
    shared = ("bulk-export", "off-hours", "failed-logins", "mass-deletion", "new-source",
              "dormant-account")
    for name in DETECTORS:
        baseline = rf"{SECONDS} +\d+\.\dx" if name in shared else r"- +-"
        assert re.search(rf"^{name} +{SECONDS} +[\d,]+ +{baseline} +\S", out, re.MULTILINE), \
            f"no row for {name}\n{out}"
    assert re.search(rf"^sigma \(\d+ rules\) +{SECONDS} +[\d,]+ .* \d+ match\(es\)", out,
                     re.MULTILINE), out
    assert re.search(rf"^detectors +{SECONDS}$", out, re.MULTILINE), out
    assert re.search(rf"^total +{SECONDS} ", out, re.MULTILINE), out
    assert re.search(r"^peak RSS: hipaa-audit [\d,]+ MiB \(reached in .+\), baseline [\d,]+ MiB \(",
                     out, re.MULTILINE), out
    assert re.search(r"^events: 300,000; anomalies by kind: .*bulk-export 1", out,
                     re.MULTILINE), out
    assert re.search(r"^ratio baseline / hipaa-audit \(load, .+\): \d+\.\dx ", out,
                     re.MULTILINE), out
    # the injected anomalies were found, and both bars were judged
    assert re.search(r"^injected anomalies reported \(.+\): PASS$", out, re.MULTILINE), out
    assert re.search(r"^bar: total \d+\.\d s < 30 s: PASS$", out, re.MULTILINE), out
    assert re.search(r"^bar: peak RSS [\d,]+ MiB < 2,048 MiB \(2 GiB\): PASS$", out,
                     re.MULTILINE), out
    assert re.search(r"^overall: PASS$", out, re.MULTILINE), out
