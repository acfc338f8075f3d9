"""Archive scan of many small CT slices: hipaa-audit against pydicom baselines, one worker.

Writes N small CT files (``fixtures/smallct.py``: about 40 header elements, 64x64 16-bit
pixels, Explicit VR Little Endian; most de-identified, some keeping a few identifiers), then
times over a warm page cache, with the methods of ``archive_header.py`` (interleaved, the first
pass discarded, median of the rest):

  (a) ``open()`` + ``read(8192)``                      the I/O floor
  (b) ``dcmread(f, stop_before_pixels=True)``          pydicom parse only
  (c) (b) + touch every value (``iterall``)            the naive audit of DESIGN.md section 5
  (d) ``scan_file`` over ``FileTask``s                 hipaa-audit's per-file scan, one process
  (e) ``scan_archive(paths, workers=1)``               the whole pipeline, directory walk included
  (g) ``hipaa-audit scan archive --format json``       the command, output written, in a child
                                                       process (its start-up, timed on one
                                                       file, subtracted)

and prints (d), (e) and (g) against (c) and (b), per core, with the bars 3x and 1x; (g) is what
a user of one worker sees. A guard checks that every file got the findings it must.

    .venv/bin/python bench/archive_small.py [--files N] [--repeats R] [--quick] [--profile]

Exits 1 when a bar or the guard fails.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fixtures"))

import smallct  # noqa: E402
from archive_header import (  # noqa: E402
    BAR_VS_NAIVE,
    BAR_VS_PARSE,
    bench_parser,
    in_folder,
    keywords,
    load_average,
    make_methods,
    profile_scan_file,
    ready_files,
    tally_findings,
    time_methods,
    verdict,
)

#: Attributes a clinical slice keeps, and those a leaky export kept.
CLINICAL_KEEPS = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber",
                  "InstitutionName", "ReferringPhysicianName", "StationName")
LEAKY_KEEPS = ("AccessionNumber", "InstitutionName")


def guard(paths: Sequence[Path]) -> tuple[Counter[str], int, list[str]]:
    """Scan every file once; return findings per check, total findings and what went wrong."""
    from hipaa_audit.model import Severity

    def wrong(p: Path, all_findings: list[Any]) -> str | None:
        findings = [f for f in all_findings if f.severity >= Severity.MEDIUM]
        index = int(p.stem[2:])
        kind = smallct.study_kind(index // smallct.FILES_PER_STUDY)
        kept = keywords(all_findings, "dicom-residual-identifier", "dicom-false-deidentification")
        if kind == "clinical":
            lost = [k for k in CLINICAL_KEEPS if k not in kept]
        elif kind == "leaky":
            lost = [k for k in LEAKY_KEEPS if k not in kept]
            false_deid = any(f.check_id == "dicom-false-deidentification" for f in findings)
            if false_deid != (index % 10 == 0):
                lost.append("dicom-false-deidentification" if index % 10 == 0
                            else "a false-deidentification finding it must not have")
        else:
            lost = [f"{f.check_id} ({f.severity.value})" for f in findings]
        return f"{p.name} ({kind}): {', '.join(lost)}" if lost else None

    return tally_findings(paths, wrong)


def command_cpu(target: Path, out: Path, data: Path) -> float:
    """CPU seconds (user + system) of one ``scan archive --format json`` of ``target``."""
    env = {**os.environ, "HIPAA_AUDIT_DATA_DIR": str(data)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "hipaa_audit", "scan", "archive", str(target),
                    "--format", "json", "--output", str(out), "--fail-on", "none"],
                   check=True, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def time_command(root: Path, sample: Path, repeats: int) -> tuple[float, float]:
    """Median CPU seconds of the command over the tree, and of its start-up (one file)."""
    with tempfile.TemporaryDirectory(prefix="hipaa-audit-bench-out-") as tmp:
        out, data = Path(tmp) / "findings.json", Path(tmp) / "data"
        startup = statistics.median(command_cpu(sample, out, data) for _ in range(3))
        runs = [command_cpu(root, out, data) for _ in range(repeats + 1)][1:]
    return statistics.median(runs), startup


def main(argv: Sequence[str] | None = None) -> int:
    args = bench_parser(__doc__, 10_000, "CT slices", 3, (500, 2)).parse_args(argv)
    return in_folder(args, run, "hipaa-audit-bench-small-")


def run(root: Path, args: argparse.Namespace) -> int:
    import pydicom

    n = args.files
    print(f"hipaa-audit small CT archive benchmark: {n} files, one worker, median of "
          f"{args.repeats} passes (+1 warm-up discarded), load {load_average():.2f}, "
          f"Python {sys.version.split()[0]}, pydicom {pydicom.__version__}")
    paths, seconds, mean_kib = ready_files(root, n, smallct.write_tree)
    kinds = Counter(smallct.study_kind(int(p.stem[2:]) // smallct.FILES_PER_STUDY)
                    for p in paths)
    print(f"{n} CT slices ready in {seconds:.1f} s under {root} (mean {mean_kib:.1f} KiB; "
          + ", ".join(f"{c} {k}" for k, c in sorted(kinds.items())) + ")")

    by_check, total, wrong = guard(paths)
    methods = make_methods(root, paths, workers_max=1)
    timings = time_methods(methods, args.repeats)
    wall = {k: n / statistics.median(v) for k, v in timings.wall.items()}
    cpu = {k: n / statistics.median(v) for k, v in timings.cpu.items()}
    command, startup = time_command(root, paths[0], args.repeats)
    cpu["g"] = n / max(command - startup, 1e-9)

    print()
    print(f"{'':3} {'method':44} {'files/s':>9} {'files/CPU-s':>12} {'spread':>7}")
    for m in methods:
        runs = timings.wall[m.key]
        spread = (max(runs) - min(runs)) / statistics.median(runs) * 100
        print(f"({m.key}) {m.label:44} {wall[m.key]:>9,.0f} {cpu[m.key]:>12,.0f} "
              f"{spread:>6.0f}%")
    print(f"(g) {'hipaa-audit scan archive --format json':44} {'-':>9} {cpu['g']:>12,.0f}"
          f"         (child CPU {command:.1f} s, less start-up {startup:.2f} s)")
    print("files/s is wall clock; files/CPU-s is this process's CPU time (the per-core figure); "
          "spread is (max-min)/median of the wall times")
    print()
    print(f"findings from (d): {total} on {n} files: "
          + ", ".join(f"{c} {k}" for k, c in sorted(by_check.items())))
    ok_work = not wrong
    print(f"every file got the findings it must (clinical: {len(CLINICAL_KEEPS)} identifiers; "
          f"leaky: {', '.join(LEAKY_KEEPS)}, a false declaration in one slice in ten; "
          f"de-identified: nothing at medium or above): {verdict(ok_work)}"
          + (f" ({len(wrong)} files wrong, e.g. {wrong[0]})" if wrong else ""))

    bars = [ok_work]
    print()
    print("ratios (per core: files/CPU-s; wall-clock ratio in brackets)")
    for top, label in (("d", "ours (d)"), ("e", "pipeline (e)"), ("g", "command (g)")):
        for bottom, name, bar in (("c", "naive (c)", BAR_VS_NAIVE),
                                  ("b", "parse-only (b)", BAR_VS_PARSE)):
            value = cpu[top] / cpu[bottom]
            ok = value >= bar
            bars.append(ok)
            walled = f"[{wall[top] / wall[bottom]:5.2f}x]" if top in wall else f"[{'-':>6}]"
            print(f"  {label + ' / ' + name:30} = {value:6.2f}x  {walled}   bar >= {bar:.1f}x   "
                  f"{verdict(ok)}")
    print(f"  per file: ours (d) {1e6 / cpu['d']:.0f} us, pipeline (e) {1e6 / cpu['e']:.0f} us, "
          f"command (g) {1e6 / cpu['g']:.0f} us, parse-only (b) {1e6 / cpu['b']:.0f} us, "
          f"naive (c) {1e6 / cpu['c']:.0f} us of CPU")

    if args.profile:
        profile_scan_file(paths)

    failed = not all(bars)
    print()
    print(f"overall: {'FAIL' if failed else 'PASS'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
