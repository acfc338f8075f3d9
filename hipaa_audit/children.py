"""Start child processes that import only the installed package, never the working folder.

``python -m MODULE`` and ``python -c CODE`` put the current folder first on ``sys.path``, and
multiprocessing starts its fork server (and resource tracker) with ``-c``. Run from a folder
that holds a ``hipaa_audit/`` package (a source checkout, or a share anyone can write), such a
child would import that package instead of the installed one. Every child the tool starts
goes through this module: Python is started with ``-P`` (3.11's "safe path": nothing is
prepended to ``sys.path``), given directly on the command line or, for the fork server whose
command line multiprocessing builds, through ``PYTHONSAFEPATH`` while it starts.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from multiprocessing import forkserver
from multiprocessing.context import ForkServerContext

_START_LOCK = threading.Lock()


def module_command(module: str, *args: str) -> list[str]:
    """Return the command line that runs ``python -m module args`` on the installed code."""
    return [sys.executable, "-P", "-m", module, *args]


@contextlib.contextmanager
def _safe_path_environment() -> Iterator[None]:
    old = os.environ.get("PYTHONSAFEPATH")
    os.environ["PYTHONSAFEPATH"] = "1"
    try:
        yield
    finally:
        if old is None:
            del os.environ["PYTHONSAFEPATH"]
        else:
            os.environ["PYTHONSAFEPATH"] = old


def forkserver_context(preload: Sequence[str]) -> ForkServerContext:
    """Return the fork-server context, its server started so that it imports no local code.

    ``preload`` names modules the fork server imports once (it only matters for the first
    call in a process: there is one fork server per process). The fork server, and the
    resource tracker started with it, run with ``PYTHONSAFEPATH=1``; the processes forked
    from it take the parent's ``sys.path``.
    """
    ctx = multiprocessing.get_context("forkserver")
    with _START_LOCK:
        ctx.set_forkserver_preload(list(preload))
        with _safe_path_environment():
            forkserver.ensure_running()
    return ctx


__all__ = ["forkserver_context", "module_command"]
