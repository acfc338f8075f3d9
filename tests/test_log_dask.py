"""``analyze logs`` with a Dask scheduler: the files are parsed on a real local cluster.

The same anomalies (kinds, users, event ids), Sigma matches and per-file results as a local run
on a generated log; a scheduler that cannot be reached is a clear error (exit 2, the
address named, no traceback).

The CSV log holds the whole generated activity (its anomalies); the JSONL and ATNA logs an
excerpt of it holding every kind of record (:func:`loggen.excerpt`): each file is one task on
the cluster, whatever its size, so every format shows it parses there as it does here, at a
fraction of the parsing.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, cli_in_background, finish_cli, run_cli

from hipaa_audit.catalog import load_catalog
from hipaa_audit.logs.run import analyze_logs
from hipaa_audit.logs.setup import log_options
from hipaa_audit.model import AssetResult
from hipaa_audit.redaction import Masker

sys.path.insert(0, str(ROOT / "fixtures"))
import loggen

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
MASKER = Masker(b"k" * 32)
FILES = ("events.jsonl", "audit-atna.log", "events.csv")


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("logs")
    activity = loggen.generate(seed=3, days=40, users=40, patients=400)
    loggen.write_all(folder, activity, formats=["csv"])
    part = loggen.excerpt(activity)
    loggen.write_jsonl(part, folder / "events.jsonl")
    loggen.write_atna(part, folder / "audit-atna.log")
    return folder


@pytest.fixture(scope="module", autouse=True)
def unreachable(logs: Path) -> Iterator[subprocess.Popen[str]]:
    """``analyze logs --scheduler`` at an address where no scheduler listens, started before the
    module's first test: the product waits its 10 s connect timeout while the cluster tests run,
    and :func:`test_cli_unreachable_scheduler_is_a_clear_error`, last, reads the outcome."""
    with cli_in_background("analyze", "logs", str(logs / "events.csv"), "--no-cache",
                           "--scheduler", "tcp://127.0.0.1:9") as proc:
        yield proc


def run(folder: Path, scheduler: str | None) -> tuple[list[AssetResult], dict[str, Any]]:
    opts = log_options([str(folder / name) for name in FILES], MASKER,
                       timezone="America/New_York", sigma=[Path("builtin")], cache=False,
                       scheduler=scheduler)
    summaries: list[dict[str, Any]] = []
    results = list(analyze_logs(opts, load_catalog(), MASKER, on_summary=summaries.append))
    return results, summaries[0]


def anomalies(results: list[AssetResult]) -> list[tuple[str, str, str, tuple[str, ...]]]:
    out = []
    for result in results:
        for f in result.findings:
            loc = f.locations[0] if f.locations else None
            out.append((f.check_id, result.asset, f.message,
                        tuple(loc.get("event_ids") or ()) if loc is not None else ()))
    return sorted(out)


def test_cluster_analysis_matches_local(logs: Path, scheduler: str) -> None:
    local, local_summary = run(logs, None)
    remote, remote_summary = run(logs, scheduler)
    found = anomalies(local)
    kinds = {check for check, *_ in found}
    # the generated log's anomalies are there, with their event ids
    assert {"log-bulk-export", "log-new-source", "log-failed-logins", "log-dormant-account",
            "log-sigma"} <= kinds
    assert all(ids for check, _, _, ids in found if check.startswith("log-bulk"))
    assert anomalies(remote) == found
    assert [r.stats for r in remote] == [r.stats for r in local]
    assert remote_summary == local_summary
    assert local_summary["events"] > 10_000


def test_cli_scheduler_option(logs: Path, scheduler: str) -> None:
    """``--scheduler`` reaches the cluster and the output is the local run's. Two files (the
    ATNA log is left out): that every format parses alike on the cluster is
    :func:`test_cluster_analysis_matches_local`'s to show."""
    files = [str(logs / name) for name in ("events.jsonl", "events.csv")]
    on_cluster = run_cli("analyze", "logs", *files, "--scheduler", scheduler, "--no-cache",
                         "--timezone", "America/New_York", "--format", "json", "--fail-on",
                         "none")
    here = run_cli("analyze", "logs", *files, "--no-cache", "--timezone", "America/New_York",
                   "--format", "json", "--fail-on", "none")
    assert on_cluster.code == here.code == 0, on_cluster.stderr
    strip = [{k: v for k, v in f.items() if k != "id"} for f in on_cluster.json()["findings"]]
    assert "log-bulk-export" in {f["check_id"] for f in strip}  # the anomalies are there
    assert strip == [{k: v for k, v in f.items() if k != "id"} for f in here.json()["findings"]]
    assert on_cluster.json()["run"]["options"]["scheduler"] == scheduler


def test_cli_unreachable_scheduler_is_a_clear_error(
        unreachable: subprocess.Popen[str]) -> None:
    """Exit 2 with the address named and no traceback."""
    down = finish_cli(unreachable)
    assert down.code == 2, down.stderr
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in " ".join(down.stderr.split())
    assert "Traceback" not in down.stderr
