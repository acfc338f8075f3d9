"""Archive header scan: hipaa-audit against pydicom baselines, in one process and one run.

Generates N synthetic CT files (the set-up of ``../shared/reference/dicom-deid.md`` section 6),
then times, over a warm page cache (median of several repeats, the first pass discarded):

  (a) ``open()`` + ``read(8192)``                      the I/O floor
  (b) ``dcmread(f, stop_before_pixels=True)``          pydicom parse only
  (c) (b) + touch every value (``iterall``)            the naive audit of DESIGN.md section 5
  (d) ``scan_file`` over ``FileTask``s                 hipaa-audit's per-file scan, one process
  (e) ``scan_archive(paths, workers=1)``               the whole pipeline, directory walk included
  (f) ``scan_archive(paths, workers=2)``               the same with two worker processes

and prints the bars of DESIGN.md section 5 as ratios, with PASS/FAIL. Peak RSS over N and 4N
files (a 4x repeated tree, each in a fresh child process) shows whether memory stays flat.

    .venv/bin/python bench/archive_header.py [--files N] [--repeats R] [--quick] [--check]

Exit status is 0 unless ``--check`` is given and a bar fails.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BAR_VS_NAIVE = 3.0
BAR_VS_PARSE = 1.0
#: "Near-linear scaling": at least this share of ideal speed-up with two workers.
SCALING_EFFICIENCY = 0.8
#: "Memory flat in archive size": peak RSS may grow from N to 4N files by at most this much
#: per extra file, beyond an allowance for allocator noise.
MAX_BYTES_PER_FILE = 256
RSS_NOISE_ALLOWANCE = 1 << 20
#: The reference's limit: pydicom parse costs about 40x a raw 8 KB read.
REFERENCE_PARSE_VS_RAW = 40

BENCH_KEY = b"hipaa-audit-bench-key-not-secret"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
UID_ROOT = "1.2.826.0.1.3680043.8.498.7"

#: Attributes each generated file plants (residual identifiers the scan must report).
PLANTED = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "AccessionNumber",
    "InstitutionName",
    "ReferringPhysicianName",
)
#: Checks every generated file must fail.
EXPECTED_CHECKS = (
    "dicom-residual-identifier",
    "dicom-identifier-in-text",
    "dicom-private-elements",
)

LAST_NAMES = (
    "Smith", "Okafor", "Lindqvist", "Moreau", "Tanaka", "Novak", "Garcia", "Haddad", "Kowalski",
    "Nguyen", "Fischer", "Rossi", "Silva", "Jensen", "Murphy", "Ivanova", "Dubois", "Sato",
    "Mensah", "Keller",
)
FIRST_NAMES = (
    "John", "Amara", "Erik", "Claire", "Hiro", "Petra", "Lucia", "Omar", "Grace", "Tomasz",
    "Linh", "Jonas", "Giulia", "Rafael", "Freja", "Sean", "Olga", "Louis", "Yuki", "Kwame",
)
INSTITUTIONS = ("St Elsewhere General Hospital", "Riverside Imaging Centre", "North Clinic")


# --------------------------------------------------------------------------- generation


def _uid(*parts: int) -> str:
    return ".".join([UID_ROOT, *map(str, parts)])


def generate(folder: Path, count: int) -> list[Path]:
    """Write ``count`` deterministic synthetic CT files under ``folder`` (100 per sub-folder)."""
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.uid import UID

    rows = cols = 64
    base = (np.arange(rows * cols, dtype=np.uint32).reshape(rows, cols) * 7919 % 4096)
    paths: list[Path] = []
    for i in range(count):
        # patient identifiers differ in every file (so that no per-value cache can flatter
        # the scan); study-level values repeat as they do in an archive (100 files a study)
        last = LAST_NAMES[i % len(LAST_NAMES)]
        first = FIRST_NAMES[(i // len(LAST_NAMES)) % len(FIRST_NAMES)]
        middle = chr(ord("A") + (i // (len(LAST_NAMES) * len(FIRST_NAMES))) % 26)
        birth = datetime.date(1935, 1, 1) + datetime.timedelta(days=7 * i)
        study, series = i // 100, i // 20

        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = UID(CT_IMAGE_STORAGE)
        meta.MediaStorageSOPInstanceUID = UID(_uid(3, i))
        meta.TransferSyntaxUID = UID(EXPLICIT_VR_LE)
        meta.ImplementationClassUID = UID(_uid(0))
        meta.ImplementationVersionName = "HIPAA_AUDIT_BNCH"

        ds = Dataset()
        ds.file_meta = meta
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SOPClassUID = CT_IMAGE_STORAGE
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "20240315"
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = f"{9 + i % 8:02d}{i % 60:02d}12"
        ds.AccessionNumber = f"ACC{400000 + i}"
        ds.Modality = "CT"
        ds.Manufacturer = "Bench Medical Systems"
        ds.InstitutionName = INSTITUTIONS[study % len(INSTITUTIONS)]
        ds.ReferringPhysicianName = f"{LAST_NAMES[(study + 3) % len(LAST_NAMES)]}^Robert^^Dr"
        ds.StationName = f"CTSCAN{study % 4:02d}"
        ds.StudyDescription = "CT CHEST WITH CONTRAST"
        ds.SeriesDescription = "AXIAL 1.25MM"
        ds.ManufacturerModelName = "Benchmark 64"
        ref = Dataset()
        ref.ReferencedSOPClassUID = CT_IMAGE_STORAGE
        ref.ReferencedSOPInstanceUID = _uid(3, max(i - 1, 0))
        ds.ReferencedImageSequence = DicomSequence([ref])
        ds.PatientName = f"{last}^{first}^{middle}"
        ds.PatientID = f"MRN{700000 + i}"
        ds.PatientBirthDate = birth.strftime("%Y%m%d")
        ds.PatientSex = "MF"[i % 2]
        ds.PatientAge = f"{30 + i % 40:03d}Y"
        ds.SliceThickness = "1.25"
        ds.KVP = "120"
        ds.StudyInstanceUID = _uid(1, study)
        ds.SeriesInstanceUID = _uid(2, series)
        ds.StudyID = str(study)
        ds.SeriesNumber = series % 20 + 1
        ds.InstanceNumber = i % 20 + 1
        ds.ImagePositionPatient = [-160.0, -160.0, -1.25 * (i % 20)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.FrameOfReferenceUID = _uid(4, study)
        ds.ImageComments = f"Follow-up of {first} {last} after a fall; compare with prior CT"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = rows, cols
        ds.PixelSpacing = [0.625, 0.625]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        ds.PixelRepresentation = 0
        ds.WindowCenter, ds.WindowWidth = "40", "400"
        ds.RescaleIntercept, ds.RescaleSlope = "-1024", "1"
        block = ds.private_block(0x0009, "BENCH MEDICAL 1.0", create=True)
        block.add_new(0x01, "LO", f"{last} {first}")
        block.add_new(0x02, "DA", ds.PatientBirthDate)
        block.add_new(0x03, "LO", f"WARD {i % 9}")
        ds.PixelData = ((base + i) % 4096).astype(np.uint16).tobytes()

        sub = folder / f"{i // 100:04d}"
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"CT{i:06d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- methods


@dataclass
class Method:
    key: str
    label: str
    run: Callable[[], int]  # one pass over every file; returns a count that proves work
    in_process: bool = True  # False when the work happens in other processes (no CPU figure)


@dataclass
class Timings:
    wall: dict[str, list[float]]
    cpu: dict[str, list[float]]


def make_methods(root: Path, paths: Sequence[Path], workers_max: int) -> list[Method]:
    from pydicom import dcmread

    from hipaa_audit.archive.run import scan_archive
    from hipaa_audit.archive.scanner import ArchiveRules, scan_file
    from hipaa_audit.archive.walk import FileTask
    from hipaa_audit.catalog import load_catalog
    from hipaa_audit.redaction import Masker

    str_paths = [str(p) for p in paths]
    tasks = [FileTask(os.fsencode(p), p) for p in str_paths]
    masker = Masker(BENCH_KEY)
    rules = ArchiveRules.build(load_catalog(), masker)

    def raw_read() -> int:
        total = 0
        for p in str_paths:
            with open(p, "rb") as f:
                total += len(f.read(8192))
        return total

    def parse_only() -> int:
        total = 0
        for p in str_paths:
            total += len(dcmread(p, stop_before_pixels=True))
        return total

    def naive_audit() -> int:
        total = 0
        for p in str_paths:
            ds = dcmread(p, stop_before_pixels=True)
            for el in ds.iterall():
                el.value  # noqa: B018 - touching the value is the point
                total += 1
        return total

    def ours_per_file() -> int:
        return sum(len(r.findings) for task in tasks for r in scan_file(task, rules))

    def pipeline(workers: int) -> Callable[[], int]:
        def run() -> int:
            return sum(
                len(r.findings) for r in scan_archive([str(root)], masker=masker, workers=workers)
            )

        return run

    methods = [
        Method("a", "open() + read(8192)", raw_read),
        Method("b", "dcmread(stop_before_pixels) parse only", parse_only),
        Method("c", "naive audit: (b) + iterall, touch values", naive_audit),
        Method("d", "hipaa-audit scan_file, 1 process", ours_per_file),
        Method("e", "hipaa-audit scan_archive, workers=1", pipeline(1)),
    ]
    if workers_max >= 2:
        methods.append(
            Method("f", "hipaa-audit scan_archive, workers=2", pipeline(2), in_process=False)
        )
    return methods


def time_methods(methods: list[Method], repeats: int) -> Timings:
    """Run every method ``repeats + 1`` times, interleaved; drop each first (warm-up) pass.

    Interleaving spreads any other load on the machine over all methods alike.
    """
    t = Timings({m.key: [] for m in methods}, {m.key: [] for m in methods})
    for rep in range(repeats + 1):
        for m in methods:
            w0, c0 = time.perf_counter(), time.process_time()
            m.run()
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            if rep:
                t.wall[m.key].append(wall)
                t.cpu[m.key].append(cpu)
    return t


def pool_startup(workers: int, sample: Path) -> float:
    """Median seconds ``scan_archive`` takes over a single file: worker start-up and rules."""
    import shutil

    from hipaa_audit.archive.run import scan_archive
    from hipaa_audit.redaction import Masker

    masker = Masker(BENCH_KEY)
    with tempfile.TemporaryDirectory() as one:
        shutil.copy(sample, one)
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            list(scan_archive([one], masker=masker, workers=workers))
            runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


# --------------------------------------------------------------------------- the work done


def tally_findings(paths: Sequence[Path], judge: Callable[[Path, list[Any]], str | None]
                   ) -> tuple[Counter[str], int, list[str]]:
    """Scan every file once (``scan_file``, as (d) does); count the findings and judge them.

    Returns the findings per check, the total and what ``judge(path, findings)`` said was
    wrong with a file (None when nothing was).
    """
    from hipaa_audit.archive.scanner import ArchiveRules, scan_file
    from hipaa_audit.archive.walk import FileTask
    from hipaa_audit.catalog import load_catalog
    from hipaa_audit.redaction import Masker

    rules = ArchiveRules.build(load_catalog(), Masker(BENCH_KEY))
    by_check: Counter[str] = Counter()
    total = 0
    wrong: list[str] = []
    for p in paths:
        (result,) = scan_file(FileTask(os.fsencode(p), str(p)), rules)
        total += len(result.findings)
        by_check.update(f.check_id for f in result.findings)
        complaint = judge(p, result.findings)
        if complaint is not None:
            wrong.append(complaint)
    return by_check, total, wrong


def keywords(findings: list[Any], *check_ids: str) -> set[str]:
    """The attribute keywords the locations of the findings of ``check_ids`` name."""
    return {str(loc.get("keyword")) for f in findings if f.check_id in check_ids
            for loc in f.locations}


def findings_summary(paths: Sequence[Path]) -> tuple[Counter[str], int, list[str]]:
    """Scan every file once; return findings per check, total findings, and what is missing."""
    def missing(p: Path, findings: list[Any]) -> str | None:
        checks = {f.check_id for f in findings}
        residual = keywords(findings, "dicom-residual-identifier")
        lost = [c for c in EXPECTED_CHECKS if c not in checks]
        lost += [k for k in PLANTED if k not in residual]
        return f"{p.name}: {', '.join(lost)}" if lost else None

    return tally_findings(paths, missing)


# --------------------------------------------------------------------------- memory


def memory_child(root: str, copies: int, workers: int) -> None:
    """Child mode: run the pipeline over ``copies`` x the tree; print RSS figures as JSON."""
    import threading

    from hipaa_audit.archive.run import scan_archive
    from hipaa_audit.redaction import Masker

    masker = Masker(BENCH_KEY)
    # warm up imports, the catalog and pydicom's dictionary before the baseline
    list(scan_archive([root], masker=masker, workers=1))
    before = _maxrss()
    worker_peaks: dict[int, int] = {}
    stop = threading.Event()

    def watch() -> None:  # workers are grandchildren (forkserver): read their VmHWM in /proc
        while not stop.wait(0.05):
            for pid in _descendants(os.getpid()):
                worker_peaks[pid] = max(worker_peaks.get(pid, 0), _vm_hwm(pid))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    files = findings = 0
    for result in scan_archive([root] * copies, masker=masker, workers=workers):
        files += 1
        findings += len(result.findings)
    stop.set()
    watcher.join()
    print(json.dumps({
        "files": files,
        "findings": findings,
        "rss_before": before,
        "peak_self": _maxrss(),
        "peak_worker": max(worker_peaks.values(), default=0),
    }))


def _maxrss() -> int:
    """Peak RSS of this process in bytes (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _vm_hwm(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def run_memory_child(root: Path, copies: int, workers: int) -> dict[str, int]:
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", str(root), "--copies", str(copies),
         "--workers", str(workers)],
        check=True, capture_output=True, text=True,
    )
    result: dict[str, int] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------- profile


def profile_scan_file(paths: Sequence[Path], passes: int = 3, top: int = 22) -> None:
    """Sample ``scan_file`` with SIGPROF (1 ms of CPU): inclusive and self shares by function.

    A sampler, unlike cProfile, adds no cost per call, so small functions are not inflated.
    """
    import signal

    from hipaa_audit.archive.scanner import ArchiveRules, scan_file
    from hipaa_audit.archive.walk import FileTask
    from hipaa_audit.catalog import load_catalog
    from hipaa_audit.redaction import Masker

    rules = ArchiveRules.build(load_catalog(), Masker(BENCH_KEY))
    tasks = [FileTask(os.fsencode(p), str(p)) for p in paths]
    for task in tasks:
        scan_file(task, rules)
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    lines: Counter[str] = Counter()
    root_name = _code_name(scan_file.__code__)

    def sample(signum: int, frame: object) -> None:
        seen: set[str] = set()
        f = frame
        first = True
        while f is not None:
            name = _code_name(f.f_code)  # type: ignore[attr-defined]
            if first:
                own[name] += 1
                lines[f"{name}:{f.f_lineno}"] += 1  # type: ignore[attr-defined]
                first = False
            if name not in seen:
                inclusive[name] += 1
                seen.add(name)
            if name == root_name:
                break
            f = f.f_back  # type: ignore[attr-defined]

    old = signal.signal(signal.SIGPROF, sample)
    signal.setitimer(signal.ITIMER_PROF, 0.001, 0.001)
    try:
        for _ in range(passes):
            for task in tasks:
                scan_file(task, rules)
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, old)
    total = inclusive[root_name] or 1
    print()
    print(f"profile of (d) scan_file: {total} SIGPROF samples of CPU time over {passes} passes")
    print("  inclusive (share of scan_file)")
    for name, n in inclusive.most_common(top):
        print(f"    {n / total:6.1%}  {name}")
    print("  self")
    for name, n in own.most_common(top // 2):
        print(f"    {n / total:6.1%}  {name}")
    print("  hottest lines")
    for name, n in lines.most_common(top // 2):
        print(f"    {n / total:6.1%}  {name}")


def _code_name(code: object) -> str:
    filename: str = code.co_filename  # type: ignore[attr-defined]
    filename = re.sub(r"^.*/(site-packages|lib/python3\.\d+)/", "", filename)
    filename = filename.removeprefix(f"{Path.cwd()}/")
    return f"{filename}:{code.co_qualname}"  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- report


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def bench_parser(doc: str | None, files: int, what: str, repeats: int,
                 quick: tuple[int, int]) -> argparse.ArgumentParser:
    """The options of the archive benchmarks: --files, --repeats, --quick, --profile, --keep.

    ``--quick`` stores ``quick`` (files, repeats), the most :func:`in_folder` lets it use.
    """
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--files", type=int, default=files, help=f"{what} (default {files:,})")
    parser.add_argument("--repeats", type=int, default=repeats,
                        help="timed passes after the warm-up")
    parser.add_argument("--quick", action="store_const", const=quick,
                        help=f"{quick[0]} files, {quick[1]} repeats")
    parser.add_argument("--profile", action="store_true",
                        help="also sample where (d) spends its time")
    parser.add_argument("--keep", type=Path, help="generate into this folder (reused if complete)")
    return parser


def in_folder(args: argparse.Namespace, run: Callable[[Path, argparse.Namespace], int],
              prefix: str) -> int:
    """``run(folder, args)`` (--quick applied) in the --keep folder or a temporary one."""
    if args.quick:
        files, repeats = args.quick
        args.files, args.repeats = min(args.files, files), min(args.repeats, repeats)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        return run(args.keep, args)
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        return run(Path(tmp), args)


def load_average() -> float:
    """The 1-minute load average (NaN where the system has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def ready_files(root: Path, n: int, make: Callable[[Path, int], list[Path]]
                ) -> tuple[list[Path], float, float]:
    """The ``n`` files under ``root``, made by ``make`` unless they are all there already.

    Returns them, the seconds it took and their mean size in KiB.
    """
    t0 = time.perf_counter()
    existing = sorted(root.rglob("*.dcm"))
    paths = existing if len(existing) == n else make(root, n)
    mean_kib = statistics.mean(p.stat().st_size for p in paths) / 1024
    return paths, time.perf_counter() - t0, mean_kib


def main(argv: Sequence[str] | None = None) -> int:
    parser = bench_parser(__doc__, 2000, "synthetic files", 5, (300, 3))
    parser.add_argument("--check", action="store_true", help="exit 1 when a bar fails")
    parser.add_argument("--memory-child", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--copies", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.memory_child:
        memory_child(args.memory_child, args.copies, args.workers)
        return 0
    return in_folder(args, run, "hipaa-audit-bench-")


def run(root: Path, args: argparse.Namespace) -> int:
    import pydicom

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    n = args.files
    print(f"hipaa-audit archive header benchmark: {n} files, median of {args.repeats} passes "
          f"(+1 warm-up discarded), {cores} core(s), load {load_average():.2f}, "
          f"Python {sys.version.split()[0]}, pydicom {pydicom.__version__}")
    paths, seconds, mean_kib = ready_files(root, n, generate)
    print(f"{n} CT files ready in {seconds:.1f} s under {root} "
          f"(mean {mean_kib:.1f} KiB, Explicit VR LE, 64x64 uint16)")

    by_check, total_findings, missing = findings_summary(paths)
    methods = make_methods(root, paths, cores)
    timings = time_methods(methods, args.repeats)
    wall = {k: n / statistics.median(v) for k, v in timings.wall.items()}
    cpu = {m.key: n / statistics.median(timings.cpu[m.key]) for m in methods if m.in_process}

    print()
    print(f"{'':3} {'method':44} {'files/s':>9} {'files/CPU-s':>12} {'spread':>7}")
    for m in methods:
        runs = timings.wall[m.key]
        spread = (max(runs) - min(runs)) / statistics.median(runs) * 100
        per_cpu = f"{cpu[m.key]:>12,.0f}" if m.key in cpu else f"{'-':>12}"
        print(f"({m.key}) {m.label:44} {wall[m.key]:>9,.0f} {per_cpu} {spread:>6.0f}%")
    print("files/s is wall clock; files/CPU-s is this process's CPU time (the per-core figure, "
          "unmoved by other load); spread is (max-min)/median of the wall times")

    print()
    print(f"findings from (d): {total_findings} on {n} files "
          f"({total_findings / n:.1f} per file): "
          + ", ".join(f"{c} {k}" for k, c in sorted(by_check.items())))
    work_ok = not missing
    print(f"planted identifiers reported in every file ({', '.join(PLANTED)}; "
          f"{', '.join(EXPECTED_CHECKS)}): {verdict(work_ok)}"
          + (f" ({len(missing)} files short, e.g. {missing[0]})" if missing else ""))

    bars: list[bool] = [work_ok]
    print()
    print("ratios (per core: files/CPU-s; wall-clock ratio in brackets)")

    def ratio_line(label: str, top: str, bottom: str, bar: float) -> None:
        value = cpu[top] / cpu[bottom]
        ok = value >= bar
        bars.append(ok)
        print(f"  {label:28} = {value:6.2f}x  [{wall[top] / wall[bottom]:5.2f}x]   "
              f"bar >= {bar:.1f}x   {verdict(ok)}")

    ratio_line("ours (d) / naive (c)", "d", "c", BAR_VS_NAIVE)
    ratio_line("ours (d) / parse-only (b)", "d", "b", BAR_VS_PARSE)
    print(f"  {'pipeline (e) / ours (d)':28} = {cpu['e'] / cpu['d']:6.2f}x  "
          f"[{wall['e'] / wall['d']:5.2f}x]   (walk and result plumbing)")
    if "f" in wall:
        ideal = min(2, cores)
        need = SCALING_EFFICIENCY * ideal
        scaling = wall["f"] / wall["e"]
        ok = scaling >= need
        bars.append(ok)
        startup = pool_startup(2, paths[0])
        steady = n / max(statistics.median(timings.wall["f"]) - startup, 1e-9) / wall["e"]
        print(f"  {'scaling (f) / (e), wall':28} = {scaling:6.2f}x            bar >= {need:.1f}x "
              f"({SCALING_EFFICIENCY:.0%} of {ideal} workers)   {verdict(ok)}")
        parent = statistics.median(timings.cpu["f"]) / n * 1e6
        print(f"    pool start-up (one file, workers=2): {startup * 1000:.0f} ms per scan; "
              f"without it (f) / (e) = {steady:.2f}x")
        print(f"    parent process CPU in (f): {parent:.0f} us/file (walk, IPC, unpickling "
              f"results), against {1e6 / cpu['e']:.0f} us/file for all of (e)")
    else:
        print("  scaling (f) / (e): n/a (one core)")
    print(f"  {'raw read (a) / ours (d)':28} = {cpu['a'] / cpu['d']:6.1f}x  "
          f"[{wall['a'] / wall['d']:5.1f}x]   how far from the raw-read limit (1x); "
          f"pydicom parse (a)/(b) = {cpu['a'] / cpu['b']:.0f}x "
          f"(reference: about {REFERENCE_PARSE_VS_RAW}x)")

    print()
    print("memory: scan_archive in a fresh child process per run, findings counted and dropped")
    for workers in (1, 2) if cores >= 2 else (1,):
        small = run_memory_child(root, 1, workers)
        large = run_memory_child(root, 4, workers)
        growth = large["peak_self"] - small["peak_self"]
        extra = large["files"] - small["files"]
        per_file = growth / extra if extra else 0.0
        for label, m in (("N", small), ("4N", large)):
            worker = (f", largest worker peak {mib(m['peak_worker'])}" if workers > 1 else "")
            print(f"  workers={workers} {label:>2} = {m['files']:>6} files: peak RSS "
                  f"{mib(m['peak_self'])} (peak after warm-up {mib(m['rss_before'])}){worker}")
        ok = growth <= RSS_NOISE_ALLOWANCE + MAX_BYTES_PER_FILE * extra
        bars.append(ok)
        print(f"  workers={workers} peak RSS growth N -> 4N: {growth / 1024:+,.0f} KiB = "
              f"{per_file:+.1f} B/file   bar <= 1 MiB + {MAX_BYTES_PER_FILE} B/file   "
              f"{verdict(ok)}")
    print(f"  this benchmark process: peak RSS {mib(_maxrss())}")

    if args.profile:
        profile_scan_file(paths)

    failed = not all(bars)
    print()
    print(f"overall: {'FAIL' if failed else 'PASS'}"
          + ("" if args.check else " (exit 0; pass --check to fail on a bar)"))
    return 1 if failed and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
