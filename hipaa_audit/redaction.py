"""Masked evidence: describe a value read from a scanned asset without showing it.

Evidence gives the VR, the length, the shape (``Aaaa^Aaaa``: letters become ``A``/``a``,
digits ``9``, punctuation kept) and a keyed fingerprint (HMAC-SHA256 with a per-installation
key) so that the same value can be correlated across findings and runs without being revealed.
Only ``reveal=True`` (the user's explicit ``--reveal-phi``) adds the value itself.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import string
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from hipaa_audit.outfiles import private_dirs

#: Environment variable naming the folder that holds the fingerprint key (and, later, history).
DATA_DIR_ENV = "HIPAA_AUDIT_DATA_DIR"
KEY_FILE = "fingerprint.key"
MAX_SHAPE = 32
#: Evidence strings remembered per process (bounded: memory stays flat).
EVIDENCE_CACHE = 4096


def data_dir() -> Path:
    """Return the per-user data folder (``$HIPAA_AUDIT_DATA_DIR`` overrides it)."""
    override = os.environ.get(DATA_DIR_ENV)
    return Path(override) if override else Path(platformdirs.user_data_dir("hipaa-audit"))


def installation_key() -> bytes:
    """Return the per-installation fingerprint key, creating it (mode 0600) on first use."""
    path = data_dir() / KEY_FILE
    try:
        key = path.read_bytes()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    private_dirs(path.parent)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


_ASCII_SHAPE = str.maketrans(
    {
        **{c: "A" for c in string.ascii_uppercase},
        **{c: "a" for c in string.ascii_lowercase},
        **{c: "9" for c in string.digits},
        **{c: " " for c in "\t\n\r\x0b\x0c"},
        **{chr(i): "?" for i in range(32) if chr(i) not in "\t\n\r\x0b\x0c"},
        "\x7f": "?",
    }
)


def silence_libraries() -> None:
    """Keep libraries that read scanned data (pydicom) from printing about it.

    Their warnings describe the data being read; the tool reports problems as findings
    instead, so nothing they say reaches stderr. Called in every process that reads assets.
    """
    warnings.filterwarnings("ignore", module=r"pydicom(\.|$)")
    log = logging.getLogger("pydicom")
    log.handlers[:] = [logging.NullHandler()]
    log.propagate = False


def shape(value: str) -> str:
    """Return the shape of ``value``: ``A``/``a`` for letters, ``9`` for digits, rest kept."""
    head = value[:MAX_SHAPE]
    if head.isascii():
        return head.translate(_ASCII_SHAPE) + ("…" if len(value) > MAX_SHAPE else "")
    out = []
    for ch in head:
        if ch.isdigit():
            out.append("9")
        elif ch.isalpha():
            out.append("A" if ch.isupper() else "a")
        elif ch.isspace():
            out.append(" ")
        elif ch.isascii() and ch.isprintable():
            out.append(ch)
        else:
            out.append("?")
    if len(value) > MAX_SHAPE:
        out.append("…")
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Masker:
    """Turns values read from assets into evidence strings safe to write anywhere."""

    key: bytes
    reveal: bool = False
    _inner: Any = field(init=False, repr=False, compare=False)
    _outer: Any = field(init=False, repr=False, compare=False)
    _cache: dict[tuple[str, str | None], str] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        # HMAC-SHA256 (RFC 2104) keyed once: each fingerprint copies the two keyed states
        block = self.key if len(self.key) <= 64 else hashlib.sha256(self.key).digest()
        block = block.ljust(64, b"\0")
        object.__setattr__(self, "_inner", hashlib.sha256(bytes(b ^ 0x36 for b in block)))
        object.__setattr__(self, "_outer", hashlib.sha256(bytes(b ^ 0x5C for b in block)))

    def __reduce__(self) -> tuple[type[Masker], tuple[bytes, bool]]:
        return (Masker, (self.key, self.reveal))

    def fingerprint(self, value: str) -> str:
        """Return the keyed fingerprint of ``value``: HMAC-SHA256, first 16 hex digits."""
        inner = self._inner.copy()
        inner.update(value.encode("utf-8", "surrogateescape"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        digest: str = outer.hexdigest()
        return digest[:16]

    def evidence(self, value: str, vr: str | None = None) -> str:
        """Return masked evidence for ``value``: VR, length, shape, fingerprint.

        Remembered for the last few thousand values (a study's files repeat them).
        """
        cache = self._cache
        key = (value, vr)
        text = cache.get(key)
        if text is None:
            head = f"{vr} " if vr else ""
            text = f"{head}len={len(value)} shape={shape(value)} hmac={self.fingerprint(value)}"
            if self.reveal:
                text += f" value={value!r}"
            if len(cache) >= EVIDENCE_CACHE:
                cache.clear()
            cache[key] = text
        return text
