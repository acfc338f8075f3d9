"""Child processes import the installed package, never one in the working folder.

Every test runs the installed console script from a folder that holds a planted
``hipaa_audit/`` package (and a planted ``multiprocessing/``, which the fork server's
``python -c`` would otherwise find first); importing either writes a marker file.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.e2e

TOOL = Path(sys.executable).parent / "hipaa-audit"

PLANTED = """\
import os
with open({marker!r}, "a") as f:
    f.write(__name__ + " imported from the working folder\\n")
raise SystemExit("planted package imported")
"""


def planted_folder(tmp_path: Path) -> tuple[Path, Path]:
    """A working folder with planted packages; return it and the marker they would write."""
    cwd = tmp_path / "share"
    marker = tmp_path / "MARKER"
    for name in ("hipaa_audit", "multiprocessing"):
        (cwd / name).mkdir(parents=True)
        (cwd / name / "__init__.py").write_text(PLANTED.format(marker=str(marker)))
    return cwd, marker


def archive(folder: Path, files: int = 300) -> Path:
    """Enough CSV exports for several batches per worker."""
    folder.mkdir()
    for i in range(files):
        (folder / f"export{i}.csv").write_text(f"name,mrn\nJane Doe,MRN{i:07d}\n")
    return folder


def run_tool(*args: str, cwd: Path, tool: Path = TOOL,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(tool), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=env)


@pytest.fixture
def http_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A plain-HTTP server on 127.0.0.1 (a real endpoint for the network scan)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(tmp_path_factory.mktemp("www")))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_archive_workers_import_only_the_installed_package(tmp_path: Path) -> None:
    cwd, marker = planted_folder(tmp_path)
    data = archive(tmp_path / "data")
    result = run_tool("scan", "archive", "--workers", "2", str(data), "--format", "json",
                      "--fail-on", "none", cwd=cwd)
    assert not marker.exists(), marker.read_text()
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert len({f["asset"] for f in doc["findings"]}) == 300


def test_network_probes_import_only_the_installed_package(tmp_path: Path,
                                                          http_target: str) -> None:
    cwd, marker = planted_folder(tmp_path)
    result = run_tool("scan", "network", http_target, "--format", "json", "--fail-on", "none",
                      cwd=cwd)
    assert not marker.exists(), marker.read_text()
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert any(f["category"] == "plaintext-transport" for f in doc["findings"])


def test_assess_and_report_render_with_only_the_installed_package(tmp_path: Path,
                                                                  http_target: str) -> None:
    cwd, marker = planted_folder(tmp_path)
    data = archive(tmp_path / "data", files=150)
    cfg = tmp_path / "assessment.toml"
    cfg.write_text(
        '[assessment]\norganization = "Clinic"\nname = "Q1"\nassessor = "A. Officer"\n'
        f'[[archive]]\npaths = ["{data}"]\nworkers = 2\n'
        f'[[network]]\ntargets = ["{http_target}"]\n'
        '[report]\noutput_dir = "reports"\n')
    store = tmp_path / "history.db"
    assessed = run_tool("assess", "--config", str(cfg), "--store", str(store), "--fail-on",
                        "none", cwd=cwd)
    assert not marker.exists(), marker.read_text()
    assert assessed.returncode == 0, assessed.stderr
    assert (tmp_path / "reports" / "risk-analysis.pdf").read_bytes().startswith(b"%PDF")
    pdf = tmp_path / "again.pdf"
    reported = run_tool("report", "baa", "--store", str(store), "--output", str(pdf), cwd=cwd)
    assert not marker.exists(), marker.read_text()
    assert reported.returncode == 0, reported.stderr
    assert pdf.read_bytes().startswith(b"%PDF")


def without_pythonpath() -> dict[str, str]:
    """This environment without ``PYTHONPATH`` (which would put a checkout before the install)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


@pytest.fixture(scope="module")
def plain_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A non-editable install of the project in a venv of its own; return its console script.

    The wheel is installed without dependencies; those come from this venv's site-packages,
    added by a ``.pth`` line (which runs none of that folder's own ``.pth`` files, so the
    editable install there is not seen).
    """
    wheels = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels), str(ROOT)], check=True, capture_output=True,
                   cwd=wheels)
    (wheel,) = wheels.glob("hipaa_audit-*.whl")
    venv = tmp_path_factory.mktemp("plain") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; "
                                "print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    deps = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    (site / "zz-dependencies.pth").write_text("".join(f"{p}\n" for p in deps))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                    "--no-deps", "--no-index", "-q", str(wheel)], check=True,
                   capture_output=True, env=without_pythonpath())
    where = subprocess.run([str(python), "-c", "import hipaa_audit; print(hipaa_audit.__file__)"],
                           check=True, capture_output=True, text=True, cwd=wheels,
                           env=without_pythonpath()).stdout
    assert where.startswith(str(site)), where
    return venv / "bin" / "hipaa-audit"


def test_plain_install_run_from_the_source_checkout_scans_with_workers(
        plain_install: Path, tmp_path: Path) -> None:
    """From a source checkout (its ``hipaa_audit/`` lacks the packaged data) as cwd."""
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT / "hipaa_audit", checkout / "hipaa_audit")
    data = archive(tmp_path / "data", files=200)
    result = run_tool("scan", "archive", "--workers", "2", str(data), "--format", "json",
                      "--fail-on", "none", cwd=checkout, tool=plain_install,
                      env=without_pythonpath())
    assert result.returncode == 0, result.stderr
    assert len({f["asset"] for f in json.loads(result.stdout)["findings"]}) == 200


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry.name))
    return out


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_a_killed_worker_is_reported_as_a_dead_worker(tmp_path: Path) -> None:
    """A worker killed mid-scan (as the OOM killer would): exit 1, saying so; no output file."""
    data = archive(tmp_path / "data", files=3000)
    out = tmp_path / "findings.json"
    proc = subprocess.Popen([str(TOOL), "scan", "archive", "--workers", "2", str(data),
                             "--format", "json", "--output", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        victim = None
        while victim is None and proc.poll() is None:
            for server in _children(proc.pid):
                if "forkserver" in _cmdline(server):
                    victim = next(iter(_children(server)), None)
        assert victim is not None, "the scan ended before its workers could be seen"
        os.kill(victim, signal.SIGKILL)
        _, stderr = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, stderr
    assert "internal error: a worker process died (killed by SIGKILL)" in stderr
    assert "Traceback" not in stderr
    assert not out.exists()
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".findings*"))
