"""``scan network``: probe many endpoints at once, each in its own process under its own deadline.

sslyze has no deadline of its own (only per-socket timeouts and retries), and a stuck handshake
thread cannot be stopped from outside. So every target is observed in a child process started
from a warm fork server; the parent keeps at most ``concurrency`` of them running, receives their
partial observations as they go, and kills any that passes its deadline. What the child had
observed until then is judged, plus an ``unverifiable`` finding saying where it stopped.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from hipaa_audit.catalog import Catalog
from hipaa_audit.children import forkserver_context
from hipaa_audit.evidence import EndpointSummary
from hipaa_audit.model import AssetResult
from hipaa_audit.network import probes
from hipaa_audit.network.collect import ProbeOptions, observe
from hipaa_audit.network.observation import Observation
from hipaa_audit.network.policy import Policy
from hipaa_audit.network.rules import judge
from hipaa_audit.network.targets import Target

#: Modules the fork server imports once, so that each probe process starts warm.
PRELOAD = ["hipaa_audit.network.collect", "hipaa_audit.network.tlsscan", "pynetdicom"]
DEFAULT_DEADLINE = 90.0
DEFAULT_CONCURRENCY = 8


@dataclass(frozen=True, slots=True)
class ScanOptions:
    """The whole network scan: probing options plus deadline, concurrency and policy."""

    probe: ProbeOptions = field(default_factory=ProbeOptions)
    deadline: float = DEFAULT_DEADLINE
    concurrency: int = DEFAULT_CONCURRENCY

    @property
    def limit(self) -> int:
        """Targets probed at once: ``concurrency``, or one in gentle mode."""
        return 1 if self.probe.gentle else max(1, self.concurrency)


def _child(target: Target, opts: ProbeOptions, conn: Connection) -> None:
    """Probe one target in a child process, sending each partial observation to the parent."""
    import logging
    import warnings

    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    try:
        final = observe(target, opts, lambda o: conn.send(("partial", o)))
        conn.send(("done", final))
    except Exception as exc:  # errors are data: the parent reports it as unverifiable
        conn.send(("crashed", type(exc).__name__))
    finally:
        conn.close()


@dataclass(slots=True)
class _Job:
    target: Target
    process: BaseProcess
    conn: Connection
    deadline: float
    last: Observation | None = None


def _context() -> Any:
    return forkserver_context(PRELOAD)


def observe_all(targets: list[Target], opts: ScanOptions) -> Iterator[Observation]:
    """Observe every target, at most ``opts.concurrency`` at once (one when gentle).

    Yields each observation as its target finishes (completion order). A target that passes
    its deadline is stopped and yielded with ``deadline_hit`` set.
    """
    ctx = _context()
    limit = opts.limit
    pending = deque(targets)
    running: dict[Connection, _Job] = {}
    try:
        while pending or running:
            while pending and len(running) < limit:
                target = pending.popleft()
                parent_end, child_end = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_child, args=(target, opts.probe, child_end),
                                   daemon=True, name=f"probe {target.url}")
                proc.start()
                child_end.close()
                running[parent_end] = _Job(target, proc, parent_end,
                                           time.monotonic() + opts.deadline)
            soonest = min(job.deadline for job in running.values())
            ready = wait(list(running), timeout=max(0.0, soonest - time.monotonic()))
            for conn in ready:
                job = running[conn]  # type: ignore[index]
                finished = _receive(job)
                if finished is not None:
                    del running[job.conn]
                    _reap(job)
                    yield finished
            now = time.monotonic()
            for conn, job in list(running.items()):
                if now >= job.deadline:
                    del running[conn]
                    job.process.kill()
                    _reap(job)
                    yield _stopped(job, opts)
    finally:
        for job in running.values():
            job.process.kill()
            _reap(job)


def _receive(job: _Job) -> Observation | None:
    """Read what the child sent; return the final observation once it is done (or dead)."""
    try:
        kind, payload = job.conn.recv()
    except (EOFError, OSError):
        obs = job.last or Observation(job.target, job.target.kind)
        obs.error = "the probe process ended without a result"
        return obs
    if kind == "partial":
        job.last = payload
        return None
    if kind == "done":
        return payload  # type: ignore[no-any-return]
    obs = job.last or Observation(job.target, job.target.kind)
    obs.error = f"an internal error ({payload}) stopped the probe"
    return obs


def _reap(job: _Job) -> None:
    job.process.join(timeout=5)
    job.conn.close()


def _stopped(job: _Job, opts: ScanOptions) -> Observation:
    """The observation of a target stopped at its deadline, with a liveness check from here."""
    obs = job.last or Observation(job.target, job.target.kind)
    obs.deadline_hit = True
    obs.seconds = opts.deadline
    if obs.reachable == "open" and obs.address is not None:
        obs.alive_after = probes.tcp_state(obs.address, job.target.port,
                                           min(2.0, opts.probe.timeout)) == "open"
    return obs


def scan_network(targets: list[Target], opts: ScanOptions, policy: Policy, catalog: Catalog,
                 on_endpoint: Callable[[EndpointSummary], None] | None = None
                 ) -> Iterator[AssetResult]:
    """Observe and judge every target; yield one :class:`AssetResult` per endpoint.

    ``on_endpoint`` receives the summary of each endpoint (kind, grade, protocols,
    certificate expiry, HSTS, client authentication) for the reports.
    """
    for obs in observe_all(targets, opts):
        judged = judge(obs, policy, catalog, opts.probe)
        if on_endpoint is not None:
            on_endpoint(judged.summary)
        yield judged.result
