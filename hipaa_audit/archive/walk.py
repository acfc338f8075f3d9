r"""Find the files under the paths given to ``scan archive`` (I/O only, read-only).

Directories are walked in sorted order without following symbolic links. A link that stays inside
the scanned tree is skipped (its target is scanned where it lives); a link that leaves the tree,
dangles or loops, and a directory that cannot be listed, become problems the scanner reports as
``unverifiable`` findings. Asset names are the path as reached from the argument given, with
bytes that are not UTF-8 written as ``\\xNN``.
"""

from __future__ import annotations

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


WalkItem = FileTask | WalkProblem | SkippedLink


def display_name(path: bytes) -> str:
    r"""Return a path as text, bytes that are not UTF-8 written as ``\\xNN``."""
    return path.decode("utf-8", "backslashreplace")


def walk_paths(paths: list[str]) -> Iterator[WalkItem]:
    """Yield every file under ``paths`` (files or directories) in a stable, sorted order."""
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
        else:
            yield _classify(root, st, real_root, top=True)


def _listing_problems(errors: list[OSError], fallback: bytes) -> Iterator[WalkProblem]:
    for error in errors:
        name = os.fsencode(error.filename) if error.filename else fallback
        yield WalkProblem(display_name(name), f"directory cannot be listed: {error.strerror}")
    errors.clear()


def _walk_dir(root: bytes, real_root: bytes) -> Iterator[WalkItem]:
    errors: list[OSError] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=errors.append, followlinks=False):
        yield from _listing_problems(errors, dirpath)
        dirnames.sort()
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for d in links:
            dirnames.remove(d)
        for name in sorted([*filenames, *links]):
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError as exc:
                yield WalkProblem(display_name(path), f"cannot be read: {exc.strerror}")
                continue
            yield _classify(path, st, real_root, top=False)
    yield from _listing_problems(errors, root)


def _classify(path: bytes, st: os.stat_result, real_root: bytes, *, top: bool) -> WalkItem:
    asset = display_name(path)
    if stat.S_ISLNK(st.st_mode):
        try:
            target = os.path.realpath(path, strict=True)
        except OSError as exc:
            if exc.errno == 40:  # ELOOP
                return WalkProblem(asset, "symbolic link loop; not followed")
            return WalkProblem(asset, "dangling symbolic link; its target does not exist")
        if top:
            target_st = os.stat(target)
            if stat.S_ISREG(target_st.st_mode):
                return FileTask(path, asset)
        inside = target == real_root or target.startswith(real_root.rstrip(b"/") + b"/")
        if inside:
            return SkippedLink(asset)
        return WalkProblem(asset, "symbolic link to a place outside the scanned tree; not followed")
    if stat.S_ISREG(st.st_mode):
        return FileTask(path, asset)
    return WalkProblem(asset, "not a regular file (a device, socket or pipe); not read")
