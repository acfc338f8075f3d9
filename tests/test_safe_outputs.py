"""Output files: no planted link is followed, FIFOs are streamed to, and modes are private."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import ROOT

from hipaa_audit.outfiles import OutputError, check_output, open_output, private_dirs

pytestmark = pytest.mark.e2e

TOOL = Path(sys.executable).parent / "hipaa-audit"


def run_tool(*args: str, umask: int = 0o022, data_dir: Path | None = None,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed tool with a given umask (and, if given, its own data folder)."""
    env = dict(os.environ)
    if data_dir is not None:
        env["HIPAA_AUDIT_DATA_DIR"] = str(data_dir)
    return subprocess.run([str(TOOL), *args], capture_output=True, text=True, timeout=600,
                          env=env, cwd=cwd, preexec_fn=lambda: os.umask(umask))


def small_archive(folder: Path) -> Path:
    folder.mkdir()
    for i in range(3):
        (folder / f"export{i}.csv").write_text(f"name,mrn\nJane Doe,MRN{i:07d}\n")
    return folder


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_output_symlink_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    link = tmp_path / "out.json"
    link.symlink_to(victim)
    result = run_tool("scan", "archive", str(small_archive(tmp_path / "data")), "--format",
                      "json", "--output", str(link))
    assert result.returncode == 2, result.stderr
    assert "symbolic link" in result.stderr and "Traceback" not in result.stderr
    assert victim.read_text() == "precious\n"
    assert link.is_symlink()


def test_planted_partial_symlink_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "out.json"
    (tmp_path / "out.json.partial").symlink_to(victim)
    result = run_tool("scan", "archive", str(small_archive(tmp_path / "data")), "--format",
                      "json", "--output", str(out), "--fail-on", "none")
    assert result.returncode == 0, result.stderr
    assert victim.read_text() == "precious\n"
    assert json.loads(out.read_text())["findings"]
    assert not out.is_symlink() and mode(out) == 0o600


def test_output_to_a_fifo_is_streamed_and_the_fifo_kept(tmp_path: Path) -> None:
    fifo = tmp_path / "findings.pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    result = run_tool("scan", "archive", str(small_archive(tmp_path / "data")), "--format",
                      "json", "--output", str(fifo), "--fail-on", "none")
    assert result.returncode == 0, result.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # not replaced by a regular file
    if reader.is_alive():  # the tool never opened it: let the reader see an end
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    reader.join()
    assert json.loads(received[0])["findings"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "findings.pipe"]


def test_output_to_dev_stdout_writes_to_standard_output(tmp_path: Path) -> None:
    result = run_tool("scan", "archive", str(small_archive(tmp_path / "data")), "--format",
                      "json", "--output", "/dev/stdout", "--fail-on", "none")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["findings"]
    assert os.path.islink("/dev/stdout") or stat.S_ISCHR(os.stat("/dev/stdout").st_mode)


def test_output_file_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    out = tmp_path / "out.sarif"
    result = run_tool("scan", "archive", str(small_archive(tmp_path / "data")), "--format",
                      "sarif", "--output", str(out), "--fail-on", "none", umask=0)
    assert result.returncode == 0, result.stderr
    assert mode(out) == 0o600


def test_a_failed_write_leaves_the_target_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "report.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), open_output(target) as stream:
        stream.write("half")
        raise RuntimeError("stopped")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.csv"]


def test_folders_block_devices_and_foreign_fifos_are_refused(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="folder"):
        check_output(tmp_path)
    block = next((p for p in Path("/dev").iterdir()
                  if not p.is_symlink() and p.exists() and stat.S_ISBLK(p.stat().st_mode)), None)
    if block is not None:
        with pytest.raises(OutputError, match="not a regular file"):
            check_output(block)
    if os.geteuid() == 0:
        fifo = tmp_path / "planted.pipe"
        os.mkfifo(fifo)
        os.chown(fifo, 65534, 65534)
        with pytest.raises(OutputError, match="another user"):
            check_output(fifo)


def test_private_dirs_are_0700_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        private_dirs(tmp_path / "a" / "b")
        (tmp_path / "open").mkdir(mode=0o755)
        private_dirs(tmp_path / "open")
    finally:
        os.umask(old)
    assert mode(tmp_path / "a") == mode(tmp_path / "a" / "b") == 0o700
    assert mode(tmp_path / "open") == 0o755  # an existing folder is left as it is


def test_report_to_a_symlink_is_refused_before_rendering(tmp_path: Path) -> None:
    victim = tmp_path / "victim.pdf"
    victim.write_text("precious\n")
    link = tmp_path / "risk.pdf"
    link.symlink_to(victim)
    result = run_tool("report", "risk", "--store", str(tmp_path / "none.db"), "--output",
                      str(link))
    assert result.returncode == 2, result.stderr
    assert "symbolic link" in result.stderr
    assert victim.read_text() == "precious\n"


def test_graph_writers_refuse_symlinks(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    baseline = tmp_path / "baseline.toml"
    baseline.write_text('[roles.admin]\nallow = [{ resource = "fs:*", actions = ["read"] }]\n'
                        '[principals]\n"fs:user/root" = ["admin"]\n')
    for option in ("--graphml", "--graph-json"):
        link = tmp_path / f"graph{option}"
        link.symlink_to(victim)
        result = run_tool("scan", "permissions", "--baseline", str(baseline),
                          f"fs:{small_archive(tmp_path / option.strip('-'))}", option, str(link))
        assert result.returncode == 2, result.stderr
        assert "symbolic link" in result.stderr
    assert victim.read_text() == "precious\n"


def test_assess_store_reports_and_data_folder_are_private(tmp_path: Path) -> None:
    """With umask 000: the store, its WAL files, reports and the data folder are not shared."""
    data = small_archive(tmp_path / "data")
    cfg = tmp_path / "assessment.toml"
    cfg.write_text('[assessment]\norganization = "Clinic"\nname = "Q1"\nassessor = "A. O."\n'
                   f'[[archive]]\npaths = ["{data}"]\n'
                   '[report]\noutput_dir = "out/reports"\n')
    store = tmp_path / "hist" / "history.db"
    data_dir = tmp_path / "state" / "hipaa-audit"
    result = run_tool("assess", "--config", str(cfg), "--store", str(store), "--fail-on",
                      "none", umask=0, data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    reports = tmp_path / "out" / "reports"
    assert mode(tmp_path / "out") == mode(reports) == 0o700
    written = sorted(p.name for p in reports.iterdir())
    assert written == ["SHA256SUMS", "baa-evidence.html", "baa-evidence.pdf", "findings.csv",
                       "findings.json", "findings.ocsf.jsonl", "findings.sarif", "junit.xml",
                       "oscal-assessment-results.json", "oscal-poam.json",
                       "risk-analysis.html", "risk-analysis.pdf"]
    assert all(mode(reports / name) == 0o600 for name in written)
    assert mode(store.parent) == 0o700 and mode(store) == 0o600
    companions = [store.with_name(store.name + s) for s in ("-wal", "-shm", "-journal")]
    assert all(mode(p) == 0o600 for p in companions if p.exists())
    assert mode(data_dir) == mode(data_dir.parent) == 0o700
    assert mode(data_dir / "fingerprint.key") == 0o600
    # the store, reopened by another command, keeps its mode
    listed = run_tool("runs", "list", "--store", str(store), umask=0, data_dir=data_dir)
    assert listed.returncode == 0, listed.stderr
    assert all(mode(p) == 0o600 for p in [store, *companions] if p.exists())


def test_log_cache_is_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "state"
    result = run_tool("analyze", "logs", str(ROOT / "tests" / "data" / "logs" / "audit.jsonl"),
                      "--format", "json", "--fail-on", "none", umask=0, data_dir=data_dir)
    assert result.returncode in (0, 4), result.stderr
    cache = data_dir / "log-cache"
    files = list(cache.iterdir())
    assert files
    assert mode(data_dir) == mode(cache) == 0o700
    assert all(mode(p) == 0o600 for p in files)
