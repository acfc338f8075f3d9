"""Run a scanner's per-asset function over many assets, in this process or in worker processes.

Results stream back in input order, so memory stays flat however large the archive and output
is deterministic. Each worker builds its rules once, in its initializer.

The pool is deliberately simple: N worker processes, one pipe each, batches dealt to the least
busy worker with a bounded number in flight, results taken from whichever worker is ready (so a
worker never waits on a full pipe for another's turn) and yielded in input order. The parent
runs no helper threads, so it spends its time receiving results rather than contending for the
GIL (``multiprocessing.Pool`` cost the parent about twice the CPU per result here).
"""

from __future__ import annotations

import contextlib
import gc
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

from hipaa_audit.children import forkserver_context
from hipaa_audit.errors import HipaaAuditError

T = TypeVar("T")
R = TypeVar("R")

#: Items per message: large enough to amortise IPC, small enough to stream.
BATCH_SIZE = 64
#: Allocations between young-generation collections while scanning (CPython's default: 700).
GC_THRESHOLD = 50_000
#: Batches queued per worker: one being computed, one waiting, so workers never idle.
IN_FLIGHT = 2


class WorkerError(HipaaAuditError, RuntimeError):
    """A worker process died or failed outside the per-asset function's own error handling.

    The message says which (and how a worker died: its exit code or signal); it holds no
    value read from an asset.
    """


def map_in_order(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int,
    initializer: Callable[..., None],
    initargs: tuple[object, ...] = (),
    preload: Sequence[str] = (),
) -> Iterator[R]:
    """Yield ``fn(item)`` for every item, in order, using ``workers`` processes.

    With one worker everything runs in this process (after calling ``initializer``). ``fn``
    and ``initializer`` must be module-level functions so that workers can import them;
    ``preload`` names modules the fork server imports once, so workers start warm. Raises
    :class:`WorkerError` when a worker dies or raises.
    """
    if workers <= 1:
        initializer(*initargs)  # first, so that what it builds is frozen with the rest
        with _quiet_gc():
            for item in items:
                yield fn(item)
        return
    with _quiet_gc():
        yield from _pooled(fn, items, workers, initializer, initargs, preload)


@contextlib.contextmanager
def _quiet_gc() -> Iterator[None]:
    """Keep the cyclic GC off the long-lived start-up objects and out of the hot loop.

    Results are short-lived tuples without cycles; freezing what start-up allocated (pydicom's
    dictionary, the catalog) and collecting less often halves the parent's cost per result.
    """
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(max(thresholds[0], GC_THRESHOLD), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def _pooled(
    fn: Callable[[T], R],
    items: Iterable[T],
    workers: int,
    initializer: Callable[..., None],
    initargs: tuple[object, ...],
    preload: Sequence[str],
) -> Iterator[R]:
    ctx = forkserver_context(preload)
    pipes: list[Connection] = []
    procs: list[BaseProcess] = []
    try:
        for _ in range(workers):
            parent_end, child_end = ctx.Pipe(duplex=True)
            proc = ctx.Process(target=_worker, args=(child_end, fn, initializer, initargs),
                               daemon=True)
            proc.start()
            child_end.close()
            pipes.append(parent_end)
            procs.append(proc)
        queued: list[deque[int]] = [deque() for _ in pipes]  # batch numbers, per worker
        ready: dict[int, list[Any]] = {}  # results that arrived before their turn
        next_out = 0
        for number, batch in enumerate(batches_of(items)):
            worker = min(range(workers), key=lambda w: len(queued[w]))
            _send(pipes[worker], procs[worker], batch)
            queued[worker].append(number)
            while sum(map(len, queued)) >= workers * IN_FLIGHT:
                _collect(pipes, procs, queued, ready)
                while next_out in ready:
                    yield from ready.pop(next_out)
                    next_out += 1
        while any(queued):
            _collect(pipes, procs, queued, ready)
            while next_out in ready:
                yield from ready.pop(next_out)
                next_out += 1
        for number, pipe in enumerate(pipes):
            _send(pipe, procs[number], None)
    finally:
        for pipe in pipes:
            pipe.close()
        for child in procs:
            child.join(timeout=5)
            if child.is_alive():
                child.terminate()


def _collect(pipes: list[Connection], procs: list[BaseProcess], queued: list[deque[int]],
             ready: dict[int, list[Any]]) -> None:
    """Wait until some worker has a result, and take every result that is there."""
    busy = [pipes[w] for w in range(len(pipes)) if queued[w]]
    for conn in wait(busy):
        worker = pipes.index(conn)  # type: ignore[arg-type]
        ready[queued[worker].popleft()] = _receive(pipes[worker], procs[worker])


def _died(proc: BaseProcess) -> WorkerError:
    """The error for a worker whose pipe broke: it died; say how, as far as it is known."""
    proc.join(timeout=5)
    code = proc.exitcode
    if code is None:
        how = "its pipe broke"
    elif code < 0:
        try:
            how = f"killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"killed by signal {-code}"
    else:
        how = f"exit code {code}"
    return WorkerError(f"a worker process died ({how})")


def _send(pipe: Connection, proc: BaseProcess, message: object) -> None:
    try:
        pipe.send(message)
    except OSError:  # BrokenPipeError, ConnectionResetError: the worker is gone
        raise _died(proc) from None


def _receive(pipe: Connection, proc: BaseProcess) -> list[Any]:
    try:
        status, payload = pipe.recv()
    except (EOFError, OSError):
        raise _died(proc) from None
    if status != "ok":
        raise WorkerError(f"a worker failed: {payload}")
    results: list[Any] = payload
    return results


def _worker(pipe: Connection, fn: Callable[[Any], Any], initializer: Callable[..., None],
            initargs: tuple[object, ...]) -> None:
    initializer(*initargs)
    with _quiet_gc():
        while True:
            try:
                batch = pipe.recv()
            except (EOFError, OSError):  # the parent stopped (another worker died): quietly
                return
            if batch is None:
                return
            try:
                results = [fn(item) for item in batch]
            except Exception as exc:  # reported by type only: a message could hold a value
                reply: tuple[str, object] = ("error", type(exc).__name__)
            else:
                reply = ("ok", results)
            try:
                pipe.send(reply)
            except OSError:
                return
            if reply[0] != "ok":
                return


def batches_of(items: Iterable[T]) -> Iterator[list[T]]:
    """Group ``items`` into lists of :data:`BATCH_SIZE` (the last one shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= BATCH_SIZE:
            yield batch
            batch = []
    if batch:
        yield batch
