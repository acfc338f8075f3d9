"""Network targets, from the command line or a targets file.

Schemes: ``https://``, ``tls://``, ``dicom+tls://``, ``dicom://``, ``http://``; a bare
``host:port`` is probed and classified.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from hipaa_audit.errors import HipaaAuditError

#: Scheme → default port (``None``: the port must be given).
SCHEMES: dict[str, int | None] = {
    "https": 443, "http": 80, "tls": None, "dicom+tls": 2762, "dicom": 104,
}
#: A bare ``host:port`` is probed and classified.
PROBE = "probe"
_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_-]{1,63})*\.?$")


class TargetError(HipaaAuditError, ValueError):
    """A target string that cannot be scanned; the message names it (and its line)."""


@dataclass(frozen=True, slots=True)
class Target:
    """One endpoint to scan.

    ``kind`` is the scheme, or ``probe`` for a bare ``host:port`` whose protocol is found by
    probing. ``host`` is a name or an IP address (IPv6 without brackets).
    """

    kind: str
    host: str
    port: int
    path: str = "/"

    @property
    def url(self) -> str:
        """The target as findings name it (the asset)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.kind == PROBE:
            return f"{host}:{self.port}"
        return f"{self.kind}://{host}:{self.port}"

    def as_kind(self, kind: str) -> Target:
        """The same endpoint under another scheme (a probed target once classified)."""
        return Target(kind, self.host, self.port, self.path)

    @property
    def is_tls(self) -> bool:
        """Whether the scheme says the port speaks TLS."""
        return self.kind in ("https", "tls", "dicom+tls")


def is_ip(host: str) -> bool:
    """Whether ``host`` is an IPv4 or IPv6 address (not a name)."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _valid_host(host: str) -> bool:
    return is_ip(host) or bool(_HOST.match(host))


def parse_target(text: str) -> Target:
    """Parse one target string; raise :class:`TargetError` saying what is wrong."""
    raw = text.strip()
    if not raw:
        raise TargetError("empty target")
    kind = PROBE
    rest = raw
    if "://" in raw:
        scheme, rest = raw.split("://", 1)
        kind = scheme.lower()
        if kind not in SCHEMES:
            raise TargetError(f"{raw!r}: unknown scheme {scheme!r} "
                              f"(expected {', '.join(SCHEMES)} or host:port)")
    path = "/"
    if "/" in rest:
        rest, _, tail = rest.partition("/")
        path = "/" + tail
        if kind not in ("https", "http"):
            raise TargetError(f"{raw!r}: a path is only meaningful for http:// and https://")
    if "@" in rest or "?" in rest or "#" in rest:
        raise TargetError(f"{raw!r}: credentials, queries and fragments are not allowed")
    if rest.startswith("["):
        host, sep, port_text = rest[1:].partition("]")
        if not sep or (port_text and not port_text.startswith(":")):
            raise TargetError(f"{raw!r}: malformed IPv6 address")
        port_text = port_text[1:]
    elif rest.count(":") > 1:
        host, port_text = rest, ""
    else:
        host, _, port_text = rest.partition(":")
    if not host or not _valid_host(host):
        raise TargetError(f"{raw!r}: {host!r} is not a host name or IP address")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise TargetError(f"{raw!r}: port must be a number from 1 to 65535")
        port = int(port_text)
    else:
        default = SCHEMES.get(kind)
        if default is None:
            need = "host:port" if kind == PROBE else f"{kind}://host:port"
            raise TargetError(f"{raw!r}: a port is required ({need})")
        port = default
    return Target(kind, host.lower(), port, path)


def read_targets_file(path: str) -> list[str]:
    """Return the target strings of a targets file: one per line, ``#`` comments, blanks ignored.

    Raise :class:`TargetError` naming the file and line of the first bad target (or when the file
    cannot be read).
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TargetError(f"{path}: cannot read the targets file ({exc})") from None
    out: list[str] = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            parse_target(text)
        except TargetError as exc:
            raise TargetError(f"{path}, line {number}: {exc}") from None
        out.append(text)
    return out


def parse_targets(texts: list[str]) -> list[Target]:
    """Parse every target string, dropping exact duplicates (first kept)."""
    seen: set[Target] = set()
    out: list[Target] = []
    for text in texts:
        target = parse_target(text)
        if target not in seen:
            seen.add(target)
            out.append(target)
    return out
