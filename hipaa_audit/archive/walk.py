r"""Find the files under the paths given to ``scan archive`` (I/O only, read-only).

Directories are walked in sorted order without following symbolic links. A link that stays inside
the scanned tree is skipped (its target is scanned where it lives); a link that leaves the tree,
dangles or loops, and a directory that cannot be listed, become problems the scanner reports as
``unverifiable`` findings. Asset names are the path as reached from the argument given, with
bytes that are not UTF-8 written as ``\\xNN``.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FileTask:
    """A regular file to scan: its file-system path (bytes) and its asset name."""

    path: bytes
    asset: str


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


def walk_paths(paths: list[str]) -> Iterator[WalkItem]:
    """Yield every file under ``paths`` (files or directories) in a stable, sorted order.

    In each directory, its files (and links) come first in name order, then its
    subdirectories, each walked the same way.
    """
    for arg in paths:
        root = os.fsencode(arg)
        real_root = os.path.realpath(root)
        try:
            st = os.lstat(root)
        except OSError as exc:
            yield WalkProblem(display_name(root), f"cannot be read: {exc.strerror}")
            continue
        if stat.S_ISDIR(st.st_mode):
            yield from _walk_dir(root, real_root)
        elif stat.S_ISLNK(st.st_mode):
            yield _link(root, real_root, top=True)
        else:
            yield _other(root, stat.S_ISREG(st.st_mode))


def count_files(paths: list[str]) -> int:
    """Count the regular files a walk of ``paths`` will scan (for a progress total)."""
    return sum(1 for item in walk_paths(paths) if isinstance(item, FileTask))


def _walk_dir(root: bytes, real_root: bytes) -> Iterator[WalkItem]:
    """Walk with ``os.scandir``: the file types come from the directory, not from a stat."""
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            yield WalkProblem(display_name(directory),
                              f"directory cannot be listed: {exc.strerror}")
            continue
        subdirs: list[bytes] = []
        for entry in entries:
            try:
                if entry.is_symlink():
                    yield _link(entry.path, real_root, top=False)
                elif entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry.path)
                else:
                    yield _other(entry.path, entry.is_file(follow_symlinks=False))
            except OSError as exc:
                yield WalkProblem(display_name(entry.path), f"cannot be read: {exc.strerror}")
        stack.extend(reversed(subdirs))


def _other(path: bytes, regular: bool) -> WalkItem:
    if regular:
        return FileTask(path, display_name(path))
    return SkippedSpecial(display_name(path))


def _link(path: bytes, real_root: bytes, *, top: bool) -> WalkItem:
    """A link given as an argument is followed to a file; inside a tree, links are not."""
    asset = display_name(path)
    try:
        target = os.path.realpath(path, strict=True)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return WalkProblem(asset, "symbolic link loop; not followed")
        return WalkProblem(asset, "dangling symbolic link; its target does not exist")
    if top and os.path.isfile(target):
        return FileTask(path, asset)
    inside = target == real_root or target.startswith(real_root.rstrip(b"/") + b"/")
    if inside:
        return SkippedLink(asset)
    return WalkProblem(asset, "symbolic link to a place outside the scanned tree; not followed")
