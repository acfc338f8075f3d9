"""What hash-chain and CloudTrail digest verification share: the issue record and helpers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class IntegrityIssue:
    """One integrity finding.

    ``kind`` is one of BROKEN_LINK, BAD_MAC, SEQ_GAP, SEQ_DUP_OR_BACKWARD, TS_BACKWARD,
    TIME_GAP, HEAD_MISMATCH, TRUNCATED, MALFORMED (hash chains) or DIGEST_NOT_FOUND,
    DIGEST_MOVED, SIGNATURE_FAILED, NO_PUBLIC_KEY, LOG_NOT_FOUND, LOG_HASH_MISMATCH,
    TRAILING_DATA, DIGEST_GAP, CHAIN_BROKEN, UNDIGESTED_LOG, MALFORMED (CloudTrail).
    ``stream`` is the file (or digest folder) concerned, ``position`` the first bad line of a
    chain (``None`` for file-level findings), ``first_time``/``last_time`` the affected time
    range (ISO 8601 UTC) when known, and ``detail`` a sentence for humans that never quotes
    record content.
    """

    kind: str
    stream: str
    position: int | None
    first_time: str | None
    last_time: str | None
    detail: str


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + (
        f".{value.microsecond:06d}".rstrip("0").rstrip(".") if value.microsecond else ""
    ) + "Z"


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object a small side file (an anchor, a signature sidecar) holds.

    ``None`` when the file cannot be read as UTF-8 JSON or holds something other than an object.
    """
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None
