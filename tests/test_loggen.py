"""fixtures/loggen.py: deterministic audit activity, labels that match, normal activity that
keeps the promises the detectors are tuned against, and writers whose files parse."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import re
import sys
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from conftest import ROOT

from hipaa_audit.logs import schema

sys.path.insert(0, str(ROOT / "fixtures"))
import loggen

pytestmark = pytest.mark.fixtures

SMALL = {"days": 45, "users": 60, "patients": 800}
SYSLOG = re.compile(r'^<(\d+)>1 (\S+) (\S+) (\S+) - (\S+) \[audit@32473 eventID="([^"]+)"\] '
                    r"(<AuditMessage>.*</AuditMessage>)$")


@pytest.fixture(scope="module")
def act() -> loggen.Activity:
    return loggen.generate(**SMALL)


@pytest.fixture(scope="module")
def part(act: loggen.Activity) -> loggen.Activity:
    """Writers are per-event functions: test them on an excerpt (:func:`loggen.excerpt`)."""
    return loggen.excerpt(act)


@pytest.fixture(scope="module")
def files(part: loggen.Activity, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return loggen.write_all(tmp_path_factory.mktemp("loggen"), part)


@pytest.fixture(scope="module")
def idx(act: loggen.Activity) -> dict[str, Any]:
    """Look-ups shared by the tests."""
    zone = ZoneInfo(act.tz)
    by_id = {e["event_id"]: e for e in act.events}
    labelled = {i for lab in act.labels for i in lab["event_ids"]}
    users = {u["user"]: u for u in act.users}
    return {"zone": zone, "by_id": by_id, "labelled": labelled, "users": users,
            "start": date(2026, 9, 1)}


def local(t: datetime, zone: ZoneInfo) -> datetime:
    return t.astimezone(zone)


def normal_events(act: loggen.Activity, idx: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in act.events if e["event_id"] not in idx["labelled"]]


def max_in_window(times: list[datetime], width: timedelta) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while t - times[j] > width:
            j += 1
        best = max(best, i - j + 1)
    return best


# ---------------------------------------------------------------------------------------------
# determinism and shape


def test_deterministic(act: loggen.Activity, tmp_path: Path) -> None:
    again = loggen.generate(**SMALL)
    assert again.events == act.events
    assert again.labels == act.labels
    assert again.users == act.users and again.vip_patients == act.vip_patients
    assert again.care_teams == act.care_teams
    first = loggen.write_all(tmp_path / "a", loggen.excerpt(act))
    second = loggen.write_all(tmp_path / "b", loggen.excerpt(again))
    assert set(first) == set(loggen.FILES)
    for name, path in first.items():
        assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(
            second[name].read_bytes()).digest(), name
    # the seed decides the activity: two seeds at one (smaller) size differ from the start
    tiny = {"days": 2, "users": 10, "patients": 100, "anomalies": False}
    one, other = loggen.generate(seed=7, **tiny), loggen.generate(seed=8, **tiny)
    assert [e["event_id"] for e in other.events[:50]] != [e["event_id"] for e in one.events[:50]]


def test_event_shape(act: loggen.Activity) -> None:
    ids = [e["event_id"] for e in act.events]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                            i) for i in ids[:1000])
    keys = set(loggen.COLUMNS)
    for e in act.events:
        assert set(e) == keys
        assert e["time"].utcoffset() == timedelta(0)
        assert e["action"] in schema.ACTIONS and e["outcome"] in schema.OUTCOMES
        if e["patient"] is not None:
            assert re.fullmatch(r"MRN\d{7}", e["patient"])
            assert re.fullmatch(r"[A-Z]+\^[A-Z]+", e["patient_name"])
        if e["study"] is not None:
            assert e["study"].startswith("1.2.826.0.1.3680043.8.498.")
    assert {u["role"] for u in act.users} == set(loggen.ROLES)
    assert len(act.users) == SMALL["users"]
    assert len({e["patient"] for e in act.events if e["patient"]}) > SMALL["patients"] // 2


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        loggen.generate(days=20, users=60, patients=800)
    quiet = loggen.generate(days=10, users=20, patients=200, anomalies=False)
    assert {lab["kind"] for lab in quiet.labels} <= {"permission-change"}
    assert all("routine" in lab["note"] for lab in quiet.labels)


# ---------------------------------------------------------------------------------------------
# labels


def test_labels_refer_to_real_events(act: loggen.Activity, idx: dict[str, Any]) -> None:
    kinds = Counter(lab["kind"] for lab in act.labels)
    for kind in ("bulk-export", "off-hours", "failed-logins", "password-spray", "mass-deletion",
                 "new-source", "dormant-account", "clock-skew"):
        assert kinds[kind] == 1, kind
    assert kinds["break-glass"] == 2 and kinds["snooping"] == 2 and kinds["logging-gap"] == 2
    assert kinds["permission-change"] >= 2
    seen: set[str] = set()
    for lab in act.labels:
        assert set(lab) == {"kind", "user", "source_ip", "system", "device", "start", "end",
                            "event_ids", "note", "formats"}
        assert lab["event_ids"] and not seen & set(lab["event_ids"])
        seen |= set(lab["event_ids"])
        evs = [idx["by_id"][i] for i in lab["event_ids"]]
        start, end = datetime.fromisoformat(lab["start"]), datetime.fromisoformat(lab["end"])
        assert all(start <= e["time"] <= end for e in evs), lab["kind"]
        assert min(e["time"] for e in evs) == start and max(e["time"] for e in evs) == end
        if lab["user"] is not None:
            assert {e["user"] for e in evs} == {lab["user"]}, lab["kind"]
        if lab["kind"] not in ("permission-change", "logging-gap", "clock-skew"):
            # injected after the 21-day baseline
            assert (local(start, idx["zone"]).date() - idx["start"]).days >= 21, lab["kind"]


def labels_of(act: loggen.Activity, kind: str) -> list[dict[str, Any]]:
    return [lab for lab in act.labels if lab["kind"] == kind]


def events_of(lab: dict[str, Any], idx: dict[str, Any]) -> list[dict[str, Any]]:
    return [idx["by_id"][i] for i in lab["event_ids"]]


def test_label_bulk_export(act: loggen.Activity, idx: dict[str, Any]) -> None:
    (lab,) = labels_of(act, "bulk-export")
    evs = events_of(lab, idx)
    assert {e["action"] for e in evs} == {"export"}
    assert len({e["study"] for e in evs}) >= 60 and len({e["patient"] for e in evs}) >= 40
    assert evs[-1]["time"] - evs[0]["time"] <= timedelta(hours=2)
    hour = timedelta(hours=1)
    assert max(len({x["patient"] for x in evs if timedelta(0) <= x["time"] - e["time"] <= hour})
               for e in evs) >= 20
    day = local(evs[0]["time"], idx["zone"]).date()
    others = [e for e in normal_events(act, idx) if e["user"] == lab["user"]
              and e["action"] == "export" and local(e["time"], idx["zone"]).date() == day]
    assert not others


def test_label_off_hours(act: loggen.Activity, idx: dict[str, Any]) -> None:
    (lab,) = labels_of(act, "off-hours")
    evs = events_of(lab, idx)
    user = idx["users"][lab["user"]]
    assert user["shift"] == "day" and user["role"] == "clerk"
    for e in evs:
        t = local(e["time"], idx["zone"])
        assert t.weekday() == 6 and 1 <= t.hour < 3
    assert len({e["patient"] for e in evs if e["action"] == "view"}) >= 25


def test_label_failed_logins_and_spray(act: loggen.Activity, idx: dict[str, Any]) -> None:
    (lab,) = labels_of(act, "failed-logins")
    evs = events_of(lab, idx)
    fails = [e for e in evs if e["outcome"] == "failure"]
    assert len(fails) >= 12 and {e["action"] for e in evs} == {"login"}
    assert fails[-1]["time"] - fails[0]["time"] <= timedelta(minutes=8)
    assert {e["source_ip"] for e in evs} == {lab["source_ip"]}
    assert evs[-1]["outcome"] == "success" and evs[-1]["time"] > fails[-1]["time"]
    (spray,) = labels_of(act, "password-spray")
    evs = events_of(spray, idx)
    assert {(e["action"], e["outcome"]) for e in evs} == {("login", "failure")}
    assert {e["source_ip"] for e in evs} == {spray["source_ip"]}
    assert not spray["source_ip"].startswith("10.20.")
    assert len({e["user"] for e in evs}) >= 15
    assert evs[-1]["time"] - evs[0]["time"] <= timedelta(minutes=10)


def test_label_break_glass(act: loggen.Activity, idx: dict[str, Any]) -> None:
    labs = labels_of(act, "break-glass")
    ok = next(lab for lab in labs if lab["note"].startswith("justified"))
    bad = next(lab for lab in labs if lab["note"].startswith("unjustified"))
    start, stop = events_of(ok, idx)
    assert (start["action"], stop["action"]) == ("break-glass-start", "break-glass-stop")
    assert start["purpose"] == "ETREAT" and stop["time"] - start["time"] == timedelta(minutes=40)
    (start,) = events_of(bad, idx)
    assert start["action"] == "break-glass-start" and start["purpose"] is None
    assert not [e for e in act.events if e["user"] == bad["user"]
                and e["action"] == "break-glass-stop"]
    # no other break-glass anywhere
    assert sum(e["action"].startswith("break-glass") for e in act.events) == 3


def test_label_snooping(act: loggen.Activity, idx: dict[str, Any]) -> None:
    surname = next(lab for lab in labels_of(act, "snooping") if "same-surname" in lab["note"])
    evs = events_of(surname, idx)
    family = idx["users"][surname["user"]]["family"].upper()
    assert {e["patient_name"].split("^")[0] for e in evs} == {family}
    assert len({local(e["time"], idx["zone"]).date() for e in evs
                if e["action"] == "view"}) == 2
    vip = next(lab for lab in labels_of(act, "snooping") if "VIP" in lab["note"])
    evs = events_of(vip, idx)
    (patient,) = {e["patient"] for e in evs}
    assert patient in act.vip_patients
    assert vip["user"] not in act.care_teams[patient]
    assert any(e["action"] == "view" for e in evs)


def test_label_mass_deletion_and_permission(act: loggen.Activity, idx: dict[str, Any]) -> None:
    (lab,) = labels_of(act, "mass-deletion")
    evs = events_of(lab, idx)
    assert len(evs) >= 150 and {e["action"] for e in evs} == {"delete"}
    assert len({e["study"] for e in evs}) >= 150
    assert evs[-1]["time"] - evs[0]["time"] <= timedelta(hours=1)
    selfgrant = [lab for lab in labels_of(act, "permission-change") if "self-grant" in lab["note"]]
    assert len(selfgrant) == 1
    (e,) = events_of(selfgrant[0], idx)
    assert e["action"] == "permission-change" and e["role"] == "clerk"
    assert e["target"].startswith(e["user"] + ":")
    for lab in labels_of(act, "permission-change"):
        (e,) = events_of(lab, idx)
        assert e["action"] in ("permission-change", "config-change")
        if lab is not selfgrant[0]:
            assert e["role"] == "it-admin"
    changes = [e for e in act.events if e["action"] in ("permission-change", "config-change")]
    assert len(changes) == len(labels_of(act, "permission-change"))


def test_label_new_source_and_dormant(act: loggen.Activity, idx: dict[str, Any]) -> None:
    (lab,) = labels_of(act, "new-source")
    evs = events_of(lab, idx)
    assert {e["source_ip"] for e in evs} == {lab["source_ip"]}
    assert not lab["source_ip"].startswith("10.20.")
    assert len({local(e["time"], idx["zone"]).date() for e in evs}) == 1
    assert evs[0]["action"] == "login" and evs[-1]["action"] == "logout"
    rest = [e for e in normal_events(act, idx) if e["user"] == lab["user"]]
    assert len({e["source_ip"] for e in rest}) == 1 and lab["source_ip"] not in {
        e["source_ip"] for e in rest}
    (lab,) = labels_of(act, "dormant-account")
    evs = events_of(lab, idx)
    before = [e for e in act.events if e["user"] == lab["user"] and e["time"] < evs[0]["time"]]
    assert before and evs[0]["time"] - max(e["time"] for e in before) >= timedelta(days=30)
    assert all((local(e["time"], idx["zone"]).date() - idx["start"]).days < 7 for e in before)
    assert len({e["patient"] for e in evs if e["action"] == "view"}) >= 10
    assert {e["user"] for e in act.events if e["time"] > evs[0]["time"]
            and e["user"] == lab["user"]} <= {lab["user"]}


def test_label_logging_gaps(act: loggen.Activity, idx: dict[str, Any]) -> None:
    outage = next(lab for lab in labels_of(act, "logging-gap") if lab["user"] is None)
    before, after = events_of(outage, idx)
    assert before["system"] == after["system"] == outage["system"] == "PACS-A"
    assert after["time"] - before["time"] >= timedelta(hours=9)
    assert not [e for e in act.events if e["system"] == "PACS-A"
                and before["time"] < e["time"] < after["time"]]
    audit = next(lab for lab in labels_of(act, "logging-gap") if lab["user"] is not None)
    stop, start = events_of(audit, idx)
    assert (stop["action"], start["action"]) == ("audit-stop", "audit-start")
    assert start["time"] - stop["time"] == timedelta(hours=3)
    assert stop["system"] == start["system"] == audit["system"] != outage["system"]
    assert not [e for e in act.events if e["system"] == audit["system"]
                and stop["time"] < e["time"] < start["time"]]


def test_label_clock_skew(act: loggen.Activity, idx: dict[str, Any]) -> None:
    (lab,) = labels_of(act, "clock-skew")
    ids = set(lab["event_ids"])
    assert len(ids) == 30
    pos = [i for i, e in enumerate(act.events) if e["event_id"] in ids]
    device_pos = [i for i, e in enumerate(act.events) if e["device"] == lab["device"]]
    k = device_pos.index(pos[0])
    assert device_pos[k:k + 30] == pos  # consecutive records of that device
    for i in pos:
        # the records around it (in file order) bracket its true time: recorded = true + 2 h
        prev = next(act.events[j] for j in range(i - 1, -1, -1)
                    if act.events[j]["event_id"] not in ids)
        after = next(act.events[j] for j in range(i + 1, len(act.events))
                     if act.events[j]["event_id"] not in ids)
        t = act.events[i]["time"]
        assert t - prev["time"] >= timedelta(hours=2)
        assert timedelta(hours=1, minutes=45) <= t - after["time"] <= timedelta(hours=2)
    # everything else is in file order
    others = [e["time"] for e in act.events if e["event_id"] not in ids]
    assert others == sorted(others)


# ---------------------------------------------------------------------------------------------
# what normal activity guarantees


def test_normal_logins(act: loggen.Activity, idx: dict[str, Any]) -> None:
    normal = normal_events(act, idx)
    fails = [e for e in normal if e["action"] == "login" and e["outcome"] == "failure"]
    by_user: dict[str, list[datetime]] = defaultdict(list)
    by_ip: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in fails:
        by_user[e["user"]].append(e["time"])
        by_ip[e["source_ip"]].append(e)
    ten = timedelta(minutes=10)
    assert all(max_in_window(ts, ten) <= 1 for ts in by_user.values())
    assert all(max_in_window([e["time"] for e in es], ten) <= 2 for es in by_ip.values())
    for es in by_ip.values():
        for e in es:
            near = {x["user"] for x in es if abs(x["time"] - e["time"]) <= ten}
            assert len(near) < 3
    weeks = SMALL["days"] / 7
    assert all(len(ts) < weeks for ts in by_user.values())
    # every failure is followed by that user's successful login within two minutes
    logins = defaultdict(list)
    for e in normal:
        if e["action"] == "login" and e["outcome"] == "success":
            logins[e["user"]].append(e["time"])
    for e in fails:
        assert any(timedelta(0) < t - e["time"] <= timedelta(minutes=2)
                   for t in logins[e["user"]])


def test_normal_no_same_surname_or_self(act: loggen.Activity, idx: dict[str, Any]) -> None:
    fam = {u: info["family"].upper() for u, info in idx["users"].items()}
    shared = {f.upper() for f in loggen.SHARED_SURNAMES}
    staff_with_shared = {u for u, f in fam.items() if f in shared}
    assert len(staff_with_shared) >= 2
    for e in normal_events(act, idx):
        if e["patient_name"]:
            assert e["patient_name"].split("^")[0] != fam[e["user"]], e


def test_normal_special_patients(act: loggen.Activity, idx: dict[str, Any]) -> None:
    special = set(act.vip_patients) | set(act.coworker_patients)
    assert len(act.vip_patients) >= 5 and len(act.coworker_patients) >= 2
    assert set(act.care_teams) == special
    first: dict[tuple[str, str], date] = {}
    for e in normal_events(act, idx):
        if e["patient"] in special:
            assert e["user"] in act.care_teams[e["patient"]], e
            first.setdefault((e["user"], e["patient"]), local(e["time"], idx["zone"]).date())
    assert first and all((d - idx["start"]).days < 7 for d in first.values())
    # co-worker patients carry a user's own name
    names = {f"{u['family'].upper()}^{u['given'].upper()}" for u in act.users}
    cw = {e["patient"]: e["patient_name"] for e in act.events if e["patient"] in
          set(act.coworker_patients)}
    assert cw and all(n in names for n in cw.values())


def test_normal_volumes(act: loggen.Activity, idx: dict[str, Any]) -> None:
    zone = idx["zone"]
    per_day: Counter[tuple[str, str, date]] = Counter()
    per_hour: dict[tuple[str, datetime], set[str]] = defaultdict(set)
    for e in normal_events(act, idx):
        t = local(e["time"], zone)
        if e["action"] in ("export", "download", "delete"):
            # calendar days, local and UTC
            per_day[(e["user"], e["action"], t.date())] += 1
            per_day[(e["user"], e["action"] + "-utc", e["time"].date())] += 1
        if e["action"] == "export":
            assert e["target"] == loggen.EXPORT_DESTINATION
        if e["action"] == "delete":
            assert e["role"] == "technologist"
        if e["patient"] and e["role"] != "service":
            per_hour[(e["user"], e["time"].replace(minute=0, second=0, microsecond=0))].add(
                e["patient"])
    for action, cap in (("export", 2), ("download", 3), ("delete", 3)):
        assert max(n for (_, a, _), n in per_day.items() if a == action) <= cap
        assert max(n for (_, a, _), n in per_day.items() if a == action + "-utc") <= cap
    assert max(len(s) for s in per_hour.values()) < 20
    # radiologists do 60-120 events a shift
    rad = Counter((e["user"], local(e["time"], zone).date()) for e in act.events
                  if e["role"] == "radiologist" and idx["users"][e["user"]]["shift"] == "day")
    assert 60 <= sorted(rad.values())[len(rad) // 2] <= 125


def test_normal_shift_hours(act: loggen.Activity, idx: dict[str, Any]) -> None:
    zone = idx["zone"]
    for e in normal_events(act, idx):
        shift = idx["users"][e["user"]]["shift"]
        t = local(e["time"], zone)
        if shift == "day":
            assert t.weekday() < 5 and 7 <= t.hour < 19, e
        elif shift == "weekend":
            assert t.weekday() >= 5 and 7 <= t.hour < 19, e
        elif shift == "night":
            assert t.hour >= 19 or t.hour < 7, e


def test_normal_sources_and_activity(act: loggen.Activity, idx: dict[str, Any]) -> None:
    zone = idx["zone"]
    early: dict[str, set[tuple[str, str]]] = defaultdict(set)
    later: dict[str, set[tuple[str, str]]] = defaultdict(set)
    times: dict[str, list[datetime]] = defaultdict(list)
    for e in normal_events(act, idx):
        day = (local(e["time"], zone).date() - idx["start"]).days
        (early if day < 7 else later)[e["user"]].add((e["source_ip"], e["device"]))
        times[e["user"]].append(e["time"])
        assert e["source_ip"].startswith("10.20.")
    for user, pairs in later.items():
        assert pairs <= early[user], user
    dormant = labels_of(act, "dormant-account")[0]["user"]
    for user, ts in times.items():
        gaps = [b - a for a, b in pairwise(ts)]
        if user != dormant and gaps:
            assert max(gaps) < timedelta(days=14), user


def test_normal_steady_streams(act: loggen.Activity, idx: dict[str, Any]) -> None:
    skew = set(labels_of(act, "clock-skew")[0]["event_ids"])
    windows = [(lab["system"], datetime.fromisoformat(lab["start"]),
                datetime.fromisoformat(lab["end"])) for lab in labels_of(act, "logging-gap")]
    for system in loggen.SYSTEMS:
        ts = sorted(e["time"] for e in act.events if e["system"] == system
                    and e["event_id"] not in skew)
        assert ts[0] - act.events[0]["time"] < timedelta(minutes=10)
        big = [(a, b) for a, b in pairwise(ts)
               if b - a > timedelta(minutes=30)]
        assert len(big) == 1, system
        a, b = big[0]
        assert (system, a, b) in windows


# ---------------------------------------------------------------------------------------------
# writers


def test_atna_lines(part: loggen.Activity, files: dict[str, Path]) -> None:
    lines = files["atna"].read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(part.events)
    counts: Counter[str] = Counter()
    for line, e in zip(lines, part.events, strict=True):
        m = SYSLOG.match(line)
        assert m, line[:200]
        assert m.group(5) == "DICOM+RFC3881" and m.group(6) == e["event_id"]
        root = ET.fromstring(m.group(7))
        ident = root.find("EventIdentification")
        assert ident is not None
        assert datetime.fromisoformat(ident.get("EventDateTime", "")) == e["time"]
        assert ident.get("EventOutcomeIndicator") == ("0" if e["outcome"] == "success" else "4")
        code = ident.find("EventID")
        assert code is not None
        counts[code.get("csd-code", "")] += 1
        source = root.find("AuditSourceIdentification")
        assert source is not None and source.get("AuditSourceID") == e["system"]
        requestor = root.find("ActiveParticipant[@UserIsRequestor='true']")
        assert requestor is not None and requestor.get("UserID") == e["user"]
        assert requestor.get("NetworkAccessPointID") == e["source_ip"]
        if e["patient"]:
            pat = root.find("ParticipantObjectIdentification[@ParticipantObjectTypeCodeRole='1']")
            assert pat is not None and pat.get("ParticipantObjectID") == e["patient"]
            assert pat.findtext("ParticipantObjectName") == e["patient_name"]
        if e["study"]:
            st = root.find("ParticipantObjectIdentification[@ParticipantObjectTypeCode='2']"
                           "/ParticipantObjectIDTypeCode[@csd-code='110180']/..")
            assert st is not None and st.get("ParticipantObjectID") == e["study"]
        if e["device"]:
            dev = root.find("ActiveParticipant/RoleIDCode[@csd-code='110150']/..")
            assert dev is not None and dev.get("UserID") == e["device"]
        if e["action"].startswith("break-glass") and e["purpose"]:
            pou = ident.find("PurposeOfUse")
            assert pou is not None and pou.get("csd-code") == "ETREAT"
    for code in ("110103", "110106", "110112", "110105", "110114", "110113", "110100"):
        assert counts[code] > 0, code


def test_atna_variants(part: loggen.Activity, tmp_path: Path) -> None:
    bare = loggen.write_atna(part, tmp_path / "bare.xml", syslog=False)
    lines = bare.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(part.events)
    for line in lines:
        assert line.startswith("<AuditMessage>")
        ET.fromstring(line)
    legacy = loggen.write_atna(part, tmp_path / "legacy.log", spelling="rfc3881")
    for line, e in zip(legacy.read_text(encoding="utf-8").splitlines(), part.events,
                       strict=True):
        m = SYSLOG.match(line)
        assert m and m.group(5) == "IHE+RFC3881"
        root = ET.fromstring(m.group(7))
        code = root.find("EventIdentification/EventID")
        assert code is not None and code.get("code") and code.get("displayName")
        assert "csd-code" not in m.group(7)
        if e["patient"]:
            assert root.find("ParticipantObjectIdentification/ParticipantObjectIDTypeCode"
                             "[@code='2']") is not None
    with pytest.raises(ValueError):
        loggen.write_atna(part, tmp_path / "x", spelling="klingon")


def test_fhir(part: loggen.Activity, files: dict[str, Path]) -> None:
    lines = files["fhir"].read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(part.events)
    for line, e in zip(lines, part.events, strict=True):
        res = json.loads(line)
        assert res["resourceType"] == "AuditEvent" and res["id"] == e["event_id"]
        assert datetime.fromisoformat(res["recorded"]) == e["time"]
        assert res["agent"][0]["who"]["identifier"]["value"] == e["user"]
        assert res["agent"][0]["requestor"] is True
        assert res["source"]["observer"]["display"] == e["system"]
        if e["patient"]:
            ent = next(x for x in res["entity"] if x["role"]["code"] == "1")
            assert ent["what"]["reference"] == f"Patient/{e['patient']}"
        if e["action"] == "break-glass-start":
            codes = [c["coding"][0]["code"] for c in res["purposeOfEvent"]]
            assert codes == (["BTG", "ETREAT"] if e["purpose"] else ["BTG"])


def test_cloudtrail(part: loggen.Activity, files: dict[str, Path]) -> None:
    with gzip.open(files["cloudtrail"], "rt", encoding="utf-8") as f:
        records = json.load(f)["Records"]
    wanted = [e for e in part.events if e["action"] in loggen.CLOUDTRAIL_ACTIONS]
    assert [r["eventID"] for r in records] == [e["event_id"] for e in wanted]
    names = Counter(r["eventName"] for r in records)
    assert names["ConsoleLogin"] == sum(e["action"] == "login" for e in part.events)
    assert names["DeleteObject"] == sum(e["action"] == "delete" for e in part.events)
    for name, action in (("GetObject", "export"), ("PutObject", "import"),
                         ("PutBucketPolicy", "permission-change"),
                         ("PutBucketVersioning", "config-change"), ("StopLogging", "audit-stop"),
                         ("StartLogging", "audit-start")):
        assert names[name] == sum(e["action"] == action for e in wanted) + (
            sum(e["action"] == "download" for e in wanted) if name == "GetObject" else 0), name
    for r, e in zip(records, wanted, strict=True):
        assert r["userIdentity"]["userName"] == e["user"]
        assert r["sourceIPAddress"] == e["source_ip"]
        assert r["eventTime"] == e["time"].strftime("%Y-%m-%dT%H:%M:%SZ")
        if r["eventName"] == "GetObject":
            assert r["additionalEventData"]["bytesTransferredOut"] == e["bytes"] > 0
            assert r["requestParameters"]["key"].startswith(f"studies/{e['study']}/")
        if r["eventName"] == "ConsoleLogin":
            want = "Success" if e["outcome"] == "success" else "Failure"
            assert r["responseElements"]["ConsoleLogin"] == want
        assert "MRN" not in json.dumps(r)
    for lab in part.labels:
        if "cloudtrail" in lab["formats"]:
            assert set(lab["event_ids"]) & {r["eventID"] for r in records}, lab["kind"]


def test_csv_and_jsonl(part: loggen.Activity, files: dict[str, Path]) -> None:
    with files["csv"].open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == loggen.COLUMNS
        rows = list(reader)
    assert len(rows) == len(part.events)
    assert [r["event_id"] for r in rows[:100]] == [e["event_id"] for e in part.events[:100]]
    frame = schema.normalise(pd.read_csv(files["csv"], dtype=str, keep_default_na=False,
                                         na_values=[""]))
    assert len(frame) == len(part.events)
    assert frame["time"].iloc[0] == pd.Timestamp(part.events[0]["time"])
    assert frame["objects"].notna().sum() == sum(e["objects"] is not None for e in part.events)
    lines = files["jsonl"].read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(part.events)
    for line, e in zip(lines[:2000], part.events, strict=False):
        row = json.loads(line)
        assert tuple(row) == loggen.COLUMNS and row["event_id"] == e["event_id"]
        assert datetime.fromisoformat(row["time"]) == e["time"]


def test_roster_vip_labels(part: loggen.Activity, files: dict[str, Path]) -> None:
    with files["roster"].open(encoding="utf-8", newline="") as f:
        roster = list(csv.DictReader(f))
    assert [r["user"] for r in roster] == [u["user"] for u in part.users]
    assert set(roster[0]) == {"user", "given", "family", "role", "active"}
    assert files["vip"].read_text(encoding="utf-8").split() == part.vip_patients
    assert json.loads(files["labels"].read_text(encoding="utf-8")) == part.labels
    assert files["coworkers"].read_text(encoding="utf-8").split() == part.coworker_patients


def test_main(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the smallest activity that still holds every anomaly
    assert loggen.main([str(tmp_path), "--days", "40", "--users", "40", "--patients", "400",
                        "--seed", "3", "--formats", "csv,cloudtrail"]) == 0
    assert "labels" in capsys.readouterr().out
    assert {p.name for p in tmp_path.iterdir()} == set(loggen.FILES.values()) - {
        loggen.FILES[k] for k in ("atna", "fhir", "jsonl")}
    labels = json.loads((tmp_path / loggen.FILES["labels"]).read_text(encoding="utf-8"))
    assert {lab["kind"] for lab in labels} == {
        "bulk-export", "off-hours", "failed-logins", "password-spray", "break-glass",
        "snooping", "mass-deletion", "permission-change", "new-source", "dormant-account",
        "logging-gap", "clock-skew"}
    with pytest.raises(ValueError):
        loggen.write_all(tmp_path, loggen.generate(days=5, users=12, patients=100,
                                                   anomalies=False), formats=["xml"])


# ---------------------------------------------------------------------------------------------
# bulk


def test_bulk_events() -> None:
    frame = loggen.bulk_events(200_000, seed=5)
    assert tuple(frame.columns) == schema.COLUMNS and len(frame) == 200_000
    assert {c: str(t) for c, t in frame.dtypes.items()} == {
        c: str(t) for c, t in schema.dtypes().items()}
    assert frame["event_id"].is_unique
    assert frame["time"].is_monotonic_increasing
    assert set(frame["action"].unique()) <= set(schema.ACTIONS)
    assert frame["patient"].dropna().str.fullmatch(r"[0-9a-f]{16}").all()
    assert frame.loc[frame["action"] == "login", "patient"].isna().all()
    assert frame.loc[frame["action"] == "view", "patient"].notna().all()
    assert 0.005 < (frame["outcome"] == "failure").mean() < 0.05
    kinds = {lab["kind"]: lab for lab in frame.attrs["labels"]}
    assert set(kinds) == {"bulk-export", "failed-logins", "password-spray", "mass-deletion"}
    ids = frame.set_index("event_id")
    assert len(ids.loc[kinds["bulk-export"]["event_ids"]].query("action == 'export'")) == 80
    assert len(ids.loc[kinds["mass-deletion"]["event_ids"]].query("action == 'delete'")) == 150
    spray = ids.loc[kinds["password-spray"]["event_ids"]]
    assert spray["user"].nunique() == 15 and (spray["outcome"] == "failure").all()
    again = loggen.bulk_events(20_000, seed=5)
    pd.testing.assert_frame_equal(again, loggen.bulk_events(20_000, seed=5))
