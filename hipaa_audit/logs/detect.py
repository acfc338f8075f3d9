"""Detectors over the normalised event table (pure: a DataFrame in, anomalies out).

Each detector is a documented method with defaults that ``[[logs]]`` may override
(:class:`Settings`). An :class:`Anomaly` carries what an investigator needs (the user or
source, the time window, the counts, the baseline it was measured against and the event ids)
and nothing of the patient: patient columns are keyed fingerprints and only their counts leave.

Methods (reference: auditlog.md section 6):

- ``bulk-export``: per user and local day, distinct studies exported or downloaded, distinct
  patients and bytes; robust z (0.6745 (x - median) / MAD, MAD floored at 1) against the same
  user's active days; flagged when z > ``bulk_z``, an absolute floor is passed and the day's
  studies reach the peer group's ``bulk_peer_quantile`` (the p99 of studies a day over every
  active day of the users of the same role; reference: "peer >= p99"). A user whose role is
  unknown has no peer group and is judged on the first two tests.
- ``off-hours``: events outside the organisation's schedule that fall in hour-of-week bins the
  user almost never uses (under ``offhours_rare`` of their other days' events), at least
  ``offhours_min_events`` in one local day. Machine identities (:func:`is_machine`: IAM roles,
  AWS services, and accounts the roster does not list) have no schedule: any of their hours is
  judged against their own history only.
- ``failed-logins`` / ``password-spray``: failed logins per user in a sliding window, and distinct
  users failing from one source address in the window.
- ``break-glass``: every emergency-access start; unjustified (no allowed purpose of use), never
  stopped within ``break_glass_max``, or outside declared emergencies, it is raised.
- ``snooping``: a user reading the record of a patient with the same family name (roster), their
  own, an emergency contact's or a housemate's record (roster and patient list), a VIP or a
  co-worker patient (lists from the configuration), a deceased patient after death, or patients
  no department of theirs treats (roster and patient list; no care relation).
- ``mass-deletion``: objects deleted by one user within any 60 minutes (a sliding window), at
  least ``delete_min``; one anomaly per burst.
- ``permission-change`` and ``storage-change``: every successful permission or role change, and
  every bucket policy, ACL, encryption, versioning, lifecycle or logging change.
- ``new-source``: a source address, or a device, first seen for a user after the baseline
  period (each followed on its own; successful events only; a CloudTrail user agent is not a
  device).
- ``dormant-account``: the first activity after a silence of ``dormant_days``, or of
  ``dormant_share`` of a shorter period analysed (:func:`dormant_threshold`).
- ``logging-gap``: silence of a system far beyond its usual inter-arrival, and audit stop events.
- ``clock-skew``: in a file that is an ordered stream (either way), records whose time departs
  from their neighbours by more than ``skew_tolerance``; in a CloudTrail file (unordered by
  design), records later than the file's delivery time; and records that lie in the future.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from hipaa_audit.logs.schema import STRING_DTYPE

MAX_EVENT_IDS = 20
HOURS_PER_WEEK = 168
STORAGE_CODES = ("PutBucket", "DeleteBucket", "PutPublicAccessBlock", "DeletePublicAccessBlock",
                 "PutObjectAcl", "PutAccountPublicAccessBlock")
READ_ACTIONS = ("view", "query", "download", "export")


@dataclass(frozen=True, slots=True)
class Settings:
    """Every detector's parameters (defaults from the reference; ``[logs.detectors]`` overrides)."""

    timezone: str = "UTC"
    workday_start: int = 7
    workday_end: int = 19
    workdays: tuple[int, ...] = (0, 1, 2, 3, 4)
    bulk_z: float = 3.5
    bulk_min_studies: int = 50
    bulk_min_patients: int = 20
    bulk_min_bytes: int = 5_000_000_000
    #: the quantile of the peer group (same role) a user-day's studies must also reach; the
    #: reference's "peer >= p99". 0 leaves the peer group out of the decision (shown only).
    bulk_peer_quantile: float = 0.99
    offhours_rare: float = 0.001
    offhours_min_events: int = 10
    failed_window: str = "10min"
    failed_min: int = 5
    spray_min_users: int = 5
    break_glass_purposes: tuple[str, ...] = ("ETREAT", "TREAT", "EMERGENCY", "ETRMT")
    break_glass_max: str = "4h"
    emergencies: tuple[tuple[str, str], ...] = ()
    delete_min: int = 100
    care_days: int = 2
    new_source_baseline_days: int = 14
    new_source_min_history: int = 20
    dormant_days: int = 30
    #: in a period analysed shorter than about twice ``dormant_days``, a silence is judged
    #: against the period: at least this share of it (and ``dormant_min_days``)
    dormant_share: float = 0.6
    dormant_min_days: int = 7
    gap_min: str = "2h"
    gap_expected: float = 10.0
    gap_min_events: int = 500
    skew_tolerance: str = "5min"
    skew_window: int = 51
    #: the share of a file's records on one run in time order (either way) that makes it an
    #: ordered stream, whose record order can reveal a skewed clock
    skew_ordered_share: float = 0.6
    #: user -> keyed fingerprint of the upper-cased family name (from the roster)
    user_family: dict[str, str] = field(default_factory=dict)
    #: the people of the roster (their user ids): held to the working-hours schedule
    people: frozenset[str] = frozenset()
    #: user -> keyed fingerprint of the user's own patient id (the roster's ``patient_id``)
    user_patient: dict[str, str] = field(default_factory=dict)
    #: keyed fingerprints of VIP and co-worker patients
    vip_patients: frozenset[str] = frozenset()
    coworker_patients: frozenset[str] = frozenset()
    #: user -> keyed fingerprints of the patient ids of the user's emergency contacts (roster)
    user_relatives: dict[str, frozenset[str]] = field(default_factory=dict)
    #: user -> keyed fingerprint of the user's home address, normalised (roster ``address``)
    user_address: dict[str, str] = field(default_factory=dict)
    #: user -> the user's department, normalised (roster ``department``)
    user_department: dict[str, str] = field(default_factory=dict)
    #: patient -> keyed fingerprint of the patient's address, normalised (``--patients``)
    patient_address: dict[str, str] = field(default_factory=dict)
    #: patient -> date of death, ISO 8601 ("" when only known to be deceased) (``--patients``)
    patient_deceased: dict[str, str] = field(default_factory=dict)
    #: patient -> the departments treating the patient, normalised (``--patients``)
    patient_departments: dict[str, frozenset[str]] = field(default_factory=dict)
    #: the moment "now" for future timestamps (tests pin it)
    now: pd.Timestamp | None = None

    @classmethod
    def from_config(cls, data: dict[str, Any], **extra: Any) -> Settings:
        """Build settings from ``[logs.detectors]``; ValueError names an unknown key."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown detector setting(s): {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for key, value in data.items():
            values[key] = tuple(tuple(v) if isinstance(v, list) else v for v in value) \
                if isinstance(value, list) else value
        return cls(**values, **extra)


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One thing an information-system activity review must look at."""

    kind: str
    subject: str
    subject_kind: str
    start: pd.Timestamp
    end: pd.Timestamp
    message: str
    counts: dict[str, int | float]
    baseline: str
    event_ids: tuple[str, ...]
    sources: tuple[str, ...]
    high: bool = False
    #: further evidence fields (e.g. the new ``source_ip`` or ``device`` of a new source)
    detail: tuple[tuple[str, str], ...] = ()
    #: tells apart two anomalies of one kind, subject and start (``device`` for a new device)
    variant: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready evidence."""
        return {"kind": self.kind, self.subject_kind: self.subject, **dict(self.detail),
                "window": f"{iso(self.start)}/{iso(self.end)}", "counts": dict(self.counts),
                "baseline": self.baseline, "event_ids": list(self.event_ids)}


def iso(ts: pd.Timestamp) -> str:
    """A UTC timestamp as ISO 8601 with a Z."""
    return pd.Timestamp(ts).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def _ids(frame: pd.DataFrame) -> tuple[str, ...]:
    return tuple(str(v) for v in frame["event_id"].head(MAX_EVENT_IDS).tolist())


def _sources(frame: pd.DataFrame) -> tuple[str, ...]:
    return tuple(str(s) for s in frame["source"].dropna().unique()[:5])


def _pair(key: Any) -> tuple[Any, Any]:
    """The two parts of a two-level group key."""
    first, second = key
    return first, second


def _text(frame: pd.DataFrame) -> pd.DataFrame:
    """A few rows with their categorical columns as pyarrow strings (the parsers' dtypes).

    The detectors that work row by row in pandas take their rows through this, so that the
    compact table (:func:`hipaa_audit.logs.schema.compact`) and the string table give the same
    values, missing values (``<NA>``) and results.
    """
    cats = {c: STRING_DTYPE for c in frame.columns
            if isinstance(frame[c].dtype, pd.CategoricalDtype)}
    return frame.astype(cats) if cats else frame


def _differs(values: pd.Series, value: str) -> Mask:
    """Rows holding a value other than ``value`` (missing values never differ)."""
    return _mask(values.notna()) & ~_mask(values == value)


def robust_z(values: pd.Series, median: pd.Series, mad: pd.Series) -> pd.Series:
    """Iglewicz-Hoaglin modified z-score with the MAD floored at 1."""
    return 0.6745 * (values - median) / mad.clip(lower=1.0)


def _anomaly(kind: str, subject: str, subject_kind: str, rows: pd.DataFrame, message: str,
             counts: dict[str, int | float], baseline: str, high: bool = False) -> Anomaly:
    return Anomaly(kind, subject, subject_kind, rows["time"].min(), rows["time"].max(), message,
                   counts, baseline, _ids(rows), _sources(rows), high)


# -- vectorised building blocks ------------------------------------------------------------------
# The detectors work on integer codes and int64 times of the few columns they need and take rows
# by position, never copying the whole table: 5 million events within 30 s and 2 GB on two cores
# (DESIGN.md section 5). Sorts are stable, so ties keep table order as pandas' sorts do.

DAY_NS = 86_400 * 10**9
HOUR_NS = 3_600 * 10**9
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
NAT = np.iinfo(np.int64).min
NS_PER_TICK = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
EPOCH = date(1970, 1, 1)  # a Thursday: weekday (days + 3) % 7, Monday 0
EVIDENCE = ["time", "event_id", "source"]

Ints = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]


def _mask(values: pd.Series) -> Mask:
    """A boolean column as a numpy mask, missing values False (as boolean indexing takes them)."""
    return np.asarray(values.to_numpy(dtype=bool, na_value=False), dtype=bool)


def _codes(values: pd.Series, sort: bool = False) -> tuple[Ints, pd.Index]:
    """Integer codes of a column (-1 where missing) and the values they stand for."""
    codes, uniques = pd.factorize(values, sort=sort)
    return np.asarray(codes, dtype=np.int64), pd.Index(uniques)


def _ticks(times: pd.Series) -> tuple[Ints, int]:
    """The int64 ticks of a datetime column (a view of it: never written) and ns per tick."""
    index = pd.DatetimeIndex(times)
    return np.asarray(index.asi8, dtype=np.int64), NS_PER_TICK[str(index.unit)]


def _ns(times: pd.Series) -> Ints:
    """UTC times as int64 nanoseconds since the epoch, in a new array (NaT stays NaT)."""
    ticks, scale = _ticks(times)
    out = ticks * scale
    if scale != 1:
        out[ticks == NAT] = NAT
    return out


def _wall_ms(times: pd.Series, tz: str) -> Ints:
    """Wall-clock times in ``tz`` as int64 milliseconds (floored), in a new array.

    For local days, hours and weekdays (floor division by a day or an hour of the milliseconds
    is that of the full-precision time).
    """
    base, _ = _ticks(times)
    ticks, scale = _ticks(times.dt.tz_convert(tz).dt.tz_localize(None))
    if scale < 10**6:
        return ticks // (10**6 // scale)
    if scale > 10**6:
        return ticks * (scale // 10**6)
    if np.shares_memory(ticks, base) or not ticks.flags.writeable:
        return ticks.copy()
    return ticks


def _bounds(counts: Ints) -> Ints:
    """Where each group starts in rows sorted by group (and the end), from the group sizes."""
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def _grouped(codes: Ints, n: int, times: Ints) -> tuple[Ints, Ints, Ints]:
    """Rows by code, then time (ties in table order), without those of no code (-1).

    Returns the rows, the number of rows of each of the ``n`` codes and their :func:`_bounds`.
    """
    rows = _order(codes, times)
    counts = np.bincount(codes + 1, minlength=n + 1)
    return rows[counts[0]:], counts[1:], _bounds(counts[1:])


def _day(days: int) -> date:
    """A day number (days since 1970-01-01) as a date."""
    return EPOCH + timedelta(days=days)


def _order(major: Ints, minor: Ints) -> Ints:
    """Positions sorted by ``major`` then ``minor``, ties in table order (as ``np.lexsort``).

    Two stable passes: near-linear on a time-ordered log, then a radix sort when the codes fit in
    16 bits.
    """
    first = np.argsort(minor, kind="stable")
    keys = major[first]
    if len(keys) and keys.min() >= -(2**15) and keys.max() < 2**15:
        keys = keys.astype(np.int16)
    return np.asarray(first[np.argsort(keys, kind="stable")], dtype=np.int64)


def _starts(sorted_keys: Ints, n: int) -> Ints:
    """Where each of the keys ``0..n-1`` begins in ``sorted_keys`` (and the end, at ``n``)."""
    return np.asarray(np.searchsorted(sorted_keys, np.arange(n + 1)), dtype=np.int64)


def _distinct(groups: Ints, values: pd.Series, n: int) -> Ints:
    """Distinct non-missing ``values`` per group code (``nunique``) for ``n`` groups."""
    codes, uniques = _codes(values)
    keep = codes >= 0
    width = max(len(uniques), 1)
    pairs = np.asarray(pd.unique(groups[keep] * width + codes[keep]), dtype=np.int64)
    return np.bincount(pairs // width, minlength=n).astype(np.int64)


def _sums(groups: Ints, values: pd.Series, n: int) -> Ints:
    """Sum of an integer column (without missing values) per group code."""
    total = np.zeros(n, dtype=np.int64)
    np.add.at(total, groups, values.to_numpy(dtype=np.int64))
    return total


def _nunique(values: Ints) -> int:
    """Distinct codes, missing (-1) left out."""
    return len(np.setdiff1d(values, [-1]))


class _Evidence:
    """Time, event id and source of chosen rows, to build anomalies by the thousand.

    ``anomaly(..., at)`` is :func:`_anomaly` of the rows ``at`` (indices into ``pos``, in order).
    """

    def __init__(self, events: pd.DataFrame, pos: npt.NDArray[np.int64]) -> None:
        taken = events[EVIDENCE].iloc[pos]
        self.times = taken["time"].array
        self.stamps = _ns(taken["time"])
        self.ids = taken["event_id"].tolist()
        self.source, names = _codes(taken["source"])
        self.names = [str(v) for v in names]

    def anomaly(self, kind: str, subject: str, subject_kind: str, at: Ints, message: str,
                counts: dict[str, int | float], baseline: str, high: bool = False) -> Anomaly:
        if len(at):
            t = self.stamps[at]
            start = pd.Timestamp(self.times[int(at[int(np.argmin(t))])])
            end = pd.Timestamp(self.times[int(at[int(np.argmax(t))])])
        else:
            start = end = pd.Timestamp("NaT")
        ids = tuple(str(self.ids[i]) for i in at[:MAX_EVENT_IDS].tolist())
        seen = [int(c) for c in pd.unique(self.source[at]) if c >= 0]
        return Anomaly(kind, subject, subject_kind, start, end, message, counts, baseline, ids,
                       tuple(self.names[c] for c in seen[:5]), high)


# -- bulk export ---------------------------------------------------------------------------------

def bulk_export(events: pd.DataFrame, s: Settings) -> list[Anomaly]:
    """Export and download volume per user-day far above the user's own days.

    Volume is distinct studies (an event without a study counts as one), distinct patients and
    bytes. The robust z is taken on studies against every active day of the user (days without
    exports count as zero), and an absolute floor must be passed as well.
    """
    codes, users = _codes(events["user"], sort=True)
    valid = codes >= 0
    if not valid.any():
        return []
    # each event's user-day as one integer, users sorted then local days (groupby's order)
    key = _wall_ms(events["time"], s.timezone)
    key //= DAY_MS
    big = np.iinfo(np.int64).max
    first = int(np.min(key, where=valid, initial=big))
    span = int(np.max(key, where=valid, initial=-big)) - first + 1
    key -= first
    key += codes * span
    key[~valid] = -1
    if len(users) * span <= 2**26:
        present = np.zeros(len(users) * span, dtype=bool)
        present[key if valid.all() else key[valid]] = True
        keys = np.flatnonzero(present).astype(np.int64)
        del present
    else:
        keys = np.unique(key[valid])
    n = len(keys)
    pos = np.flatnonzero(_mask(events["action"].isin(["export", "download"])) & valid)
    gout = np.asarray(np.searchsorted(keys, key[pos]), dtype=np.int64)
    del key
    out_rows = _text(events[["study", "event_id"]].iloc[pos])
    study = out_rows["study"].fillna(out_rows["event_id"])
    del out_rows
    daily = pd.DataFrame({
        "user": keys // span, "day": keys % span + first,
        "studies": _distinct(gout, study, n),
        "patients": _distinct(gout, events["patient"].iloc[pos], n),
        "bytes": _sums(gout, events["bytes"].iloc[pos].fillna(0), n),
        "objects": _sums(gout, events["objects"].iloc[pos].fillna(1), n)})
    per_user = daily.groupby("user")["studies"]
    median = per_user.transform("median").astype(float)
    mad = (daily["studies"] - median).abs().groupby(daily["user"]).transform(
        "median").astype(float)
    daily["z"] = robust_z(daily["studies"].astype(float), median, mad)
    floor = ((daily["studies"] >= s.bulk_min_studies)
             | (daily["patients"] >= s.bulk_min_patients) | (daily["bytes"] >= s.bulk_min_bytes))
    hits = np.flatnonzero(((daily["z"] > s.bulk_z) & floor).to_numpy())
    if not len(hits):
        return []
    quantile = s.bulk_peer_quantile if 0 < s.bulk_peer_quantile <= 1 else 0.99
    # the first role each user is seen with, and the peer group (role) p99 of studies a day
    role_codes, role_names = _codes(events["role"])
    has = np.flatnonzero((role_codes >= 0) & valid)
    seen_at = np.full(len(users), len(events), dtype=np.int64)
    np.minimum.at(seen_at, codes[has], has)
    del has, codes, valid
    role_of = np.where(seen_at < len(events),
                       role_codes[np.minimum(seen_at, len(events) - 1)], -1).astype(np.int64)
    del role_codes
    peer_role = role_of[daily["user"].to_numpy()]
    known = peer_role >= 0
    peer_p99: dict[str | None, float] = {
        str(role_names[int(r)]): float(v)
        for r, v in daily["studies"][known].groupby(peer_role[known]).quantile(quantile).items()}
    col = {c: daily[c].to_numpy() for c in ("user", "day", "studies", "patients", "bytes",
                                               "objects", "z")}
    if s.bulk_peer_quantile > 0:
        # the peer group decides too: at least its quantile (a user of no known role: no peers)
        hits = np.asarray([k for k in hits.tolist() if peer_role[k] < 0 or col["studies"][k]
                           >= peer_p99[str(role_names[int(peer_role[k])])]], dtype=np.int64)
    evidence = events[EVIDENCE]
    out = []
    for k in hits.tolist():
        u = int(col["user"][k])
        user_name, when, r = str(users[u]), _day(int(col["day"][k])), int(role_of[u])
        role = str(role_names[r]) if r >= 0 else None
        med = float(median.iloc[k])
        studies, patients, objects = (int(col[c][k]) for c in ("studies", "patients", "objects"))
        z = float(col["z"][k])
        out.append(_anomaly(
            "bulk-export", user_name, "user", evidence.iloc[pos[gout == k]],
            f"{user_name} exported or downloaded {studies} studies of "
            f"{patients} patient(s) ({objects} objects) on {when} "
            f"(local), robust z {z:.1f} against their own days (median {med:g} a day).",
            {"studies": studies, "patients": patients, "objects": objects,
             "bytes": int(col["bytes"][k]), "z": round(z, 1)},
            f"user's own active days: median {med:g} studies a day; peer group "
            f"{role if role is not None else 'unknown role'} p{quantile * 100:g} "
            f"{peer_p99.get(role, float('nan')):g}", high=True))
    return out


# -- off-hours -----------------------------------------------------------------------------------

def is_machine(user: str, people: frozenset[str] = frozenset()) -> bool:
    """Whether a principal is a machine identity, with a schedule of its own.

    By identity type: an IAM role (``arn:aws:iam::ACCOUNT:role/NAME``: service roles, instance
    profiles, CI roles; a person signed in through IAM Identity Center is their session ARN, not
    the role) and an AWS service principal (``*.amazonaws.com``). When a roster is given
    (``people``), every principal it does not list (modalities' AE titles, integration accounts,
    patients of a portal) is judged the same way; the roster's people keep the schedule.
    """
    if user in people:
        return False
    if ":role/" in user or user.endswith(".amazonaws.com"):
        return True
    return bool(people)


def off_hours(events: pd.DataFrame, s: Settings) -> list[Anomaly]:
    """Events at hours of the week a principal almost never works at.

    A person (:func:`is_machine` false) is judged on their events outside the working-hours
    schedule; a machine identity has no such schedule, so all its events are judged, against
    its own hour-of-week history alone (a nightly job is not off-hours; a role that suddenly
    works at an hour it never does is).
    """
    user, users = _codes(events["user"])
    valid = user >= 0
    if not valid.any():
        return []
    machine = np.append(np.asarray([is_machine(str(u), s.people) for u in users], dtype=bool),
                        False)[user]
    days = _wall_ms(events["time"], s.timezone)
    hour = days // HOUR_MS
    hour %= 24
    days //= DAY_MS
    weekday = ((days + 3) % 7).astype(np.int16)
    cand = valid & (~(np.isin(weekday, s.workdays) & (hour >= s.workday_start)
                      & (hour < s.workday_end)) | machine)
    del machine
    weekday *= 24
    weekday += hour.astype(np.int16)
    how = weekday  # hour of the week
    del hour
    if not cand.any():
        return []
    # local days coded in order of appearance (as pd.factorize of the users' dates)
    first = int(np.min(days, where=valid, initial=np.iinfo(np.int64).max))
    days -= first
    seen = np.asarray(pd.unique(days if valid.all() else days[valid]), dtype=np.int64)
    rank = np.zeros(int(seen.max()) + 1, dtype=np.int64)
    rank[seen] = np.arange(len(seen))
    n_users, n_days = len(users), len(seen)
    day = rank[np.where(valid, days, 0)]
    del days, rank
    total = np.bincount(user[valid] * HOURS_PER_WEEK + how[valid],
                        minlength=n_users * HOURS_PER_WEEK)
    user_total = np.bincount(user[valid], minlength=n_users)
    user_day = user * n_days
    user_day += day
    user_day[~valid] = -1
    del day, user
    # candidate (user, day, hour-of-week) bins with their event counts, sorted
    bins, n = np.unique(user_day[cand] * HOURS_PER_WEEK + how[cand], return_counts=True)
    del how
    bin_ud, bin_how = bins // HOURS_PER_WEEK, bins % HOURS_PER_WEEK
    bin_user = bin_ud // n_days
    # events of each candidate user-day, whatever the hour
    cand_ud = np.unique(bin_ud)
    at = np.minimum(np.searchsorted(cand_ud, user_day), len(cand_ud) - 1)
    same = cand_ud[at] == user_day
    day_size = np.bincount(at[same], minlength=len(cand_ud))
    del at, same
    others_bin = total[bin_user * HOURS_PER_WEEK + bin_how] - n
    others_all = user_total[bin_user] - day_size[np.searchsorted(cand_ud, bin_ud)]
    rare = others_bin / np.maximum(others_all, 1) < s.offhours_rare
    per_day = pd.Series(n[rare]).groupby(bin_ud[rare]).sum()
    per_day = per_day[per_day >= s.offhours_min_events]
    if per_day.empty:
        return []
    hit_ud = per_day.index.to_numpy(dtype=np.int64)
    # the candidate events of those user-days, grouped
    pos = np.flatnonzero(cand & np.isin(user_day, hit_ud))
    pos = pos[np.argsort(np.searchsorted(hit_ud, user_day[pos]), kind="stable")]
    bounds = (np.searchsorted(user_day[pos], hit_ud),
              np.searchsorted(user_day[pos], hit_ud, side="right"))
    del user_day, cand
    evidence = _Evidence(events, pos)
    patients, _ = _codes(events["patient"].iloc[pos])
    out = []
    for k, (ud, count) in enumerate(zip(hit_ud.tolist(), per_day.tolist(), strict=True)):
        u, d = divmod(ud, n_days)
        user_name = str(users[u])
        at_k = np.arange(bounds[0][k], bounds[1][k])
        touched = _nunique(patients[at_k])
        size = int(day_size[np.searchsorted(cand_ud, ud)])
        when = _day(first + int(seen[d]))
        if is_machine(user_name, s.people):
            message = (f"{user_name} (a machine identity) was active {int(count)} time(s) on "
                       f"{when} (local) in hours of the week it almost never works, touching "
                       f"{touched} patient(s).")
            schedule = f"no working-hours schedule: a machine identity ({s.timezone})"
        else:
            message = (f"{user_name} was active {int(count)} time(s) outside working hours on "
                       f"{when} (local) in hours of the week they almost never work, touching "
                       f"{touched} patient(s).")
            schedule = (f"schedule {s.workday_start:02d}:00-{s.workday_end:02d}:00 on days "
                        f"{','.join(str(x) for x in s.workdays)} ({s.timezone})")
        out.append(evidence.anomaly(
            "off-hours", user_name, "user", at_k, message,
            {"events": int(count), "patients": touched},
            f"user's hour-of-week profile on other days "
            f"({int(user_total[u] - size)} events); {schedule}", high=True))
    return out


# -- failed logins and spraying ------------------------------------------------------------------

def _bursts(times: np.ndarray, window: np.timedelta64, minimum: int) -> list[tuple[int, int]]:
    """Index ranges [i, j] of sorted ``times`` where at least ``minimum`` fall in ``window``."""
    out: list[tuple[int, int]] = []
    n = len(times)
    j = 0
    i = 0
    while i + minimum - 1 < n:
        if times[i + minimum - 1] - times[i] <= window:
            j = i + minimum - 1
            while j + 1 < n and times[j + 1] - times[j] <= window:
                j += 1
            out.append((i, j))
            i = j + 1
        else:
            i += 1
    return out


def _busy(frame: pd.DataFrame, key: str, window: np.timedelta64,
          minimum: int) -> Iterator[tuple[Any, pd.DataFrame]]:
    """``frame.groupby(key)`` without the groups that never have ``minimum`` rows in ``window``.

    Neither a burst nor a spray can be found in those.
    """
    codes, names = _codes(frame[key], sort=True)
    order = np.argsort(codes, kind="stable")
    bounds = _bounds(np.bincount(codes, minlength=len(names)))
    width = int(window.astype("timedelta64[ns]").astype(np.int64))
    if minimum >= 2 and width >= 0:
        t, c, m = _ns(frame["time"])[order], codes[order], minimum - 1
        busy = np.unique(c[:-m][(c[m:] == c[:-m]) & (t[m:] - t[:-m] <= width)])
    else:
        busy = np.arange(len(names))
    for g in busy.tolist():
        yield names[g], frame.iloc[order[bounds[g]:bounds[g + 1]]]


def failed_logins(events: pd.DataFrame, s: Settings) -> list[Anomaly]:
    """Bursts of failed logins per user, and one source failing for many users (spraying)."""
    fails = _text(events[["time", "user", "source_ip", "event_id", "source"]].iloc[
        np.flatnonzero(_mask(events["action"] == "login") & _mask(events["outcome"] == "failure"))])
    window = np.timedelta64(pd.Timedelta(s.failed_window).value, "ns")
    out = []
    for user, rows in _busy(fails[fails["user"].notna()].sort_values("time"), "user",
                            window, s.failed_min):
        times = rows["time"].to_numpy(dtype="datetime64[ns]")
        for i, j in _bursts(times, window, s.failed_min):
            burst = rows.iloc[i:j + 1]
            out.append(_anomaly(
                "failed-logins", str(user), "user", burst,
                f"{len(burst)} failed logins for {user} within "
                f"{_span(burst)} from {burst['source_ip'].nunique()} source(s).",
                {"failures": len(burst), "sources": int(burst["source_ip"].nunique())},
                f"at least {s.failed_min} failures within {s.failed_window}"))
    for ip, rows in _busy(fails[fails["source_ip"].notna()].sort_values("time"), "source_ip",
                          window, s.spray_min_users):
        users = rows["user"].to_numpy()
        times = rows["time"].to_numpy(dtype="datetime64[ns]")
        start = 0
        best: tuple[int, int, int] | None = None
        reported_until = -1
        for end in range(len(rows)):
            while times[end] - times[start] > window:
                start += 1
            distinct = len(set(users[start:end + 1].tolist()))
            if distinct >= s.spray_min_users and start > reported_until:
                if best is None or distinct > best[2]:
                    best = (start, end, distinct)
            elif best is not None and start > best[1]:
                out.append(_spray(str(ip), rows.iloc[best[0]:best[1] + 1], s))
                reported_until = best[1]
                best = None
        if best is not None:
            out.append(_spray(str(ip), rows.iloc[best[0]:best[1] + 1], s))
    return out


def _spray(ip: str, burst: pd.DataFrame, s: Settings) -> Anomaly:
    n = int(burst["user"].nunique())
    return _anomaly("password-spray", ip, "source_ip", burst,
                    f"Source {ip} failed to log in as {n} different users within {_span(burst)}.",
                    {"users": n, "failures": len(burst)},
                    f"at least {s.spray_min_users} users within {s.failed_window}", high=True)


def _span(rows: pd.DataFrame) -> str:
    seconds = int((rows["time"].max() - rows["time"].min()).total_seconds())
    return f"{seconds // 60} min {seconds % 60} s"


# -- break-glass ---------------------------------------------------------------------------------

def break_glass(events: pd.DataFrame, s: Settings) -> list[Anomaly]:
    """Every emergency-access start, raised when unjustified, unstopped or outside emergencies."""
    action = events["action"]
    cols = ["time", "user", "purpose"]
    start_pos = np.flatnonzero(_mask(action == "break-glass-start"))
    if not len(start_pos):
        return []
    starts = _text(events[cols].iloc[start_pos]).assign(pos=start_pos).sort_values("time")
    stop_pos = np.flatnonzero(_mask(action == "break-glass-stop"))
    stops = _text(events[["time", "user"]].iloc[stop_pos])
    limit = pd.Timedelta(s.break_glass_max)
    windows = [(pd.Timestamp(a, tz="UTC") if pd.Timestamp(a).tzinfo is None else pd.Timestamp(a),
                pd.Timestamp(b, tz="UTC") if pd.Timestamp(b).tzinfo is None else pd.Timestamp(b))
               for a, b in s.emergencies]
    # the stops of each user (table order), and every event of the users who broke the glass,
    # by user and time
    stop_user = stops["user"].tolist()
    stop_time = _ns(stops["time"])
    stops_of: dict[str, list[int]] = {}
    for i, name in enumerate(stop_user):
        if isinstance(name, str):
            stops_of.setdefault(name, []).append(i)
    mine = np.flatnonzero(_mask(events["user"].isin(starts["user"].dropna().unique())))
    user, names = _codes(events["user"].iloc[mine])
    times = _ns(events["time"].iloc[mine])
    order = _order(user, times)
    times = times[order]
    bounds = _starts(user[order], len(names))
    patient = _codes(events["patient"].iloc[mine])[0][order]
    del user, order, mine
    code_of = {str(name): i for i, name in enumerate(names)}
    evidence = _Evidence(events, np.concatenate([start_pos, stop_pos]))
    out = []
    for when, who, purpose_value, pos in zip(starts["time"].tolist(), starts["user"].tolist(),
                                             starts["purpose"].tolist(), starts["pos"].tolist(),
                                             strict=True):
        t0 = pd.Timestamp(when)
        user_name = who if isinstance(who, str) else None
        later = np.asarray([i for i in stops_of.get(user_name or "", []) if user_name is not None
                            and t0.value <= stop_time[i] <= (t0 + limit).value], dtype=np.int64)
        purpose = purpose_value if isinstance(purpose_value, str) else None
        problems = []
        if purpose is None or purpose.upper() not in s.break_glass_purposes:
            problems.append(f"no accepted purpose of use ({purpose or 'none given'})")
        if not len(later):
            problems.append(f"not stopped within {s.break_glass_max}")
        if windows and not any(a <= t0 <= b for a, b in windows):
            problems.append("outside every declared emergency")
        end = int(stop_time[later].min()) if len(later) else (t0 + limit).value
        touched = events_during = 0
        if user_name is not None:
            u = code_of[user_name]
            lo = bounds[u] + int(np.searchsorted(times[bounds[u]:bounds[u + 1]], t0.value))
            hi = bounds[u] + int(np.searchsorted(times[bounds[u]:bounds[u + 1]], end, "right"))
            touched, events_during = _nunique(patient[lo:hi]), hi - lo
        verdict = "; ".join(problems) if problems else "justified and stopped"
        at = [int(np.searchsorted(start_pos, pos))] + [len(start_pos) + int(i) for i in later[:1]]
        out.append(evidence.anomaly(
            "break-glass", str(who), "user", np.asarray(at, dtype=np.int64),
            f"{who} used emergency access at {iso(t0)}: {verdict}; "
            f"{touched} patient(s) touched meanwhile.",
            {"patients": touched, "events": events_during, "stopped": int(len(later) > 0)},
            f"accepted purposes {', '.join(s.break_glass_purposes)}; stop expected within "
            f"{s.break_glass_max}", high=bool(problems)))
    return out


# -- snooping ------------------------------------------------------------------------------------

def snooping(events: pd.DataFrame, s: Settings) -> list[Anomaly]:
    """Reads of a patient the user may have no business with.

    A same-surname, own, relative's, housemate's, VIP, co-worker or deceased patient's record,
    and reads outside the user's department (see :func:`_relations`).
    """
    relations = (s.user_relatives or s.user_address or s.patient_deceased
                 or (s.user_department and s.patient_departments))
    if not (s.user_family or s.vip_patients or s.coworker_patients or s.user_patient
            or relations):
        return []
    reads = (_mask(events["action"].isin(READ_ACTIONS)) & _mask(events["patient"].notna())
             & _mask(events["user"].notna()))
    cols = ["time", "user", "patient", "event_id", "source"]
    out = []
    if s.user_family:
        # the roster's family of each user, as a code of the patient_name column (-2: none)
        users, user_names = _codes(events["user"])
        names, name_values = _codes(events["patient_name"])
        name_code = {str(v): i for i, v in enumerate(name_values)}
        family = np.array([name_code.get(s.user_family[str(u)], -2)
                           if str(u) in s.user_family else -2 for u in user_names] + [-2],
                          dtype=np.int64)
        same = _text(events[cols].iloc[np.flatnonzero(reads & (family[users] == names))])
        del users, names
        for key, rows in same.groupby(["user", "patient"], observed=True):
            user = _pair(key)[0]
            out.append(_anomaly(
                "snooping", str(user), "user", rows,
                f"{user} read the record of a patient who shares their family name "
                f"({len(rows)} event(s) on {rows['time'].dt.date.nunique()} day(s)).",
                {"events": len(rows), "days": int(rows["time"].dt.date.nunique())},
                "roster family names against the patients' (keyed fingerprints)", high=True))
    if s.user_patient:
        # the user's own record (the roster's patient id of the user)
        own = events["user"].map(s.user_patient)
        mine = _text(events[cols].iloc[np.flatnonzero(
            reads & _mask(own.notna()) & _mask(events["patient"].astype(STRING_DTYPE)
                                                == own.astype(STRING_DTYPE)))])
        for key, rows in mine.groupby(["user", "patient"], observed=True):
            user = _pair(key)[0]
            days = int(rows["time"].dt.date.nunique())
            out.append(_anomaly(
                "snooping", str(user), "user", rows,
                f"{user} read their own record as a patient ({len(rows)} event(s) on {days} "
                "day(s)).", {"events": len(rows), "days": days},
                "the roster's patient id of the user (keyed fingerprint)", high=True))
    for label, listed in (("a VIP", s.vip_patients), ("a co-worker", s.coworker_patients)):
        if not listed:
            continue
        hit = _text(events[cols].iloc[np.flatnonzero(
            reads & _mask(events["patient"].isin(listed)))])
        for key, rows in hit.groupby(["user", "patient"], observed=True):
            user = _pair(key)[0]
            days = int(rows["time"].dt.date.nunique())
            if days >= s.care_days:
                continue  # a care relation: the user came back to this patient on other days
            out.append(_anomaly(
                "snooping", str(user), "user", rows,
                f"{user} read the record of {label} patient on {days} day(s) only "
                f"({len(rows)} event(s)), with no care relation seen in the logs.",
                {"events": len(rows), "days": days},
                f"{label} patient list of the configuration; a care relation is access on "
                f"{s.care_days} or more days", high=True))
    if relations:
        out.extend(_relations(events[cols].iloc[np.flatnonzero(reads)], s))
    return out


def _relations(reads: pd.DataFrame, s: Settings) -> list[Anomaly]:
    """Reads of a patient the user is related to, who is deceased, or outside their department.

    * an emergency contact: the patient is one of the user's (roster ``emergency_contact_id``);
    * same address: the patient's address (``--patients``) is the user's (roster ``address``);
    * deceased: read after the date of death (``--patients`` ``deceased``) on fewer than
      ``care_days`` days (no care relation);
    * department: the user's department (roster) is none of those treating the patient
      (``--patients`` ``department``), on fewer than ``care_days`` days; one anomaly per user.

    Addresses and patient ids are compared as keyed fingerprints; nothing else is shown.
    """
    if reads.empty:
        return []
    rows = _text(reads).reset_index(drop=True)
    user, patient = rows["user"].astype(object), rows["patient"].astype(object)
    out: list[Anomaly] = []

    def per_pair(mask: Mask, care: bool) -> list[tuple[str, pd.DataFrame, int]]:
        found = []
        for key, group in rows[mask].groupby(["user", "patient"], observed=True):
            days = int(group["time"].dt.date.nunique())
            if not care or days < s.care_days:
                found.append((str(_pair(key)[0]), group, days))
        return found

    if s.user_relatives:
        pairs = {f"{u}|{p}" for u, ps in s.user_relatives.items() for p in ps}
        related = _mask((user + "|" + patient).isin(pairs))
        for name, group, days in per_pair(related, care=False):
            out.append(_anomaly(
                "snooping", name, "user", group,
                f"{name} read the record of their emergency contact ({len(group)} event(s) on "
                f"{days} day(s)).", {"events": len(group), "days": days},
                "the roster's emergency contact patient ids (keyed fingerprints)", high=True))
    if s.user_address and s.patient_address:
        mine = user.map(s.user_address)
        theirs = patient.map(s.patient_address)
        same = _mask(mine.notna() & theirs.notna() & (mine == theirs))
        for name, group, days in per_pair(same, care=False):
            out.append(_anomaly(
                "snooping", name, "user", group,
                f"{name} read the record of a patient who lives at their address "
                f"({len(group)} event(s) on {days} day(s)).",
                {"events": len(group), "days": days},
                "roster addresses against the patient list's (keyed fingerprints of the "
                "normalised address)", high=True))
    if s.patient_deceased:
        died = pd.to_datetime(patient.map(s.patient_deceased).replace("", "1900-01-01"),
                              utc=True, errors="coerce", format="ISO8601")
        after = _mask(died.notna() & (rows["time"] >= died))
        for name, group, days in per_pair(after, care=True):
            out.append(_anomaly(
                "snooping", name, "user", group,
                f"{name} read the record of a deceased patient after the date of death "
                f"({len(group)} event(s) on {days} day(s)), with no care relation seen in the "
                "logs.", {"events": len(group), "days": days},
                f"the patient list's date of death; a care relation is access on "
                f"{s.care_days} or more days"))
    if s.user_department and s.patient_departments:
        department = user.map(s.user_department)
        treating = {f"{p}|{d}" for p, ds in s.patient_departments.items() for d in ds}
        known = _mask(department.notna() & patient.isin(s.patient_departments))
        inside = _mask((patient + "|" + department.fillna("")).isin(treating))
        outside = per_pair(known & ~inside, care=True)
        by_user: dict[str, list[pd.DataFrame]] = {}
        for name, group, _days in outside:
            by_user.setdefault(name, []).append(group)
        for name, groups in by_user.items():
            group = pd.concat(groups).sort_values("time", kind="stable")
            out.append(_anomaly(
                "snooping", name, "user", group,
                f"{name} ({s.user_department[name]}) read the records of {len(groups)} "
                f"patient(s) no department of theirs treats ({len(group)} event(s)), with no "
                "care relation seen in the logs.",
                {"events": len(group), "patients": len(groups)},
                "the roster's department against the departments of the patient list; a care "
                f"relation is access on {s.care_days} or more days"))
    return out


# -- deletion, permission and storage changes ----------------------------------------------------

def _window_sums(group: Ints, times: Ints, weights: Ints, width: int) -> tuple[Ints, Ints, Ints]:
    """Sliding sums of ``weights`` over the rows of each group within ``width`` of a row.

    Returns the rows sorted by group, then time (ties in table order), and for each of them in
    that order where its window ends (exclusive: the sorted rows ``k..end-1`` have
    ``t[k] <= t <= t[k] + width``) and the sum of ``weights`` over the window. The rows and
    their windows' ends are sorted together (:func:`_order`; a row before a window end at the
    same time, so the end is inclusive), no loop: on a time-ordered log the first pass merges two
    runs.
    """
    n = len(times)
    merged = _order(np.concatenate([group, group]), np.concatenate([times, times + width]))
    row = merged < n
    # the window ends come in the order of their rows: (group, time + width) as (group, time)
    end = np.asarray(np.cumsum(row)[~row], dtype=np.int64)
    rows = merged[row]
    total = np.concatenate([[0], np.cumsum(weights[rows])]).astype(np.int64)
    return rows, end, total[end] - total[:n]


def _heavy_runs(end: Ints, sums: Ints, minimum: int) -> tuple[Ints, Ints, Ints]:
    """Maximal runs of overlapping windows (:func:`_window_sums`) whose sum reaches ``minimum``.

    Two such windows overlap when the later one starts at a row of the earlier one. Returns,
    per run, its first row, its end row (exclusive: the rows of all its windows) and the largest
    sum of one of its windows. A window never reaches past its group, so a run never spans two.
    """
    starts = np.flatnonzero(sums >= minimum)
    if not len(starts):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    reach = np.maximum.accumulate(end[starts])
    first = np.flatnonzero(np.r_[True, starts[1:] >= reach[:-1]])
    last = np.r_[first[1:] - 1, len(starts) - 1]
    return (starts[first], reach[last],
            np.asarray(np.maximum.reduceat(sums[starts], first), dtype=np.int64))


def mass_deletion(events: pd.DataFrame, s: Settings) -> list[Anomaly]:
    """Objects deleted by one user within any 60 minutes, at least ``delete_min``.

    A sliding window over each user's deletions (an event without a count of objects counts
    one): every burst (a maximal run of overlapping qualifying windows) is one anomaly, with the
    events of the burst as evidence and the largest count of any 60 minutes of it. A deletion
    without a time belongs to no 60 minutes.
    """
    pos = np.flatnonzero(_mask(events["action"] == "delete") & _mask(events["user"].notna())
                         & _mask(events["time"].notna()))
    if not len(pos):
        return []
    user, users = _codes(events["user"].iloc[pos], sort=True)
    times = _ns(events["time"].iloc[pos])
    objects = events["objects"].iloc[pos].fillna(1).to_numpy(dtype=np.int64)
    # ``rows``: the deletions (indices into ``pos``) by user, then time
    rows, end, sums = _window_sums(user, times, objects, HOUR_NS)
    del times, objects
    lo, hi, peak = _heavy_runs(end, sums, s.delete_min)
    if not len(lo):
        return []
    evidence = _Evidence(events, pos)
    out = []
    for a, b, n in zip(lo.tolist(), hi.tolist(), peak.tolist(), strict=True):
        user_name = str(users[int(user[rows[a]])])
        out.append(evidence.anomaly(
            "mass-deletion", user_name, "user", rows[a:b],
            f"{user_name} deleted {n} object(s) within one hour.", {"objects": n},
            f"at least {s.delete_min} objects within any 60 minutes", high=True))
    return out


def _is_storage(code: pd.Series) -> pd.Series:
    return code.fillna("").str.startswith(STORAGE_CODES)


def permission_changes(events: pd.DataFrame, s: Settings) -> list[Anomaly]:
    """Successful permission and role changes (per user and day), and storage setting changes."""
    changes = _text(events.iloc[np.flatnonzero(
        _mask(events["action"].isin(["permission-change", "config-change"]))
        & _differs(events["outcome"], "failure"))])
    storage = _is_storage(changes["code"])
    out = []
    perm = changes[~storage]
    day = perm["time"].dt.date
    for key, rows in perm.groupby([perm["user"].fillna("(unknown)"), day], observed=True):
        user, when = _pair(key)
        codes = ", ".join(sorted({str(c) for c in rows["code"].dropna()})) or "unspecified"
        kinds = " and ".join(sorted({"permissions or roles" if a == "permission-change"
                                     else "security configuration" for a in rows["action"]}))
        out.append(_anomaly(
            "permission-change", str(user), "user", rows,
            f"{user} changed {kinds} {len(rows)} time(s) on {when} ({codes}).",
            {"changes": len(rows)}, "every permission and configuration change is listed for "
            "review"))
    st = changes[storage]
    for key, rows in st.groupby([st["user"].fillna("(unknown)"),
                                 st["target"].fillna("(unknown)"), st["time"].dt.date],
                                observed=True):
        user, target = key[0], key[1]
        codes = ", ".join(sorted({str(c) for c in rows["code"].dropna()}))
        out.append(_anomaly(
            "storage-change", str(user), "user", rows,
            f"{user} changed the settings of {target} {len(rows)} time(s) ({codes}).",
            {"changes": len(rows)}, "every bucket policy, ACL and encryption change is listed",
            high=any(c.startswith(("DeleteBucketEncryption", "DeletePublicAccessBlock",
                                   "PutBucketAcl", "PutBucketPolicy"))
                     for c in rows["code"].dropna().astype(str))))
    return out


# -- new source, dormant accounts ----------------------------------------------------------------

#: What the new-source detector follows: the column and what its values are called.
NEW_SOURCE_COLUMNS = (("source_ip", "source address", "address"), ("device", "device", "device"))


def new_sources(events: pd.DataFrame, s: Settings) -> list[Anomaly]:
    """A source address, or a device, first seen for a user after the baseline period.

    Each column of :data:`NEW_SOURCE_COLUMNS` is followed on its own, by the same method: the
    (user, value) pairs of successful events (a failed login is not working from there) seen in
    the first ``new_source_baseline_days`` of that column's events are the usual ones; a pair
    first seen later is new for a user with at least ``new_source_min_history`` such events in
    the baseline. The finding says which (address or device). An old device used from a new
    address is a new address only; a new device and a new address in the same events are two
    findings. A device that is only the system that wrote the record (a parser's fallback when
    the record names no client machine, e.g. a FHIR AuditEvent's observer) says nothing of
    where the user worked and is left out.
    """
    user, users = _codes(events["user"])
    working = (user >= 0) & _differs(events["outcome"], "failure")
    if not working.any():
        return []
    found: list[tuple[int, int, int, Anomaly]] = []
    for order, (column, noun, variant) in enumerate(NEW_SOURCE_COLUMNS):
        for first_time, first_pos, anomaly in _first_seen(events, s, user, users, working,
                                                           column, noun):
            if variant != "address":
                anomaly = dataclasses.replace(anomaly, variant=variant)
            found.append((first_time, first_pos, order, anomaly))
    # in order of first appearance in time (then in the table; addresses before devices)
    found.sort(key=lambda x: x[:3])
    return [a for *_, a in found]


def _first_seen(events: pd.DataFrame, s: Settings, user: Ints, users: pd.Index,
                working: Mask, column: str, noun: str) -> list[tuple[int, int, Anomaly]]:
    """New (user, ``column`` value) pairs: their first time, first row and anomaly."""
    value, values = _codes(events[column])
    valid = working & (value >= 0)
    if column == "device":
        # the device of each row as a code of the system column (-1: no such system)
        system, systems = _codes(events["system"])
        known = pd.Index([str(v) for v in systems])
        as_system = np.append(known.get_indexer(pd.Index([str(v) for v in values])), -1)[value]
        valid &= ~((as_system >= 0) & (as_system == system))
        del system, as_system
        # a CloudTrail record's device is the client's user agent (an SDK or CLI version that
        # changes with every upgrade), not a machine the user worked from
        valid &= ~_mask(events["format"] == "cloudtrail")
    if not valid.any():
        return []
    width = max(len(values), 1)
    pair = user * width
    pair += value
    pair[~valid] = -1
    del value
    times = _ns(events["time"])
    cutoff = int(np.min(times, where=valid, initial=np.iinfo(np.int64).max)) + pd.Timedelta(
        days=s.new_source_baseline_days).value
    before = valid & (times < cutoff)
    del times
    # (user, value) pairs seen in the baseline, and the users with enough history there
    usual_pairs = np.unique(pair[before])
    history = np.bincount(pair[before] // width, minlength=len(users))
    del before
    seasoned = history >= s.new_source_min_history
    usual = np.bincount(usual_pairs // width, minlength=len(users))
    # the events of pairs first seen after the baseline, for a user with a baseline
    fresh = valid & seasoned[np.where(valid, pair // width, 0)]
    fresh &= ~np.isin(pair, usual_pairs)
    pos = np.flatnonzero(fresh)
    del fresh, valid
    if not len(pos):
        return []
    group = pair[pos]
    del pair
    order = np.argsort(group, kind="stable")
    pos, group = pos[order], group[order]
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    ends = np.r_[starts[1:], len(group)]
    times = _ns(events["time"].iloc[pos])
    first_time = np.minimum.reduceat(times, starts)
    evidence = _Evidence(events, pos)
    patients = _codes(events["patient"].iloc[pos])[0]
    out = []
    plural = "address(es)" if column == "source_ip" else f"{noun}(s)"
    for k in range(len(starts)):
        key = int(group[starts[k]])
        user_name, seen = str(users[key // width]), str(values[key % width])
        at = np.arange(starts[k], ends[k])
        touched = _nunique(patients[at])
        anomaly = evidence.anomaly(
            "new-source", user_name, "user", at,
            f"{user_name} worked from a {noun} never seen for them before "
            f"({seen}): {len(at)} event(s), {touched} patient(s).",
            {"events": len(at), "patients": touched},
            f"{int(usual[key // width])} {plural} seen for the user in the first "
            f"{s.new_source_baseline_days} days")
        out.append((int(first_time[k]), int(pos[starts[k]]),
                    dataclasses.replace(anomaly, detail=((column, seen),))))
    return out


def dormant_threshold(period: pd.Timedelta, s: Settings) -> pd.Timedelta:
    """The silence that makes an account dormant in a period analysed of length ``period``.

    ``dormant_days``, or, when the period is too short for such a silence to stand out (under
    ``dormant_days / dormant_share``), ``dormant_share`` of the period, at least
    ``dormant_min_days``: in a month of logs, an account silent for most of it.
    """
    full = pd.Timedelta(days=s.dormant_days)
    share = period * s.dormant_share if 0 < s.dormant_share <= 1 else full
    return min(full, max(share, pd.Timedelta(days=s.dormant_min_days)))


def dormant_accounts(events: pd.DataFrame, s: Settings) -> list[Anomaly]:
    """The first activity of an account after a silence (:func:`dormant_threshold`).

    Only silences between two events of the account count: an account first seen late in the
    period may have worked before it.
    """
    user, users = _codes(events["user"], sort=True)
    times = _ns(events["time"])
    known = times[times != NAT]
    period = pd.Timedelta(int(known.max() - known.min()) if len(known) else 0, unit="ns")
    limit = dormant_threshold(period, s)
    rows, _, bounds = _grouped(user, len(users), times)
    del user
    times = times[rows]
    gap = np.diff(times)
    gap[bounds[1:-1] - 1] = -1  # no gap across two users
    woke = np.flatnonzero(gap >= limit.value) + 1
    if not len(woke):
        return []
    out = []
    for k in woke.tolist():
        u = int(np.searchsorted(bounds, k, side="right")) - 1
        hi = k + int(np.searchsorted(times[k:bounds[u + 1]], times[k] + DAY_NS))
        taken = events[[*EVIDENCE, "patient"]].iloc[rows[k:hi]]
        name = str(users[u])
        days = int(gap[k - 1] // DAY_NS)
        touched = int(taken["patient"].nunique())
        out.append(_anomaly(
            "dormant-account", name, "user", taken,
            f"{name} became active again after {days} days of silence: {len(taken)} event(s) "
            f"and {touched} patient(s) in the next 24 hours.",
            {"silent_days": int(days), "events": len(taken), "patients": touched},
            f"silence of at least {limit / pd.Timedelta(days=1):g} days (of a period of "
            f"{period / pd.Timedelta(days=1):.0f} days analysed)", high=True))
    return out


# -- logging gaps, clock skew --------------------------------------------------------------------

def logging_gaps(events: pd.DataFrame, s: Settings) -> list[Anomaly]:
    """Silence of a system where its usual rate makes silence improbable; audit stop events.

    Each system's rate is learnt per hour of the week (events per hour, averaged over the weeks
    of the log). A silence of at least ``gap_min`` in which at least ``gap_expected`` events were
    expected (Poisson: the chance of none is below e^-gap_expected) is a gap.
    """
    out = []
    codes, systems = _codes(events["system"], sort=True)
    times = _ns(events["time"])
    rows, counts, bounds = _grouped(codes, len(systems), times)
    del codes
    times = times[rows]
    floor = pd.Timedelta(s.gap_min).value
    weeks = max((int(times.max()) - int(times.min())) / pd.Timedelta(days=7).value, 1.0) \
        if len(times) else 1.0
    stamps = events["time"].array
    wall: Ints | None = None
    for k in np.flatnonzero(counts >= s.gap_min_events).tolist():
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        gaps = np.flatnonzero(np.diff(times[lo:hi]) > floor) + 1
        if not len(gaps):
            continue
        if wall is None:
            wall = _wall_ms(events["time"], s.timezone)
        local = wall[rows[lo:hi]]
        rate = np.bincount(((local // DAY_MS + 3) % 7) * 24 + (local // HOUR_MS) % 24,
                           minlength=HOURS_PER_WEEK) / weeks
        for pos in gaps.tolist():
            start = pd.Timestamp(stamps[int(rows[lo + pos - 1])])
            end = pd.Timestamp(stamps[int(rows[lo + pos])])
            hours = pd.date_range(start.ceil("h"), end.floor("h"), freq="h",
                                  inclusive="left").tz_convert(s.timezone)
            expected = float(rate[(hours.day_of_week * 24 + hours.hour).to_numpy()].sum())
            if expected < s.gap_expected:
                continue
            silent = (end - start).total_seconds() / 3600
            name = str(systems[k])
            out.append(_anomaly(
                "logging-gap", name, "system",
                events[EVIDENCE].iloc[rows[lo + pos - 1:lo + pos + 1]],
                f"{name} wrote no audit record for {silent:.1f} hours, when about "
                f"{expected:.0f} were expected at those hours.",
                {"silent_hours": round(silent, 1), "expected_events": round(expected, 1)},
                f"the system's own rate per hour of the week over {weeks:.1f} week(s)",
                high=True))
    del times, rows, wall
    stops = _text(events.iloc[np.flatnonzero(_mask(events["action"] == "audit-stop"))]
                  ).sort_values("time")
    starts = _text(events.iloc[np.flatnonzero(_mask(events["action"] == "audit-start"))])
    for idx, row in stops.iterrows():
        system = row["system"] if isinstance(row["system"], str) else "(unknown system)"
        back = starts[(starts["system"] == row["system"]) & (starts["time"] >= row["time"])]
        rows = pd.concat([stops.loc[[idx]], back.head(1)])
        until = f"restarted at {iso(back['time'].min())}" if not back.empty else "never restarted"
        # a variant of its own: the silence that follows a stop starts at the same moment
        out.append(dataclasses.replace(_anomaly(
            "logging-gap", str(system), "system", rows,
            f"Audit recording was stopped on {system} at {iso(row['time'])} by "
            f"{row['user'] if isinstance(row['user'], str) else 'an unknown user'}; {until}.",
            {"stopped": 1}, "every audit stop is listed", high=True), variant="audit-stop"))
    return out


def _out_of_order(seq: np.ndarray) -> np.ndarray:
    """Positions outside one longest non-decreasing subsequence of ``seq`` (patience sorting).

    They are the fewest records whose removal leaves the rest in order: the skewed ones.
    """
    tails: list[int] = []
    tail_pos: list[int] = []
    parent = np.full(len(seq), -1, dtype=np.int64)
    for i, value in enumerate(seq.tolist()):
        k = bisect.bisect_right(tails, value)
        if k == len(tails):
            tails.append(value)
            tail_pos.append(i)
        else:
            tails[k] = value
            tail_pos[k] = i
        parent[i] = tail_pos[k - 1] if k else -1
    keep = np.zeros(len(seq), dtype=bool)
    i = tail_pos[-1] if tail_pos else -1
    while i >= 0:
        keep[i] = True
        i = int(parent[i])
    return np.flatnonzero(~keep)


#: A CloudTrail log file's name holds the time it was delivered: ``..._20240501T0215Z_...``.
CLOUDTRAIL_DELIVERY = re.compile(r"_(\d{8}T\d{4})Z_[^/\\]*$")


def delivery_time(source: str) -> pd.Timestamp | None:
    """The delivery time a CloudTrail log file's name holds (UTC), or None."""
    found = CLOUDTRAIL_DELIVERY.search(source)
    if found is None:
        return None
    try:
        return pd.Timestamp(found.group(1), tz="UTC")
    except ValueError:
        return None


#: How many records of a file are sampled to tell its order.
ORDER_SAMPLE = 4001


def _file_order(t: Ints, tol: int, share: float) -> int:
    """How a file's records are ordered: 1 oldest first, -1 newest first, 0 no order.

    A file is an ordered stream when at least ``share`` of its records (an even sample of up to
    :data:`ORDER_SAMPLE`) lie on one run in time order (within the tolerance) read forwards, or
    backwards: one device's skewed clock takes its own records off the run, not the others'.
    """
    if len(t) < 3:
        return 0
    step = max(1, len(t) // ORDER_SAMPLE)
    sample = t[::step] // max(tol, 1)
    forward = 1 - len(_out_of_order(sample)) / len(sample)
    backward = 1 - len(_out_of_order(sample[::-1])) / len(sample)
    if forward >= share and forward >= backward:
        return 1
    if backward >= share:
        return -1
    return 0


def clock_skew(events: pd.DataFrame, s: Settings) -> list[Anomaly]:
    """Records whose clock disagrees with the others', beyond a tolerance.

    - In a file that is an ordered stream (a syslog collector's file, oldest first; or an export
      sorted newest first, read backwards; :func:`_file_order`), the records of other sources
      around a record are the reference: the records outside a longest in-order run are the
      skewed ones (a device whose clock runs ahead leaves records later ones are older than;
      one that lags, the reverse).
    - Record order means nothing in a file without one (AWS documents CloudTrail log files as
      unordered), so there order is not used; a CloudTrail record that is later than its file's
      delivery time (in the file's name) by more than the tolerance is skewed.
    - A record that lies in the future is skewed, whatever the file.
    """
    tol = pd.Timedelta(s.skew_tolerance).value
    now = s.now or pd.Timestamp.now(tz="UTC")
    margin = 2 * s.skew_window
    source, sources = _codes(events["source"], sort=True)
    counts = np.bincount(source + 1, minlength=len(sources) + 1)
    # file order, each file after the other (the events of no file first, then left out)
    rows: Ints | None = None
    line = events["line"].to_numpy(dtype=np.int64, na_value=np.iinfo(np.int64).max)
    if not (counts[0] == 0 and np.all(source[1:] >= source[:-1]) and np.all(
            (line[1:] >= line[:-1]) | (source[1:] != source[:-1]))):
        rows = _order(source, line)[counts[0]:]
    del source, line
    bounds = _bounds(counts[1:])
    stamps = _ns(events["time"])
    formats = events["format"]
    horizon = (now + pd.Timedelta(tol)).value
    out = []
    for k in range(len(sources)):
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        if hi == lo:
            continue
        t = stamps[lo:hi] if rows is None else stamps[rows[lo:hi]]
        first_row = lo if rows is None else int(rows[lo])
        fmt = formats.iloc[first_row]
        unordered = isinstance(fmt, str) and fmt == "cloudtrail"
        direction = 0 if unordered else _file_order(t, tol, s.skew_ordered_share)
        future = t > horizon
        late = np.zeros(len(t), dtype=bool)
        delivered = delivery_time(str(sources[k])) if unordered else None
        if delivered is not None:
            late = t > delivered.value + tol
        flagged = np.zeros(len(t), dtype=bool)
        seq = t if direction >= 0 else t[::-1]
        behind = (seq < np.maximum.accumulate(seq) - tol) if direction else np.zeros(
            len(t), dtype=bool)
        if behind.any():
            first = int(np.argmax(behind))
            last = len(seq) - 1 - int(np.argmax(behind[::-1]))
            start = max(0, first - margin - int(np.searchsorted(
                np.maximum.accumulate(seq[:first + 1]), seq[first] + tol)))
            start = max(0, min(start, first - margin))
            end = min(len(seq), last + margin)
            in_order = np.zeros(len(seq), dtype=bool)
            in_order[start + _out_of_order(seq[start:end] // tol)] = True
            flagged |= in_order if direction > 0 else in_order[::-1]
        flagged |= future | late
        if not flagged.any():
            continue
        marked = np.flatnonzero(flagged)
        part_all = _text(events[[*EVIDENCE, "device", "system"]].iloc[
            marked + lo if rows is None else rows[lo:hi][marked]])
        subject_col = "device" if not unordered and part_all["device"].notna().any() \
            else "system"
        subjects = part_all[subject_col].fillna("(unknown)")
        around = np.delete(t, marked)
        for subject, part in part_all.groupby(subjects, observed=True):
            at = marked[_mask(subjects == subject)]
            if unordered or not len(around):
                ref = np.full(len(at), delivered.value if delivered is not None else now.value,
                              dtype=np.float64)
            else:
                ref = np.interp(at, np.flatnonzero(~flagged), around)
            delta = float(np.median(t[at] - ref)) / 6e10
            what = ("the delivery time of their CloudTrail file" if unordered
                    and delivered is not None else "the present" if unordered
                    else "the records around them")
            out.append(_anomaly(
                "clock-skew", str(subject), subject_col, part,
                f"{len(part)} record(s) from {subject} in {sources[k]} are {abs(delta):.0f} "
                f"minute(s) {'ahead of' if delta > 0 else 'behind'} {what}"
                + (" (some lie in the future)" if bool(future[at].any()) else "") + ".",
                {"records": len(part), "offset_minutes": round(delta, 1)},
                ("the file's delivery time (CloudTrail files are not in time order)"
                 if unordered else "the records of the same file in "
                 + ("order" if direction >= 0 else "reverse order (newest first)"))
                + f"; tolerance {s.skew_tolerance}"))
    return out


Detector = Callable[[pd.DataFrame, Settings], list[Anomaly]]
#: Every detector, by the kinds it reports.
DETECTORS: dict[str, Detector] = {
    "bulk-export": bulk_export,
    "off-hours": off_hours,
    "failed-logins": failed_logins,
    "break-glass": break_glass,
    "snooping": snooping,
    "mass-deletion": mass_deletion,
    "permission-change": permission_changes,
    "new-source": new_sources,
    "dormant-account": dormant_accounts,
    "logging-gap": logging_gaps,
    "clock-skew": clock_skew,
}
#: The kinds of anomaly, each a check of the catalog (``log-<kind>``).
KINDS = ("bulk-export", "off-hours", "failed-logins", "password-spray", "break-glass", "snooping",
         "mass-deletion", "permission-change", "storage-change", "new-source", "dormant-account",
         "logging-gap", "clock-skew")


def run_all(events: pd.DataFrame, s: Settings,
            only: Iterable[str] | None = None) -> list[Anomaly]:
    """Run every detector (or ``only`` those) over the table."""
    chosen = DETECTORS if only is None else {k: DETECTORS[k] for k in only}
    out: list[Anomaly] = []
    for detector in chosen.values():
        out.extend(detector(events, s))
    return out


__all__ = ["DETECTORS", "KINDS", "Anomaly", "Settings", "run_all"]
