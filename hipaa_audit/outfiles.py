"""Write the tool's files safely: private modes, no planted links, nothing half-written.

Every file the tool writes (``--output``, reports, findings exports, graphs, checksums, caches)
goes through :func:`open_output`:

- a regular file (or a name not yet taken) is written to a fresh temporary file created with
  ``O_EXCL`` under a random name in the same folder (``tempfile.mkstemp``), mode 0600 whatever
  the umask, and renamed over the target only when complete; a failure leaves the target as it
  was and removes the temporary file;
- a FIFO or a character device (``/dev/null``, a terminal) is streamed to directly (it cannot
  be replaced, and replacing it would break the pipe the user set up), if it belongs to the
  user or to root; ``/dev/stdout``, ``/dev/stderr`` and ``/dev/fd/N`` write to that descriptor;
- a symbolic link is refused (:class:`OutputError`, exit 2): a link planted in a shared folder
  would otherwise make the tool, perhaps running as root, overwrite whatever it points to, and
  whether a link was meant cannot be told from here. Naming the link's target writes there.
  Folders, block devices and sockets are refused too.

Folders the tool creates for its files (report folders, the history store's and the data
folder) are made by :func:`private_dirs`, mode 0700; folders that exist are left as they are.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Literal

from hipaa_audit.errors import HipaaAuditError

#: Mode of every file the tool creates.
FILE_MODE = 0o600
#: Mode of every folder the tool creates.
DIR_MODE = 0o700

_STREAM_NAME = re.compile(r"/dev/(?:stdout|stderr|fd/(\d+))|/proc/self/fd/(\d+)")
_STANDARD_FDS = {"/dev/stdout": 1, "/dev/stderr": 2}

Kind = Literal["file", "stream", "descriptor"]


class OutputError(HipaaAuditError):
    """An output path the tool refuses to write (the message names it and says why)."""


def private_dirs(path: Path) -> None:
    """Create the folder ``path`` and its missing parents with mode 0700, whatever the umask.

    Folders that already exist keep their mode. Raises ``OSError``.
    """
    missing: list[Path] = []
    here = Path(path)
    while not os.path.lexists(here):
        missing.append(here)
        if here.parent == here:
            break
        here = here.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, DIR_MODE)
        except FileExistsError:  # made meanwhile by someone else: not ours to change
            continue
        os.chmod(folder, DIR_MODE)


def check_output(path: Path | str) -> Kind:
    """Say how ``path`` will be written, or raise :class:`OutputError` if it will not be.

    ``file``: replaced whole (absent or a regular file); ``stream``: a FIFO or character
    device written in place; ``descriptor``: an inherited standard stream (``/dev/stdout``).
    """
    name = os.fspath(path)
    if _STREAM_NAME.fullmatch(name):
        return "descriptor"
    try:
        st = os.lstat(name)
    except FileNotFoundError:
        return "file"
    except OSError as exc:
        raise OutputError(f"cannot write {name}: {exc.strerror}") from None
    if stat.S_ISREG(st.st_mode):
        return "file"
    if stat.S_ISLNK(st.st_mode):
        raise OutputError(f"{name} is a symbolic link: refusing to write through it "
                          "(name the file it points to instead)")
    if stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{name} is a folder, not a file")
    if stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode):
        if st.st_uid not in (os.geteuid(), 0):
            raise OutputError(f"{name} is a FIFO or device owned by another user: refusing "
                              "to write into it")
        return "stream"
    raise OutputError(f"{name} is not a regular file, a FIFO or a character device")


def _descriptor(name: str) -> int:
    match = _STREAM_NAME.fullmatch(name)
    assert match is not None
    number = match.group(1) or match.group(2)
    return int(number) if number is not None else _STANDARD_FDS[name]


def _open_stream(name: str) -> int:
    flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC
    fd = os.open(name, flags)
    st = os.fstat(fd)
    if not (stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode)) or \
            st.st_uid not in (os.geteuid(), 0):
        os.close(fd)
        raise OutputError(f"{name} changed while it was being opened: refusing to write")
    return fd


@contextlib.contextmanager
def output_fd(path: Path | str) -> Iterator[int]:
    """Yield a descriptor to write ``path`` through (see the module's rules).

    For a regular file the data goes to a new temporary file that replaces ``path`` when the
    block ends without an exception. Raises :class:`OutputError` or ``OSError``.
    """
    name = os.fspath(path)
    kind = check_output(name)
    if kind == "descriptor":
        fd = os.dup(_descriptor(name))
        try:
            yield fd
        finally:
            os.close(fd)
        return
    if kind == "stream":
        fd = _open_stream(name)
        try:
            yield fd
        finally:
            os.close(fd)
        return
    folder, base = os.path.split(name)
    fd, tmp = tempfile.mkstemp(dir=folder or ".", prefix=f".{base[:100]}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        yield fd
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, name)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def open_output(path: Path | str, *, newline: str | None = None) -> Iterator[IO[str]]:
    """Yield a text stream (UTF-8) that writes ``path`` safely; see :func:`output_fd`."""
    with output_fd(path) as fd, os.fdopen(fd, "w", encoding="utf-8", newline=newline,
                                          closefd=False) as stream:
        yield stream


@contextlib.contextmanager
def open_binary_output(path: Path | str) -> Iterator[IO[bytes]]:
    """Yield a binary stream that writes ``path`` safely; see :func:`output_fd`."""
    with output_fd(path) as fd, os.fdopen(fd, "wb", closefd=False) as stream:
        yield stream


def write_text(path: Path | str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` safely."""
    with open_output(path) as stream:
        stream.write(text)


def copy_file(source: Path, path: Path | str) -> None:
    """Write the content of the file ``source`` to ``path`` safely."""
    with open(source, "rb") as src, open_binary_output(path) as out:
        while block := src.read(1 << 20):
            out.write(block)


__all__ = ["DIR_MODE", "FILE_MODE", "OutputError", "check_output", "copy_file",
           "open_binary_output", "open_output", "output_fd", "private_dirs", "write_text"]
