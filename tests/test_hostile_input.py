"""Hostile and broken input (DESIGN.md section 6): a clear finding or message, nothing lost.

The header walker is fed every truncation of real files, mutated and random bytes, absurd
lengths and deep nesting: it must return (a fault, or ``None`` for "not DICOM"), never raise.
The CLI is fed link loops, links out of the tree, a name that is not UTF-8, an unreadable
file and a path that does not exist.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from helpers import load_generator, scan_here

from hipaa_audit.archive.dicom.parser import (
    LONG_VRS,
    MAX_DEPTH,
    NeedMoreData,
    ParsedHeader,
    parse_header,
)
from hipaa_audit.redaction import Masker

pytestmark = pytest.mark.e2e

gen = load_generator()

#: Small valid files in each encoding the walker reads, with sequences inside.
SAMPLES = {
    "explicit-le-nested": gen.fail_nested_sequences,
    "sr-content": gen.fail_sr_content,
    "private-overlay": gen.fail_every_identifier,
    "implicit-le": gen.encoded("implicit", gen.ImplicitVRLittleEndian),
    "explicit-be": gen.encoded("be", gen.ExplicitVRBigEndian),
    "deflated": gen.encoded("deflated", gen.DeflatedExplicitVRLittleEndian),
    "encapsulated": gen.encoded("jpeg", gen.JPEGBaseline8Bit),
    "bare-implicit": gen.encoded("bare", gen.ImplicitVRLittleEndian, file_meta=False),
}


def parse_safely(data: bytes, *, complete: bool) -> ParsedHeader | None:
    """Parse; only ``NeedMoreData`` may escape, and only when the data is not complete."""
    try:
        return parse_header(data, complete=complete)
    except NeedMoreData as more:
        assert not complete, "a complete buffer must never ask for more"
        assert more.needed > len(data)
        return None


# -- the header walker ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_truncation(name: str) -> None:
    """Every cut returns None or a header, and a cut the walker accepts is no damage.

    A cut at an element boundary leaves a shorter but valid data set; fewer than eight zero
    bytes after one are read as trailing padding (so in big endian data, whose tags start with
    a zero byte, a cut one byte further passes too). Cuts inside the pixel data leave the whole
    header, which is all the walk reads. Any other cut must be reported as a fault, with the
    elements before it kept.
    """
    data = SAMPLES[name]()
    whole = parse_header(data, complete=True)
    assert whole is not None and whole.fault is None and whole.reached_pixel_data is (
        name != "sr-content")
    deflated = whole.transfer_syntax == gen.DeflatedExplicitVRLittleEndian
    pixel_tag = (b"\x7f\xe0\x00\x10" if whole.transfer_syntax == gen.ExplicitVRBigEndian
                 else b"\xe0\x7f\x10\x00")
    meta = [e for e in whole.elements if e.tag >> 16 == 2]
    for cut in range(len(data)):
        head = data[:cut]
        part = parse_safely(head, complete=True)
        parse_safely(head, complete=False)
        if part is None:
            assert cut < 140, (name, cut)  # only a cut inside the preamble or DICM marker
            continue
        kept = len(part.elements)
        assert [(e.tag, e.path, e.value) for e in part.elements] == [
            (e.tag, e.path, e.value) for e in whole.elements[:kept]], (name, cut)
        if part.fault is not None:
            assert 0 <= part.fault.offset <= len(data) and part.fault.reason
            continue
        if part.reached_pixel_data:
            continue
        if kept < len(meta) or not deflated:
            boundary = (whole.elements[kept].offset if kept < len(whole.elements)
                        else data.rindex(pixel_tag))
        elif kept == len(meta):  # the end of the file meta, where the deflate stream starts
            last = meta[-1]
            boundary = last.offset + (12 if last.vr in LONG_VRS else 8) + last.length
        else:  # deflated offsets are in the inflated body: only the writer's pad byte may go
            boundary = len(data) - 1
        assert boundary <= cut < boundary + 8 and not any(data[boundary:cut]), (name, cut)


@pytest.mark.parametrize("size", [8, 100, 131, 132, 133, 4096])
def test_zero_bytes_are_not_dicom(size: int) -> None:
    assert parse_header(bytes(size), complete=True) is None


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_mutations(name: str) -> None:
    data = SAMPLES[name]()
    rng = random.Random(f"mutate-{name}")
    for _ in range(250):
        buf = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(len(buf))
            if rng.random() < 0.3 and pos + 4 <= len(buf):  # an absurd or undefined length
                buf[pos:pos + 4] = rng.choice([b"\xff\xff\xff\xff", b"\xf0\xff\xff\xff",
                                               b"\xfe\xff\x00\xe0"])
            else:
                buf[pos] = rng.randrange(256)
        parse_safely(bytes(buf), complete=True)


def test_random_garbage() -> None:
    rng = random.Random(4471902)
    for _ in range(1500):
        junk = rng.randbytes(rng.randint(0, 700))
        kind = rng.random()
        if kind < 0.3:
            junk = bytes(128) + b"DICM" + junk
        elif kind < 0.5:
            junk = b"\x08\x00\x05\x00CS" + junk  # looks like a bare explicit data set
        elif kind < 0.6:
            junk = b"\x08\x00\x16\x00" + junk  # looks like a bare implicit data set
        parse_safely(junk, complete=True)


def explicit(group: int, elem: int, vr: bytes, value: bytes, length: int | None = None) -> bytes:
    n = len(value) if length is None else length
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT"):
        return struct.pack("<HH2sHI", group, elem, vr, 0, n) + value
    return struct.pack("<HH2sH", group, elem, vr, n) + value


def item(length: int = 0xFFFFFFFF) -> bytes:
    return struct.pack("<HHI", 0xFFFE, 0xE000, length)


FILE_START = (bytes(128) + b"DICM" + explicit(2, 0x10, b"UI", b"1.2.840.10008.1.2.1\0")
              + explicit(8, 0x16, b"UI", b"1.2.3\0"))
PN = explicit(0x10, 0x10, b"PN", b"Whitmore^E ")


@pytest.mark.parametrize(("name", "data", "reason"), [
    ("ob-length", FILE_START + explicit(9, 0x1010, b"OB", b"xx", 0xFFFFFFF0), "claims"),
    ("ut-length", FILE_START + explicit(0x20, 0x4000, b"UT", b"abcd", 0xFFFFFFF0), "claims"),
    ("sequence-length", FILE_START + explicit(0x40, 0x275, b"SQ", item(len(PN)) + PN,
                                              0xFFFFFFF0), "more than the file holds"),
    ("item-length", FILE_START + explicit(0x40, 0x275, b"SQ", item(0xFFFFFFF0) + PN,
                                          0xFFFFFFFF), "more than the file holds"),
    ("implicit-length", struct.pack("<HHI", 8, 0x16, 6) + b"1.2.3\0"
     + struct.pack("<HHI", 0x10, 0x10, 0xFFFFFFF0) + b"Whitmore", "claims"),
    ("stray-delimiter", FILE_START + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0), "delimiter"),
    ("bad-vr", FILE_START + b"\x10\x00\x10\x00ZZ\x04\x00abcd", "no valid VR"),
])
def test_absurd_lengths_are_faults(name: str, data: bytes, reason: str) -> None:
    header = parse_header(data, complete=True)
    assert header is not None and header.fault is not None, name
    assert reason in header.fault.reason
    assert any(el.tag == 0x00080016 for el in header.elements), "elements before it are kept"


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
def test_deep_nesting_is_a_fault_not_a_recursion_error(implicit: bool) -> None:
    if implicit:
        start = struct.pack("<HHI", 8, 0x16, 6) + b"1.2.3\0"
        level = struct.pack("<HHI", 8, 0x1115, 0xFFFFFFFF) + item()
    else:
        start = FILE_START
        level = explicit(8, 0x1115, b"SQ", b"", 0xFFFFFFFF) + item()
    header = parse_header(start + level * 5000, complete=True)
    assert header is not None and header.fault is not None
    assert "nested deeper" in header.fault.reason
    assert max(len(el.path) for el in header.elements) == MAX_DEPTH


def test_forty_levels_from_the_generator() -> None:
    header = parse_header(gen.corrupt_deep_nesting(40)(), complete=True)
    assert header is not None and header.fault is not None
    fine = parse_header(gen.corrupt_deep_nesting(MAX_DEPTH)(), complete=True)
    assert fine is not None and fine.fault is None


def test_header_beyond_the_first_read(tmp_path: Path) -> None:
    """A header longer than the first 64 KiB is walked over a memory map, truncated or not."""
    from hipaa_audit.archive.scanner import HEAD_BYTES, read_header

    big = (FILE_START + explicit(9, 0x10, b"LO", b"ACME") + explicit(9, 0x1010, b"OB",
           bytes(3 * HEAD_BYTES)) + PN + explicit(0x7FE0, 0x10, b"OW", bytes(8)))
    for cut in (len(big), len(big) - 8, len(big) - 30, HEAD_BYTES + 7, HEAD_BYTES, 2 * HEAD_BYTES):
        path = tmp_path / f"big{cut}.dcm"
        path.write_bytes(big[:cut])
        header = read_header(os.fsencode(path))
        assert header is not None
        has_pn = any(el.tag == 0x00100010 for el in header.elements)
        if cut >= len(big) - 8:
            assert header.fault is None and has_pn
        else:
            assert header.fault is not None and "claims" in header.fault.reason


# -- the CLI ----------------------------------------------------------------------------------


def scan_json(*args: str, cwd: Path | None = None) -> tuple[int, dict[str, Any], str]:
    result = run_cli("scan", "archive", *args, "--format", "json", "--fail-on", "none", cwd=cwd)
    assert "Traceback" not in result.stderr
    return result.code, result.json(), result.stderr


def scan_json_in_process(*paths: str, cwd: Path, **options: Any) -> tuple[int, dict[str, Any]]:
    """:func:`scan_json` run in this process from ``cwd`` (``helpers.scan_here``: the calls the
    command makes), for tests of the walk rather than of the command's process."""
    code, texts = scan_here("archive", None, ["json"], cwd=cwd, paths=list(paths), **options)
    doc: dict[str, Any] = json.loads(texts["json"])
    return code, doc


def scan_json_unprivileged(arg: str, cwd: Path) -> tuple[int, dict[str, Any], str]:
    """Scan without the privilege to read past file modes.

    As root, the scan runs with every capability dropped (``setpriv``): still uid 0, so it can
    reach the checkout and its virtual environment wherever they are (a 0700 folder too), but
    the modes of the files it scans now hold for it, as for any other user.
    """
    if os.geteuid() != 0:
        return scan_json(arg, cwd=cwd)
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv to drop privileges")
    proc = subprocess.run(
        [setpriv, "--inh-caps=-all", "--bounding-set=-all", sys.executable, "-m",
         "hipaa_audit", "scan", "archive", arg, "--format", "json", "--fail-on", "none"],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def errors_by_asset(doc: dict[str, Any]) -> dict[str, str]:
    return {f["asset"]: f["message"] for f in doc["findings"] if f["status"] == "error"}


def test_links(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    outside = tmp_path / "outside.dcm"
    outside.write_bytes(gen.fail_top_level())
    (tree / "sub" / "fail_top_level.dcm").write_bytes(gen.fail_top_level())
    (tree / "loop").symlink_to("loop")
    (tree / "ping").symlink_to("pong")
    (tree / "pong").symlink_to("ping")
    (tree / "sub" / "up").symlink_to("..")  # a directory link back into the tree
    (tree / "sub" / "parent").symlink_to("../..")  # a directory link out of the tree
    (tree / "out.dcm").symlink_to(outside)
    (tree / "dangling.dcm").symlink_to(tmp_path / "nowhere.dcm")
    (tree / "inside.dcm").symlink_to(tree / "sub" / "fail_top_level.dcm")
    code, doc = scan_json_in_process("tree", cwd=tmp_path)
    assert code == 4
    errors = errors_by_asset(doc)
    for name in ("loop", "ping", "pong", "sub/parent", "out.dcm", "dangling.dcm"):
        assert f"tree/{name}" in errors, (name, errors)
    assert "loop" in errors["tree/loop"].lower()
    assert "outside" in errors["tree/out.dcm"]
    assert "tree/sub/up" not in errors and "tree/inside.dcm" not in errors
    assert doc["run"]["assets"].get("links_inside_tree_skipped") == 2
    assets = {f["asset"] for f in doc["findings"]}
    assert "tree/sub/fail_top_level.dcm" in assets  # the real file is still scanned, once
    assert doc["run"]["assets"]["files"] == 1
    assert not any("outside.dcm" in a or a.startswith("tree/sub/up/") for a in assets)


def test_link_given_as_argument_is_followed(tmp_path: Path) -> None:
    target = tmp_path / "real.dcm"
    target.write_bytes(gen.fail_top_level())
    (tmp_path / "link.dcm").symlink_to(target)
    code, doc = scan_json_in_process("link.dcm", cwd=tmp_path)
    assert code == 0
    assert {f["asset"] for f in doc["findings"]} == {"link.dcm"}


def test_name_not_utf8(tmp_path: Path) -> None:
    folder = tmp_path / "names"
    folder.mkdir()
    raw = os.path.join(os.fsencode(folder), b"fail_\xff\xfe.dcm")
    with open(raw, "wb") as f:
        f.write(gen.fail_top_level())
    code, doc, _ = scan_json("names", cwd=tmp_path)
    assert code == 0
    assets = {f["asset"] for f in doc["findings"]}
    assert assets == {"names/fail_\\xff\\xfe.dcm"}
    table = run_cli("scan", "archive", "names", "--fail-on", "none", cwd=tmp_path)
    assert table.code == 0 and "\\xff\\xfe" in table.stdout


def test_unreadable_file(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o755)
    locked = folder / "fail_locked.dcm"
    locked.write_bytes(gen.fail_top_level())
    (folder / "fail_open.dcm").write_bytes(gen.fail_top_level())
    (folder / "fail_open.dcm").chmod(0o644)
    locked.chmod(0)
    code, doc, _ = scan_json_unprivileged("locked", cwd=tmp_path)
    assert code == 4
    assert "locked/fail_locked.dcm" in errors_by_asset(doc)
    assert any(f["asset"] == "locked/fail_open.dcm" for f in doc["findings"])


def test_unreadable_directory(tmp_path: Path) -> None:
    closed = tmp_path / "tree" / "closed"
    closed.mkdir(parents=True)
    (tmp_path / "tree").chmod(0o755)
    (closed / "fail_top_level.dcm").write_bytes(gen.fail_top_level())
    (tmp_path / "tree" / "fail_open.dcm").write_bytes(gen.fail_top_level())
    (tmp_path / "tree" / "fail_open.dcm").chmod(0o644)
    closed.chmod(0)
    code, doc, _ = scan_json_unprivileged("tree", cwd=tmp_path)
    assert code == 4
    assert "tree/closed" in errors_by_asset(doc)


def test_missing_path_is_bad_usage(tmp_path: Path) -> None:
    (tmp_path / "fail_top_level.dcm").write_bytes(gen.fail_top_level())
    for args in (["no-such-dir"], ["fail_top_level.dcm", "no-such-dir"]):
        result = run_cli("scan", "archive", *args, "--format", "json", cwd=tmp_path)
        assert result.code == 2, result.stderr
        assert "no-such-dir" in result.stderr
        assert "no such file or directory" in result.stderr.lower()
        assert "Traceback" not in result.stderr
        assert result.stdout == "", "nothing is scanned"


def write_undecodable_text(path: Path) -> None:
    """A DICOM file whose name and text are in no character set it declares."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 6"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "1.2.3.4"
    ds.add_new(0x00100010, "PN", b"Wh\xfftmore^El\xfeanor")
    ds.add_new(0x00204000, "LT", b"\x1b$)C unknown escape \xff")
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)


def test_corrupt_files_do_not_stop_the_scan(tmp_path: Path) -> None:
    """Each corrupt file gives its own error; the good files after them are still checked.

    Undecodable text among them: pydicom's decoding warnings describe scanned data and never
    reach stderr, with one worker or several.
    """
    folder = tmp_path / "mixed"
    folder.mkdir()
    corrupt = [c for c in gen.CASES if c.relpath.startswith("corrupt/")]
    for case in corrupt:
        (folder / Path(case.relpath).name).write_bytes(case.build())
    (folder / "zz_fail_top_level.dcm").write_bytes(gen.fail_top_level())
    write_undecodable_text(folder / "zz_odd.dcm")
    for workers in ("1", "2"):
        code, doc, stderr = scan_json("mixed", "--workers", workers, cwd=tmp_path)
        assert code == 4
        assert stderr == ""
        errors = errors_by_asset(doc)
        assert len(errors) == len(corrupt)
        assert all(f"mixed/{Path(c.relpath).name}" in errors for c in corrupt)
        for name in ("zz_fail_top_level.dcm", "zz_odd.dcm"):
            assert any(f["asset"] == f"mixed/{name}" and f["severity"] == "high"
                       and f["status"] == "fail" for f in doc["findings"]), name


def test_an_internal_error_on_one_file_does_not_stop_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug that raises on one asset becomes that asset's unverifiable finding."""
    from hipaa_audit.archive import run as archive_run

    (tmp_path / "a_boom.dcm").write_bytes(gen.fail_top_level())
    (tmp_path / "b_fine.dcm").write_bytes(gen.fail_top_level())
    real = archive_run.scan_file

    def flaky(task: Any, rules: Any) -> Any:
        if task.asset.endswith("a_boom.dcm"):
            raise ValueError("Whitmore^Eleanor")  # a message that must not reach the output
        return real(task, rules)

    monkeypatch.setattr(archive_run, "scan_file", flaky)
    results = list(archive_run.scan_archive([str(tmp_path)], masker=Masker(b"k" * 32)))
    by_asset = {r.asset.rsplit("/", 1)[-1]: r for r in results}
    (boom,) = by_asset["a_boom.dcm"].findings
    assert boom.status.value == "error" and "ValueError" in boom.message
    assert "Whitmore" not in boom.message
    assert any(f.check_id == "dicom-residual-identifier" for f in by_asset["b_fine.dcm"].findings)


def test_fifo_is_skipped_and_counted(tmp_path: Path) -> None:
    """A FIFO is never opened (that would block): it is counted, and the scan goes on."""
    tree = tmp_path / "tree"
    tree.mkdir()
    os.mkfifo(tree / "pipe.dcm")
    (tree / "fail_top_level.dcm").write_bytes(gen.fail_top_level())
    code, doc, _ = scan_json("tree", cwd=tmp_path)
    assert code == 0
    assert doc["run"]["assets"]["special_files_skipped"] == 1
    assert {f["asset"] for f in doc["findings"]} == {"tree/fail_top_level.dcm"}


def test_follow_symlinks_stays_inside_the_roots(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "data").mkdir(parents=True)
    (tree / "data" / "IM1.dcm").write_bytes(gen.fail_top_level())
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "IM2.dcm").write_bytes(gen.fail_top_level())
    (tree / "alias").symlink_to(tree / "data")  # a folder link inside the tree
    (tree / "again").symlink_to(tree)  # a loop through a folder link
    (tree / "leave").symlink_to(outside)
    _, doc = scan_json_in_process("tree", cwd=tmp_path, follow_symlinks=True)
    assets = {f["asset"] for f in doc["findings"]}
    # the data folder is walked once, whether reached directly or through a link
    assert "tree/data/IM1.dcm" in assets  # the real folder keeps its own name
    assert sum(a.endswith("IM1.dcm") for a in assets) == 1
    assert not any("IM2.dcm" in a for a in assets)
    errors = errors_by_asset(doc)
    assert "outside" in errors["tree/leave"]
    _, doc = scan_json_in_process("tree", cwd=tmp_path)  # by default links are not followed
    assert doc["run"]["assets"]["links_inside_tree_skipped"] == 2


def test_link_to_a_folder_given_as_argument_is_walked(tmp_path: Path) -> None:
    (tmp_path / "share").mkdir()
    (tmp_path / "share" / "IM1.dcm").write_bytes(gen.fail_top_level())
    (tmp_path / "mount").symlink_to(tmp_path / "share")
    _, doc = scan_json_in_process("mount", cwd=tmp_path)
    assert {f["asset"] for f in doc["findings"]} == {"mount/IM1.dcm"}
