"""The tests' runs of ``python -m hipaa_audit``, forked from a process that has already imported
the package and the libraries the runs import.

Each run is a process of its own with its own arguments, working folder, environment, standard
streams and exit code; what the runs share is the import of the package's modules and their
libraries (numpy, pydicom, pandas, pyarrow, pydantic, sslyze, boto3, networkx, matplotlib...):
0.5 to 2 s of CPU a run, which the suite's runs would otherwise spend again each time. (A new
interpreter with the installed package alone is what ``tests/test_child_imports.py`` runs.)
:func:`needs_new_interpreter` names the runs that start a new interpreter instead: those whose
environment changes how Python itself starts.

Run as ``python warmcli.py`` this module is that process (the *zygote*): it reads one request a
line on its standard input (JSON: ``id``, ``argv``, ``cwd``, ``env``, ``stdout``, ``stderr``, the
files the run's streams go to) and answers on its standard output ``started ID PID`` and, when
the run ends, ``exit ID CODE`` (a negative code is the signal that ended it, as
:attr:`subprocess.Popen.returncode`). It ends when its standard input closes.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import runpy
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: What the runs would import again each time: imported once, before the first fork, with every
#: module of the package but :data:`FRESH`. (Those read neither their environment nor their
#: working folder when imported: a run sets both first.)
PRELOAD = ("numpy", "pydicom", "pandas", "pyarrow", "pyarrow.parquet", "typer", "click",
           "pydantic", "rich.console", "matplotlib", "matplotlib.figure")
#: Modules each run imports itself: the CLI builds its stderr console when imported, and rich
#: reads ``COLUMNS``, ``NO_COLOR`` and the like from the environment then.
FRESH = ("hipaa_audit.__main__", "hipaa_audit.cli")
#: Environment variables read when an interpreter starts: a run that sets or changes one starts
#: a new interpreter.
_STARTUP_PREFIXES = ("PYTHON", "LC_")
_STARTUP_NAMES = frozenset({"LANG", "LANGUAGE"})


def needs_new_interpreter(env: Mapping[str, str], base: Mapping[str, str]) -> bool:
    """Whether a run with ``env`` (its whole environment) must start a new interpreter: it
    differs from ``base``, the zygote's, in a variable Python reads when it starts."""
    for name in set(env) | set(base):
        if (name.startswith(_STARTUP_PREFIXES) or name in _STARTUP_NAMES) and \
                env.get(name) != base.get(name):
            return True
    return False


# --------------------------------------------------------------------------------------------
# the zygote


def _run_child(request: dict[str, Any]) -> None:
    """In the forked child: become ``python -m hipaa_audit ARGV``; never returns."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        for fd, target in ((null, 0), (out, 1), (err, 2)):
            os.dup2(fd, target)
        os.closerange(3, 1024)  # the zygote's pipes and files are not the run's
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        time.tzset()
        sys.path.insert(0, request["cwd"])  # as ``python -m`` puts its working folder first
        sys.argv = ["hipaa_audit", *request["argv"]]
        try:
            runpy.run_module("hipaa_audit", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exc:
            if exc.code is None:
                code = 0
            elif isinstance(exc.code, int):
                code = exc.code
            else:  # as the interpreter does with sys.exit("message")
                print(exc.code, file=sys.stderr)
                code = 1
        except BaseException:
            sys.excepthook(*sys.exc_info())  # type: ignore[arg-type]
            code = 1
        # what the interpreter does on its way out: wait for threads, run atexit, flush
        threading._shutdown()  # type: ignore[attr-defined]
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
    finally:
        os._exit(code & 0xFF)


def serve() -> None:
    """The zygote's loop (see the module's docstring)."""
    import pkgutil

    import hipaa_audit

    for name in PRELOAD:
        importlib.import_module(name)
    for module in pkgutil.walk_packages(hipaa_audit.__path__, "hipaa_audit."):
        if module.name not in FRESH:
            importlib.import_module(module.name)
    if any(name in sys.modules for name in FRESH):
        sys.exit(f"warmcli: a preloaded module imports one of {FRESH}")
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    pending = b""
    reply = sys.stdout.buffer
    running: dict[int, int] = {}  # pid: the request's id
    while True:
        ready, _, _ = select.select([0, wake_r], [], [])
        if wake_r in ready:
            os.read(wake_r, 4096)
        if 0 in ready:
            chunk = os.read(0, 65536)
            if not chunk:
                break
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    _run_child(request)
                running[pid] = request["id"]
                reply.write(f"started {request['id']} {pid}\n".encode())
                reply.flush()
        while running:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            code = os.waitstatus_to_exitcode(status)
            reply.write(f"exit {running.pop(pid)} {code}\n".encode())
            reply.flush()


# --------------------------------------------------------------------------------------------
# the tests' side


class WarmRun:
    """One run in the zygote: its pid once started, its exit code once ended, its output."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self.pid: int | None = None
        self.returncode: int | None = None
        self._started = threading.Event()
        self._done = threading.Event()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the run to end; :class:`subprocess.TimeoutExpired` after ``timeout``."""
        if not self._done.wait(timeout):
            raise subprocess.TimeoutExpired(["hipaa_audit"], timeout or 0)
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        """Stop the run with SIGKILL (nothing when it has ended)."""
        if self.pid is not None and self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def output(self, timeout: float | None = None) -> tuple[bytes, bytes]:
        """Wait for the run; its standard output and error, bytes as written."""
        self.wait(timeout)
        out, err = (self._folder / name for name in ("stdout", "stderr"))
        data = (out.read_bytes(), err.read_bytes())
        shutil.rmtree(self._folder)
        return data


class Zygote:
    """The zygote process of one test process, started the first time a run asks for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[int, WarmRun] = {}  # by request id, until they end
        self._next = 0
        self._tmp = Path(tempfile.mkdtemp(prefix="hipaa-audit-warm-"))
        self.env = dict(os.environ)
        self._proc = subprocess.Popen([sys.executable, "-P", __file__], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, env=self.env)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for raw in self._proc.stdout:
            kind, ident, value = raw.decode().split()
            with self._lock:
                run = self._runs[int(ident)]
                if kind == "started":
                    run.pid = int(value)
                    run._started.set()
                else:
                    del self._runs[int(ident)]
                    run.returncode = int(value)
                    run._done.set()

    def start(self, argv: list[str], cwd: Path | None, env: Mapping[str, str]) -> WarmRun:
        """Start ``python -m hipaa_audit ARGV`` in ``cwd`` with the whole environment ``env``."""
        assert self._proc.stdin is not None
        with self._lock:
            ident = self._next
            self._next += 1
            folder = self._tmp / str(ident)
            folder.mkdir()
            run = self._runs[ident] = WarmRun(folder)
            request = {"id": ident, "argv": argv, "cwd": str(cwd or Path.cwd()),
                       "env": dict(env), "stdout": str(folder / "stdout"),
                       "stderr": str(folder / "stderr")}
            self._proc.stdin.write(json.dumps(request).encode() + b"\n")
            self._proc.stdin.flush()
        while not run._started.wait(0.5):
            if self._proc.poll() is not None:
                raise RuntimeError(f"the warm CLI zygote ended ({self._proc.returncode})")
        return run

    def close(self) -> None:
        """End the zygote (runs still going on are killed)."""
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            run.kill()
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc.wait(30)
        shutil.rmtree(self._tmp, ignore_errors=True)


if __name__ == "__main__":
    serve()
