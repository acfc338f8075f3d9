"""The permissions benchmark runs end to end and prints its figures and ratio (never timed here)."""

from __future__ import annotations

import re

import pytest
from conftest import run_bench

pytestmark = pytest.mark.bench


@pytest.mark.timeout(240)
def test_permissions_bench_quick_prints_every_figure() -> None:
    proc = run_bench("permissions.py", "--quick", timeout=180)
    out = proc.stdout
    assert proc.returncode == 0, f"{out}\n{proc.stderr}"
    assert re.search(r"^estate: [\d,]+ principals, [\d,]+ grants, [\d,]+ memberships, "
                     r"[\d,]+ resources", out, re.MULTILINE), out
    assert re.search(r"^\(a\) networkx .+ +\d+\.\d\d s \([\d,]+ principal-resource pairs",
                     out, re.MULTILINE), out
    assert re.search(r"^\(b\) hipaa-audit .+ +\d+\.\d\d s$", out, re.MULTILINE), out
    assert re.search(r"^ratio \(a\)/\(b\): \d+\.\d\dx$", out, re.MULTILINE), out
    for check in ("perm-unexplained-path", "perm-account-not-in-roster", "perm-anyone-access",
                  "perm-cross-account", "perm-grant-outside-baseline", "perm-grant-added",
                  "perm-grant-removed"):
        assert re.search(rf"^  {check} +[\d,]+$", out, re.MULTILINE), (check, out)
    assert re.search(r"^correctness guard: PASS$", out, re.MULTILINE), out
    assert re.search(r"^analysis in seconds \(\d+\.\d\d s < 10 s\): (PASS|FAIL)$", out,
                     re.MULTILINE), out
