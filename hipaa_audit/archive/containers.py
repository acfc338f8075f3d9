"""Read zip, tar and compressed containers in place: members stream out, nothing touches disk.

Containers are recognised by content (magic bytes), not by name. Every member comes out as a
:class:`Member` (its name and a readable stream) or, when it cannot or must not be read, as a
:class:`MemberProblem` with the reason: an encrypted zip member, a member past the size or
compression-ratio caps (a zip bomb), a container past its member-count or expanded-bytes cap.
Member names are labels only: ``../`` or absolute names are never used as paths.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, NamedTuple

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


def member_label(name: str) -> str:
    r"""Return a member name as text for an asset: bytes that are not UTF-8 as ``\xNN``."""
    raw = name.encode("utf-8", "surrogateescape")
    return raw.decode("utf-8", "backslashreplace")


class BoundedReader(io.RawIOBase):
    """A read-only stream that refuses to go past a byte budget (``BombError`` instead)."""

    def __init__(self, stream: Stream, budget: int) -> None:
        self.stream = stream
        self.budget = budget
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
            raise BombError(self.budget)
        buffer[: len(data)] = data
        return len(data)


def bounded(stream: Stream, budget: int) -> io.BufferedReader:
    """Wrap ``stream`` so that reading more than ``budget`` bytes raises ``BombError``."""
    return io.BufferedReader(BoundedReader(stream, budget))


class BombError(Exception):
    """A member expanded past its byte budget."""

    def __init__(self, budget: int) -> None:
        super().__init__(budget)
        self.budget = budget


def members(kind: str, stream: IO[bytes], name: str, limits: Limits) -> Iterator[Member |
                                                                           MemberProblem]:
    """Yield the members of a container of ``kind`` read from ``stream`` (seekable for zip).

    ``name`` is the container's own file name, used to name the single member of a gzip,
    bzip2 or xz file. Raises ``OSError``, ``zipfile.BadZipFile``, ``tarfile.TarError`` or
    ``EOFError`` when the container itself cannot be opened.
    """
    if kind == "zip":
        yield from _zip_members(stream, limits)
    elif kind == "tar":
        yield from _tar_members(stream, limits)
    else:
        with _decompressing(kind, stream) as inner:
            head = inner.read(512)
            inner.seek(0)
            if len(head) >= 262 and head[257:262] == b"ustar":
                yield from _tar_members(inner, limits)
                return
            yield Member(_strip_suffix(name), bounded(inner, limits.max_member_bytes))


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


def _zip_members(stream: IO[bytes], limits: Limits) -> Iterator[Member | MemberProblem]:
    with zipfile.ZipFile(stream) as archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        if len(infos) > limits.max_members:
            yield MemberProblem("", f"the container lists {len(infos)} members, more than the "
                                    f"cap of {limits.max_members}; the rest were not checked")
            infos = infos[: limits.max_members]
        total = 0
        for info in infos:
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
            if info.file_size > 1024 * 1024 and ratio > limits.max_ratio:
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
                yield Member(label, bounded(inner, limits.max_member_bytes))


def _tar_members(stream: Stream, limits: Limits) -> Iterator[Member | MemberProblem]:
    # stream mode: members in order, no seeking; the whole tar stream shares one budget
    with tarfile.open(fileobj=bounded(stream, limits.max_total_bytes), mode="r|") as archive:
        count = 0
        for info in archive:
            if not info.isreg():
                continue
            count += 1
            label = member_label(info.name)
            if count > limits.max_members:
                yield MemberProblem(label, f"more than {limits.max_members} members; this one "
                                           "and the rest were not checked")
                return
            if info.size > limits.max_member_bytes:
                yield MemberProblem(label, f"declares {info.size} bytes, more than the cap of "
                                           f"{limits.max_member_bytes}")
                continue
            inner = archive.extractfile(info)
            if inner is None:
                continue
            yield Member(label, inner)
