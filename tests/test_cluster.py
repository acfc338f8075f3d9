"""--scheduler: the same scan on a Dask distributed cluster (a LocalCluster on loopback)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from helpers import load_generator

pytestmark = pytest.mark.e2e

gen = load_generator()


def ids(doc: dict[str, Any]) -> set[str]:
    return {f["id"] for f in doc["findings"]}


def test_unreachable_scheduler_is_a_clear_error(tmp_path: Path) -> None:
    """First in the file: the product waits its 10 s connect timeout, and the module's
    cluster, idle meanwhile, is not started yet."""
    (tmp_path / "a.dcm").write_bytes(gen.fail_top_level())
    result = run_cli("scan", "archive", "a.dcm", "--scheduler", "tcp://127.0.0.1:9",
                     cwd=tmp_path)
    assert result.code == 2
    assert "cannot reach the Dask scheduler" in result.stderr
    assert "Traceback" not in result.stderr


def test_cluster_scan_matches_local_scan(tmp_path: Path, scheduler: str) -> None:
    gen.generate(tmp_path / "estate")
    gen.write_containers(tmp_path / "estate")
    local = run_cli("scan", "archive", "estate", "--format", "json", cwd=tmp_path)
    remote = run_cli("scan", "archive", "estate", "--format", "json", "--scheduler", scheduler,
                     cwd=tmp_path)
    errors = [f["message"] for f in remote.json()["findings"] if f["status"] == "error"]
    assert remote.code == local.code, (remote.stderr, errors[:5])
    assert ids(remote.json()) == ids(local.json())
    assert remote.json()["run"]["assets"] == local.json()["run"]["assets"]
    assert remote.json()["run"]["options"]["scheduler"] == scheduler
