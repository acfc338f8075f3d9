"""Run a scan's per-asset function on a Dask distributed cluster (``--scheduler ADDRESS``).

The parent walks, batches the items and submits one task per batch; results come back in order
of completion (each batch's results keep their own order). Every worker builds its rules once
per process from the arguments of the first batch it runs. The workers must see the scanned
paths at the same place (a shared mount, or a ``LocalCluster`` on this machine).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from hipaa_audit.engine import batches_of
from hipaa_audit.errors import HipaaAuditError

T = TypeVar("T")
R = TypeVar("R")

#: Batches submitted ahead of the results taken, per cluster thread: bounds the parent's memory.
AHEAD_PER_THREAD = 4

_ready: dict[tuple[Any, ...], bool] = {}


class ClusterError(HipaaAuditError, RuntimeError):
    """The scheduler cannot be reached, or a task failed on the cluster."""


def _run_batch(fn: Callable[[Any], Any], initializer: Callable[..., None],
               initargs: tuple[Any, ...], batch: list[Any]) -> list[Any]:
    key = (initializer.__module__, initializer.__qualname__, initargs)
    if key not in _ready:
        initializer(*initargs)
        _ready.clear()
        _ready[key] = True
    return [fn(item) for item in batch]


def connect(address: str, timeout: float = 10) -> Any:
    """A ``distributed.Client`` of the scheduler at ``address``.

    Raises :class:`ClusterError` when it cannot be reached within ``timeout`` seconds.
    """
    from distributed import Client

    try:
        return Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {address} "
                           f"({type(exc).__name__})") from None


def map_on_cluster(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    address: str,
    initializer: Callable[..., None],
    initargs: tuple[object, ...] = (),
    timeout: float = 10,
) -> Iterator[R]:
    """Yield ``fn(item)`` for every item, computed on the Dask cluster at ``address``.

    Results arrive in order of completion, batch by batch. Raises :class:`ClusterError` when
    the scheduler cannot be reached within ``timeout`` seconds or a task fails.
    """
    from distributed import as_completed

    client = connect(address, timeout)
    try:
        threads = max(1, sum(client.nthreads().values()))
        ahead = threads * AHEAD_PER_THREAD
        pending = as_completed(loop=client.loop)
        in_flight = 0
        for batch in batches_of(items):
            pending.add(client.submit(_run_batch, fn, initializer, initargs, batch, pure=False))
            in_flight += 1
            if in_flight >= ahead:
                yield from _take(next(pending))
                in_flight -= 1
        for future in pending:
            yield from _take(future)
    finally:
        client.close()


def _take(future: Any) -> list[Any]:
    try:
        results: list[Any] = future.result()
    except Exception as exc:  # the type only: a message could carry a value
        raise ClusterError(f"a task failed on the cluster ({type(exc).__name__})") from None
    return results

