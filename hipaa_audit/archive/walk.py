r"""Find the files under the paths given to ``scan archive`` (I/O only, read-only).

Directories are walked in sorted order without following symbolic links. A link that stays inside
the scanned tree is skipped (its target is scanned where it lives); a link that leaves the tree,
dangles or loops, and a directory that cannot be listed, become problems the scanner reports as
``unverifiable`` findings. Asset names are the path as reached from the argument given, with
bytes that are not UTF-8 written as ``\\xNN``.

A file can change between the walk and its open: :func:`open_walked` opens it without following
a link that was not there when it was listed and without blocking on a FIFO or a device, then
checks that what it opened is a regular file and (on Linux, through ``/proc/self/fd``) that it
still lies inside the scanned tree, in case a folder on its path was swapped for a link.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from hipaa_audit.errors import HipaaAuditError

#: What ``stat`` calls the kinds of file that are not regular, for messages.
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


@dataclass(frozen=True, slots=True)
class FileTask:
    """A regular file to scan: its file-system path (bytes) and its asset name.

    ``follow`` is true when the path is a symbolic link the walk chose to follow (one named on
    the command line, or one inside the tree with ``--follow-symlinks``). ``roots`` are the
    real paths of the scanned tree the opened file must lie in (empty for a file named on the
    command line).
    """

    path: bytes
    asset: str
    follow: bool = False
    roots: tuple[bytes, ...] = ()


class NotAsWalked(HipaaAuditError):
    """The path no longer names the regular file the walk listed; ``reason`` says what it is."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def open_walked(task: FileTask) -> tuple[BinaryIO, os.stat_result]:
    """Open a walked file read-only, as the walk saw it; return it unbuffered with its status.

    The open never follows a symbolic link the walk did not choose to follow (``O_NOFOLLOW``)
    and never waits on a FIFO or a device (``O_NONBLOCK``); the opened file must be regular
    (``fstat`` after the open), so a file swapped after the walk is never read. Raises
    :class:`NotAsWalked` for such a swap and ``OSError`` when the file cannot be opened.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if task.follow else os.O_NOFOLLOW)
    try:
        fd = os.open(task.path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not task.follow:
            raise NotAsWalked("the file was replaced by a symbolic link after the walk listed "
                              "it; the link was not followed") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a file")
            raise NotAsWalked(f"it is {kind}, not a regular file (replaced after the walk "
                              "listed it?); it was not read")
        if task.roots and not _opened_inside(fd, task.roots):
            raise NotAsWalked("its path now leads outside the scanned tree (a folder on it was "
                              "replaced by a symbolic link after the walk?); it was not read")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb", buffering=0), st


def inside(target: bytes, roots: tuple[bytes, ...] | list[bytes]) -> bool:
    """True when the real path ``target`` is one of ``roots`` or lies below one."""
    return any(target == r or target.startswith(r.rstrip(b"/") + b"/") for r in roots)


def _opened_inside(fd: int, roots: tuple[bytes, ...]) -> bool:
    """True when the file open as ``fd`` lies inside ``roots`` (or this cannot be told)."""
    try:
        opened = os.readlink(f"/proc/self/fd/{fd}".encode())
    except OSError:  # no /proc: the checks on the last component are all there is
        return True
    return inside(opened, roots)


@dataclass(frozen=True, slots=True)
class WalkProblem:
    """Something under a scanned path that could not be examined, and why."""

    asset: str
    reason: str


@dataclass(frozen=True, slots=True)
class SkippedLink:
    """A symbolic link whose target lies inside the scanned tree (scanned there)."""

    asset: str


@dataclass(frozen=True, slots=True)
class SkippedSpecial:
    """A FIFO, socket or device: never opened (reading one could block or change it)."""

    asset: str


WalkItem = FileTask | WalkProblem | SkippedLink | SkippedSpecial


def display_name(path: bytes) -> str:
    r"""Return a path as text, bytes that are not UTF-8 written as ``\\xNN``."""
    return path.decode("utf-8", "backslashreplace")


def walk_paths(paths: list[str], *, follow_links: bool = False) -> Iterator[WalkItem]:
    """Yield every file under ``paths`` (files or directories) in a stable, sorted order.

    In each directory, its files (and links) come first in name order, then its
    subdirectories, each walked the same way. With ``follow_links``, a link whose target lies
    inside one of ``paths`` is followed (a folder is walked once, however many links reach
    it); links that leave every root are never followed.
    """
    roots = [os.path.realpath(os.fsencode(arg)) for arg in paths]
    walker = _Walker(roots, follow_links)
    for arg in paths:
        root = os.fsencode(arg)
        try:
            st = os.lstat(root)
        except OSError as exc:
            yield WalkProblem(display_name(root), f"cannot be read: {exc.strerror}")
            continue
        if stat.S_ISDIR(st.st_mode):
            yield from walker.walk_dir(root)
        elif stat.S_ISLNK(st.st_mode):
            for item in walker.link(root, top=True):
                if not isinstance(item, bytes):
                    yield item
        else:
            yield _other(root, stat.S_ISREG(st.st_mode))


def count_files(paths: list[str], *, follow_links: bool = False) -> int:
    """Count the regular files a walk of ``paths`` will scan (for a progress total)."""
    return sum(1 for item in walk_paths(paths, follow_links=follow_links)
               if isinstance(item, FileTask))


class _Walker:
    def __init__(self, roots: list[bytes], follow_links: bool) -> None:
        self.roots = tuple(roots)
        self.follow = follow_links
        self.seen: set[bytes] = set()  # real folders already walked (when following links)

    def inside(self, target: bytes) -> bool:
        return inside(target, self.roots)

    def walk_dir(self, root: bytes) -> Iterator[WalkItem]:
        """Walk with ``os.scandir``: the file types come from the directory, not from a stat."""
        stack = [root]
        while stack:
            directory = stack.pop()
            if self.follow:
                real = os.path.realpath(directory)
                if real in self.seen:
                    continue
                self.seen.add(real)
            try:
                with os.scandir(directory) as listing:
                    entries = sorted(listing, key=lambda e: e.name)
            except OSError as exc:
                yield WalkProblem(display_name(directory),
                                  f"directory cannot be listed: {exc.strerror}")
                continue
            subdirs: list[bytes] = []
            linked: list[bytes] = []  # walked after the real folders, so these keep their names
            for entry in entries:
                try:
                    if entry.is_symlink():
                        for item in self.link(entry.path, top=False):
                            if isinstance(item, bytes):
                                linked.append(item)
                            else:
                                yield item
                    elif entry.is_dir(follow_symlinks=False):
                        subdirs.append(entry.path)
                    else:
                        yield _other(entry.path, entry.is_file(follow_symlinks=False),
                                     self.roots)
                except OSError as exc:
                    yield WalkProblem(display_name(entry.path),
                                      f"cannot be read: {exc.strerror}")
            stack.extend(reversed(subdirs + linked))

    def link(self, path: bytes, *, top: bool) -> Iterator[WalkItem | bytes]:
        """Judge one link: a file to scan, a folder to walk (bytes), skipped, or a problem."""
        asset = display_name(path)
        try:
            target = os.path.realpath(path, strict=True)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                yield WalkProblem(asset, "symbolic link loop; not followed")
            else:
                yield WalkProblem(asset, "dangling symbolic link; its target does not exist")
            return
        is_dir = os.path.isdir(target)
        if top:  # a link the user named is followed
            if is_dir:
                yield from self.walk_dir(path)
            else:
                yield FileTask(path, asset, follow=True)
        elif not self.inside(target):
            yield WalkProblem(asset,
                              "symbolic link to a place outside the scanned tree; not followed")
        elif not self.follow:
            yield SkippedLink(asset)
        elif is_dir:
            yield path
        else:
            yield FileTask(path, asset, follow=True, roots=self.roots)


def _other(path: bytes, regular: bool, roots: tuple[bytes, ...] = ()) -> WalkItem:
    if regular:
        return FileTask(path, display_name(path), roots=roots)
    return SkippedSpecial(display_name(path))
