"""Pydantic validation errors as the one-line messages the tool prints: ``FILE: key[2].sub: why``.

The assessment file, the treatment register and the attestation file report their problems the
same way, naming the file and the key as a user would find it in the TOML.
"""

from __future__ import annotations

from pydantic import ValidationError


def where(loc: tuple[int | str, ...], prefix: str = "") -> str:
    """The key a validation error points at: ``archive[1].workers`` (1-based list positions)."""
    out = prefix
    for part in loc:
        out += f"[{part + 1}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def problems(exc: ValidationError, source: str, prefix: str = "") -> list[str]:
    """One line per error of ``exc``: ``SOURCE: KEY: message`` (``unknown key`` for extras)."""
    out = []
    for e in exc.errors():
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        out.append(f"{source}: {where(e['loc'], prefix)}: {msg}")
    return out
