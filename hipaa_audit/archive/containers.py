"""Read zip, tar and compressed containers in place: members stream out, nothing touches disk.

Containers are recognised by content (magic bytes), not by name. Every member comes out as a
:class:`Member` (its name and a readable stream) or, when it cannot or must not be read, as a
:class:`MemberProblem` with the reason: an encrypted zip member, a member past the size or
compression-ratio caps (a zip bomb), a container past its member-count or expanded-bytes cap.
Member names are labels only: ``../`` or absolute names are never used as paths.

Every cap holds whatever the container claims: bytes are counted as they are decompressed
(gzip, bzip2 and xz streams against a ratio as well as a size), zip entries that share their
data with another entry (an overlapping-entry zip bomb) are refused, every tar entry counts
towards the member cap whatever its type, and tar extended headers (long names, pax records) are
refused past :data:`MAX_TAR_HEADER` bytes before they are read.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import struct
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, NamedTuple, cast

from hipaa_audit.errors import HipaaAuditError

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
#: WinZip AES: the zip compression method of AES-encrypted members.
ZIP_AES = 99


#: What members are read from: a file, a member of a zip or tar, a decompressing reader.
Stream = IO[bytes] | io.BufferedIOBase


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps that keep a hostile container's cost bounded (each hit is reported)."""

    max_depth: int = 3
    max_member_bytes: int = 256 * 1024 * 1024
    max_ratio: int = 200
    max_members: int = 100_000
    max_total_bytes: int = 4 * 1024 * 1024 * 1024
    #: Tar entries that hold no file (directories, links, FIFOs, devices): each costs a header
    #: to parse and holds nothing to check.
    max_other_entries: int = 20_000


#: Output below which a decompressing stream is not held to the ratio cap (a small file may
#: compress very well without being a bomb).
RATIO_FLOOR = 1024 * 1024
#: The largest tar extended header (a GNU long name or link, a pax record block) read.
MAX_TAR_HEADER = 1024 * 1024
#: Largest zip central directory read (bytes as its end record declares them): ``zipfile`` keeps
#: an object of about 600 bytes for every entry it lists.
MAX_ZIP_DIRECTORY = 64 * 1024 * 1024
#: Bytes at the end of a zip searched for its end record (the record and its longest comment).
ZIP_EOCD_SEARCH = 22 + 65535
#: Size of a zip local file header without its name and extra field (APPNOTE 4.3.7).
ZIP_LOCAL_HEADER = 30


class Budget:
    """Expanded bytes a whole file may yield, shared by every level of its nested containers."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def spend(self, n: int) -> None:
        """Count ``n`` more expanded bytes; raise ``BombError`` past the limit."""
        self.used += n
        if self.used > self.limit:
            raise BombError(f"expands past the cap of {self.limit} bytes")


class Member(NamedTuple):
    """A member to scan: its name inside the container and a stream of its bytes."""

    name: str
    stream: IO[bytes]


class MemberProblem(NamedTuple):
    """A member (or the rest of a container) that was not read, and why."""

    name: str
    reason: str
    encrypted: str | None = None  # "zipcrypto" or "aes" for encrypted zip members


def sniff_container(head: bytes) -> str | None:
    """Return ``zip``, ``tar``, ``gzip``, ``bzip2`` or ``xz`` for a container's first bytes."""
    if head[:4] in ZIP_MAGIC:
        return "zip"
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:3] == b"BZh" and head[3:4].isdigit():
        return "bzip2"
    if head[:6] == b"\xfd7zXZ\x00":
        return "xz"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    return None


#: The label of a member whose name is empty (it must not be mistaken for its container).
EMPTY_NAME = "(no name)"


def member_label(name: str) -> str:
    r"""Return a member name as text for an asset: bytes that are not UTF-8 as ``\xNN``."""
    raw = name.encode("utf-8", "surrogateescape")
    return raw.decode("utf-8", "backslashreplace") or EMPTY_NAME


class BoundedReader(io.RawIOBase):
    """A read-only stream that refuses to go past a byte budget (``BombError`` instead).

    ``shared``, when given, is the budget of the whole file the stream belongs to.
    """

    def __init__(self, stream: Stream, budget: int, shared: Budget | None = None) -> None:
        self.stream = stream
        self.budget = budget
        self.shared = shared
        self.used = 0

    def readable(self) -> bool:
        """Always true: a read-only stream."""
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        """Read into ``buffer``; raise ``BombError`` once the budget is spent."""
        want = len(buffer)
        data = self.stream.read(want)
        self.used += len(data)
        if self.used > self.budget:
            raise BombError(f"expands past the cap of {self.budget} bytes")
        if self.shared is not None:
            self.shared.spend(len(data))
        buffer[: len(data)] = data
        return len(data)


def bounded(stream: Stream, budget: int, shared: Budget | None = None) -> io.BufferedReader:
    """Wrap ``stream`` so that reading more than ``budget`` bytes raises ``BombError``."""
    return io.BufferedReader(BoundedReader(stream, budget, shared))


class CountingReader(io.RawIOBase):
    """A read-only stream that counts the bytes read through it (compressed input)."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.count = 0

    def readable(self) -> bool:
        """Always true: a read-only stream."""
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        """Read into ``buffer`` and count what was read."""
        data = self.stream.read(len(buffer))
        self.count += len(data)
        buffer[: len(data)] = data
        return len(data)


class RatioReader(io.RawIOBase):
    """A decompressed stream held to a ratio of its compressed input (``BombError`` beyond it).

    The first ``prefix`` bytes (already read to sniff the content) come out first.
    """

    def __init__(self, stream: Stream, source: CountingReader, max_ratio: int,
                 prefix: bytes = b"") -> None:
        self.stream = stream
        self.source = source
        self.max_ratio = max_ratio
        self.prefix = prefix
        self.produced = len(prefix)

    def readable(self) -> bool:
        """Always true: a read-only stream."""
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        """Read into ``buffer``; raise ``BombError`` once the output outgrows the ratio."""
        if self.prefix:
            n = min(len(buffer), len(self.prefix))
            buffer[:n] = self.prefix[:n]
            self.prefix = self.prefix[n:]
            return n
        data = self.stream.read(len(buffer))
        self.produced += len(data)
        if (self.produced > RATIO_FLOOR
                and self.produced > self.max_ratio * max(self.source.count, 1)):
            raise BombError(f"expands more than {self.max_ratio}:1, beyond the ratio cap")
        buffer[: len(data)] = data
        return len(data)


class BombError(HipaaAuditError):
    """A member or container expanded past a cap; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TarHeaderTooLong(HipaaAuditError):
    """A tar extended header (long name or link, pax records) larger than the cap."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


class _CappedTarInfo(tarfile.TarInfo):
    """Tar headers whose extended-header blocks are refused past :data:`MAX_TAR_HEADER`."""

    # the two readers of extended headers in the standard library (not in its typing stubs)
    def _proc_gnulong(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        if self.size > MAX_TAR_HEADER:
            raise TarHeaderTooLong(self.size)
        parent: Any = super()
        return cast(tarfile.TarInfo, parent._proc_gnulong(archive))

    def _proc_pax(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        if self.size > MAX_TAR_HEADER:
            raise TarHeaderTooLong(self.size)
        parent: Any = super()
        return cast(tarfile.TarInfo, parent._proc_pax(archive))


def members(kind: str, stream: IO[bytes], name: str, limits: Limits,
            shared: Budget | None = None) -> Iterator[Member | MemberProblem]:
    """Yield the members of a container of ``kind`` read from ``stream`` (seekable for zip).

    ``name`` is the container's own file name, used to name the single member of a gzip,
    bzip2 or xz file. ``shared`` is the expanded-bytes budget of the whole file (nested
    containers included); without it the container has a budget of its own. Raises
    ``OSError``, ``zipfile.BadZipFile``, ``tarfile.TarError`` or ``EOFError`` when the
    container itself cannot be opened, and ``BombError`` when it expands past a cap.
    """
    shared = shared if shared is not None else Budget(limits.max_total_bytes)
    if kind == "zip":
        yield from _zip_members(stream, limits, shared)
    elif kind == "tar":
        yield from _tar_members(stream, limits, shared)
    else:
        source = CountingReader(stream)
        with _decompressing(kind, io.BufferedReader(source)) as inner:
            head = inner.read(512)
            plain = io.BufferedReader(RatioReader(inner, source, limits.max_ratio, head))
            if len(head) >= 262 and head[257:262] == b"ustar":
                yield from _tar_members(plain, limits, shared)
                return
            yield Member(_strip_suffix(name), bounded(plain, limits.max_member_bytes, shared))


def _decompressing(kind: str, stream: IO[bytes]) -> gzip.GzipFile | bz2.BZ2File | lzma.LZMAFile:
    if kind == "gzip":
        return gzip.GzipFile(fileobj=stream, mode="rb")
    if kind == "bzip2":
        return bz2.BZ2File(stream, "rb")
    return lzma.LZMAFile(stream, "rb")


def _strip_suffix(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    for suffix in (".gz", ".gzip", ".bz2", ".xz", ".tgz", ".z"):
        if base.lower().endswith(suffix):
            return base[: -len(suffix)] or base
    return base + ".content"


def overlapping_entries(infos: list[zipfile.ZipInfo]) -> set[int]:
    """Return the indexes of zip entries whose local header lies inside another entry's data.

    Entries sharing one data range are how an overlapping-entry zip bomb (D. Fifield, "A better
    zip bomb", 2019) expands a small file many times over: each entry alone looks harmless.
    Every entry occupies at least its 30-byte local header and its compressed bytes.
    """
    order = sorted(range(len(infos)), key=lambda i: infos[i].header_offset)
    shared: set[int] = set()
    reach = -1  # the furthest byte any earlier entry occupies
    for i in order:
        info = infos[i]
        if info.header_offset < reach:
            shared.add(i)
        reach = max(reach, info.header_offset + ZIP_LOCAL_HEADER + info.compress_size)
    return shared


def zip_directory(stream: IO[bytes]) -> tuple[int, int] | None:
    """Return (entries, bytes) of a zip's central directory as its end record declares them.

    Read from the end-of-central-directory record (and its ZIP64 counterpart) without parsing
    the directory, so that a directory too large to hold can be refused before ``zipfile``
    builds an object for every entry. ``None`` when no end record is found (``zipfile`` then
    says what is wrong). The stream is left at its start.
    """
    size = stream.seek(0, io.SEEK_END)
    tail_start = max(0, size - ZIP_EOCD_SEARCH)
    stream.seek(tail_start)
    tail = stream.read()
    stream.seek(0)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return None
    entries, cd_size = struct.unpack_from("<xxxxxxxxxxHI", tail, at)
    locator = at - 20
    if locator >= 0 and tail[locator:locator + 4] == b"PK\x06\x07":
        (z64_offset,) = struct.unpack_from("<Q", tail, locator + 8)
        if 0 <= z64_offset <= size - 56:
            stream.seek(z64_offset)
            record = stream.read(56)
            stream.seek(0)
            if record[:4] == b"PK\x06\x06":
                entries, cd_size = struct.unpack_from("<QQ", record, 32)
    return entries, cd_size


def _zip_members(stream: IO[bytes], limits: Limits, shared: Budget
                 ) -> Iterator[Member | MemberProblem]:
    declared = zip_directory(stream)
    if declared is not None and (declared[0] > limits.max_members
                                 or declared[1] > MAX_ZIP_DIRECTORY):
        entries, cd_size = declared
        yield MemberProblem("", f"its directory lists {entries} entries in {cd_size} bytes, more "
                                f"than the caps of {limits.max_members} entries and "
                                f"{MAX_ZIP_DIRECTORY} bytes; the container was not opened")
        return
    with zipfile.ZipFile(stream) as archive:
        # (ZipInfo.is_dir fails on an empty name)
        infos = [i for i in archive.infolist() if not i.filename.endswith("/")]
        if len(infos) > limits.max_members:
            yield MemberProblem("", f"the container lists {len(infos)} members, more than the "
                                    f"cap of {limits.max_members}; the rest were not checked")
            infos = infos[: limits.max_members]
        overlaps = overlapping_entries(infos)
        if overlaps:
            yield MemberProblem("", f"{len(overlaps)} of its {len(infos)} entries share their "
                                    "data with another entry (an overlapping-entry zip bomb); "
                                    "those entries were not checked")
        total = 0
        for index, info in enumerate(infos):
            if index in overlaps:
                continue
            label = member_label(info.filename)
            if info.flag_bits & 0x1:
                aes = info.compress_type == ZIP_AES
                yield MemberProblem(
                    label,
                    "AES-encrypted member; its content is protected and was not read" if aes
                    else "encrypted with legacy ZipCrypto; its content was not read",
                    "aes" if aes else "zipcrypto",
                )
                continue
            if info.file_size > limits.max_member_bytes:
                yield MemberProblem(label, f"declares {info.file_size} bytes, more than the cap "
                                           f"of {limits.max_member_bytes}")
                continue
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > RATIO_FLOOR and ratio > limits.max_ratio:
                yield MemberProblem(label, f"expands {ratio:.0f}:1, beyond the cap of "
                                           f"{limits.max_ratio}:1 (a zip bomb?)")
                continue
            total += info.file_size
            if total > limits.max_total_bytes:
                yield MemberProblem(label, f"the container expands past {limits.max_total_bytes}"
                                           " bytes; this member and the rest were not checked")
                return
            try:
                inner = archive.open(info)
            except (NotImplementedError, zipfile.BadZipFile, RuntimeError) as exc:
                yield MemberProblem(label, f"cannot be opened ({type(exc).__name__})")
                continue
            with inner:
                yield Member(label, bounded(inner, limits.max_member_bytes, shared))


def _tar_members(stream: Stream, limits: Limits, shared: Budget
                 ) -> Iterator[Member | MemberProblem]:
    # stream mode: members in order, no seeking; the whole tar stream shares one budget. Every
    # entry counts towards the member cap (directories, links and FIFOs cost a header each), and
    # the entries already seen are not kept (stream mode would keep them all).
    reader = bounded(stream, limits.max_total_bytes, shared)
    with tarfile.open(fileobj=reader, mode="r|", tarinfo=_CappedTarInfo) as archive:
        count = others = 0
        while True:
            try:
                info = archive.next()
            except TarHeaderTooLong as exc:
                yield MemberProblem("", f"an extended tar header (a long name or pax records) of "
                                        f"{exc.size} bytes, beyond the cap of {MAX_TAR_HEADER}; "
                                        "the entries from there on were not checked")
                return
            except RecursionError:
                yield MemberProblem("", "extended tar headers chained without end; the entries "
                                        "from there on were not checked")
                return
            if info is None:
                return
            archive.members.clear()  # type: ignore[attr-defined]  # not in the typing stubs
            count += 1
            label = member_label(info.name)
            if count > limits.max_members:
                yield MemberProblem(label, f"more than {limits.max_members} entries; this one "
                                           "and the rest were not checked")
                return
            if not info.isreg():
                others += 1
                if others > limits.max_other_entries:
                    yield MemberProblem("", f"more than {limits.max_other_entries} entries that "
                                            "hold no file (directories, links, FIFOs, devices); "
                                            "the entries from there on were not checked")
                    return
                continue
            if info.size > limits.max_member_bytes:
                yield MemberProblem(label, f"declares {info.size} bytes, more than the cap of "
                                           f"{limits.max_member_bytes}")
                continue
            inner = archive.extractfile(info)
            if inner is None:
                continue
            yield Member(label, inner)
