"""The organisation's time zone, from the UTC offsets that records carry."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from hipaa_audit.logs.parsers.common import LogFormatError, _read_head

_OFFSET_TIME = re.compile(
    r"(?<![\d])(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::\d{2}(?:[.,]\d+)?)?([+-])(\d{2}):?(\d{2})"
    r"(?![\d])")
#: Zones tried first when several fit the offsets equally (then every other, by name).
PREFERRED_ZONES = (
    "America/New_York", "America/Chicago", "America/Denver", "America/Phoenix",
    "America/Los_Angeles", "America/Anchorage", "Pacific/Honolulu", "America/Puerto_Rico",
    "America/Halifax", "America/St_Johns", "Europe/London", "Europe/Dublin", "Europe/Lisbon",
    "Europe/Paris", "Europe/Berlin", "Europe/Helsinki", "Europe/Moscow", "Asia/Dubai",
    "Asia/Kolkata", "Asia/Singapore", "Asia/Shanghai", "Asia/Tokyo", "Australia/Brisbane",
    "Australia/Sydney", "Pacific/Auckland", "America/Sao_Paulo", "America/Mexico_City",
    "Africa/Johannesburg", "UTC")


def record_offsets(path: Path) -> list[tuple[int, int]]:
    """The local UTC offsets the first records of a log carry (ATNA and FHIR times do).

    Each time written with a numeric offset (``2024-05-01T02:13:07-04:00``) in the first
    :data:`HEAD_BYTES` gives (its UTC time in epoch seconds, its offset in minutes). A ``Z``
    (CloudTrail, or a system that writes UTC) says nothing of the local zone and is left out.
    Nothing else of the records is kept.
    """
    try:
        text, _ = _read_head(path)
    except LogFormatError:
        return []
    out = []
    for m in _OFFSET_TIME.finditer(text):
        year, month, day, hour, minute, sign, oh, om = m.groups()
        try:
            local = datetime(int(year), int(month), int(day), int(hour), int(minute))
        except ValueError:
            continue
        offset = (int(oh) * 60 + int(om)) * (1 if sign == "+" else -1)
        if abs(offset) > 14 * 60:
            continue
        utc = local - timedelta(minutes=offset)
        out.append((int((utc - datetime(1970, 1, 1)).total_seconds()), offset))
    return out


def zone_of_offsets(samples: Sequence[tuple[int, int]]) -> tuple[str, int] | None:
    """The IANA time zone that fits most (UTC time, offset) samples, and how many it fits.

    Every zone is tried (:data:`PREFERRED_ZONES` first, so that of zones fitting equally, e.g.
    America/New_York and America/Detroit, the common one is named); a zone fits a sample when
    its UTC offset at that moment is the sample's (so summer and winter time both count). None
    when there is no sample.
    """
    if not samples:
        return None
    # one weight per (hour, offset): a month of records is a few hundred distinct pairs
    weights: dict[tuple[int, int], int] = {}
    for when, offset in samples:
        key = (when // 3600 * 3600, offset)
        weights[key] = weights.get(key, 0) + 1
    others = sorted(z for z in available_timezones()
                    if "/" in z and not z.startswith(("Etc/", "SystemV/", "US/"))
                    and z not in PREFERRED_ZONES)
    best: tuple[str, int] | None = None
    for name in (*PREFERRED_ZONES, *others):
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
        fit = 0
        for (when, offset), n in weights.items():
            moment = datetime.fromtimestamp(when, tz=UTC).astimezone(zone)
            delta = moment.utcoffset()
            if delta is not None and int(delta.total_seconds()) // 60 == offset:
                fit += n
        if best is None or fit > best[1]:
            best = (name, fit)
    return best
