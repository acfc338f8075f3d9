"""--scheduler: the same scan on a Dask distributed cluster (a LocalCluster on loopback)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import cli_in_background, finish_cli, run_cli
from helpers import load_generator

pytestmark = pytest.mark.e2e

gen = load_generator()


@pytest.fixture(scope="module", autouse=True)
def unreachable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen[str]]:
    """``scan archive --scheduler`` at an address where no scheduler listens, started before the
    module's first test: the product waits its 10 s connect timeout while the cluster test runs,
    and :func:`test_unreachable_scheduler_is_a_clear_error`, last, reads the outcome."""
    folder = tmp_path_factory.mktemp("unreachable")
    (folder / "a.dcm").write_bytes(gen.fail_top_level())
    with cli_in_background("scan", "archive", "a.dcm", "--scheduler", "tcp://127.0.0.1:9",
                           cwd=folder) as proc:
        yield proc


def ids(doc: dict[str, Any]) -> set[str]:
    return {f["id"] for f in doc["findings"]}


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


def test_unreachable_scheduler_is_a_clear_error(unreachable: subprocess.Popen[str]) -> None:
    result = finish_cli(unreachable)
    assert result.code == 2
    assert "cannot reach the Dask scheduler" in result.stderr
    assert "Traceback" not in result.stderr
