"""Logs: 5 million audit events through every detector and the shipped Sigma rules.

The bar (DESIGN.md section 5): "5 million events, all detectors, under 30 s and 2 GB peak on 2
cores", beside a plain pandas baseline measured in the same run.

    .venv/bin/python bench/logs.py [--events 5000000] [--quick] [--cap 300] [--keep DIR]

Every stage runs in its own fresh interpreter (``--child``), so each peak RSS is that process's
own (``VmHWM``, the high-water mark of its resident set; ``ru_maxrss`` where /proc is missing):

  generate  ``fixtures/loggen.py`` ``bulk_events(n)`` (2,000 users, 90 days, 500,000 patients,
            with an injected bulk export, failed-login burst, password spray and mass deletion),
            written to a Parquet file in a temporary folder exactly as ``analyze logs`` writes
            its cache of a parsed log (``schema.write_parquet``: the compact table, text columns
            as categoricals). Timed and printed, not counted in the bar.
  hipaa     hipaa-audit: the Parquet read into the compact table by the product's own reader
            (``schema.read_parquet``, what ``analyze logs`` does with a cached file: column by
            column and row group by row group, categoricals kept, ``event_id`` kept in Arrow;
            Arrow's system memory pool so that decoding buffers go back to the C heap), then
            each function of ``detect.DETECTORS`` in turn (what ``run_all(events,
            Settings(timezone=...))`` does, timed one by one) and the shipped Sigma rules
            (``setup.builtin_rules()`` -> ``sigma.load_rules`` -> ``sigma.evaluate``).
            Total = load + detectors + Sigma.
  baseline  plain pandas, written the obvious way: ``pd.read_parquet`` of the same events kept
            with every text column a string (a second Parquet file, written by the generate
            stage), then bulk export
            (``nunique`` per user-day, robust z by ``groupby().apply`` per user), off-hours
            (``pd.crosstab`` hour-of-week profile and merges), failed logins and spraying
            (``groupby().rolling("10min")``, a Python function for distinct users), new sources
            (``sort_values`` + ``drop_duplicates``, a mask per new pair), dormant accounts
            (``groupby().diff()``, a mask per wake-up) and mass deletion (``groupby().agg`` with
            Python functions for the evidence). Stopped after ``--cap`` seconds.

The ratio is baseline / hipaa-audit over the same work: the load and the six detections both
do. Correctness guard: every injected anomaly is reported by hipaa-audit (same kind and user or
address). Exit 0 when total < 30 s, peak RSS < 2 GiB and the guard holds; 1 otherwise.
``--quick``: 300,000 events (what the test runs). ``--keep DIR`` keeps (and reuses) the Parquet.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EVENTS = 5_000_000
QUICK_EVENTS = 300_000
BAR_SECONDS = 30.0
BAR_MIB = 2048  # 2 GiB
TIMEZONE = "America/New_York"
#: the detectors the baseline does too (``failed-logins`` includes password spraying)
SHARED = ("bulk-export", "off-hours", "failed-logins", "new-source", "dormant-account",
          "mass-deletion")
LABEL_KINDS = ("bulk-export", "failed-logins", "password-spray", "mass-deletion")


# ---------------------------------------------------------------------------------------------
# measuring, in every child


def _status_mib(field: str) -> float | None:
    """A size this process's /proc/self/status gives (``VmHWM:``, ``VmRSS:``), in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_mib() -> float:
    """This process's own peak resident set (VmHWM; ru_maxrss where /proc is missing)."""
    peak = _status_mib("VmHWM:")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 if peak is None else peak


def rss_mib() -> float:
    """This process's resident set now."""
    rss = _status_mib("VmRSS:")
    return float("nan") if rss is None else rss


class Reporter:
    """One JSON line per step, flushed at once (the parent reads what a stopped child wrote)."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("a", encoding="utf-8")

    def __call__(self, step: str, seconds: float, **extra: Any) -> None:
        self.file.write(json.dumps({"step": step, "seconds": seconds, "rss": rss_mib(),
                                    "peak": peak_mib(), **extra}) + "\n")
        self.file.flush()


def timed(report: Reporter, step: str, fn: Callable[[], Any],
          describe: Callable[[Any], dict[str, Any]] | None = None) -> Any:
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    report(step, seconds, **(describe(result) if describe else {}))
    return result


# ---------------------------------------------------------------------------------------------
# generate


def plain_path(parquet: Path) -> Path:
    """Where the same events are kept for the baseline, every text column a string."""
    return parquet.with_name(parquet.name.replace(".cache.parquet", ".plain.parquet"))


def child_generate(events: int, parquet: Path, report: Reporter) -> None:
    sys.path.insert(0, str(ROOT / "fixtures"))
    import loggen

    from hipaa_audit.logs import schema

    frame = timed(report, "generate", lambda: loggen.bulk_events(events))
    labels = frame.attrs.get("labels", [])
    frame.attrs = {}
    timed(report, "write", lambda: schema.write_parquet(frame, parquet))
    # the baseline reads the same events as plain pandas would have them: all text as strings
    frame.to_parquet(plain_path(parquet), index=False)
    parquet.with_suffix(".labels.json").write_text(json.dumps(labels))
    report("written", 0.0, bytes=parquet.stat().st_size, events=len(frame))


# ---------------------------------------------------------------------------------------------
# hipaa-audit


def load_events(path: Path) -> Any:
    """The Parquet cache read into the compact event table, as ``analyze logs`` reads it."""
    from hipaa_audit.logs import schema

    return schema.read_parquet(path)


def child_hipaa(parquet: Path, report: Reporter) -> None:
    import pyarrow as pa

    # Arrow's decoding buffers in the C library's heap (returned with malloc_trim), not in a
    # caching allocator that keeps them after the read
    pa.set_memory_pool(pa.system_memory_pool())
    from hipaa_audit.logs import detect, sigma
    from hipaa_audit.logs.setup import builtin_rules

    report("imports", 0.0)
    events = timed(report, "load", lambda: load_events(parquet), lambda e: {"events": len(e)})
    settings = detect.Settings(timezone=TIMEZONE)
    for name, detector in detect.DETECTORS.items():  # what run_all does, one by one
        def describe(found: list[Any]) -> dict[str, Any]:
            kinds = Counter(a.kind for a in found)
            subjects = {k: sorted({a.subject for a in found if a.kind == k})
                        for k in LABEL_KINDS if k in kinds}
            return {"kinds": dict(kinds), "subjects": subjects}

        timed(report, f"detect:{name}", lambda d=detector: d(events, settings), describe)
    rules = timed(report, "sigma-load", lambda: sigma.load_rules([builtin_rules()]),
                  lambda r: {"rules": len(r.rules) + len(r.correlations)})
    timed(report, "sigma", lambda: sigma.evaluate(rules, events), lambda m: {
        "matches": len(m), "titles": sorted({x.title for x in m})})


# ---------------------------------------------------------------------------------------------
# the plain pandas baseline


def child_baseline(parquet: Path, report: Reporter) -> None:
    import pandas as pd

    tz = TIMEZONE
    df = timed(report, "load", lambda: pd.read_parquet(plain_path(parquet)),
               lambda e: {"events": len(e)})

    def bulk_export() -> list[tuple[str, str]]:
        ev = df[df["user"].notna()].copy()
        ev["day"] = ev["time"].dt.tz_convert(tz).dt.date
        out = ev["action"].isin(["export", "download"])
        ev["study_out"] = ev["study"].fillna(ev["event_id"]).where(out)
        ev["patient_out"] = ev["patient"].where(out)
        ev["bytes_out"] = ev["bytes"].fillna(0).where(out, 0)
        daily = ev.groupby(["user", "day"]).agg(
            studies=("study_out", "nunique"), patients=("patient_out", "nunique"),
            bytes=("bytes_out", "sum"))

        def flag(days: pd.DataFrame) -> pd.DataFrame:
            med = days["studies"].median()
            mad = max(float((days["studies"] - med).abs().median()), 1.0)
            z = 0.6745 * (days["studies"] - med) / mad
            floor = ((days["studies"] >= 50) | (days["patients"] >= 20)
                     | (days["bytes"] >= 5_000_000_000))
            return days[(z > 3.5) & floor]

        hits = daily.groupby(level="user", group_keys=False).apply(flag)
        return [("bulk-export", str(user)) for user, _ in hits.index]

    def off_hours() -> list[tuple[str, str]]:
        ev = df.loc[df["user"].notna(), ["user", "time", "patient"]].copy()
        local = ev["time"].dt.tz_convert(tz)
        ev["how"] = local.dt.day_of_week * 24 + local.dt.hour
        ev["day"] = local.dt.date
        profile = pd.crosstab(ev["user"], ev["how"])
        user_total = profile.sum(axis=1).rename("user_total")
        day_size = ev.groupby(["user", "day"]).size().rename("day_size")
        inside = local.dt.day_of_week.isin(range(5)) & local.dt.hour.between(7, 18)
        bins = ev[~inside].groupby(["user", "day", "how"]).size().rename("n").reset_index()
        bins = (bins.merge(profile.stack().rename("bin_total").reset_index(), on=["user", "how"])
                .merge(user_total.reset_index(), on="user")
                .merge(day_size.reset_index(), on=["user", "day"]))
        share = (bins["bin_total"] - bins["n"]) / (bins["user_total"] - bins["day_size"]).clip(
            lower=1)
        per_day = bins[share < 0.001].groupby(["user", "day"])["n"].sum()
        return [("off-hours", str(user)) for user, _ in per_day[per_day >= 10].index]

    def failed_logins() -> list[tuple[str, str]]:
        fails = df.loc[(df["action"] == "login") & (df["outcome"] == "failure"),
                       ["time", "user", "source_ip"]]
        per_user = fails[fails["user"].notna()].sort_values("time").set_index("time")
        counts = per_user.groupby("user")["source_ip"].rolling("10min").count()
        found = [("failed-logins", str(u))
                 for u in counts[counts >= 5].index.get_level_values("user").unique()]
        per_ip = fails[fails["source_ip"].notna()].sort_values("time").set_index("time")
        per_ip["who"] = pd.factorize(per_ip["user"])[0].astype(float)
        distinct = per_ip.groupby("source_ip")["who"].rolling("10min").apply(
            lambda users: len(set(users)), raw=True)
        found += [("password-spray", str(ip))
                  for ip in distinct[distinct >= 5].index.get_level_values("source_ip").unique()]
        return found

    def new_sources() -> list[tuple[str, str]]:
        ev = df[df["user"].notna() & df["source_ip"].notna() & (df["outcome"] != "failure")]
        cutoff = ev["time"].min() + pd.Timedelta(days=14)
        history = ev[ev["time"] < cutoff].groupby("user").size()
        seasoned = history[history >= 20].index
        first = ev.sort_values("time").drop_duplicates(["user", "source_ip"], keep="first")
        fresh = first[(first["time"] >= cutoff) & first["user"].isin(seasoned)]
        found = []
        for _, row in fresh.iterrows():
            rows = ev[(ev["user"] == row["user"]) & (ev["source_ip"] == row["source_ip"])]
            found.append(("new-source", str(row["user"])))
            _ = len(rows), rows["patient"].nunique()
        return found

    def dormant_accounts() -> list[tuple[str, str]]:
        ev = df[df["user"].notna()].sort_values(["user", "time"])
        gaps = ev.groupby("user")["time"].diff()
        found = []
        for _, row in ev[gaps >= pd.Timedelta(days=30)].iterrows():
            rows = ev[(ev["user"] == row["user"]) & (ev["time"] >= row["time"])
                      & (ev["time"] < row["time"] + pd.Timedelta(days=1))]
            found.append(("dormant-account", str(row["user"])))
            _ = len(rows), rows["patient"].nunique()
        return found

    def mass_deletion() -> list[tuple[str, str]]:
        dels = df[(df["action"] == "delete") & df["user"].notna()].copy()
        dels["hour"] = dels["time"].dt.floor("h")
        dels["n"] = dels["objects"].fillna(1)
        per = dels.groupby(["user", "hour"]).agg(
            n=("n", "sum"), start=("time", "min"), end=("time", "max"),
            ids=("event_id", lambda ids: list(ids[:20])),
            sources=("source", lambda s: list(s.dropna().unique()[:5])))
        return [("mass-deletion", str(user)) for user, _ in per[per["n"] >= 100].index]

    for name, fn in (("bulk-export", bulk_export), ("off-hours", off_hours),
                     ("failed-logins", failed_logins), ("new-source", new_sources),
                     ("dormant-account", dormant_accounts), ("mass-deletion", mass_deletion)):
        timed(report, f"detect:{name}", fn,
              lambda found: {"kinds": dict(Counter(k for k, _ in found))})


# ---------------------------------------------------------------------------------------------
# the parent: run the children, print the table


def run_child(role: str, parquet: Path, out: Path, *, events: int = 0,
              cap: float | None = None) -> tuple[list[dict[str, Any]], float, str | None]:
    """Run one stage in a fresh interpreter; its JSON lines, wall time and a problem, if any."""
    out.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", role,
           "--parquet", str(parquet), "--out", str(out), "--events", str(events)]
    t0 = time.perf_counter()
    problem = None
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
        try:
            code = proc.wait(timeout=cap)
            if code:
                err.seek(0)
                problem = f"exit {code}: {err.read().decode(errors='replace')[-2000:]}"
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            problem = f"stopped after {cap:.0f} s"
    wall = time.perf_counter() - t0
    lines = [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []
    return lines, wall, problem


def fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS)
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_EVENTS:,} events (what the test runs)")
    parser.add_argument("--cap", type=float, default=300.0,
                        help="stop the baseline after this many seconds (default 300)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the Parquet file in DIR (and reuse it when present)")
    parser.add_argument("--child", choices=("generate", "hipaa", "baseline"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--parquet", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        report = Reporter(args.out)
        {"generate": lambda: child_generate(args.events, args.parquet, report),
         "hipaa": lambda: child_hipaa(args.parquet, report),
         "baseline": lambda: child_baseline(args.parquet, report)}[args.child]()
        return 0
    n = QUICK_EVENTS if args.quick else args.events
    with tempfile.TemporaryDirectory(prefix="bench-logs-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        return run(n, folder, Path(tmp), args.cap)


def run(n: int, folder: Path, tmp: Path, cap: float) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import numpy
    import pandas
    import pyarrow

    print(f"hipaa-audit log benchmark: {n:,} events, {cores} core(s), Python "
          f"{platform.python_version()}, pandas {pandas.__version__}, pyarrow "
          f"{pyarrow.__version__}, numpy {numpy.__version__}", flush=True)
    parquet = folder / f"events-{n}.cache.parquet"  # the compact table, as the cache holds it
    if parquet.exists() and plain_path(parquet).exists() and parquet.with_suffix(
            ".labels.json").exists():
        print(f"reusing {parquet} ({parquet.stat().st_size / 1e6:,.1f} MB)", flush=True)
    else:
        lines, _, problem = run_child("generate", parquet, tmp / "generate.jsonl", events=n)
        if problem:
            print(f"generating the events failed ({problem})", file=sys.stderr)
            return 1
        step = {x["step"]: x for x in lines}
        print(f"generated with bulk_events in {step['generate']['seconds']:.1f} s, written to "
              f"Parquet in {step['write']['seconds']:.1f} s "
              f"({step['written']['bytes'] / 1e6:,.1f} MB); not counted", flush=True)
    labels = json.loads(parquet.with_suffix(".labels.json").read_text())

    ours, our_wall, problem = run_child("hipaa", parquet, tmp / "hipaa.jsonl")
    if problem:
        print(f"hipaa-audit run failed ({problem})", file=sys.stderr)
        return 1
    base, base_wall, base_problem = run_child("baseline", parquet, tmp / "baseline.jsonl",
                                              cap=cap)
    mine = {x["step"]: x for x in ours}
    theirs = {x["step"]: x for x in base}
    print_table(mine, theirs)
    detectors = sum(x["seconds"] for k, x in mine.items() if k.startswith("detect:"))
    sigma_s = mine["sigma-load"]["seconds"] + mine["sigma"]["seconds"]
    total = mine["load"]["seconds"] + detectors + sigma_s
    peak = max(x["peak"] for x in ours)
    where = next(x["step"] for x in ours if x["peak"] == peak)
    print(f"{'detectors':<20}{fmt_s(detectors):>12}")
    print(f"{'total':<20}{fmt_s(total):>12}   load + detectors + Sigma (the child process took "
          f"{our_wall:.1f} s with interpreter start and imports)")
    base_peak = max((x["peak"] for x in base), default=float("nan"))
    print(f"peak RSS: hipaa-audit {peak:,.0f} MiB (reached in {where}; "
          f"{mine['imports']['peak']:,.0f} MiB after the imports, {mine['load']['rss']:,.0f} MiB "
          f"with the table loaded), baseline {base_peak:,.0f} MiB"
          + (f" ({theirs['load']['peak']:,.0f} MiB after pd.read_parquet)" if "load" in theirs
             else ""))
    found: Counter[str] = Counter()
    for x in ours:
        found.update(x.get("kinds", {}))
    print(f"events: {mine['load']['events']:,}; anomalies by kind: "
          + (", ".join(f"{k} {v}" for k, v in sorted(found.items())) or "none")
          + f"; Sigma: {mine['sigma']['matches']} match(es)")

    # the ratio, on the work both did
    shared = ["load"] + [f"detect:{k}" for k in SHARED]
    ours_shared = sum(mine[k]["seconds"] for k in shared)
    if base_problem is None and all(k in theirs for k in shared):
        base_shared = sum(theirs[k]["seconds"] for k in shared)
        ratio = f"{base_shared / ours_shared:.1f}x ({base_shared:.1f} s / {ours_shared:.1f} s)"
    else:
        done = sum(x["seconds"] for k, x in theirs.items() if k in shared)
        ratio = (f"> {cap / ours_shared:.1f}x (baseline > {cap:.0f} s, {base_problem}; "
                 f"{done:.1f} s measured before) / {ours_shared:.1f} s")
    print(f"ratio baseline / hipaa-audit (load, {', '.join(SHARED)}): {ratio}; the baseline "
          f"process took {base_wall:.1f} s")

    # the correctness guard: every injected anomaly reported
    subjects: dict[str, set[str]] = {}
    for x in ours:
        for kind, names in x.get("subjects", {}).items():
            subjects.setdefault(kind, set()).update(names)
    missed = [f"{lab['kind']} {lab.get('user') or lab.get('source_ip')}" for lab in labels
              if (lab.get("user") or lab.get("source_ip")) not in subjects.get(lab["kind"], set())]
    guard = bool(labels) and not missed
    print(f"injected anomalies reported ({', '.join(lab['kind'] for lab in labels) or 'none'}): "
          + ("PASS" if guard else f"FAIL (missed: {', '.join(missed) or 'no labels'})"))
    fast, lean = total < BAR_SECONDS, peak < BAR_MIB
    print(f"bar: total {total:.1f} s < {BAR_SECONDS:.0f} s: {'PASS' if fast else 'FAIL'}")
    print(f"bar: peak RSS {peak:,.0f} MiB < {BAR_MIB:,} MiB (2 GiB): "
          f"{'PASS' if lean else 'FAIL'}")
    ok = fast and lean and guard
    print(f"overall: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


def print_table(mine: dict[str, dict[str, Any]], theirs: dict[str, dict[str, Any]]) -> None:
    print()
    print(f"{'step':<20}{'hipaa-audit':>12}{'peak MiB':>10}{'baseline':>11}{'ratio':>8}   "
          "anomalies (hipaa-audit / baseline)")
    rows = [("load", "load")] + [(k.split(":", 1)[1], k) for k in mine if k.startswith("detect:")]
    for label, key in rows:
        a, b = mine[key], theirs.get(key)
        ratio = f"{b['seconds'] / a['seconds']:.1f}x" if b and a["seconds"] > 0 else "-"
        kinds, other = a.get("kinds", {}), (b or {}).get("kinds", {})
        if key == "load":
            counts = f"{a['events']:,} events"
        elif kinds:
            counts = ", ".join(f"{k} {v} / {other.get(k, 0) if b else '-'}"
                               for k, v in sorted(kinds.items()))
        else:
            counts = f"0 / {sum(other.values()) if b else '-'}"
        print(f"{label:<20}{fmt_s(a['seconds']):>12}{a['peak']:>10,.0f}"
              f"{fmt_s(b['seconds'] if b else None):>11}{ratio:>8}   {counts}")
    load, sig = mine["sigma-load"], mine["sigma"]
    print(f"{'sigma (' + str(load['rules']) + ' rules)':<20}"
          f"{fmt_s(load['seconds'] + sig['seconds']):>12}{sig['peak']:>10,.0f}{'-':>11}"
          f"{'-':>8}   {sig['matches']} match(es)"
          + (f": {', '.join(sig['titles'])}" if sig["titles"] else ""))


if __name__ == "__main__":
    sys.exit(main())
