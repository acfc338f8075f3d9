"""CSV and JSON Lines fields through a :class:`ColumnMapping` into the event table."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from hipaa_audit.logs.parsers.common import (
    _IDENTIFIER_LIKE,
    _OUT_OF_RANGE,
    _UUID,
    MAX_NUMBER,
    PATIENT_ROLES,
    _Collector,
    _Fingerprints,
    _iso_times,
    _patient_id,
    _string_array,
)
from hipaa_audit.logs.schema import (
    ACTIONS,
    OUTCOMES,
    STRING_DTYPE,
    empty,
    normalise,
)
from hipaa_audit.mapping import check_columns, check_format, check_table, from_table, mapping_hash

_MAPPED = ("time", "user", "role", "action", "outcome", "patient", "patient_name", "study",
           "objects", "bytes", "source_ip", "device", "purpose", "event_id", "target", "code",
           "system")
_REQUIRED = ("time", "user", "action")
_OPTIONAL = frozenset(_MAPPED).difference(_REQUIRED) | {"time_format"}


@dataclass(frozen=True)
class ColumnMapping:
    """Where each field of the event table is in a CSV file (column) or JSONL record (key).

    ``None`` (or ``""``/``false`` in a config file) means the source has no such field. JSONL keys
    may be dotted paths into nested objects (``actor.id``). ``actions`` translates source action
    values (case-insensitive) to normalised actions; unmapped values already in
    :data:`~hipaa_audit.logs.schema.ACTIONS` pass, others become ``other``. ``outcomes``
    translates source outcome values to ``success``/``failure``; the defaults understand
    success/failure/ok/fail/0/denied/true/false and HTTP status codes. ``time_format`` is a
    ``strptime`` format; by default times are ISO 8601 or epoch seconds/milliseconds. Naive times
    are in ``timezone``.
    """

    time: str = "time"
    user: str = "user"
    role: str | None = "role"
    action: str = "action"
    outcome: str | None = "outcome"
    patient: str | None = "patient"
    patient_name: str | None = "patient_name"
    study: str | None = "study"
    objects: str | None = "objects"
    bytes: str | None = "bytes"
    source_ip: str | None = "source_ip"
    device: str | None = "device"
    purpose: str | None = "purpose"
    event_id: str | None = "event_id"
    target: str | None = "target"
    code: str | None = "code"
    system: str | None = "system"
    actions: dict[str, str] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)
    time_format: str | None = None
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        check_columns("column", self, _REQUIRED, [n for n in _MAPPED if n not in _REQUIRED])
        check_table("column", "actions", self.actions, ACTIONS)
        check_table("column", "outcomes", self.outcomes, OUTCOMES)
        check_format("column", "time_format", self.time_format)
        if not isinstance(self.timezone, str):
            raise ValueError("column mapping: timezone must be a time zone name")
        if self.timezone != "UTC":
            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"column mapping: timezone: unknown time zone "
                                 f"{self.timezone!r}") from exc

    def __hash__(self) -> int:
        return mapping_hash(self)

    @classmethod
    def from_config(cls, data: dict[str, Any]) -> ColumnMapping:
        """Build a mapping from a config table; raises ``ValueError`` naming the bad key."""
        return from_table(cls, "column", data, tables=("actions", "outcomes"),
                          nullable=_OPTIONAL)

    def columns(self) -> dict[str, str]:
        """The mapped fields and their source column/key (fields without a source left out)."""
        out: dict[str, str] = {}
        for name in _MAPPED:
            value = getattr(self, name)
            if value:
                out[name] = value
        return out


_SUCCESS_WORDS = ("success", "succeeded", "successful", "ok", "pass", "passed", "allow",
                  "allowed", "permit", "permitted", "granted", "true", "yes", "y", "0")
_FAILURE_WORDS = ("failure", "failed", "fail", "error", "err", "denied", "deny", "rejected",
                  "reject", "blocked", "forbidden", "unauthorized", "unauthorised", "false",
                  "no", "n", "4", "8", "12")
_DEFAULT_OUTCOMES = {**dict.fromkeys(_SUCCESS_WORDS, "success"),
                     **dict.fromkeys(_FAILURE_WORDS, "failure")}
_NUMERIC = r"[+-]?\d+(?:\.\d+)?"
_AWARE = r"(?:[zZ]|[T ]\d{2}:\d{2}[^+-]*[+-]\d{2}(?::?\d{2})?)"


def _outcome_function(mapping: ColumnMapping) -> Callable[[str], str | None]:
    table = dict(_DEFAULT_OUTCOMES)
    table.update({k.strip().lower(): v.strip().lower() for k, v in mapping.outcomes.items()})

    def outcome(value: str) -> str | None:
        low = value.strip().lower()
        out = table.get(low)
        if out is None and len(low) == 3 and low.isdigit():  # an HTTP status
            out = "success" if low[0] in "123" else "failure" if low[0] in "45" else None
        return out

    return outcome


def _action_function(mapping: ColumnMapping) -> Callable[[str], str]:
    table = {k.strip().lower(): v.strip().lower() for k, v in mapping.actions.items()}
    known = frozenset(ACTIONS)

    def action(value: str) -> str:
        low = value.strip().lower()
        out = table.get(low)
        if out is not None:
            return out
        return low if low in known else "other"

    return action


def _map_unique(values: pd.Series, function: Callable[[str], str | None]) -> pd.Series:
    """``function`` applied once per distinct value (NA stays NA), as a string column."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mapped = np.array([function(str(u)) for u in uniques] + [None], dtype=object)
    return pd.Series(_string_array(mapped[codes]), index=values.index)


def _clean(values: pd.Series) -> pd.Series:
    """Stripped strings, with empty ones as NA."""
    text = values.astype(STRING_DTYPE).str.strip()
    return text.mask(text == "")


def _localise(times: pd.Series, timezone: str) -> pd.Series:
    if times.dt.tz is None:
        if timezone != "UTC":
            times = times.dt.tz_localize(timezone, ambiguous=np.ones(len(times), dtype=bool),
                                         nonexistent="shift_forward")
        else:
            times = times.dt.tz_localize("UTC")
    out: pd.Series = times.dt.tz_convert("UTC").astype("datetime64[ms, UTC]")
    return out


def _mapped_times(raw: pd.Series, time_format: str | None, timezone: str) -> pd.Series:
    """Parse a time column: ``time_format``, else ISO 8601 or epoch s/ms/µs/ns; NaT if bad."""
    if time_format:
        has_zone = "%z" in time_format or "%Z" in time_format
        parsed = pd.to_datetime(raw, format=time_format, errors="coerce", utc=has_zone)
        return _localise(parsed, timezone)
    out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ms, UTC]")
    numeric = raw.str.fullmatch(_NUMERIC).fillna(False).astype(bool)
    if numeric.any():
        number = pd.to_numeric(raw[numeric], errors="coerce").astype("float64")
        size = number.abs()
        millis = number.where(size < 1e17, number / 1e6)
        millis = millis.where((size < 1e14) | (size >= 1e17), number / 1e3)
        millis = millis.where((size < 1e11) | (size >= 1e14), number)
        millis = millis.where(size >= 1e11, number * 1e3)
        out[numeric] = pd.to_datetime(millis.round(), unit="ms", utc=True,
                                      errors="coerce").astype("datetime64[ms, UTC]")
    rest = ~numeric & raw.notna()
    if rest.any():
        text = raw[rest]
        if timezone == "UTC":
            out[rest] = _iso_times(text)
        else:
            aware = text.str.contains(_AWARE + "$", regex=True).fillna(False).astype(bool)
            if aware.any():
                out[aware[aware].index] = _iso_times(text[aware])
            naive = text[~aware]
            if len(naive):
                parsed = pd.to_datetime(naive, format="ISO8601", errors="coerce")
                if parsed.dt.tz is not None:
                    parsed = parsed.dt.tz_convert("UTC")
                out[naive.index] = _localise(parsed, timezone)
    return out


def _mapped_frame(raw: dict[str, pd.Series], lines: np.ndarray[Any, Any],
                  mapping: ColumnMapping, fp: _Fingerprints, col: _Collector,
                  name: str, action_fn: Callable[[str], str],
                  outcome_fn: Callable[[str], str | None]) -> pd.DataFrame:
    """The normalised events of one chunk of CSV/JSONL values (one column per mapped field)."""
    n = len(lines)
    index = pd.RangeIndex(n)
    columns = {k: _clean(pd.Series(v.array if v.dtype == STRING_DTYPE else v.to_numpy(),
                                   index=index)) for k, v in raw.items()}
    if not columns or n == 0:
        return empty()
    blank = np.logical_and.reduce([s.isna().to_numpy() for s in columns.values()])
    time_raw = columns["time"]
    times = _mapped_times(time_raw, mapping.time_format, mapping.timezone)
    bad = times.isna().to_numpy() & ~blank
    if bad.any():
        missing = time_raw.isna().to_numpy()
        for line, none in zip(lines[bad].tolist(), missing[bad].tolist(), strict=True):
            col.bad(int(line), "no timestamp" if none else "bad timestamp")

    def number(key: str) -> pd.Series:
        got = columns.get(key)
        if got is None:
            return pd.Series(pd.NA, index=index, dtype="Float64")
        return pd.to_numeric(got, errors="coerce").astype("Float64")

    counts = {key: number(key) for key in ("objects", "bytes")}
    huge = np.logical_or.reduce([(v.abs() > MAX_NUMBER).fillna(False).to_numpy(dtype=bool)
                                 for v in counts.values()]) & ~(blank | bad)
    for line in lines[huge].tolist():
        col.bad(int(line), _OUT_OF_RANGE)
    keep = ~(blank | bad | huge)
    objects, size = (v.mask(v.abs() > MAX_NUMBER).round().astype("Int64")
                     for v in counts.values())

    def text(key: str) -> pd.Series:
        got = columns.get(key)
        return got if got is not None else pd.Series(pd.NA, index=index, dtype=STRING_DTYPE)

    action_raw = text("action")
    line_text = pd.Series(lines, index=index).astype(str)
    event_id = text("event_id")
    risky = (event_id.str.contains(_IDENTIFIER_LIKE.pattern, regex=True)
             & ~event_id.str.fullmatch(_UUID.pattern)).fillna(False)
    event_id = event_id.mask(risky.to_numpy(dtype=bool))  # as may_identify, column-wise
    event_id = event_id.fillna((name + ":" + line_text).astype(STRING_DTYPE))
    user, role, source_ip, device = text("user"), text("role"), text("source_ip"), text("device")
    # a patient acting as the user (by role, or the user is the record's patient): fingerprinted,
    # with their address and device
    same = _map_unique(user, _patient_id) == _map_unique(text("patient"), _patient_id)
    acting = (role.str.strip().str.lower().isin(PATIENT_ROLES).fillna(False)
              | same.fillna(False)).to_numpy(dtype=bool)
    if acting.any():
        user = user.copy()
        user[acting] = _map_unique(user[acting], fp.actor)
        source_ip = source_ip.mask(acting, _map_unique(source_ip, fp.mask))
        device = device.mask(acting, _map_unique(device, fp.mask))
    frame = pd.DataFrame({
        "time": times,
        "user": user,
        "role": role,
        "action": _map_unique(action_raw, action_fn).fillna("other"),
        "outcome": _map_unique(text("outcome"), outcome_fn),
        "patient": _map_unique(text("patient"), fp.patient),
        "patient_name": _map_unique(text("patient_name"), fp.name),
        "study": _map_unique(text("study"), fp.study),
        "objects": objects,
        "bytes": size,
        "source_ip": source_ip,
        "device": _map_unique(device, fp.label),
        "purpose": text("purpose"),
        "event_id": event_id,
        "code": _map_unique(text("code").fillna(action_raw),
                            lambda v: fp.label(v, codes=True)),
        "target": _map_unique(text("target"), fp.label),
        "system": _map_unique(text("system"), fp.label),
        "format": pd.Series(col.fmt, index=index, dtype=STRING_DTYPE),
        "source": pd.Series(col.source, index=index, dtype=STRING_DTYPE),
        "line": pd.Series(lines, index=index, dtype="Int64"),
    })
    return normalise(frame[keep])


def _lookup(record: dict[str, Any], key: str) -> Any:
    if key in record:
        return record[key]
    if "." not in key:
        return None
    value: Any = record
    for part in key.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _scalar(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    return json.dumps(value, sort_keys=True)
