"""Shared fixtures: an isolated data folder, running the real CLI, and the real servers.

The test servers (``fixtures/netpeers.py``'s whole set, ``fixtures/s3peers.py``'s moto and
SeaweedFS estates) start once per session, the first time a test asks for them, and stop at
the end; tests that need a fresh or differently configured server start their own.
Plain helper functions shared by several test files live in ``helpers.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fixtures"))
import netpeers
import s3peers
from warmcli import Zygote, needs_new_interpreter

ROOT = Path(__file__).resolve().parent.parent

#: The kinds of test (markers registered in pyproject.toml); a test without one is ``unit``.
KINDS = ("unit", "e2e", "fixtures", "bench")


#: Test files that use the demo's fixed ports (189xx). Under pytest-xdist they run on one worker,
#: one after the other; a test marked ``serial`` must live in one of them.
SERIAL_FILES = ("tests/test_assess.py", "tests/test_s3peers.py")

#: The files whose tests take longest, longest first: they start first, so that under
#: pytest-xdist no worker is left with a long file at the end while the other waits.
HEAVY_FIRST = ("tests/test_assess.py", "tests/test_s3peers.py", "tests/test_logs.py",
               "tests/test_network.py", "tests/test_log_realistic.py",
               "tests/test_phi_never_leaves.py", "tests/test_s3.py", "tests/test_treatment.py",
               "tests/test_child_imports.py", "tests/test_attest.py",
               "tests/test_permissions.py", "tests/test_ocr.py", "tests/test_bombs.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that declares no kind as ``unit`` (so ``-m unit`` selects them), and
    refuse a ``serial`` test outside ``SERIAL_FILES``, and put the ``HEAVY_FIRST`` files first."""
    rank = {path: i for i, path in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
    for item in items:
        if not any(item.get_closest_marker(kind) for kind in KINDS):
            item.add_marker(pytest.mark.unit)
        if item.get_closest_marker("serial") and item.nodeid.split("::")[0] not in SERIAL_FILES:
            raise pytest.UsageError(f"{item.nodeid} is marked serial: add its file to "
                                    "SERIAL_FILES in tests/conftest.py")


@pytest.hookimpl(optionalhook=True)  # a run with -p no:xdist has no such hook
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``-n N --dist loadfile``: each test file runs on one worker (its module fixtures
    are built once), and ``SERIAL_FILES`` share one worker, so fixed ports never collide.

    (pytest-xdist's own ``loadgroup`` cannot do this on pytest 9: the group it appends to a
    test's node id is no longer read.)
    """
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    config.option.loadscopereorder = False  # keep the HEAVY_FIRST order

    class FilesWithSerialTogether(LoadFileScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "serial" if path in SERIAL_FILES else path

    return FilesWithSerialTogether(config, log)


@pytest.fixture
def open_tree() -> Iterator[Path]:
    """A folder every account can enter (pytest's own tmp folders are private, mode 0700), so
    that exposure is judged on real modes."""
    root = Path(tempfile.mkdtemp(prefix="hipaa-audit-open-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(autouse=True)
def evidence_fits_its_type(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Check every finding a test builds in this process against its check's evidence types.

    ``Check.finding`` is wrapped (it still builds the real finding); at the end of the test,
    any location that fits none of the types ``hipaa_audit.evidence.CHECK_EVIDENCE`` declares
    for its check fails the test. Tests of the checker itself take the list and empty it.
    """
    from hipaa_audit.catalog import Check
    from hipaa_audit.evidence import evidence_problems

    problems: list[str] = []
    build = Check.finding

    def checked(self: Check, *args: Any, **kwargs: Any) -> Any:
        finding = build(self, *args, **kwargs)
        problems.extend(evidence_problems(finding.check_id,
                                          [dict(loc.fields) for loc in finding.locations]))
        return finding

    monkeypatch.setattr(Check, "finding", checked)
    yield problems
    assert not problems, "evidence that fits no declared type:\n" + "\n".join(problems[:20])


@pytest.fixture(scope="session", autouse=True)
def isolated_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keep the fingerprint key (and later the history store) out of the user's home."""
    path = tmp_path_factory.mktemp("data")
    old = os.environ.get("HIPAA_AUDIT_DATA_DIR")
    os.environ["HIPAA_AUDIT_DATA_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("HIPAA_AUDIT_DATA_DIR", None)
    else:
        os.environ["HIPAA_AUDIT_DATA_DIR"] = old


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


#: ``HIPAA_AUDIT_TEST_COLD_CLI=1`` starts every :func:`run_cli` run as a new interpreter
COLD_CLI = bool(os.environ.get("HIPAA_AUDIT_TEST_COLD_CLI"))
_zygote: list[Zygote] = []
_zygote_lock = threading.Lock()


def _warm() -> Zygote:
    """This test process's :class:`warmcli.Zygote`, started the first time a run asks for it."""
    with _zygote_lock:
        if not _zygote:
            _zygote.append(Zygote())
        return _zygote[0]


def pytest_unconfigure(config: pytest.Config) -> None:
    """End the zygote of this test process."""
    if _zygote:
        _zygote.pop().close()


def _zygote_for(env: dict[str, str]) -> Zygote | None:
    """The zygote a run with the whole environment ``env`` is forked from; None for a new
    interpreter (the environment changes how Python starts, or ``COLD_CLI``)."""
    if COLD_CLI:
        return None
    zygote = _warm()
    return None if needs_new_interpreter(env, zygote.env) else zygote


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 300) -> CliResult:
    """Run ``python -m hipaa_audit ARGS`` as a user would; never raises on a non-zero exit.

    The run is forked from this test process's zygote (``tests/warmcli.py``: a process of its
    own, the imports shared); one whose environment changes how Python starts, or every one
    under ``HIPAA_AUDIT_TEST_COLD_CLI=1``, starts a new interpreter. Its output is decoded as
    ``subprocess.Popen(text=True)`` decodes it (UTF-8, universal newlines).
    """
    done = run_cli_raw(*args, cwd=cwd, env=env, timeout=timeout)
    return CliResult(done.returncode, _text(done.stdout), _text(done.stderr))


def _text(data: bytes) -> str:
    return data.decode().replace("\r\n", "\n").replace("\r", "\n")


def run_cli_raw(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
                timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
    """:func:`run_cli` capturing bytes (an output that is not UTF-8 must not hide a leak)."""
    full_env = {**os.environ, **(env or {})}
    zygote = _zygote_for(full_env)
    if zygote is None:
        return subprocess.run([sys.executable, "-m", "hipaa_audit", *args], capture_output=True,
                              cwd=cwd, env=full_env, timeout=timeout)
    run = zygote.start(list(args), cwd, full_env)
    try:
        out, err = run.output(timeout)
    except subprocess.TimeoutExpired:
        run.kill()
        run.output()
        raise
    return subprocess.CompletedProcess(["hipaa_audit", *args], run.wait(), out, err)


def start_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None
              ) -> subprocess.Popen[str]:
    """Start ``python -m hipaa_audit ARGS`` as :func:`run_cli` runs it, without waiting for it."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.Popen([sys.executable, "-m", "hipaa_audit", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd, env=full_env)


def finish_cli(proc: subprocess.Popen[str], timeout: float = 300) -> CliResult:
    """Wait for a CLI :func:`start_cli` started: its exit code and output (killed, and
    ``TimeoutExpired`` raised, when it runs longer than ``timeout`` seconds)."""
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return CliResult(proc.returncode, stdout, stderr)


@contextlib.contextmanager
def cli_in_background(*args: str, cwd: Path | None = None) -> Iterator[subprocess.Popen[str]]:
    """A CLI started with :func:`start_cli` that runs while the block runs (read its outcome
    with :func:`finish_cli`); one still running when the block ends is killed and reaped.

    For a CLI that mostly waits (e.g. a connect timeout): other tests run meanwhile.
    """
    proc = start_cli(*args, cwd=cwd)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.communicate()


def by_asset(doc: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Group a findings document's findings by asset."""
    out: dict[str, list[dict[str, Any]]] = {}
    for f in doc["findings"]:
        out.setdefault(f["asset"], []).append(f)
    return out


def run_bench(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``bench/SCRIPT ARGS`` from the project root; never raises on a non-zero exit."""
    return subprocess.run([sys.executable, str(ROOT / "bench" / script), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=timeout)


@pytest.fixture
def cli() -> Any:
    return run_cli


def pid_running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not: Popen.wait() reaps ours, a zombie is a leak)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))


@pytest.fixture(scope="session")
def netpeer_certs(tmp_path_factory: pytest.TempPathFactory) -> netpeers.Certs:
    """The test PKI of ``fixtures/netpeers.py`` (CA, leaves, client certificate)."""
    return netpeers.make_certs(tmp_path_factory.mktemp("netpeers-certs"))


@pytest.fixture(scope="session")
def netpeer_set(netpeer_certs: netpeers.Certs,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[netpeers.Peers]:
    """Every kind of network peer (``start_set(..., "all")``), started once per session.

    Tests only probe these; one that must stop or reconfigure a peer starts its own. At the
    end every server must be stopped: none alive, no process left running.
    """
    folder = tmp_path_factory.mktemp("netpeers")
    with netpeers.Peers(folder) as group:
        netpeers.start_set(group, netpeer_certs, folder, "all")
        yield group
    started = list(group.peers.values())
    assert not [p.name for p in started if p.alive()]
    assert not [p.pid for p in started if p.pid is not None and pid_running(p.pid)]


@pytest.fixture(scope="session")
def s3_set(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, s3peers.S3Server]]:
    """moto and SeaweedFS with their planted estates (``start_set(..., "all")``), once per session.

    Tests read these; one that writes must put back what it changed. At the end both servers
    must be stopped.
    """
    servers = s3peers.start_set(tmp_path_factory.mktemp("s3peers"), "all")
    try:
        yield servers
    finally:
        s3peers.stop_set(servers)
    assert not [s.kind for s in servers.values() if s.alive()]
    assert not [s.pid for s in servers.values() if s.pid is not None and pid_running(s.pid)]


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """The address of a Dask ``LocalCluster`` on loopback (two worker processes), per module."""
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=None)
    try:
        yield str(cluster.scheduler_address)
    finally:
        cluster.close()
