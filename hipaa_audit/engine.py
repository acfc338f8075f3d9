"""Run a scanner's per-asset function over many assets, in this process or in a process pool.

Results stream back in input order (``imap``), so memory stays flat however large the archive,
and output is deterministic. Each worker builds its rules once, in its initializer.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Items handed to a worker at a time: large enough to amortise IPC, small enough to stream.
CHUNK_SIZE = 64


def map_in_order(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int,
    initializer: Callable[..., None],
    initargs: tuple[object, ...] = (),
) -> Iterator[R]:
    """Yield ``fn(item)`` for every item, in order, using ``workers`` processes.

    With one worker everything runs in this process (after calling ``initializer``). ``fn``
    and ``initializer`` must be module-level functions so that workers can import them.
    """
    if workers <= 1:
        initializer(*initargs)
        for item in items:
            yield fn(item)
        return
    ctx = multiprocessing.get_context("forkserver")
    with ctx.Pool(workers, initializer=initializer, initargs=initargs) as pool:
        yield from pool.imap(fn, items, chunksize=CHUNK_SIZE)
