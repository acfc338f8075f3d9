"""Detectors over the normalised event table (pure: a DataFrame in, anomalies out).

Each detector is a documented method with defaults that ``[[logs]]`` may override
(:class:`Settings`). An :class:`Anomaly` carries what an investigator needs (the user or
source, the time window, the counts, the baseline it was measured against and the event ids)
and nothing of the patient: patient columns are keyed fingerprints and only their counts leave.

Methods (reference: auditlog.md section 6):

- ``bulk-export``: per user and local day, distinct studies exported or downloaded, distinct
  patients and bytes; robust z (0.6745 (x - median) / MAD, MAD floored at 1) against the same
  user's active days; flagged when z > ``bulk_z`` and an absolute floor is passed. The peer
  group (role) p99 is reported beside it.
- ``off-hours``: events outside the organisation's schedule that fall in hour-of-week bins the
  user almost never uses (under ``offhours_rare`` of their other days' events), at least
  ``offhours_min_events`` in one local day.
- ``failed-logins`` / ``password-spray``: failed logins per user in a sliding window, and distinct
  users failing from one source address in the window.
- ``break-glass``: every emergency-access start; unjustified (no allowed purpose of use), never
  stopped within ``break_glass_max``, or outside declared emergencies, it is raised.
- ``snooping``: a user reading the record of a patient with the same family name (roster), a VIP
  or a co-worker patient (lists from the configuration).
- ``mass-deletion``: objects deleted per user and hour above ``delete_min``.
- ``permission-change`` and ``storage-change``: every successful permission or role change, and
  every bucket policy, ACL, encryption, versioning, lifecycle or logging change.
- ``new-source``: a source address first seen for a user after the baseline period.
- ``dormant-account``: the first activity after a silence of ``dormant_days``.
- ``logging-gap``: silence of a system far beyond its usual inter-arrival, and audit stop events.
- ``clock-skew``: records whose time departs from their neighbours in file order by more than
  ``skew_tolerance``, or that lie in the future.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

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
    gap_min: str = "2h"
    gap_expected: float = 10.0
    gap_min_events: int = 500
    skew_tolerance: str = "5min"
    skew_window: int = 51
    #: user -> keyed fingerprint of the upper-cased family name (from the roster)
    user_family: dict[str, str] = field(default_factory=dict)
    #: keyed fingerprints of VIP and co-worker patients
    vip_patients: frozenset[str] = frozenset()
    coworker_patients: frozenset[str] = frozenset()
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

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready evidence."""
        return {"kind": self.kind, self.subject_kind: self.subject,
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


def robust_z(values: pd.Series, median: pd.Series, mad: pd.Series) -> pd.Series:
    """Iglewicz-Hoaglin modified z-score with the MAD floored at 1."""
    return 0.6745 * (values - median) / mad.clip(lower=1.0)


def _local(events: pd.DataFrame, s: Settings) -> pd.Series:
    local: pd.Series = events["time"].dt.tz_convert(s.timezone)
    return local


def _anomaly(kind: str, subject: str, subject_kind: str, rows: pd.DataFrame, message: str,
             counts: dict[str, int | float], baseline: str, high: bool = False) -> Anomaly:
    return Anomaly(kind, subject, subject_kind, rows["time"].min(), rows["time"].max(), message,
                   counts, baseline, _ids(rows), _sources(rows), high)


# -- bulk export ---------------------------------------------------------------------------------

def bulk_export(events: pd.DataFrame, s: Settings) -> list[Anomaly]:
    """Export and download volume per user-day far above the user's own days.

    Volume is distinct studies (an event without a study counts as one), distinct patients and
    bytes. The robust z is taken on studies against every active day of the user (days without
    exports count as zero), and an absolute floor must be passed as well.
    """
    ev = events[events["user"].notna()]
    if ev.empty:
        return []
    day = _local(ev, s).dt.date
    out_mask = ev["action"].isin(["export", "download"])
    study = ev["study"].fillna(ev["event_id"]).where(out_mask)
    frame = pd.DataFrame({"user": ev["user"], "day": day,
                          "bytes": ev["bytes"].fillna(0).where(out_mask, 0),
                          "objects": ev["objects"].fillna(1).where(out_mask, 0),
                          "study": study, "patient": ev["patient"].where(out_mask)})
    daily = frame.groupby(["user", "day"], observed=True).agg(
        studies=("study", "nunique"), patients=("patient", "nunique"), bytes=("bytes", "sum"),
        objects=("objects", "sum"))
    per_user = daily.groupby(level="user", observed=True)["studies"]
    median = per_user.transform("median").astype(float)
    mad = (daily["studies"] - median).abs().groupby(level="user", observed=True).transform(
        "median").astype(float)
    daily["z"] = robust_z(daily["studies"].astype(float), median, mad)
    floor = ((daily["studies"] >= s.bulk_min_studies)
             | (daily["patients"] >= s.bulk_min_patients) | (daily["bytes"] >= s.bulk_min_bytes))
    hits = daily[(daily["z"] > s.bulk_z) & floor]
    out = []
    roles = ev.groupby("user", observed=True)["role"].first()
    peer_p99 = _peer_p99(daily, roles)
    for key, row in hits.iterrows():
        user, when = _pair(key)
        rows = ev[(ev["user"] == user) & out_mask & (frame["day"] == when)]
        role = roles.get(user)
        med = float(median.loc[(user, when)])
        out.append(_anomaly(
            "bulk-export", str(user), "user", rows,
            f"{user} exported or downloaded {int(row['studies'])} studies of "
            f"{int(row['patients'])} patient(s) ({int(row['objects'])} objects) on {when} "
            f"(local), robust z {row['z']:.1f} against their own days (median {med:g} a day).",
            {"studies": int(row["studies"]), "patients": int(row["patients"]),
             "objects": int(row["objects"]), "bytes": int(row["bytes"]),
             "z": round(float(row["z"]), 1)},
            f"user's own active days: median {med:g} studies a day; peer group "
            f"{role if isinstance(role, str) else 'unknown role'} p99 "
            f"{peer_p99.get(role, float('nan')):g}", high=True))
    return out


def _peer_p99(daily: pd.DataFrame, roles: pd.Series) -> dict[Any, float]:
    role_of = daily.index.get_level_values("user").map(roles.to_dict())
    return {r: float(v) for r, v in daily["studies"].groupby(role_of).quantile(0.99).items()}


# -- off-hours -----------------------------------------------------------------------------------

def off_hours(events: pd.DataFrame, s: Settings) -> list[Anomaly]:
    """Events outside the schedule in hour-of-week bins the user almost never uses."""
    ev = events[events["user"].notna()]
    if ev.empty:
        return []
    local = _local(ev, s)
    how = (local.dt.day_of_week * 24 + local.dt.hour).to_numpy()
    outside = ~(local.dt.day_of_week.isin(s.workdays)
                & (local.dt.hour >= s.workday_start) & (local.dt.hour < s.workday_end))
    codes, users = pd.factorize(ev["user"])
    day_codes, days = pd.factorize(local.dt.date)
    total = np.bincount(codes * HOURS_PER_WEEK + how, minlength=len(users) * HOURS_PER_WEEK)
    user_total = np.bincount(codes, minlength=len(users))
    cand = outside.to_numpy()
    if not cand.any():
        return []
    frame = pd.DataFrame({"u": codes[cand], "d": day_codes[cand], "h": how[cand]})
    same_day = frame.groupby(["u", "d", "h"]).size().rename("n").reset_index()
    day_size = pd.Series(codes).groupby([codes, day_codes]).size()
    same_day["others_bin"] = total[same_day["u"] * HOURS_PER_WEEK + same_day["h"]] - same_day["n"]
    same_day["others_all"] = user_total[same_day["u"]] - day_size.loc[
        list(zip(same_day["u"], same_day["d"], strict=True))].to_numpy()
    share = same_day["others_bin"] / same_day["others_all"].clip(lower=1)
    rare = same_day[share < s.offhours_rare]
    per_day = rare.groupby(["u", "d"])["n"].sum()
    out = []
    for key, n in per_day[per_day >= s.offhours_min_events].items():
        u, d = _pair(key)
        user = users[u]
        rows = ev[(codes == u) & (day_codes == d) & cand]
        out.append(_anomaly(
            "off-hours", str(user), "user", rows,
            f"{user} was active {int(n)} time(s) outside working hours on {days[d]} (local) in "
            "hours of the week they almost never work, touching "
            f"{rows['patient'].nunique()} patient(s).",
            {"events": int(n), "patients": int(rows["patient"].nunique())},
            f"user's hour-of-week profile on other days "
            f"({int(user_total[u] - day_size.loc[(u, d)])} events); schedule "
            f"{s.workday_start:02d}:00-{s.workday_end:02d}:00 on days "
            f"{','.join(str(x) for x in s.workdays)} ({s.timezone})", high=True))
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


def failed_logins(events: pd.DataFrame, s: Settings) -> list[Anomaly]:
    """Bursts of failed logins per user, and one source failing for many users (spraying)."""
    fails = events[(events["action"] == "login") & (events["outcome"] == "failure")]
    window = np.timedelta64(pd.Timedelta(s.failed_window).value, "ns")
    out = []
    for user, rows in fails[fails["user"].notna()].sort_values("time").groupby(
            "user", observed=True):
        times = rows["time"].to_numpy(dtype="datetime64[ns]")
        for i, j in _bursts(times, window, s.failed_min):
            burst = rows.iloc[i:j + 1]
            out.append(_anomaly(
                "failed-logins", str(user), "user", burst,
                f"{len(burst)} failed logins for {user} within "
                f"{_span(burst)} from {burst['source_ip'].nunique()} source(s).",
                {"failures": len(burst), "sources": int(burst["source_ip"].nunique())},
                f"at least {s.failed_min} failures within {s.failed_window}"))
    for ip, rows in fails[fails["source_ip"].notna()].sort_values("time").groupby(
            "source_ip", observed=True):
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
    starts = events[events["action"] == "break-glass-start"].sort_values("time")
    stops = events[events["action"] == "break-glass-stop"]
    limit = pd.Timedelta(s.break_glass_max)
    windows = [(pd.Timestamp(a, tz="UTC") if pd.Timestamp(a).tzinfo is None else pd.Timestamp(a),
                pd.Timestamp(b, tz="UTC") if pd.Timestamp(b).tzinfo is None else pd.Timestamp(b))
               for a, b in s.emergencies]
    out = []
    for _, row in starts.iterrows():
        user = row["user"]
        later = stops[(stops["user"] == user) & (stops["time"] >= row["time"])
                      & (stops["time"] <= row["time"] + limit)]
        purpose = row["purpose"] if isinstance(row["purpose"], str) else None
        problems = []
        if purpose is None or purpose.upper() not in s.break_glass_purposes:
            problems.append(f"no accepted purpose of use ({purpose or 'none given'})")
        if later.empty:
            problems.append(f"not stopped within {s.break_glass_max}")
        if windows and not any(a <= row["time"] <= b for a, b in windows):
            problems.append("outside every declared emergency")
        rows = pd.concat([starts.loc[[row.name]], later.head(1)])
        during = events[(events["user"] == user) & (events["time"] >= row["time"])
                        & (events["time"] <= (later["time"].min() if not later.empty
                                              else row["time"] + limit))]
        verdict = "; ".join(problems) if problems else "justified and stopped"
        out.append(_anomaly(
            "break-glass", str(user), "user", rows,
            f"{user} used emergency access at {iso(row['time'])}: {verdict}; "
            f"{during['patient'].nunique()} patient(s) touched meanwhile.",
            {"patients": int(during["patient"].nunique()), "events": len(during),
             "stopped": int(not later.empty)},
            f"accepted purposes {', '.join(s.break_glass_purposes)}; stop expected within "
            f"{s.break_glass_max}", high=bool(problems)))
    return out


# -- snooping ------------------------------------------------------------------------------------

def snooping(events: pd.DataFrame, s: Settings) -> list[Anomaly]:
    """Reads of a same-surname, VIP or co-worker patient's record."""
    reads = events[events["action"].isin(READ_ACTIONS) & events["patient"].notna()
                   & events["user"].notna()]
    out = []
    if s.user_family:
        family = reads["user"].map(s.user_family)
        same = reads[family.notna() & (family == reads["patient_name"])]
        for key, rows in same.groupby(["user", "patient"], observed=True):
            user = _pair(key)[0]
            out.append(_anomaly(
                "snooping", str(user), "user", rows,
                f"{user} read the record of a patient who shares their family name "
                f"({len(rows)} event(s) on {rows['time'].dt.date.nunique()} day(s)).",
                {"events": len(rows), "days": int(rows["time"].dt.date.nunique())},
                "roster family names against the patients' (keyed fingerprints)", high=True))
    for label, listed in (("a VIP", s.vip_patients), ("a co-worker", s.coworker_patients)):
        if not listed:
            continue
        hit = reads[reads["patient"].isin(listed)]
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
    return out


# -- deletion, permission and storage changes ----------------------------------------------------

def mass_deletion(events: pd.DataFrame, s: Settings) -> list[Anomaly]:
    """Objects deleted per user and hour above ``delete_min``."""
    dels = events[(events["action"] == "delete") & events["user"].notna()]
    if dels.empty:
        return []
    hour = dels["time"].dt.floor("h")
    per = dels.assign(hour=hour, n=dels["objects"].fillna(1)).groupby(
        ["user", "hour"], observed=True)["n"].sum()
    out = []
    for key, n in per[per >= s.delete_min].items():
        user, when = _pair(key)
        rows = dels[(dels["user"] == user) & (hour == when)]
        out.append(_anomaly(
            "mass-deletion", str(user), "user", rows,
            f"{user} deleted {int(n)} object(s) within one hour.", {"objects": int(n)},
            f"at least {s.delete_min} objects an hour", high=True))
    return out


def _is_storage(code: pd.Series) -> pd.Series:
    return code.fillna("").str.startswith(STORAGE_CODES)


def permission_changes(events: pd.DataFrame, s: Settings) -> list[Anomaly]:
    """Successful permission and role changes (per user and day), and storage setting changes."""
    changes = events[events["action"].isin(["permission-change", "config-change"])
                     & (events["outcome"] != "failure")]
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

def new_sources(events: pd.DataFrame, s: Settings) -> list[Anomaly]:
    """A source address first seen for a user after the baseline period."""
    ev = events[events["user"].notna() & events["source_ip"].notna()
                & (events["outcome"] != "failure")]  # a failed login is not working from there
    if ev.empty:
        return []
    cutoff = ev["time"].min() + pd.Timedelta(days=s.new_source_baseline_days)
    history = ev[ev["time"] < cutoff].groupby("user", observed=True).size()
    seasoned = history[history >= s.new_source_min_history].index
    later = ev[(ev["time"] >= cutoff) & ev["user"].isin(seasoned)]
    first = ev.sort_values("time").drop_duplicates(["user", "source_ip"], keep="first")
    fresh = first[(first["time"] >= cutoff) & first["user"].isin(seasoned)]
    out = []
    for _, row in fresh.iterrows():
        rows = later[(later["user"] == row["user"]) & (later["source_ip"] == row["source_ip"])]
        usual = ev[(ev["time"] < cutoff) & (ev["user"] == row["user"])]["source_ip"].nunique()
        out.append(_anomaly(
            "new-source", str(row["user"]), "user", rows,
            f"{row['user']} worked from a source address never seen for them before "
            f"({row['source_ip']}): {len(rows)} event(s), {rows['patient'].nunique()} patient(s).",
            {"events": len(rows), "patients": int(rows["patient"].nunique())},
            f"{usual} address(es) seen for the user in the first {s.new_source_baseline_days} "
            "days"))
    return out


def dormant_accounts(events: pd.DataFrame, s: Settings) -> list[Anomaly]:
    """The first activity of an account after ``dormant_days`` of silence."""
    ev = events[events["user"].notna()].sort_values(["user", "time"])
    gaps = ev.groupby("user", observed=True)["time"].diff()
    woke_mask = gaps >= pd.Timedelta(days=s.dormant_days)
    woke = ev[woke_mask].assign(gap=gaps[woke_mask])
    out = []
    for _, row in woke.iterrows():
        user = row["user"]
        rows = ev[(ev["user"] == user) & (ev["time"] >= row["time"])
                  & (ev["time"] < row["time"] + pd.Timedelta(days=1))]
        days = int(pd.Timedelta(row["gap"]).days)
        out.append(_anomaly(
            "dormant-account", str(user), "user", rows,
            f"{user} became active again after {days} days of silence: {len(rows)} event(s) "
            f"and {rows['patient'].nunique()} patient(s) in the next 24 hours.",
            {"silent_days": int(days), "events": len(rows),
             "patients": int(rows["patient"].nunique())},
            f"silence of at least {s.dormant_days} days", high=True))
    return out


# -- logging gaps, clock skew --------------------------------------------------------------------

def logging_gaps(events: pd.DataFrame, s: Settings) -> list[Anomaly]:
    """Silence of a system where its usual rate makes silence improbable; audit stop events.

    Each system's rate is learnt per hour of the week (events per hour, averaged over the weeks
    of the log). A silence of at least ``gap_min`` in which at least ``gap_expected`` events were
    expected (Poisson: the chance of none is below e^-gap_expected) is a gap.
    """
    out = []
    ev = events[events["system"].notna()].sort_values(["system", "time"])
    sizes = ev.groupby("system", observed=True).size()
    floor = pd.Timedelta(s.gap_min)
    weeks = max((ev["time"].max() - ev["time"].min()) / pd.Timedelta(days=7), 1.0) \
        if len(ev) else 1.0
    for system in sizes[sizes >= s.gap_min_events].index:
        mine = ev[ev["system"] == system]
        times = mine["time"]
        local = times.dt.tz_convert(s.timezone)
        rate = np.bincount((local.dt.day_of_week * 24 + local.dt.hour).to_numpy(),
                           minlength=HOURS_PER_WEEK) / weeks
        diffs = times.diff()
        for pos in np.flatnonzero((diffs > floor).to_numpy()):
            start, end = times.iloc[int(pos) - 1], times.iloc[int(pos)]
            hours = pd.date_range(start.ceil("h"), end.floor("h"), freq="h",
                                  inclusive="left").tz_convert(s.timezone)
            expected = float(rate[(hours.day_of_week * 24 + hours.hour).to_numpy()].sum())
            if expected < s.gap_expected:
                continue
            rows = mine.iloc[[int(pos) - 1, int(pos)]]
            silent = (end - start).total_seconds() / 3600
            out.append(_anomaly(
                "logging-gap", str(system), "system", rows,
                f"{system} wrote no audit record for {silent:.1f} hours, when about "
                f"{expected:.0f} were expected at those hours.",
                {"silent_hours": round(silent, 1), "expected_events": round(expected, 1)},
                f"the system's own rate per hour of the week over {weeks:.1f} week(s)",
                high=True))
    stops = events[events["action"] == "audit-stop"].sort_values("time")
    starts = events[events["action"] == "audit-start"]
    for idx, row in stops.iterrows():
        system = row["system"] if isinstance(row["system"], str) else "(unknown system)"
        back = starts[(starts["system"] == row["system"]) & (starts["time"] >= row["time"])]
        rows = pd.concat([stops.loc[[idx]], back.head(1)])
        until = f"restarted at {iso(back['time'].min())}" if not back.empty else "never restarted"
        out.append(_anomaly(
            "logging-gap", str(system), "system", rows,
            f"Audit recording was stopped on {system} at {iso(row['time'])} by "
            f"{row['user'] if isinstance(row['user'], str) else 'an unknown user'}; {until}.",
            {"stopped": 1}, "every audit stop is listed", high=True))
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


def clock_skew(events: pd.DataFrame, s: Settings) -> list[Anomaly]:
    """Records out of time order in their file (beyond a tolerance), or lying in the future.

    In file order, the records outside a longest in-order run are the skewed ones: a device whose
    clock runs ahead leaves records later ones are older than; one that lags, the reverse.
    """
    tol = pd.Timedelta(s.skew_tolerance).value
    now = s.now or pd.Timestamp.now(tz="UTC")
    margin = 2 * s.skew_window
    out = []
    for source, rows in events.sort_values(["source", "line"]).groupby("source", observed=True):
        t = rows["time"].astype("datetime64[ns, UTC]").astype("int64").to_numpy()
        behind = t < np.maximum.accumulate(t) - tol
        future = (rows["time"] > now + pd.Timedelta(tol)).to_numpy()
        flagged = np.zeros(len(t), dtype=bool)
        if behind.any():
            first = int(np.argmax(behind))
            last = len(t) - 1 - int(np.argmax(behind[::-1]))
            lo = max(0, first - margin - int(np.searchsorted(
                np.maximum.accumulate(t[:first + 1]), t[first] + tol)))
            lo = max(0, min(lo, first - margin))
            hi = min(len(t), last + margin)
            flagged[lo + _out_of_order(t[lo:hi] // tol)] = True
        flagged |= future
        if not flagged.any():
            continue
        part_all = rows[flagged]
        subject_col = "device" if part_all["device"].notna().any() else "system"
        for subject, part in part_all.groupby(part_all[subject_col].fillna("(unknown)"),
                                              observed=True):
            pos = np.flatnonzero(flagged & (rows[subject_col].fillna("(unknown)")
                                            == subject).to_numpy())
            around = np.delete(t, np.flatnonzero(flagged))
            ref = np.interp(pos, np.flatnonzero(~flagged), around) if len(around) else t[pos]
            delta = float(np.median(t[pos] - ref)) / 6e10
            out.append(_anomaly(
                "clock-skew", str(subject), subject_col, part,
                f"{len(part)} record(s) from {subject} in {source} are {abs(delta):.0f} minute(s) "
                f"{'ahead of' if delta > 0 else 'behind'} the records around them"
                + (" (some lie in the future)" if bool(future[pos].any()) else "") + ".",
                {"records": len(part), "offset_minutes": round(delta, 1)},
                f"the records of the same file in order; tolerance {s.skew_tolerance}"))
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
