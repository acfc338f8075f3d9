"""Network: N loopback TLS endpoints in one scan, against sslyze's defaults one after another.

Starts N real endpoints on 127.0.0.1 with ``fixtures/netpeers.py`` (``start_bench``: good TLS 1.3
and 1.2, HTTPS with HSTS, legacy, static-RSA CBC, expired, TLS 1.1 only, RSA-1024/SHA-1, in
that rotation) and measures, in one run and in this order:

  (a) hipaa-audit: ONE ``scan_network`` over all N targets with the default options
      (concurrency 8, deadline 90 s, nist-800-52r2) and the fixtures' CA bundle: wall time,
      endpoints finished or stopped at their deadline, grades, peak RSS of this process and of
      the largest child (the fork server and the probe processes);
  (b) the baseline: sslyze with its defaults, one endpoint after another: for each target a
      fresh ``Scanner()`` (default limits) and one ``ServerScanRequest`` with sslyze's default
      scan commands (all of them), its result awaited before the next target;
  (c) a deadline demonstration: a separate scan with ``deadline=10`` of one good endpoint and
      one silent port (accepts TCP, never speaks), to show that the silent one ends when its
      own deadline says, not when the socket timeouts add up.

Both (a) and (b) scan the same running endpoints; nothing is shared between them (the probes of
(a) run in child processes, sslyze (b) in this one), and (a) runs first.

    .venv/bin/python bench/network.py [--endpoints N] [--quick]

Exit status is 0 when the figures were measured, 1 when an endpoint of (a) hit its deadline or a
scan crashed (the bar: "N loopback endpoints in one run; every target bounded by its own
deadline").
"""

from __future__ import annotations

import argparse
import logging
import re
import resource
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
QUICK_ENDPOINTS = 6
DEMO_DEADLINE = 10.0
#: Slack allowed past the demo deadline: killing and reaping the probe, the liveness check.
DEMO_SLACK = 3.0
MIB = 1 << 20


def _quiet() -> None:
    """Silence sslyze, nassl and cryptography warnings and log records (also in this process)."""
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)


def _maxrss(who: int) -> int:
    """Peak RSS in bytes (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(who).ru_maxrss * 1024


def _stop_forkserver() -> bool:
    """Stop multiprocessing's fork server so that its peak (and its children's) is reaped.

    RUSAGE_CHILDREN only covers waited-for descendants; the probe processes are children of the
    fork server, which lives until this process exits unless it is stopped. A later scan starts
    a new one. ``_stop`` is private API (used by CPython's own tests): if it is missing, the
    children figure is left out.
    """
    from multiprocessing import forkserver

    stop = getattr(getattr(forkserver, "_forkserver", None), "_stop", None)
    if stop is None:
        return False
    stop()
    return True


# --------------------------------------------------------------------------- (a) hipaa-audit


@dataclass
class ProjectRun:
    wall: float
    endpoints: list[dict[str, Any]]
    #: seconds from the start of the scan until each endpoint's result was yielded, by asset
    done_at: dict[str, float]
    crashed: list[str] = field(default_factory=list)
    error: str | None = None


def run_project(texts: list[str], ca_bundle: Path, deadline: float | None = None) -> ProjectRun:
    """One ``scan_network`` over ``texts`` with the default options (``deadline`` if given)."""
    from hipaa_audit.catalog import load_catalog
    from hipaa_audit.model import Status
    from hipaa_audit.network.run import scan_network
    from hipaa_audit.network.setup import network_plan

    kw: dict[str, Any] = {} if deadline is None else {"deadline": deadline}
    plan = network_plan(texts, ca_bundle=str(ca_bundle), **kw)
    catalog = load_catalog()
    endpoints: list[dict[str, Any]] = []
    done_at: dict[str, float] = {}
    crashed: list[str] = []
    error = None
    t0 = time.perf_counter()
    try:
        for result in scan_network(plan.targets, plan.options, plan.policy, catalog,
                                   endpoints.append):
            done_at[result.asset] = time.perf_counter() - t0
            # "The probe failed: ..." (an internal error, or the probe process died)
            if any(f.status is Status.ERROR and f.key == "error" for f in result.findings):
                crashed.append(result.asset)
    except Exception:
        error = traceback.format_exc()
    wall = time.perf_counter() - t0
    return ProjectRun(wall, endpoints, done_at, crashed, error)


def deadline_stopped(summary: dict[str, Any]) -> bool:
    return any("deadline" in note for note in summary.get("notes", []))


# --------------------------------------------------------------------------- (b) sslyze baseline


@dataclass
class BaselineRun:
    wall: float
    seconds: list[float]
    completed: int
    no_connectivity: list[str]
    command_errors: Counter[str]
    commands: int
    error: str | None = None


def run_baseline(locations: list[tuple[str, int]]) -> BaselineRun:
    """sslyze defaults, one endpoint after another: a fresh Scanner per target, result awaited."""
    from dataclasses import fields

    from sslyze import (
        ScanCommandAttemptStatusEnum,
        Scanner,
        ServerNetworkLocation,
        ServerScanRequest,
        ServerScanStatusEnum,
    )

    seconds: list[float] = []
    completed = 0
    no_connectivity: list[str] = []
    command_errors: Counter[str] = Counter()
    commands = 0
    error = None
    t0 = time.perf_counter()
    try:
        for host, port in locations:
            t = time.perf_counter()
            scanner = Scanner()
            request = ServerScanRequest(server_location=ServerNetworkLocation(host, port))
            commands = len(request.scan_commands)
            scanner.queue_scans([request])
            for result in scanner.get_results():
                if result.scan_status is not ServerScanStatusEnum.COMPLETED:
                    no_connectivity.append(f"{host}:{port}")
                    continue
                completed += 1
                attempts = result.scan_result
                for f in fields(attempts) if attempts is not None else ():
                    attempt = getattr(attempts, f.name)
                    if attempt.status is ScanCommandAttemptStatusEnum.ERROR:
                        command_errors[f.name] += 1
            seconds.append(time.perf_counter() - t)
    except Exception:
        error = traceback.format_exc()
    return BaselineRun(time.perf_counter() - t0, seconds, completed, no_connectivity,
                       command_errors, commands, error)


# --------------------------------------------------------------------------- main


def kind_of(name: str) -> str:
    return re.sub(r"^b\d+_", "", name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=50,
                        help="loopback endpoints (default 50)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_ENDPOINTS} endpoints (what the test runs)")
    args = parser.parse_args(argv)
    n = min(args.endpoints, QUICK_ENDPOINTS) if args.quick else args.endpoints
    if n < 1:
        parser.error("--endpoints must be at least 1")
    _quiet()
    with tempfile.TemporaryDirectory(prefix="hipaa-audit-bench-net-") as tmp:
        return run(Path(tmp), n)


def run(root: Path, n: int) -> int:
    import os
    import platform

    import sslyze.__version__ as sslyze_version

    sys.path.insert(0, str(ROOT / "fixtures"))
    import netpeers

    from hipaa_audit.network.run import DEFAULT_CONCURRENCY, DEFAULT_DEADLINE

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"hipaa-audit network benchmark: {n} loopback endpoints, {cores or 1} core(s), "
          f"load {load:.2f}, Python {platform.python_version()}, "
          f"sslyze {sslyze_version.__version__}")
    certs = netpeers.make_certs(root / "certs")
    children_before = _maxrss(resource.RUSAGE_CHILDREN)
    failed = False
    with netpeers.Peers(root / "work") as peers:
        t0 = time.perf_counter()
        started = netpeers.start_bench(peers, certs, n)
        names = list(started)
        texts = [started[name].target for name in names]
        kinds = Counter(kind_of(name) for name in names)
        print(f"{n} endpoints started in {time.perf_counter() - t0:.1f} s: "
              + ", ".join(f"{c} {k}" for k, c in kinds.items()))
        print("order: (a) hipaa-audit first, then (b) sslyze, then (c); same endpoints for (a) "
              "and (b), nothing cached between them")

        # (a) hipaa-audit, all N in one run
        project = run_project(texts, certs.ca_crt)
        parent_peak = _maxrss(resource.RUSAGE_SELF)
        stopped = _stop_forkserver()
        children_peak = _maxrss(resource.RUSAGE_CHILDREN) if stopped else 0
        if project.error:
            print(f"(a) scan_network crashed:\n{project.error}", file=sys.stderr)
            failed = True

        # (b) sslyze defaults, one after another
        baseline = run_baseline([(netpeers.HOST, started[name].port) for name in names])
        if baseline.error:
            print(f"(b) sslyze crashed:\n{baseline.error}", file=sys.stderr)
            failed = True

        # (c) the deadline demonstration: one good endpoint and one silent port
        silent = peers.start("silent", netpeers.silent_port, "tls")
        demo = run_project([texts[0], silent.target], certs.ca_crt, deadline=DEMO_DEADLINE)
        if demo.error:
            print(f"(c) scan_network crashed:\n{demo.error}", file=sys.stderr)
            failed = True

    # ---------------------------------------------------------------- figures
    by_target = dict(zip(texts, names, strict=True))
    summaries = project.endpoints
    stopped_at_deadline = [s for s in summaries if deadline_stopped(s)]
    finished = len(summaries) - len(stopped_at_deadline)
    missing = n - len(summaries)
    mean_project = statistics.mean(s["seconds"] for s in summaries) if summaries else 0.0
    mean_baseline = statistics.mean(baseline.seconds) if baseline.seconds else 0.0
    ratio = baseline.wall / project.wall if project.wall > 0 else float("nan")

    print()
    print(f"{'':3} {'method':44} {'endpoints':>9} {'wall s':>8} {'mean s/endpoint':>16} "
          f"{'finished':>9} {'deadline-stopped':>17} {'peak RSS MiB parent/children':>29}")
    rss = (f"{parent_peak / MIB:.0f} / "
           + (f"{children_peak / MIB:.0f}" if stopped else "n/a"))
    print(f"(a) {f'hipaa-audit scan_network, {DEFAULT_CONCURRENCY} at once':44} "
          f"{len(summaries):>9} {project.wall:>8.1f} {mean_project:>16.2f} {finished:>9} "
          f"{len(stopped_at_deadline):>17} {rss:>29}")
    print(f"(b) {'sslyze defaults, one after another':44} {len(baseline.seconds):>9} "
          f"{baseline.wall:>8.1f} {mean_baseline:>16.2f} {baseline.completed:>9} "
          f"{'-':>17} {'-':>29}")
    print(f"(a): default options (concurrency {DEFAULT_CONCURRENCY}, deadline "
          f"{DEFAULT_DEADLINE:.0f} s, nist-800-52r2, fixtures' CA bundle); mean s/endpoint is "
          "each probe's own time. (b): Scanner() with default limits, "
          f"{baseline.commands} scan commands, no CA bundle; one Scanner per endpoint")
    print(f"peak RSS: parent = this process (it also serves the {kinds.get('https_hsts', 0)} "
          "Python HTTPS peers), children = the largest reaped descendant (fork server or "
          f"probe process; {children_before / MIB:.0f} MiB before the scan)")

    grades = Counter(str(s.get("grade")) for s in summaries)
    print()
    print("grades (a): " + ", ".join(f"{g} {c}" for g, c in sorted(grades.items())))
    per_kind: dict[str, Counter[str]] = {}
    states: Counter[str] = Counter()
    for s in summaries:
        kind = kind_of(by_target.get(s["target"], s["target"]))
        per_kind.setdefault(kind, Counter())[str(s.get("grade"))] += 1
        states[s.get("state", "?")] += 1
    for kind in kinds:
        counts = per_kind.get(kind, Counter())
        print(f"  {kind:16} " + ", ".join(f"{g} x{c}" for g, c in sorted(counts.items())))
    print("states (a): " + ", ".join(f"{k} {c}" for k, c in sorted(states.items())))
    slowest = sorted(summaries, key=lambda s: -float(s["seconds"]))[:3]
    print("slowest probes (a): " + ", ".join(
        f"{by_target.get(s['target'], s['target'])} {s['seconds']:.1f} s" for s in slowest))
    if project.crashed:
        print(f"probes that failed (a): {', '.join(project.crashed)}")
    if missing:
        print(f"endpoints without a result (a): {missing}")
    if stopped_at_deadline:
        print("stopped at the deadline (a): " + ", ".join(
            f"{by_target.get(s['target'], s['target'])} ({'; '.join(s['notes'])})"
            for s in stopped_at_deadline))
    errors = sum(baseline.command_errors.values())
    print(f"sslyze (b): {baseline.completed} of {n} scans completed, {errors} command error(s)"
          + (f" ({', '.join(f'{k} x{c}' for k, c in sorted(baseline.command_errors.items()))})"
             if errors else "")
          + (f"; no connectivity: {', '.join(baseline.no_connectivity)}"
             if baseline.no_connectivity else ""))

    print()
    silent_summary = next((s for s in demo.endpoints if s["target"] == silent.target), None)
    if silent_summary is not None:
        silent_wall = demo.done_at.get(silent_summary["asset"], float("nan"))
        bounded = silent_wall <= DEMO_DEADLINE + DEMO_SLACK
        how = ("stopped at its deadline" if deadline_stopped(silent_summary)
               else f"ended on its own ({silent_summary['state']})")
        good = next((s for s in demo.endpoints if s["target"] != silent.target), None)
        good_wall = demo.done_at.get(good["asset"], float("nan")) if good else float("nan")
        print(f"(c) deadline {DEMO_DEADLINE:.0f} s: silent port {how} after {silent_wall:.1f} s "
              f"wall; good endpoint {good_wall:.1f} s; "
              f"scan {demo.wall:.1f} s; within deadline + {DEMO_SLACK:.0f} s: "
              f"{'yes' if bounded else 'NO'}")
    else:
        print("(c) deadline demonstration: no result for the silent port")

    print()
    print(f"ratio (b)/(a) wall: {ratio:.2f}")
    print(f"ratio: {ratio:.1f}x faster than sslyze defaults one after another")

    if stopped_at_deadline or project.crashed or missing or failed:
        print("bar: FAIL (an endpoint hit its deadline, lacks a result, or a scan crashed)")
        return 1
    print(f"bar: PASS ({n} endpoints in one run, none stopped at its deadline)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
