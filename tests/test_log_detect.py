"""Each detector on a small hand-built table: it fires on its pattern and stays quiet otherwise."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from hipaa_audit.logs import detect, schema

pytestmark = pytest.mark.unit

T0 = pd.Timestamp("2026-09-01T08:00:00Z")


def table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows as a log would hold them: in time order, unless a row names its own line."""
    ordered = sorted(range(len(rows)), key=lambda i: rows[i]["time"])
    for n, i in enumerate(ordered):
        row = rows[i]
        row.setdefault("event_id", f"e{i}")
        row.setdefault("source", "log.jsonl")
        row.setdefault("line", n + 1)
        row.setdefault("outcome", "success")
    return schema.normalise(pd.DataFrame(rows))


def routine(days: int = 30, users: tuple[str, ...] = ("ann", "bob", "cat")) -> list[dict[str, Any]]:
    """Weekday office-hour views from each user's own address, one export a day."""
    rows: list[dict[str, Any]] = []
    for d in range(days):
        day = T0 + pd.Timedelta(days=d)
        if day.day_of_week >= 5:
            continue
        for k, user in enumerate(users):
            for h in range(8):
                rows.append({"time": day + pd.Timedelta(hours=h, minutes=k), "user": user,
                             "action": "view", "patient": f"p{(d * 8 + h) % 50}",
                             "source_ip": f"10.0.0.{k + 1}", "system": "PACS",
                             "device": f"ws{k}"})
            rows.append({"time": day + pd.Timedelta(hours=3, minutes=30 + k), "user": user,
                         "action": "export", "objects": 1, "patient": f"p{d % 50}",
                         "source_ip": f"10.0.0.{k + 1}", "system": "PACS", "device": f"ws{k}"})
    return rows


def night_views(user: str, source_ip: str, device: str, count: int,
                system: str = "PACS") -> list[dict[str, Any]]:
    """``user`` views ``count`` patients five minutes apart from ``source_ip`` and ``device``.

    From 02:00 on day 22, after most of the routine's baseline.
    """
    start = T0 + pd.Timedelta(days=22, hours=2)
    return [{"time": start + pd.Timedelta(minutes=5 * m), "user": user, "action": "view",
             "patient": f"q{m}", "source_ip": source_ip, "system": system, "device": device}
            for m in range(count)]


def dan_views(day: int, patient: str) -> list[dict[str, Any]]:
    """dan (outside the routine) views ``patient`` three times an hour apart on ``day``."""
    return [{"time": T0 + pd.Timedelta(days=day, hours=h), "user": "dan", "action": "view",
             "patient": patient, "system": "PACS"} for h in range(3)]


def kinds(rows: list[dict[str, Any]], **settings: Any) -> dict[str, list[detect.Anomaly]]:
    found: dict[str, list[detect.Anomaly]] = {}
    for a in detect.run_all(table(rows), detect.Settings(**settings)):
        found.setdefault(a.kind, []).append(a)
    return found


def test_routine_is_quiet() -> None:
    assert kinds(routine()) == {}


def test_bulk_export() -> None:
    rows = routine()
    day = T0 + pd.Timedelta(days=22)
    rows += [{"time": day + pd.Timedelta(minutes=m), "user": "bob", "action": "export",
              "objects": 3, "patient": f"x{m}", "source_ip": "10.0.0.2", "system": "PACS",
              "device": "ws1"} for m in range(40)]
    [hit] = kinds(rows)["bulk-export"]
    assert hit.subject == "bob" and hit.counts["patients"] >= 40 and hit.counts["studies"] >= 40
    assert "median" in hit.baseline and hit.event_ids


def test_off_hours_and_new_source() -> None:
    rows = routine()
    sunday = pd.Timestamp("2026-09-27T02:00:00Z")
    rows += [{"time": sunday + pd.Timedelta(minutes=3 * m), "user": "cat", "action": "view",
              "patient": f"q{m}", "source_ip": "172.16.9.9", "system": "PACS", "device": "ws2"}
             for m in range(15)]
    found = kinds(rows)
    [off] = found["off-hours"]
    assert off.subject == "cat" and off.counts["events"] == 15
    [new] = found["new-source"]
    assert new.subject == "cat" and "172.16.9.9" in new.message


def test_failed_logins_and_spray() -> None:
    rows = routine()
    t = T0 + pd.Timedelta(days=10, hours=1)
    rows += [{"time": t + pd.Timedelta(seconds=30 * i), "user": "ann", "action": "login",
              "outcome": "failure", "source_ip": "10.0.0.1"} for i in range(7)]
    rows += [{"time": t + pd.Timedelta(days=1, seconds=20 * i), "user": f"u{i}",
              "action": "login", "outcome": "failure", "source_ip": "203.0.113.5"}
             for i in range(8)]
    found = kinds(rows)
    [burst] = found["failed-logins"]
    assert burst.subject == "ann" and burst.counts["failures"] == 7
    [spray] = found["password-spray"]
    assert spray.subject == "203.0.113.5" and spray.counts["users"] == 8


def test_break_glass_snooping_deletion_permissions() -> None:
    rows = routine()
    t = T0 + pd.Timedelta(days=15, hours=2)
    rows += [{"time": t, "user": "ann", "action": "break-glass-start", "purpose": "ETREAT"},
             {"time": t + pd.Timedelta(minutes=30), "user": "ann", "action": "break-glass-stop"},
             {"time": t + pd.Timedelta(days=1), "user": "bob", "action": "break-glass-start"}]
    rows += [{"time": t + pd.Timedelta(hours=1), "user": "cat", "action": "view",
              "patient": "p7", "patient_name": "FP-SMITH"}]
    rows += [{"time": t + pd.Timedelta(minutes=m % 50), "user": "bob", "action": "delete",
              "objects": 5} for m in range(30)]
    rows += [{"time": t, "user": "bob", "action": "permission-change", "code": "110136"},
             {"time": t, "user": "ann", "action": "config-change", "code": "PutBucketPolicy",
              "target": "vna"}]
    found = kinds(rows, user_family={"cat": "FP-SMITH"})
    glass = {a.subject: a for a in found["break-glass"]}
    assert not glass["ann"].high and glass["bob"].high
    assert "not stopped" in glass["bob"].message and "no accepted purpose" in glass["bob"].message
    [snoop] = found["snooping"]
    assert snoop.subject == "cat"
    [mass] = found["mass-deletion"]
    assert mass.counts["objects"] == 150
    assert [a.subject for a in found["permission-change"]] == ["bob"]
    [storage] = found["storage-change"]
    assert storage.high and "vna" in storage.message


def test_dormant_gap_and_skew() -> None:
    rows = routine(days=60, users=("ann", "bob"))
    rows += dan_views(1, "p1")
    rows += dan_views(50, "p2")
    # a steady stream for six weeks (its rate per hour of the week is known), silent 10 hours
    stream = [{"time": T0 + pd.Timedelta(minutes=10 * i), "system": "ROUTER", "action": "other",
               "source": "router.log", "line": i + 1} for i in range(6048)
              if not 3000 <= i < 3060]
    rows += stream
    rows.append({"time": T0 + pd.Timedelta(days=3), "user": "ann", "action": "audit-stop",
                 "system": "PACS"})
    skewed = [{"time": T0 + pd.Timedelta(minutes=5 * i + 120), "system": "MOD", "device": "ct1",
               "action": "other", "source": "mod.log", "line": i + 1} for i in range(200)]
    for row in skewed[:100] + skewed[130:]:
        row["time"] -= pd.Timedelta(minutes=120)
    rows += skewed
    found = kinds(rows, now=pd.Timestamp("2026-12-01T00:00:00Z"))
    [dormant] = found["dormant-account"]
    assert dormant.subject == "dan" and dormant.counts["silent_days"] >= 30
    gaps = {a.subject: a for a in found["logging-gap"]}
    assert gaps["ROUTER"].counts["silent_hours"] == 10.2
    assert gaps["ROUTER"].counts["expected_events"] > 10
    assert "stopped" in gaps["PACS"].message and "never restarted" in gaps["PACS"].message
    [skew] = found["clock-skew"]
    # the first records of the stretch still fit the order of what follows: most are named
    assert skew.subject == "ct1" and 20 <= skew.counts["records"] <= 30
    assert skew.counts["offset_minutes"] > 30


def test_new_device() -> None:
    rows = routine() + night_views("cat", "10.0.0.3", "ws9", 6)
    [new] = kinds(rows)["new-source"]
    assert new.subject == "cat" and "device" in new.message and "ws9" in new.message
    assert new.counts["events"] == 6 and dict(new.detail) == {"device": "ws9"}
    assert new.variant == "device" and "device(s) seen" in new.baseline


def test_old_device_from_a_new_address_is_a_new_address() -> None:
    rows = routine() + night_views("bob", "172.16.0.5", "ws1", 6)
    [new] = kinds(rows)["new-source"]
    assert new.subject == "bob" and "source address" in new.message
    assert dict(new.detail) == {"source_ip": "172.16.0.5"} and not new.variant


def test_new_address_and_new_device_are_two_findings() -> None:
    rows = routine() + night_views("bob", "172.16.0.5", "laptop", 3)
    found = kinds(rows)["new-source"]
    assert [dict(a.detail) for a in found] == [{"source_ip": "172.16.0.5"}, {"device": "laptop"}]


def test_failed_login_from_a_new_device_is_not_a_new_source() -> None:
    rows = routine()
    t = T0 + pd.Timedelta(days=22, hours=2)
    rows += [{"time": t + pd.Timedelta(minutes=20 * i), "user": "ann", "action": "login",
              "outcome": "failure", "source_ip": "10.0.0.1", "device": "kiosk"}
             for i in range(3)]
    assert "new-source" not in kinds(rows)


def peers(big_day_studies: int) -> list[dict[str, Any]]:
    """Three archivists: ann and cat export 60 studies every weekday, bob one, then a big day."""
    rows: list[dict[str, Any]] = []
    for d in range(30):
        day = T0 + pd.Timedelta(days=d)
        if day.day_of_week >= 5:
            continue
        for k, user in enumerate(("ann", "bob", "cat")):
            count = 1 if user == "bob" else 60
            if user == "bob" and d == 22:
                count = big_day_studies
            rows += [{"time": day + pd.Timedelta(hours=1, minutes=m, seconds=k), "user": user,
                      "role": "archivist", "action": "export", "objects": 1,
                      "patient": f"{user}{d}-{m}", "study": f"s{user}{d}-{m}",
                      "source_ip": f"10.0.0.{k + 1}", "system": "PACS"} for m in range(count)]
    return rows


def test_bulk_export_peer_group_decides() -> None:
    # 45 studies: far above bob's own days and over the floors, but below his peers' p99
    rows = peers(45)
    assert detect.bulk_export(table(rows), detect.Settings()) == []
    # without the peer group in the decision, the same day is flagged
    [hit] = detect.bulk_export(table(rows), detect.Settings(bulk_peer_quantile=0))
    assert hit.subject == "bob" and hit.counts["studies"] == 45
    assert "peer group archivist p99 60" in hit.baseline
    # above the peers' p99 it is flagged with the default
    [hit] = detect.bulk_export(table(peers(70)), detect.Settings())
    assert hit.subject == "bob" and hit.counts["studies"] == 70


def test_bulk_export_peer_group_of_a_small_role() -> None:
    # the role's p99 is that of the user's own days when nobody else holds it: still flagged
    rows = routine()
    for row in rows:
        row["role"] = "radiologist" if row["user"] == "bob" else "clerk"
    day = T0 + pd.Timedelta(days=22)
    rows += [{"time": day + pd.Timedelta(minutes=m), "user": "bob", "role": "radiologist",
              "action": "export", "objects": 3, "patient": f"x{m}", "source_ip": "10.0.0.2",
              "system": "PACS", "device": "ws1"} for m in range(40)]
    [hit] = kinds(rows)["bulk-export"]
    assert hit.subject == "bob" and "peer group radiologist p99" in hit.baseline


def test_a_device_that_is_only_the_system_is_not_a_new_device() -> None:
    # a FHIR AuditEvent naming no client machine gives its observer (the system) as the device
    rows = routine() + night_views("ann", "10.0.0.1", "PACS-B", 4, system="PACS-B")
    assert "new-source" not in kinds(rows)


def _skew_rows(source: str, fmt: str, times: list[pd.Timestamp],
               devices: list[str]) -> list[dict[str, Any]]:
    """Records of one file, in the file order given (``line`` is their position)."""
    return [{"time": t, "system": "PACS", "device": d, "action": "other", "source": source,
             "line": i + 1, "format": fmt, "event_id": f"{source}:{i}"}
            for i, (t, d) in enumerate(zip(times, devices, strict=True))]


def test_unordered_cloudtrail_file_is_not_clock_skew() -> None:
    # AWS: "events don't appear in any specific order" within a CloudTrail log file
    source = "111122223333_CloudTrail_us-east-1_20260901T0900Z_abc.json.gz"
    times = [T0 + pd.Timedelta(seconds=int(s)) for s in
             pd.Series(range(0, 3600, 10)).sample(frac=1, random_state=3)]
    rows = _skew_rows(source, "cloudtrail", times, ["aws-cli/2.15"] * len(times))
    assert detect.clock_skew(table(rows), detect.Settings(now=T0 + pd.Timedelta(days=1))) == []
    # a record later than the file's delivery time: the clock is wrong
    rows[5]["time"] = T0 + pd.Timedelta(hours=3)
    [skew] = detect.clock_skew(table(rows), detect.Settings(now=T0 + pd.Timedelta(days=1)))
    assert skew.subject_kind == "system" and skew.counts["records"] == 1
    assert "delivery time" in skew.message and skew.counts["offset_minutes"] == 120


def test_newest_first_export_is_read_backwards() -> None:
    times = [T0 + pd.Timedelta(minutes=2 * i) for i in range(600)][::-1]
    devices = ["ws1" if i % 3 else "ct1" for i in range(600)]
    rows = _skew_rows("export.csv", "csv", times, devices)
    settings = detect.Settings(now=T0 + pd.Timedelta(days=30))
    assert detect.clock_skew(table(rows), settings) == []
    # one device's clock an hour ahead: its records, and only its, are named
    for row in rows:
        if row["device"] == "ct1":
            row["time"] += pd.Timedelta(hours=1)
    found = detect.clock_skew(table(rows), settings)
    assert {a.subject for a in found} == {"ct1"}
    assert found[0].counts["offset_minutes"] > 50 and "newest first" in found[0].baseline


def test_interleaved_device_with_a_lagging_clock_is_found() -> None:
    # a syslog collector's file: a third of the records come from a modality two hours behind
    times = [T0 + pd.Timedelta(minutes=i) for i in range(900)]
    devices = ["mr1" if i % 3 == 0 else "ws1" for i in range(900)]
    rows = _skew_rows("syslog.log", "atna", times, devices)
    for row in rows:
        if row["device"] == "mr1":
            row["time"] -= pd.Timedelta(hours=2)
    found = detect.clock_skew(table(rows), detect.Settings(now=T0 + pd.Timedelta(days=30)))
    assert {a.subject for a in found} == {"mr1"}
    assert found[0].counts["offset_minutes"] < -100


def _nightly(user: str, days: int, hour: int) -> list[dict[str, Any]]:
    return [{"time": T0.normalize() + pd.Timedelta(days=d, hours=hour, minutes=m), "user": user,
             "action": "download", "system": "s3.amazonaws.com", "source_ip": "10.9.9.9"}
            for d in range(days) for m in range(0, 40, 3)]


def test_machine_identities_are_judged_against_their_own_hours() -> None:
    role = "arn:aws:iam::111122223333:role/pacs-backup"
    rows = routine() + _nightly(role, 30, 2)
    found = kinds(rows)
    assert "off-hours" not in found  # a nightly job is not off-hours work
    # the same role working at an hour it never does is
    rows += [{"time": T0.normalize() + pd.Timedelta(days=20, hours=22, minutes=m), "user": role,
              "action": "download", "system": "s3.amazonaws.com", "source_ip": "10.9.9.9"}
             for m in range(0, 45, 3)]
    [off] = kinds(rows)["off-hours"]
    assert off.subject == role and "machine identity" in off.message
    # a person of the roster doing the nightly job's work is off-hours
    person = [dict(r, user="eve") for r in _nightly("eve", 1, 2)]
    found = kinds(routine() + person, people=frozenset({"ann", "bob", "cat", "eve"}))
    assert [a.subject for a in found["off-hours"]] == ["eve"]
    # and an account the roster does not list (an integration account) has its own hours
    found = kinds(routine() + _nightly("ris-feed", 30, 2),
                  people=frozenset({"ann", "bob", "cat"}))
    assert "off-hours" not in found


def test_dormant_relative_to_a_short_period() -> None:
    rows = routine(days=30, users=("ann", "bob"))
    rows += dan_views(1, "p1")
    rows += dan_views(22, "p2")
    # silent 21 of the 30 days: dormant in this month, though under the 30 days of the setting
    [dormant] = kinds(rows)["dormant-account"]
    assert dormant.subject == "dan" and dormant.counts["silent_days"] == 20
    assert "of a period of 29 days" in dormant.baseline
    # a week's holiday is not
    rows = [r for r in rows if not (r["user"] == "dan" and r["time"] > T0 + pd.Timedelta(days=9))]
    rows += dan_views(9, "p2")
    assert "dormant-account" not in kinds(rows)
    assert detect.dormant_threshold(pd.Timedelta(days=90), detect.Settings()).days == 30
    assert detect.dormant_threshold(pd.Timedelta(days=5), detect.Settings()).days == 7


def test_cloudtrail_user_agent_is_not_a_device() -> None:
    rows = routine()
    for row in rows:
        row["format"] = "jsonl"
    later = T0 + pd.Timedelta(days=25)
    new = [{"time": later + pd.Timedelta(minutes=m), "user": "bob", "action": "view",
            "patient": "p1", "source_ip": "10.0.0.2", "system": "PACS"} for m in range(3)]
    # a new CLI version from the user's usual address: nothing new
    cli = [dict(r, device="aws-cli/2.16.0", format="cloudtrail") for r in new]
    assert "new-source" not in kinds(rows + cli)
    # a new workstation is
    [found] = kinds(rows + [dict(r, device="ws9", format="atna") for r in new])["new-source"]
    assert found.variant == "device"


def test_self_access_from_the_roster(tmp_path: Any) -> None:
    from hipaa_audit.logs.setup import roster_patients
    from hipaa_audit.redaction import Masker

    rows = routine()
    rows.append({"time": T0 + pd.Timedelta(days=9, hours=2), "user": "ann", "action": "view",
                 "patient": "p-ann", "system": "PACS", "source_ip": "10.0.0.1", "device": "ws0"})
    assert "snooping" not in kinds(rows)
    [own] = kinds(rows, user_patient={"ann": "p-ann", "bob": "p-bob"})["snooping"]
    assert own.subject == "ann" and "their own record" in own.message
    # the roster's patient_id (or mrn) column, fingerprinted as the parsers do
    masker = Masker(b"k" * 32)
    roster = tmp_path / "roster.csv"
    roster.write_text("user,family,role,patient_id\nann,Smith,clerk,MRN0001^^^HOSP\n"
                      "bob,Jones,clerk,\n")
    assert roster_patients(roster, masker) == {"ann": masker.fingerprint("MRN0001")}
    roster.write_text("user,family\nann,Smith\n")
    assert roster_patients(roster, masker) == {}


def test_relationship_snooping_from_roster_and_patient_list(tmp_path: Any) -> None:
    from hipaa_audit.logs.setup import patient_facts, roster_relations
    from hipaa_audit.redaction import Masker

    masker = Masker(b"k" * 32)
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "user,family,role,emergency_contact_id,address,department\n"
        "ann,Smith,clerk,MRN-REL^^^HOSP;MRN-REL2,\"12 Elm St., Apt 3\",Cardiology\n"
        "bob,Jones,clerk,,\"9 Oak Road\",radiology\n"
        "cat,Brown,clerk,,,\n")
    patients = tmp_path / "patients.csv"
    patients.write_text(
        "mrn,address,deceased,department\n"
        "MRN-HOME,12 ELM ST APT 3,,Oncology\n"
        "MRN-DEAD,,2026-09-15,Cardiology\n"
        "MRN-GONE,,yes,\n"
        + "".join(f"p{i},,,Cardiology;Radiology\n" for i in range(50))
        + "p-onc,,,Oncology\n")
    settings = {**roster_relations(roster, masker), **patient_facts(patients, masker)}
    assert settings["user_relatives"]["ann"] == frozenset(
        {masker.fingerprint("MRN-REL"), masker.fingerprint("MRN-REL2")})
    assert settings["user_department"] == {"ann": "CARDIOLOGY", "bob": "RADIOLOGY"}
    assert settings["patient_deceased"] == {masker.fingerprint("MRN-DEAD"): "2026-09-15",
                                           masker.fingerprint("MRN-GONE"): ""}
    # the tables hold the parsers' keyed fingerprints of the patient ids
    rows = routine()
    for row in rows:
        row["patient"] = masker.fingerprint(row["patient"])
    base = {"system": "PACS", "source_ip": "10.0.0.1", "device": "ws0", "action": "view"}
    day = T0 + pd.Timedelta(days=9, hours=2)
    quiet = kinds(rows, **settings)
    assert "snooping" not in quiet, quiet  # routine reads of patients their departments treat

    def snoops(extra: list[dict[str, Any]]) -> list[detect.Anomaly]:
        return kinds(rows + extra, **settings).get("snooping", [])

    relative = {**base, "time": day, "user": "ann", "patient": masker.fingerprint("MRN-REL2")}
    [found] = snoops([relative])
    assert found.subject == "ann" and "emergency contact" in found.message
    home = {**base, "time": day, "user": "ann", "patient": masker.fingerprint("MRN-HOME")}
    [dept, same] = sorted(snoops([home]), key=lambda a: a.message)
    assert same.subject == "ann" and "lives at their address" in same.message
    assert dept.subject == "ann" and "no department of theirs treats" in dept.message
    # a deceased patient read after death with no care relation; before death it is not
    dead = masker.fingerprint("MRN-DEAD")  # ann is in Cardiology, which treats the patient
    before = {**base, "time": T0 + pd.Timedelta(days=9), "user": "ann", "patient": dead}
    assert snoops([before]) == []
    [late] = snoops([dict(before, time=T0 + pd.Timedelta(days=20))])
    assert late.subject == "ann" and "deceased patient after the date" in late.message
    gone = {**base, "time": day, "user": "cat", "patient": masker.fingerprint("MRN-GONE")}
    [deceased] = snoops([gone])
    assert deceased.subject == "cat" and "deceased patient" in deceased.message
    # cat has no department on the roster: not judged; bob in Radiology reading oncology
    onc = {**base, "time": day, "user": "bob", "patient": masker.fingerprint("p-onc")}
    [outside] = snoops([onc])
    assert outside.subject == "bob" and "RADIOLOGY" in outside.message
    assert outside.counts == {"events": 1, "patients": 1}
    # the same patient on care_days days is a care relation
    again = [dict(onc, time=day + pd.Timedelta(days=d)) for d in range(2)]
    assert snoops(again) == []


def test_an_audit_stop_and_the_silence_after_it_are_two_findings() -> None:
    """A system that stops its audit trail and then writes nothing gives a stop and a gap,
    starting at the same moment; they must stay two findings with two ids."""
    from hipaa_audit.catalog import load_catalog
    from hipaa_audit.logs.run import anomaly_finding

    stream = [{"time": T0 + pd.Timedelta(minutes=10 * i), "system": "PACS", "action": "view",
               "user": "ann", "source": "pacs.log", "line": i + 1} for i in range(6048)
              if not 3000 <= i < 3060]
    stream[2999]["action"] = "audit-stop"  # the last record before ten silent hours
    gaps = kinds(stream)["logging-gap"]
    assert len(gaps) == 2 and {a.start for a in gaps} == {stream[2999]["time"]}
    catalog = load_catalog()
    ids = {anomaly_finding(a, catalog, "pacs.log").id for a in gaps}
    assert len(ids) == 2


def _deletions(user: str, start: str, count: int, seconds: float,
               objects: int | None = None) -> list[dict[str, Any]]:
    """``user`` deletes ``count`` times, ``seconds`` apart from ``start`` (UTC; one object each
    when ``objects`` is None, as CloudTrail's DeleteObject)."""
    t0 = pd.Timestamp(start, tz="UTC")
    return [{"time": t0 + pd.Timedelta(seconds=seconds * i), "user": user, "action": "delete",
             **({} if objects is None else {"objects": objects})} for i in range(count)]


def _mass(rows: list[dict[str, Any]], **settings: Any) -> list[detect.Anomaly]:
    return detect.mass_deletion(table(rows), detect.Settings(**settings))


def test_mass_deletion_across_a_clock_hour_is_found() -> None:
    # 150 deletions from 14:34 to 15:20: 86 before 15:00, 64 after
    rows = _deletions("bob", "2026-09-03T14:34:00", 150, 46 * 60 / 149)
    [mass] = _mass(rows)
    assert mass.subject == "bob" and mass.counts == {"objects": 150} and mass.high
    assert mass.message == "bob deleted 150 object(s) within one hour."
    assert detect.iso(mass.start) == "2026-09-03T14:34:00Z"
    assert detect.iso(mass.end) == "2026-09-03T15:20:00Z"
    assert mass.event_ids == tuple(f"e{i}" for i in range(detect.MAX_EVENT_IDS))


def test_mass_deletion_threshold_within_sixty_minutes() -> None:
    # 33 deletions of 3 objects each from 09:30 to 10:26: 99 objects within 60 minutes
    rows = _deletions("bob", "2026-09-03T09:30:00", 33, 105, objects=3)
    assert _mass(rows) == []
    # one more object 60 minutes after the first: 100 within (inclusive) 60 minutes
    more = [*rows, {"time": pd.Timestamp("2026-09-03T10:30:00Z"), "user": "bob",
                    "action": "delete"}]
    [mass] = _mass(more)
    assert mass.counts == {"objects": 100} and detect.iso(mass.end) == "2026-09-03T10:30:00Z"
    assert _mass(more, delete_min=101) == []


def test_two_bursts_hours_apart_are_two_anomalies() -> None:
    rows = (_deletions("bob", "2026-09-03T09:40:00", 120, 20)
            + _deletions("bob", "2026-09-03T13:45:00", 130, 20)
            # another user deleting at the same moments is neither counted nor found
            + _deletions("ann", "2026-09-03T09:40:00", 60, 40))
    first, second = _mass(rows)
    assert (first.subject, second.subject) == ("bob", "bob")
    assert first.counts == {"objects": 120} and second.counts == {"objects": 130}
    assert detect.iso(first.start) == "2026-09-03T09:40:00Z"
    assert detect.iso(first.end) == "2026-09-03T10:19:40Z"
    assert detect.iso(second.start) == "2026-09-03T13:45:00Z"
    assert not set(first.event_ids) & set(second.event_ids)


def test_a_long_burst_is_one_anomaly_with_its_busiest_hour() -> None:
    # 300 deletions 20 s apart from 09:00 to 10:39:40: at most 181 within any 60 minutes
    [mass] = _mass(_deletions("bob", "2026-09-03T09:00:00", 300, 20))
    assert mass.counts == {"objects": 181}
    assert detect.iso(mass.start) == "2026-09-03T09:00:00Z"
    assert detect.iso(mass.end) == "2026-09-03T10:39:40Z"


def test_a_slow_trickle_of_deletions_is_not_mass_deletion() -> None:
    # 150 deletions over three hours (one every 72 s: 51 within any 60 minutes)
    assert _mass(_deletions("bob", "2026-09-03T08:00:00", 150, 72)) == []
    assert _mass(_deletions("bob", "2026-09-03T08:00:00", 150, 72), delete_min=51)


def test_deletions_without_a_time_are_not_a_burst() -> None:
    timeless = [{"time": pd.NaT, "user": "bob", "action": "delete", "objects": 30}
                for _ in range(5)]
    assert _mass(timeless) == []
    # beside a burst, they are neither counted in it nor its evidence
    rows = _deletions("bob", "2026-09-03T09:00:00", 100, 30)
    [mass] = _mass([*rows, *timeless])
    assert mass.counts == {"objects": 100}
