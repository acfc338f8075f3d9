"""Memory against tree size: peak RSS of a whole ``scan archive`` run on N and 10N files.

The tree is made of hard links to a few synthetic DICOM files (one with identifiers, one clean,
one text export), 1,000 to a folder, so building 200,000 files takes seconds and little disk.
Each size is scanned by the real CLI in a child process (``--format jsonl`` to a file, one
process), and the child's peak RSS (``getrusage``) is printed beside the baseline run on N files:
memory should stay flat as the tree grows. Never fails; prints the figures.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fixtures"))

import generate  # noqa: E402

#: Files per set of source copies (file systems cap hard links per inode, ext4 at 65,000).
LINKS_PER_SOURCE = 30_000


def build(root: Path, files: int) -> None:
    names = ["fail.dcm", "pass.dcm", "export.csv"]
    tree = root / "tree"
    for i in range(files):
        sources = root / "sources" / str(i // LINKS_PER_SOURCE)
        if i % LINKS_PER_SOURCE == 0:
            sources.mkdir(parents=True)
            (sources / "fail.dcm").write_bytes(generate.fail_top_level())
            (sources / "pass.dcm").write_bytes(generate.pass_dummies())
            (sources / "export.csv").write_text(generate.CSV)
        folder = tree / f"d{i // 1000:04d}"
        if i % 1000 == 0:
            folder.mkdir(parents=True)
        name = names[i % 3]
        os.link(sources / name, folder / f"{i:07d}-{name}")


def scan(tree: Path, out: Path) -> tuple[float, int]:
    """Scan ``tree`` in a child process; return (seconds, that child's peak RSS in KiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "hipaa_audit", "scan", "archive", str(tree),
                             "--format", "jsonl", "--output", str(out), "--fail-on", "none"],
                            env={**os.environ, "HIPAA_AUDIT_DATA_DIR": str(out.parent)})
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if proc.returncode not in (0, 3, 4):
        raise SystemExit(f"scan failed with exit code {proc.returncode}")
    return seconds, usage.ru_maxrss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200_000, help="the large tree")
    parser.add_argument("--base", type=int, default=20_000, help="the baseline tree")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hipaa-audit-memory-") as tmp:
        figures = []
        for count in (args.base, args.files):
            work = Path(tmp) / str(count)
            build(work, count)
            seconds, peak = scan(work / "tree", work / "out.jsonl")
            figures.append((count, seconds, peak))
            print(f"  {count:>8,} files: {seconds:6.1f} s, {count / seconds:7,.0f} files/s, "
                  f"peak RSS {peak / 1024:6.1f} MiB")
    (n, _, small), (big_n, _, big) = figures
    growth = (big - small) / 1024
    print(f"memory against tree size: {n:,} -> {big_n:,} files, peak RSS {small / 1024:.1f} -> "
          f"{big / 1024:.1f} MiB ({growth:+.1f} MiB, "
          f"{(big - small) * 1024 / (big_n - n):+.1f} bytes/file)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
