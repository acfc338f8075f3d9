"""Resource bombs within the caps, members judged one by one, files swapped after the walk.

Every bomb is built here, small on disk, and must end with a finding (never exit 1). Memory is
measured as the peak resident size of the scanning process; no test times anything.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import random
import struct
import subprocess
import sys
import tarfile
import threading
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest
from conftest import CliResult, by_asset
from helpers import load_generator

from hipaa_audit.archive.containers import MAX_TAR_HEADER, Limits
from hipaa_audit.archive.scanner import MAX_MEMBER_NAME, ArchiveRules, scan_file
from hipaa_audit.archive.walk import FileTask, walk_paths
from hipaa_audit.catalog import load_catalog
from hipaa_audit.redaction import Masker

pytestmark = pytest.mark.e2e

gen = load_generator()
MIB = 1024 * 1024


def scan_measured(*args: str, cwd: Path) -> tuple[CliResult, int]:
    """Run ``scan archive ARGS --format json``; return the result and its peak RSS in MiB.

    A small parent process runs the scan and reads its children's peak resident size, so the
    figure is the scan's own (worker processes included), whatever ran before in this test run.
    """
    probe = ("import json, resource, subprocess, sys\n"
             "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
             "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
             "print(json.dumps([p.returncode, p.stdout, p.stderr, peak]))\n")
    proc = subprocess.run(
        [sys.executable, "-c", probe, sys.executable, "-m", "hipaa_audit", "scan", "archive",
         *args, "--format", "json", "--fail-on", "none"],
        capture_output=True, text=True, cwd=cwd, timeout=300, check=True)
    code, out, err, peak_kib = json.loads(proc.stdout)
    assert "Traceback" not in err, err
    return CliResult(code, out, err), peak_kib // 1024


def scan(*args: str, cwd: Path) -> dict[str, Any]:
    result, _ = scan_measured(*args, cwd=cwd)
    assert result.code in (0, 3, 4), result.stderr
    doc: dict[str, Any] = result.json()
    return doc


def checks_of(doc: dict[str, Any], asset: str) -> set[str]:
    return {f["check_id"] for f in by_asset(doc).get(asset, [])}


def errors_of(doc: dict[str, Any], asset: str) -> list[str]:
    return [f["message"] for f in by_asset(doc).get(asset, []) if f["status"] == "error"]


def explicit(group: int, elem: int, vr: bytes, value: bytes, length: int | None = None) -> bytes:
    n = len(value) if length is None else length
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT"):
        return struct.pack("<HH2sHI", group, elem, vr, 0, n) + value
    return struct.pack("<HH2sH", group, elem, vr, n) + value


def tar_of(members: dict[str, bytes], fmt: int = tarfile.PAX_FORMAT, *, end: bool = True
           ) -> bytes:
    """A tar of ``members``; without ``end``, only their entries (to put more after them)."""
    buf = io.BytesIO()
    archive = tarfile.open(fileobj=buf, mode="w", format=fmt)  # noqa: SIM115
    for name, data in members.items():
        info = tarfile.TarInfo(name)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    if not end:
        return buf.getvalue()
    archive.close()
    return buf.getvalue()


def zip_of(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


# -- item 3: bombs ----------------------------------------------------------------------------


def deflated_dicom_bomb(pixel_bytes: int) -> bytes:
    """A deflated-transfer-syntax file whose pixel data inflates to ``pixel_bytes`` zeros."""
    meta = bytes(128) + b"DICM" + explicit(2, 0x10, b"UI", b"1.2.840.10008.1.2.1.99\0")
    body = (explicit(8, 0x16, b"UI", b"1.2.840.10008.5.1.4.1.1.7\0")
            + explicit(8, 0x18, b"UI", b"1.2.3.4\0")
            + explicit(0x10, 0x10, b"PN", b"Whitmore^Eleanor")
            + explicit(0x7FE0, 0x10, b"OB", b"", pixel_bytes))
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [deflate.compress(body)]
    zeros = bytes(MIB)
    parts.extend(deflate.compress(zeros) for _ in range(pixel_bytes // MIB))
    parts.append(deflate.flush())
    return meta + b"".join(parts)


def test_deflated_dicom_bomb_inflates_only_its_header(tmp_path: Path) -> None:
    """200 MiB of deflated pixel data (about 200 KB on disk) is never inflated."""
    bomb = deflated_dicom_bomb(200 * MIB)
    assert len(bomb) < 300_000
    (tmp_path / "bomb.dcm").write_bytes(bomb)
    result, peak = scan_measured("bomb.dcm", cwd=tmp_path)
    assert result.code == 0, result.stderr  # --fail-on none, and nothing left unchecked
    found = by_asset(result.json())["bomb.dcm"]
    assert any(f["check_id"] == "dicom-residual-identifier" for f in found)
    assert not any(f["status"] == "error" for f in found)
    assert peak < 160, f"peak resident size {peak} MiB: the pixel data was inflated"


def test_deflated_header_past_the_cap_is_a_fault_without_inflating(tmp_path: Path) -> None:
    """An element claiming more than the inflate cap is told at once, as a damaged header."""
    meta = bytes(128) + b"DICM" + explicit(2, 0x10, b"UI", b"1.2.840.10008.1.2.1.99\0")
    body = (explicit(8, 0x16, b"UI", b"1.2.840.10008.5.1.4.1.1.7\0")
            + explicit(0x10, 0x10, b"PN", b"Whitmore^Eleanor")
            + explicit(0x0009, 0x1010, b"OB", b"", 0xFFFFFFF0) + bytes(2 * MIB))
    (tmp_path / "huge.dcm").write_bytes(meta + zlib.compress(body, 9)[2:-4])
    doc = scan("huge.dcm", cwd=tmp_path)
    (message,) = errors_of(doc, "huge.dcm")
    assert "beyond the cap" in message
    assert "dicom-residual-identifier" in checks_of(doc, "huge.dcm"), "elements before it kept"


def test_large_deflated_file_is_not_copied_whole(tmp_path: Path) -> None:
    """A 512 MiB deflated file (a hole on disk) is fed to the inflater in slices."""
    meta = bytes(128) + b"DICM" + explicit(2, 0x10, b"UI", b"1.2.840.10008.1.2.1.99\0")
    stream = zlib.compress(explicit(0x10, 0x10, b"PN", b"Whitmore^Eleanor"), 9)[2:-4]
    with open(tmp_path / "sparse.dcm", "wb") as f:
        f.write(meta + stream)
        f.truncate(512 * MIB)  # zero bytes after the stream's end: nothing on disk
    result, peak = scan_measured("sparse.dcm", cwd=tmp_path)
    assert "dicom-residual-identifier" in checks_of(result.json(), "sparse.dcm")
    assert peak < 160, f"peak resident size {peak} MiB: the file was copied whole"


COMPRESSORS = {"gzip": (gzip.compress, "tar.gz"), "bzip2": (bz2.compress, "tar.bz2"),
               "xz": (lzma.compress, "tar.xz")}


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_compressed_stream_is_held_to_the_ratio_cap(tmp_path: Path, kind: str) -> None:
    """32 MiB of zeros in a compressed tar stops at the ratio cap, not at the 4 GiB budget."""
    compress, suffix = COMPRESSORS[kind]
    tar = tar_of({"IM0001.dcm": gen.fail_top_level(), "zeros.bin": bytes(32 * MIB),
                  "IM0002.dcm": gen.fail_top_level()})
    name = f"bundle.{suffix}"
    (tmp_path / name).write_bytes(compress(tar))
    doc = scan(name, cwd=tmp_path)
    assert any(f"more than {Limits().max_ratio}:1" in m for m in errors_of(doc, name)), (
        by_asset(doc).get(name))
    assert "dicom-residual-identifier" in checks_of(doc, f"{name}!/IM0001.dcm")


def test_single_compressed_member_is_held_to_the_ratio_cap(tmp_path: Path) -> None:
    """A gzip file whose DICOM header claims 100 MiB stops at the ratio cap, as a member."""
    data = gen.fail_top_level()
    start = data.index(b"\xe0\x7f\x10\x00")  # the pixel data: a long private OB goes before it
    big = data[:start] + explicit(0x0009, 0x1010, b"OB", bytes(100 * MIB)) + data[start:]
    (tmp_path / "IM0001.dcm.gz").write_bytes(gzip.compress(big))
    doc = scan("IM0001.dcm.gz", cwd=tmp_path)
    messages = errors_of(doc, "IM0001.dcm.gz!/IM0001.dcm")
    assert any(f"more than {Limits().max_ratio}:1" in m for m in messages), by_asset(doc)


def overlapping_zip(copies: int) -> bytes:
    """A zip whose central directory lists its first entry ``copies`` times (one data range).

    The extra entries share the first entry's local header and data: the overlapping-entry zip
    bomb (D. Fifield, 2019) in its simplest form. A last, honest entry follows.
    """
    data = zip_of({"IM0001.dcm": gen.fail_top_level(), "IM0002.dcm": gen.fail_top_level()},
                  zipfile.ZIP_STORED)
    eocd = data.rindex(b"PK\x05\x06")
    cd_size, cd_offset = struct.unpack_from("<II", data, eocd + 12)
    directory = data[cd_offset:cd_offset + cd_size]
    n, m, k = struct.unpack_from("<HHH", directory, 28)
    first = directory[:46 + n + m + k]
    rest = directory[len(first):]
    new_directory = first * copies + rest
    end = bytearray(data[eocd:])
    struct.pack_into("<HHII", end, 8, copies + 1, copies + 1, len(new_directory), cd_offset)
    return data[:cd_offset] + new_directory + bytes(end)


def test_overlapping_zip_entries_are_refused(tmp_path: Path) -> None:
    (tmp_path / "overlap.zip").write_bytes(overlapping_zip(1000))
    with zipfile.ZipFile(tmp_path / "overlap.zip") as archive:
        assert len(archive.infolist()) == 1001  # what the container claims
    doc = scan("overlap.zip", cwd=tmp_path)
    (message,) = errors_of(doc, "overlap.zip")
    assert "999 of its 1001 entries share their data" in message
    assert doc["run"]["assets"]["container_members"] == 2  # the first and the honest one
    assert "dicom-residual-identifier" in checks_of(doc, "overlap.zip!/IM0002.dcm")


def huge_directory_zip(count: int) -> bytes:
    """A zip whose central directory lists ``count`` stored, empty entries (about 60 bytes each).

    Built by hand for speed: each entry is a local header and a central directory record, as
    APPNOTE.TXT 4.3.7 and 4.3.12 lay them out; the count goes into a ZIP64 end record when it
    passes 65,535, as real archivers write it.
    """
    local, central = bytearray(), bytearray()
    for i in range(count):
        name = b"%07d.txt" % i
        offset = len(local)
        local += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0)
        local += name
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0, 0, 0, 0,
                               len(name), 0, 0, 0, 0, 0, offset)
        central += name
    z64 = len(local) + len(central)
    tail = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count, len(central),
                       len(local))
    tail += struct.pack("<IIQI", 0x07064B50, 0, z64, 1)
    tail += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return bytes(local + central + tail)


def test_zip_directory_past_the_caps_is_not_parsed(tmp_path: Path) -> None:
    """A zip listing 400,000 entries is refused from its end record, before ``zipfile`` builds
    an object for every entry (about 600 bytes each: 240 MB here)."""
    # the builder writes zips the standard library reads, ZIP64 end record included (checked on
    # a smaller count past 65,535: zipfile would take 4 s of CPU to list 400,000 entries)
    with zipfile.ZipFile(io.BytesIO(huge_directory_zip(66_000))) as archive:
        assert len(archive.infolist()) == 66_000
    data = huge_directory_zip(400_000)
    assert data.count(b"PK\x01\x02") == 400_000  # one central directory record per entry
    (tmp_path / "many.zip").write_bytes(data)
    result, peak = scan_measured("many.zip", cwd=tmp_path)
    assert result.code == 4, result.stderr
    (message,) = errors_of(result.json(), "many.zip")
    assert "lists 400000 entries" in message and "not opened" in message
    assert peak < 160, f"{peak} MiB: the directory was parsed"


def many_entries_tar(count: int) -> bytes:
    """A tar of ``count`` directory and FIFO entries after one DICOM file (about 2 MB gzipped)."""
    head = tar_of({"IM0001.dcm": gen.fail_top_level()}, tarfile.USTAR_FORMAT, end=False)
    info = tarfile.TarInfo("d0000000/")
    info.type = tarfile.DIRTYPE
    template = bytearray(info.tobuf(tarfile.USTAR_FORMAT))
    template[148:156] = b" " * 8  # the checksum is summed over blanks in its own field
    middle, end = bytes(template[9:148]), bytes(template[157:])
    rest = sum(middle) + sum(end) + 8 * ord(" ")  # every byte but the name's and the type's
    rng = random.Random(200_000)
    blocks = [head]
    for i in range(count):
        name = b"%08x/" % rng.getrandbits(32)  # names that do not repeat: ratio near 45:1
        kind = tarfile.FIFOTYPE if i % 2 else tarfile.DIRTYPE
        checksum = b"%06o\x00 " % (rest + sum(name) + kind[0])
        blocks.append(name + middle + checksum + kind + end)
    blocks.append(bytes(1024))
    return gzip.compress(b"".join(blocks), 6)


def test_tar_with_200000_entries_that_hold_no_file(tmp_path: Path) -> None:
    (tmp_path / "entries.tar.gz").write_bytes(many_entries_tar(200_000))
    doc = scan("entries.tar.gz", cwd=tmp_path)
    (message,) = errors_of(doc, "entries.tar.gz")
    assert f"more than {Limits().max_other_entries} entries that hold no file" in message
    assert "dicom-residual-identifier" in checks_of(doc, "entries.tar.gz!/IM0001.dcm")


def test_tar_extended_header_past_the_cap(tmp_path: Path) -> None:
    """A pax path of 2 MiB is refused before it is read; the member before it is kept."""
    for fmt, name in ((tarfile.PAX_FORMAT, "pax.tar"), (tarfile.GNU_FORMAT, "gnu.tar")):
        data = tar_of({"IM0001.dcm": gen.fail_top_level(),
                       "x" * (2 * MIB) + ".dcm": gen.fail_top_level()}, fmt)
        (tmp_path / name).write_bytes(data)
        doc = scan(name, cwd=tmp_path)
        (message,) = errors_of(doc, name)
        assert f"beyond the cap of {MAX_TAR_HEADER}" in message
        assert "dicom-residual-identifier" in checks_of(doc, f"{name}!/IM0001.dcm")
        assert max(len(a) for a in by_asset(doc)) < 100


def test_long_member_names_are_elided_and_stay_distinct(tmp_path: Path) -> None:
    stem = "study/" + "a" * 3000
    data = tar_of({stem + "1" + "b" * 3000 + ".dcm": gen.fail_top_level(),
                   stem + "2" + "b" * 3000 + ".dcm": gen.fail_top_level()})
    (tmp_path / "names.tar").write_bytes(data)
    doc = scan("names.tar", cwd=tmp_path)
    long_names = [a for a in by_asset(doc) if a.startswith("names.tar!/")]
    assert len(long_names) == 2, long_names
    for asset in long_names:
        assert len(asset) < MAX_MEMBER_NAME + 200
        assert asset.startswith("names.tar!/study/aaa") and asset.endswith("bbb.dcm")
        assert "6011 characters, name fingerprint" in asset
        assert {"archive-name-elided", "dicom-residual-identifier"} <= checks_of(doc, asset)
    assert len({f["id"] for f in doc["findings"]}) == len(doc["findings"])


def test_chained_long_name_headers_end_the_container_not_the_scan(tmp_path: Path) -> None:
    """Thousands of GNU long-name headers in a row recurse in the tar reader: a finding."""
    head = tar_of({"IM0001.dcm": gen.fail_top_level()}, tarfile.GNU_FORMAT, end=False)
    name = b"x" * 100 + b"\0"
    info = tarfile.TarInfo("././@LongLink")
    info.type = tarfile.GNUTYPE_LONGNAME
    info.size = len(name)
    link = info.tobuf(tarfile.GNU_FORMAT) + name.ljust(512, b"\0")
    tail = tar_of({"IM0002.dcm": gen.fail_top_level()}, tarfile.GNU_FORMAT)
    (tmp_path / "chain.tar").write_bytes(head + link * 5000 + tail)
    doc = scan("chain.tar", cwd=tmp_path)
    (message,) = errors_of(doc, "chain.tar")
    assert "chained" in message
    assert "dicom-residual-identifier" in checks_of(doc, "chain.tar!/IM0001.dcm")


# -- item 4: one bad member never hides the others --------------------------------------------


def with_bad_crc(data: bytes, name: bytes) -> bytes:
    """Flip the CRC-32 of member ``name`` in its local header and the central directory."""
    out = bytearray(data)
    for signature, crc_at, name_at in ((b"PK\x03\x04", 14, 30), (b"PK\x01\x02", 16, 46)):
        pos = out.index(signature)
        while out[pos + name_at:pos + name_at + len(name)] != name:
            pos = out.index(signature, pos + 4)
        (crc,) = struct.unpack_from("<I", out, pos + crc_at)
        struct.pack_into("<I", out, pos + crc_at, crc ^ 0xFFFFFFFF)
    return bytes(out)


def test_bad_crc_in_one_member_does_not_hide_the_others(tmp_path: Path) -> None:
    inner = zip_of({"IM0003.dcm": gen.fail_top_level()})
    data = zip_of({"IM0001.dcm": gen.fail_top_level(), "inner.zip": inner,
                   "IM0002.dcm": gen.fail_top_level()})
    (tmp_path / "crc.zip").write_bytes(with_bad_crc(data, b"inner.zip"))
    doc = scan("crc.zip", cwd=tmp_path)
    (message,) = errors_of(doc, "crc.zip!/inner.zip")
    assert "BadZipFile" in message
    assert not errors_of(doc, "crc.zip")
    for member in ("IM0001.dcm", "IM0002.dcm"):
        assert "dicom-residual-identifier" in checks_of(doc, f"crc.zip!/{member}")


def test_deeply_nested_json_member_does_not_hide_the_others(tmp_path: Path) -> None:
    deep = b'{"resourceType": "Bundle", "entry": ' + b"[" * 200_000
    data = zip_of({"a.json": deep, "IM0002.dcm": gen.fail_top_level()})
    (tmp_path / "deep.zip").write_bytes(data)
    doc = scan("deep.zip", cwd=tmp_path)
    assert not any(f["status"] == "error" for f in doc["findings"]), doc["findings"]
    assert "dicom-residual-identifier" in checks_of(doc, "deep.zip!/IM0002.dcm")


def test_zip_oddities_are_container_findings(tmp_path: Path) -> None:
    """A member with an empty name keeps a label of its own; a version past what the reader
    supports is a clear finding on the container, not an internal error."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr(zipfile.ZipInfo(""), gen.fail_top_level())
        archive.writestr("IM0002.dcm", gen.fail_top_level())
    (tmp_path / "empty.zip").write_bytes(buf.getvalue())
    data = bytearray(zip_of({"IM0001.dcm": gen.fail_top_level()}))
    directory = data.index(b"PK\x01\x02")
    data[directory + 6] = 99  # version needed to extract: 9.9
    (tmp_path / "version.zip").write_bytes(bytes(data))
    doc = scan("empty.zip", "version.zip", cwd=tmp_path)
    assert "dicom-residual-identifier" in checks_of(doc, "empty.zip!/(no name)")
    assert "dicom-residual-identifier" in checks_of(doc, "empty.zip!/IM0002.dcm")
    (message,) = errors_of(doc, "version.zip")
    assert "cannot be read (NotImplementedError)" in message


# -- item 5: a file swapped between the walk and the open -------------------------------------


@pytest.fixture(scope="module")
def rules() -> ArchiveRules:
    return ArchiveRules.build(load_catalog(), Masker(b"k" * 32))


def walked(path: Path) -> FileTask:
    (task,) = [t for t in walk_paths([str(path)]) if isinstance(t, FileTask)]
    return task


def test_file_swapped_for_a_link_is_not_followed(tmp_path: Path, rules: ArchiveRules) -> None:
    (tmp_path / "tree").mkdir()
    secret = tmp_path / "outside.dcm"
    secret.write_bytes(gen.fail_top_level())
    target = tmp_path / "tree" / "IM0001.dcm"
    target.write_bytes(b"not dicom")
    task = walked(target)
    target.unlink()
    target.symlink_to(secret)  # the swap, after the walk listed a regular file
    (result,) = scan_file(task, rules)
    (finding,) = result.findings
    assert finding.status.value == "error" and "symbolic link" in finding.message


def test_folder_swapped_for_a_link_is_not_read_through(tmp_path: Path,
                                                       rules: ArchiveRules) -> None:
    """O_NOFOLLOW guards the last name only: a folder on the path swapped for a link is caught
    by where the opened file really lies."""
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "IM0001.dcm").write_bytes(b"not dicom")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "IM0001.dcm").write_bytes(gen.fail_top_level())
    (task,) = [t for t in walk_paths([str(tmp_path / "tree")]) if isinstance(t, FileTask)]
    (tmp_path / "tree" / "sub").rename(tmp_path / "tree" / "old")
    (tmp_path / "tree" / "sub").symlink_to(tmp_path / "outside")
    (result,) = scan_file(task, rules)
    (finding,) = result.findings
    assert finding.status.value == "error" and "outside the scanned tree" in finding.message


def fifo_writer(fifo: Path) -> threading.Thread:
    """A writer that opens ``fifo`` (releasing a reader that blocks on it), then closes it."""
    def write() -> None:
        os.close(os.open(fifo, os.O_WRONLY))

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def release(fifo: Path, writer: threading.Thread) -> None:
    """Let the writer's open return if no reader came, and wait for it."""
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    writer.join()
    os.close(fd)


def test_file_swapped_for_a_fifo_is_not_read(tmp_path: Path, rules: ArchiveRules) -> None:
    target = tmp_path / "IM0001.dcm"
    target.write_bytes(gen.fail_top_level())
    task = walked(target)
    target.unlink()
    os.mkfifo(target)  # a plain open would wait for a writer: the scan would hang
    writer = fifo_writer(target)  # so that a blocking open returns, and this test can fail
    try:
        (result,) = scan_file(task, rules)
    finally:
        release(target, writer)
    (finding,) = result.findings
    assert finding.status.value == "error" and "a FIFO, not a regular file" in finding.message


def test_link_to_a_fifo_named_as_argument_is_not_read(tmp_path: Path,
                                                      rules: ArchiveRules) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    (tmp_path / "link.dcm").symlink_to(fifo)
    task = walked(tmp_path / "link.dcm")
    assert task.follow
    writer = fifo_writer(fifo)
    try:
        (result,) = scan_file(task, rules)
    finally:
        release(fifo, writer)
    (finding,) = result.findings
    assert "a FIFO, not a regular file" in finding.message


def test_a_followed_link_still_reads_its_file(tmp_path: Path, rules: ArchiveRules) -> None:
    (tmp_path / "real.dcm").write_bytes(gen.fail_top_level())
    (tmp_path / "link.dcm").symlink_to(tmp_path / "real.dcm")
    (result,) = scan_file(walked(tmp_path / "link.dcm"), rules)
    assert any(f.check_id == "dicom-residual-identifier" for f in result.findings)
