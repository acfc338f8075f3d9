"""Audit-log parsers: ATNA, FHIR AuditEvent, CloudTrail, CSV and JSONL into the event table."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from hipaa_audit.logs import parsers
from hipaa_audit.logs.parsers import (
    FORMATS,
    ColumnMapping,
    LogFormatError,
    atna,
    common,
    detect_format,
    jsonstream,
    parse_file,
)
from hipaa_audit.logs.schema import ACTIONS, COLUMNS, Malformed, dtypes
from hipaa_audit.redaction import Masker

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data" / "logs"
MASKER = Masker(b"k" * 32)

CSV_MAPPING = ColumnMapping.from_config({
    "time": "timestamp", "user": "username", "role": "job", "action": "event",
    "outcome": "result", "patient": "mrn", "patient_name": "patient_name", "study": "study_uid",
    "objects": "images", "bytes": "bytes_out", "source_ip": "client_ip", "device": "workstation",
    "purpose": "reason", "event_id": "id",
    "actions": {"open_study": "view", "BURN_CD": "export", "LOGIN": "login"},
    "outcomes": {"denied_by_policy": "failure"},
    "timezone": "America/New_York",
})
JSONL_MAPPING = ColumnMapping.from_config({
    "time": "ts", "user": "actor.id", "action": "op", "outcome": "ok", "patient": "subject.mrn",
    "patient_name": "subject.name", "study": "study", "source_ip": "actor.ip",
    "event_id": "uuid", "bytes": "bytes", "role": "", "device": False,
    "actions": {"READ": "view", "export": "export"},
})
MAPPINGS = {"csv": CSV_MAPPING, "jsonl": JSONL_MAPPING}

# identifiers planted in the samples: none may reach the table
PHI = ("MRN00012345", "MRN00077777", "MRN00099999", "Pemberton", "PEMBERTON", "Alice", "ALICE",
       "JOHN", "A2024-0001234", "1.2.840.99.1.2.3", "1.2.840.99.7.7", "IM000412", "studies/")

SAMPLES = {
    "atna-dicom.xml": "atna", "atna-rfc3881.log": "atna", "atna-syslog.log": "atna",
    "fhir-single.json": "fhir", "fhir-bundle.json": "fhir", "fhir.ndjson": "fhir",
    "cloudtrail.json": "cloudtrail", "audit.csv": "csv", "audit.jsonl": "jsonl",
}


def fp(value: str) -> str:
    return MASKER.fingerprint(value)


def parse(path: Path, fmt: str | None = None, chunk_rows: int = 200_000,
          mapping: ColumnMapping | None = None) -> tuple[pd.DataFrame, list[Malformed]]:
    fmt = fmt or detect_format(path)
    chunks = list(parse_file(path, fmt, MASKER, mapping or MAPPINGS.get(fmt),
                             chunk_rows=chunk_rows))
    assert chunks, "a file always yields a chunk"
    for chunk in chunks:
        assert len(chunk.events) <= chunk_rows
        assert list(chunk.events.columns) == list(COLUMNS)
        assert {c: str(t) for c, t in chunk.events.dtypes.items()} == {
            c: str(t) for c, t in dtypes().items()}
    events = pd.concat([c.events for c in chunks], ignore_index=True)
    malformed = [m for c in chunks for m in c.malformed]
    assert events["action"].isin(ACTIONS).all()
    assert events["outcome"].dropna().isin(("success", "failure")).all()
    assert events["time"].notna().all()
    return events, malformed


def reasons(malformed: list[Malformed]) -> list[tuple[int, str]]:
    return sorted((m.line, m.reason) for m in malformed)


def gzipped(src: Path, dest: Path) -> Path:
    dest.write_bytes(gzip.compress(src.read_bytes()))
    return dest


def row(events: pd.DataFrame, **match: Any) -> pd.Series:
    mask = pd.Series(True, index=events.index)
    for key, value in match.items():
        mask &= events[key] == value
    found = events[mask.fillna(False)]
    assert len(found) == 1, f"{match}: {len(found)} rows"
    return found.iloc[0]


# --- detection --------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "fmt"), sorted(SAMPLES.items()))
def test_detect_format(name: str, fmt: str, tmp_path: Path) -> None:
    assert detect_format(DATA / name) == fmt
    # gzip is looked inside, whatever the file is called
    assert detect_format(gzipped(DATA / name, tmp_path / f"{name}.gz")) == fmt
    assert detect_format(gzipped(DATA / name, tmp_path / "noext")) == fmt


def test_detect_format_bare_and_ndjson_cloudtrail(tmp_path: Path) -> None:
    records = json.loads((DATA / "cloudtrail.json").read_text())["Records"]
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(records))
    nd = tmp_path / "records.ndjson"
    nd.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    assert detect_format(bare) == "cloudtrail"
    assert detect_format(nd) == "cloudtrail"
    empty = tmp_path / "empty-trail.json"
    empty.write_text('{"Records": []}')
    assert detect_format(empty) == "cloudtrail"


@pytest.mark.parametrize(("content", "why"), [
    (b"", "empty"),
    (b"   \n\n", "empty"),
    (b"\x00\x01\x02binary", "binary"),
    (b"just some words\nand more words\n", "not a recognised"),
    (b'{"digestStartTime": "x", "logFiles": []}', "digest"),
    (b'[{"a": 1}]', "JSON"),
])
def test_detect_format_errors(content: bytes, why: str, tmp_path: Path) -> None:
    path = tmp_path / "weird.log"
    path.write_bytes(content)
    with pytest.raises(LogFormatError, match=why) as err:
        detect_format(path)
    assert str(path) in str(err.value)


def test_detect_format_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LogFormatError, match=r"missing\.log"):
        detect_format(tmp_path / "missing.log")


# --- ATNA -------------------------------------------------------------------------------------

def test_atna_dicom_spelling() -> None:
    events, malformed = parse(DATA / "atna-dicom.xml")
    assert malformed == []
    assert len(events) == 4
    export = row(events, action="export")
    assert export["time"] == pd.Timestamp("2024-05-01T06:13:07.412Z")
    assert export["user"] == "jdoe" and export["source_ip"] == "10.20.30.41"
    assert export["outcome"] == "success" and export["code"] == "110106"
    assert export["objects"] == 412 and export["target"] == "media:110030"
    assert export["system"] == "PACS-VIEWER-07"
    assert export["patient"] == fp("MRN00012345")  # CX suffix stripped
    assert export["patient_name"] == fp("PEMBERTON")
    assert export["study"] == fp("1.2.840.99.1.2.3")
    assert pd.isna(export["role"])  # Source Role ID is not a job role
    assert export["event_id"] == "atna-dicom.xml:2" and export["line"] == 2

    login = row(events, action="login")
    assert login["outcome"] == "failure" and login["code"] == "110114/110122"
    assert login["device"] == "ws-rad-12" and pd.isna(login["source_ip"])
    assert login["role"] == "Radiologist"

    glass = row(events, action="break-glass-start")
    assert glass["purpose"] == "BTG" and glass["user"] == "drwho"
    delete = row(events, action="delete")
    assert delete["objects"] == 5 and delete["study"] == fp("1.2.840.99.1.2.3")
    # two messages on one line: distinct event ids
    assert {glass["event_id"], delete["event_id"]} == {"atna-dicom.xml:36",
                                                       "atna-dicom.xml:36:2"}
    assert events["event_id"].is_unique


def test_atna_legacy_spelling_and_malformed() -> None:
    events, malformed = parse(DATA / "atna-rfc3881.log")
    assert reasons(malformed) == [(3, "no AuditMessage"), (5, "DTD not allowed"),
                                  (6, "not XML"), (7, "bad timestamp")]
    assert all(m.source == str(DATA / "atna-rfc3881.log") for m in malformed)
    assert list(events["action"]) == ["query", "view", "audit-stop", "log-access"]
    assert list(events["line"]) == [1, 2, 4, 8]
    query = events.iloc[0]
    assert query["time"] == pd.Timestamp("2024-05-02T07:00:00Z")
    assert query["patient"] == fp("MRN00012345")
    assert query["patient_name"] == fp("PEMBERTON")
    assert query["source_ip"] == "192.0.2.7" and query["system"] == "RIS"
    assert events.iloc[2]["code"] == "110100/110133"


def test_atna_syslog_wrapped() -> None:
    events, malformed = parse(DATA / "atna-syslog.log")
    assert reasons(malformed) == [(3, "no AuditMessage"), (4, "DTD not allowed")]
    assert list(events["action"]) == ["download", "logout", "permission-change"]
    transfer = events.iloc[0]
    assert transfer["user"] == "STORESCU" and transfer["target"] == "ARCHIVE2"
    assert transfer["objects"] == 20 and transfer["study"] == fp("1.2.840.99.7.7")
    assert transfer["system"] == "DCM4CHEE" and transfer["source_ip"] == "198.51.100.4"
    assert list(events["line"]) == [1, 2, 5]


def test_atna_entities_never_expanded(tmp_path: Path) -> None:
    laughs = (
        '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
        ' <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">\n]>\n'
        '<AuditMessage><EventIdentification EventDateTime="2024-01-01T00:00:00Z">'
        '<EventID code="110100" displayName="&lol2;"/></EventIdentification></AuditMessage>\n'
        '<AuditMessage><EventIdentification EventDateTime="2024-01-01T00:00:00Z">'
        '<EventID code="110100" displayName="&undefined;"/></EventIdentification>'
        '</AuditMessage>\n'
    )
    path = tmp_path / "lol.xml"
    path.write_text(laughs)
    events, malformed = parse(path, "atna")
    assert events.empty
    assert reasons(malformed) == [(6, "DTD not allowed"), (7, "not XML")]


def test_atna_messages_split_across_pieces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    # one long line of concatenated messages read in small pieces: tags cut in two still match
    text = (DATA / "atna-dicom.xml").read_text().replace("\n", " ")
    path = tmp_path / "one-line.xml"
    path.write_text(text * 3)
    whole, _ = parse(path, "atna")
    monkeypatch.setattr(common, "_LINE_PIECE", 37)
    pieces, malformed = parse(path, "atna")
    assert malformed == []
    assert len(pieces) == len(whole) == 12
    assert pieces["event_id"].is_unique
    pd.testing.assert_frame_equal(pieces, whole)


def test_atna_oversized_message_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    lines = (DATA / "atna-rfc3881.log").read_text().splitlines()
    big = lines[1].replace("<AuditSourceIdentification", "\n".join(
        ["<Padding/>"] * 40) + "<AuditSourceIdentification")
    path = tmp_path / "big.log"
    path.write_text(lines[0] + "\n" + big + "\n" + lines[1] + "\n")
    monkeypatch.setattr(atna, "MAX_RECORD_CHARS", 300)
    events, malformed = parse(path, "atna")
    assert reasons(malformed) == [(2, "AuditMessage too large")]
    assert list(events["line"]) == [1, 42]


def test_atna_truncated_message(tmp_path: Path) -> None:
    text = (DATA / "atna-rfc3881.log").read_text().splitlines()
    path = tmp_path / "cut.log"
    path.write_text(text[0][:200] + "\n" + text[1] + "\n" + text[0][:150])
    events, malformed = parse(path, "atna")
    assert list(events["line"]) == [2]
    assert reasons(malformed) == [(1, "truncated AuditMessage"), (3, "truncated AuditMessage")]


# --- FHIR -------------------------------------------------------------------------------------

def test_fhir_single_resource() -> None:
    events, malformed = parse(DATA / "fhir-single.json")
    assert malformed == []
    (read,) = events.itertuples(index=False)
    assert read.action == "view" and read.code == "rest/read"
    assert read.user == "jdoe" and read.source_ip == "10.20.30.41"
    assert read.purpose == "BTG" and read.role == "Radiologist"
    assert read.device == "pacs.example.org" and read.system == "pacs.example.org"
    assert read.patient == fp("MRN00012345") and read.patient_name == fp("PEMBERTON")
    assert read.event_id == "ae-read-1" and read.outcome == "success"
    assert read.time == pd.Timestamp("2024-05-01T02:13:07.412Z")


def test_fhir_bundle() -> None:
    events, malformed = parse(DATA / "fhir-bundle.json")
    assert reasons(malformed) == [(4, "not an AuditEvent")]
    assert list(events["event_id"]) == ["ae-search-1", "ae-login-1", "ae-export-1"]
    assert list(events["line"]) == [1, 2, 3]  # ordinal in the bundle
    search = events.iloc[0]
    assert search["action"] == "query" and search["user"] == "Practitioner/pr-77"
    assert search["device"] == "ws-12" and search["system"] == "Device/fhir-server"
    assert search["patient"] == fp("MRN00012345")
    assert search["patient_name"] == fp("PEMBERTON")
    assert search["time"] == pd.Timestamp("2024-05-01T01:00:00Z")
    login = events.iloc[1]
    assert (login["action"], login["outcome"], login["code"]) == (
        "login", "failure", "110114/110122")
    export = events.iloc[2]
    assert export["action"] == "export" and export["objects"] == 12
    assert export["study"] == fp("1.2.840.99.1.2.3")  # same as the ATNA study UID
    assert export["patient"] == fp("MRN00012345")


def test_fhir_ndjson() -> None:
    events, malformed = parse(DATA / "fhir.ndjson")
    assert reasons(malformed) == [(3, "bad JSON"), (4, "no recorded")]
    assert list(events["action"]) == ["update", "delete", "audit-start"]
    assert list(events["line"]) == [1, 2, 5]
    assert list(events["outcome"]) == ["success", "failure", "success"]
    assert events.iloc[0]["patient"] == fp("MRN00099999")
    assert events.iloc[2]["user"] == "svc"  # no requestor: the first agent


def test_fhir_patient_as_agent_is_fingerprinted(tmp_path: Path) -> None:
    event = {"resourceType": "AuditEvent", "recorded": "2024-05-01T00:00:00Z", "action": "R",
             "agent": [{"who": {"reference": "Patient/MRN00012345"}, "requestor": True}],
             "source": {"observer": {"display": "portal"}}}
    path = tmp_path / "portal.json"
    path.write_text(json.dumps(event))
    events, _ = parse(path)
    assert events.iloc[0]["user"] == f"patient:{fp('MRN00012345')}"
    assert events.iloc[0]["event_id"] == "portal.json:1"


# --- CloudTrail -------------------------------------------------------------------------------

def check_cloudtrail(events: pd.DataFrame) -> None:
    assert list(events["code"]) == ["GetObject", "ConsoleLogin", "PutBucketPolicy",
                                    "DeleteObjects", "StopLogging"]
    get = events.iloc[0]
    # an AssumedRole's user is the role (the session issuer), not the session name
    assert get["action"] == "download"
    assert get["user"] == "arn:aws:iam::111122223333:role/PacsReadRole"
    assert get["role"] == "PacsReadRole" and get["bytes"] == 527342 and get["objects"] == 1
    assert get["target"] == "hosp-a-vna" and get["system"] == "s3.amazonaws.com"
    assert get["study"] == fp("studies/1.2.840.99.1.2.3")
    assert get["event_id"] == "5b9ad0c1-3f3e-4d7b-9d2c-0d9f7f6b1e11"
    assert get["device"] == "[aws-cli/2.15.40]" and get["source_ip"] == "198.51.100.23"
    login = events.iloc[1]
    assert (login["action"], login["outcome"], login["user"]) == ("login", "failure", "jdoe")
    policy = events.iloc[2]
    assert (policy["action"], policy["outcome"], policy["target"]) == (
        "permission-change", "success", "hosp-a-vna")
    delete = events.iloc[3]
    assert (delete["action"], delete["outcome"], delete["objects"]) == ("delete", "failure", 3)
    stop = events.iloc[4]
    assert stop["action"] == "audit-stop" and stop["target"] == "main"
    assert stop["user"] == "arn:aws:iam::111122223333:root"


def test_cloudtrail_plain_and_gzip(tmp_path: Path) -> None:
    plain, bad = parse(DATA / "cloudtrail.json")
    check_cloudtrail(plain)
    assert reasons(bad) == [(6, "no eventTime")]
    name = "111122223333_CloudTrail_us-east-1_20240501T0215Z_abc.json.gz"
    packed, bad_gz = parse(gzipped(DATA / "cloudtrail.json", tmp_path / name))
    check_cloudtrail(packed)
    assert reasons(bad_gz) == reasons(bad)
    assert packed["source"].iloc[0] == str(tmp_path / name)
    pd.testing.assert_frame_equal(packed.drop(columns="source"), plain.drop(columns="source"))


def test_cloudtrail_bare_list_and_ndjson(tmp_path: Path) -> None:
    records = json.loads((DATA / "cloudtrail.json").read_text())["Records"][:5]
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(records, indent=2))
    nd = tmp_path / "records.ndjson"
    nd.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    for path in (bare, nd):
        events, malformed = parse(path, "cloudtrail")
        assert malformed == []
        check_cloudtrail(events)
    assert list(parse(nd, "cloudtrail")[0]["line"]) == [1, 2, 3, 4, 5]


def test_cloudtrail_streams_across_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    record = json.loads((DATA / "cloudtrail.json").read_text())["Records"][0]
    records = []
    for i in range(500):
        rec = dict(record, eventID=f"id-{i}", eventTime=f"2024-05-01T02:{i % 60:02d}:00Z")
        records.append(rec)
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"Records": records, "trailer": {"n": 500}}))
    monkeypatch.setattr(jsonstream, "_BLOCK", 97)  # refill the decoder window often
    events, malformed = parse(path, "cloudtrail", chunk_rows=64)
    assert malformed == []
    assert list(events["event_id"]) == [f"id-{i}" for i in range(500)]
    assert list(events["line"]) == list(range(1, 501))


def test_truncated_gzip_keeps_what_was_read(tmp_path: Path) -> None:
    line = (DATA / "fhir.ndjson").read_text().splitlines()[0]
    lines = [line.replace('"nd-1"', f'"nd-{i}"') for i in range(3000)]
    data = gzip.compress(("\n".join(lines) + "\n").encode())
    path = tmp_path / "cut.ndjson.gz"
    path.write_bytes(data[: len(data) // 2])
    events, malformed = parse(path, "fhir")
    assert 0 < len(events) < 3000
    assert len(malformed) >= 1
    assert malformed[-1].reason == "unreadable data (truncated or corrupt)"


@pytest.mark.parametrize("name", ["fhir-single.json", "fhir-bundle.json", "fhir.ndjson",
                                  "cloudtrail.json"])
def test_json_documents_in_a_small_window(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    whole, whole_bad = parse(DATA / name)
    monkeypatch.setattr(jsonstream, "_BLOCK", 50)  # records never fit: decoded key by key
    small, small_bad = parse(DATA / name)
    pd.testing.assert_frame_equal(small, whole)
    assert reasons(small_bad) == reasons(whole_bad)


@pytest.mark.parametrize(("name", "fmt"), [("atna-rfc3881.log", "atna"), ("audit.csv", "csv"),
                                           ("audit.jsonl", "jsonl")])
def test_truncated_gzip_text_formats(name: str, fmt: str, tmp_path: Path) -> None:
    lines = (DATA / name).read_text().splitlines(keepends=True)
    text = lines[0] + "".join(lines[1:] * 400)
    data = gzip.compress(text.encode())
    path = tmp_path / f"{name}.gz"
    path.write_bytes(data[: len(data) * 2 // 3])
    events, malformed = parse(path, fmt)
    assert len(events) > 10
    assert malformed[-1].reason == "unreadable data (truncated or corrupt)"


# --- CSV and JSONL ----------------------------------------------------------------------------

def test_csv_with_mapping() -> None:
    events, malformed = parse(DATA / "audit.csv")
    assert reasons(malformed) == [(4, "bad timestamp"), (5, "wrong number of fields")]
    assert list(events["line"]) == [2, 3, 7, 8, 9]  # line 6 is blank
    assert list(events["action"]) == ["view", "export", "login", "delete", "other"]
    assert list(events["code"]) == ["OPEN_STUDY", "BURN_CD", "login", "delete",
                                    "SOMETHING_ELSE"]
    assert list(events["outcome"]) == ["success", "success", "failure", "success", "failure"]
    view, export, login, delete, other = (events.iloc[i] for i in range(5))
    # naive times are in the mapping's time zone (EDT); offsets and epoch seconds are absolute
    assert view["time"] == pd.Timestamp("2024-05-01T12:00:00Z")
    assert delete["time"] == pd.Timestamp("2024-05-01T12:10:00Z")
    assert other["time"] == pd.Timestamp("2024-05-01T12:10:00Z")
    assert view["patient"] == export["patient"] == fp("MRN00012345")
    assert view["patient_name"] == export["patient_name"] == fp("PEMBERTON")
    assert delete["patient_name"] == fp("DOE")
    assert view["study"] == fp("1.2.840.99.1.2.3")
    assert (export["objects"], export["bytes"]) == (412, 1048576)
    assert view["role"] == "radiologist" and view["device"] == "WS-1"
    assert view["purpose"] == "TREAT" and view["event_id"] == "r1"
    assert login["event_id"] == "audit.csv:7" and pd.isna(login["patient"])


def test_jsonl_with_mapping() -> None:
    events, malformed = parse(DATA / "audit.jsonl")
    assert reasons(malformed) == [(3, "bad JSON"), (4, "not a JSON object"),
                                  (5, "bad timestamp")]
    assert list(events["line"]) == [1, 2, 7]
    assert list(events["action"]) == ["view", "export", "query"]
    first, second, third = (events.iloc[i] for i in range(3))
    assert first["time"] == pd.Timestamp("2024-05-01T08:00:00Z")  # epoch milliseconds
    assert third["time"] == pd.Timestamp("2024-05-01T08:02:00.500Z")  # epoch seconds
    assert (first["outcome"], second["outcome"]) == ("success", "failure")
    assert pd.isna(third["outcome"])
    assert first["user"] == "jdoe" and first["source_ip"] == "10.0.0.9"
    assert first["patient"] == second["patient"] == fp("MRN00012345")
    assert first["patient_name"] == fp("PEMBERTON") and first["study"] == fp("1.2.840.99.1.2.3")
    assert third["bytes"] == 2048 and third["event_id"] == "audit.jsonl:7"
    assert pd.isna(first["role"])


def test_csv_sniffs_delimiter_and_time_format(tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    path.write_text("When;Who;What;Patient\n01/05/2024 10:00;jdoe;view;MRN00012345\n"
                    "31/12/2024 23:59;jdoe;PRINT;\n13/13/2024 00:00;x;view;\n")
    mapping = ColumnMapping(time="when", user="who", action="what", patient="patient",
                            time_format="%d/%m/%Y %H:%M", timezone="Europe/Berlin")
    events, malformed = parse(path, mapping=mapping)
    assert reasons(malformed) == [(4, "bad timestamp")]
    assert list(events["time"]) == [pd.Timestamp("2024-05-01T08:00:00Z"),
                                    pd.Timestamp("2024-12-31T22:59:00Z")]
    assert list(events["action"]) == ["view", "other"]
    assert events.iloc[0]["patient"] == fp("MRN00012345")


def test_csv_missing_required_column(tmp_path: Path) -> None:
    path = tmp_path / "nousers.csv"
    path.write_text("time,action\n2024-05-01T00:00:00Z,view\n")
    with pytest.raises(LogFormatError, match=r"nousers\.csv.*'user'"):
        parse_file(path, "csv", MASKER)


# --- chunking ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_chunking_keeps_every_row(name: str) -> None:
    path = DATA / name
    whole, whole_bad = parse(path)
    fmt = SAMPLES[name]
    chunks = list(parse_file(path, fmt, MASKER, MAPPINGS.get(fmt), chunk_rows=2))
    assert all(len(c.events) <= 2 for c in chunks)
    if len(whole) > 2:
        assert len(chunks) >= 2
    events = pd.concat([c.events for c in chunks], ignore_index=True)
    pd.testing.assert_frame_equal(events, whole)
    assert reasons([m for c in chunks for m in c.malformed]) == reasons(whole_bad)


def test_empty_log_yields_one_empty_chunk(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    for fmt in ("atna", "fhir", "cloudtrail", "jsonl"):
        chunks = list(parse_file(path, fmt, MASKER))
        assert len(chunks) == 1 and chunks[0].events.empty and chunks[0].malformed == []
        assert list(chunks[0].events.columns) == list(COLUMNS)


# --- PHI --------------------------------------------------------------------------------------

def test_no_phi_in_the_table_and_fingerprints_agree(tmp_path: Path) -> None:
    frames = []
    for name, fmt in SAMPLES.items():
        copy = shutil.copy(DATA / name, tmp_path / name)
        events, _ = parse(Path(copy), fmt)
        frames.append(events)
    table = pd.concat(frames, ignore_index=True)
    assert len(table) > 25
    for column in table.columns:
        for value in table[column].dropna().astype(str):
            for planted in PHI:
                assert planted not in value, f"{planted!r} leaked into {column}"
    patients = set(table["patient"].dropna())
    assert fp("MRN00012345") in patients
    same = table[table["patient"] == fp("MRN00012345")]
    assert set(same["format"]) == {"atna", "fhir", "csv", "jsonl"}
    names = table[table["patient_name"] == fp("PEMBERTON")]
    assert set(names["format"]) == {"atna", "fhir", "csv", "jsonl"}
    studies = table[table["study"] == fp("1.2.840.99.1.2.3")]
    assert set(studies["format"]) == {"atna", "fhir", "csv", "jsonl"}


def test_malformed_reasons_hold_no_content() -> None:
    for name, fmt in SAMPLES.items():
        for chunk in parse_file(DATA / name, fmt, MASKER, MAPPINGS.get(fmt)):
            for bad in chunk.malformed:
                assert len(bad.reason) < 48
                assert not any(p in bad.reason for p in PHI)
                assert "<" not in bad.reason and "{" not in bad.reason


# --- API --------------------------------------------------------------------------------------

def test_formats_and_bad_arguments(tmp_path: Path) -> None:
    assert FORMATS == ("atna", "fhir", "cloudtrail", "csv", "jsonl")
    with pytest.raises(ValueError, match="unknown log format"):
        parse_file(DATA / "audit.csv", "syslog", MASKER)
    with pytest.raises(LogFormatError, match=r"nope\.json"):
        parse_file(tmp_path / "nope.json", "fhir", MASKER)


@pytest.mark.parametrize(("config", "key"), [
    ({"tiem": "ts"}, "tiem"),
    ({"time": 3}, "time"),
    ({"user": ""}, "user"),
    ({"actions": {"READ": "peek"}}, "actions.READ"),
    ({"actions": ["READ"]}, "actions"),
    ({"outcomes": {"ok": "maybe"}}, "outcomes.ok"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"patient": 7}, "patient"),
])
def test_column_mapping_rejects_bad_config(config: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        ColumnMapping.from_config(config)


def test_column_mapping_defaults() -> None:
    mapping = ColumnMapping.from_config({"patient_name": "name", "role": "", "device": None})
    assert mapping.patient_name == "name" and mapping.role is None and mapping.device is None
    assert mapping.time == "time" and mapping.actions == {} and mapping.timezone == "UTC"
    assert ColumnMapping.from_config({}) == ColumnMapping()
    assert hash(CSV_MAPPING) == hash(ColumnMapping.from_config({**CSV_MAPPING.__dict__}))


# ---------------------------------------------------------------------------------------------
# resource bombs and records lost silently

DEEP = "[" * 1000 + "]" * 1000
CT_RECORD = {"eventVersion": "1.08", "eventTime": "2024-01-01T00:00:00Z",
             "eventName": "GetObject", "eventSource": "s3.amazonaws.com"}


def _ct(i: int, **extra: Any) -> dict[str, Any]:
    return {**CT_RECORD, "eventID": f"00000000-0000-4000-8000-{i:012d}", **extra}


@pytest.mark.parametrize("fmt", ["fhir", "cloudtrail", "jsonl"])
def test_json_nested_a_thousand_deep_is_one_malformed_record(fmt: str, tmp_path: Path) -> None:
    log = tmp_path / "deep.log"
    if fmt == "fhir":
        good = '{"resourceType": "AuditEvent", "recorded": "2024-01-01T00:00:00Z"}'
        log.write_text(good.replace("}", f', "extension": {DEEP}}}') + "\n" + good + "\n")
    elif fmt == "cloudtrail":
        deep = json.dumps(_ct(1)).replace("}", f', "requestParameters": {DEEP}}}')
        log.write_text('{"Records": [' + deep + ", " + json.dumps(_ct(2)) + "]}")
    else:
        good = '{"time": "2024-01-01T00:00:00Z", "user": "u", "action": "view"}'
        log.write_text(good.replace("}", f', "x": {DEEP}}}') + "\n" + good + "\n")
    assert detect_format(log) == fmt
    events, malformed = parse(log, fmt, mapping=ColumnMapping() if fmt == "jsonl" else None)
    assert len(events) == 1
    assert reasons(malformed) == [(1, "JSON nested too deep")]


@pytest.mark.parametrize("fmt", ["fhir", "cloudtrail", "jsonl"])
def test_half_a_surrogate_pair_damages_one_text_not_the_file(fmt: str, tmp_path: Path) -> None:
    """JSON may escape half of a surrogate pair, which no UTF-8 text can hold: that text is
    kept with U+FFFD in its place, as bytes that are not UTF-8 are, and every record is read
    (one such record used to make the whole file unreadable: a way to hide a log)."""
    half = r"pacs-\ud800-gw"  # the escape as it stands in the file
    log = tmp_path / "half.log"
    if fmt == "fhir":
        record = {"resourceType": "AuditEvent", "recorded": "2024-01-01T00:00:00Z",
                  "action": "R", "source": {"observer": {"display": "OBSERVER"}}}
        patient = record | {"entity": [{"what": {"reference": "Patient/12PID34"}}]}
        lines = [json.dumps(record).replace("OBSERVER", half), json.dumps(record),
                 json.dumps(patient).replace("PID", "\\ud800")]  # a fingerprinted text
        log.write_text("\n".join(lines) + "\n")
    elif fmt == "cloudtrail":
        records = [json.dumps(_ct(i, sourceIPAddress="SOURCE",
                                  errorMessage="patient 123456789 ERR")) for i in (1, 2, 3)]
        log.write_text('{"Records": [' + ", ".join(
            [records[0], records[1].replace("SOURCE", half),
             records[2].replace("ERR", "\\ud800")]) + "]}")  # a fingerprinted text
    else:
        good = '{"time": "2024-01-01T00:00:00Z", "user": "u", "action": "view", "system": "S"}'
        log.write_text("\n".join([good, good.replace('"S"', f'"{half}"'), good]) + "\n")
    assert detect_format(log) == fmt
    events, malformed = parse(log, fmt, mapping=ColumnMapping() if fmt == "jsonl" else None)
    assert malformed == []
    texts = [str(v) for col in ("system", "device", "source_ip") for v in events[col].dropna()]
    assert len(events) == 3
    assert "pacs-\ufffd-gw" in texts, texts


def test_jsonl_numbers_and_nan_read_as_the_standard_decoder_reads_them(tmp_path: Path) -> None:
    """A flat record with every mapped key is read by a faster decoder; what it would read
    otherwise (an integer past 64 bits, NaN) goes to the standard one, with the same table."""
    keys = ColumnMapping().columns()
    flat = {k: "x" for k in keys.values()} | {"time": "2024-01-01T00:00:00Z", "action": "view",
                                               "outcome": "success", "objects": 1, "bytes": 5}
    log = tmp_path / "flat.jsonl"
    log.write_text("\n".join([json.dumps(flat | {"user": 2**64}),
                              json.dumps(flat | {"user": 18446744073709551616.0}),
                              json.dumps(flat | {"extra": float("nan")}),
                              json.dumps(flat)]) + "\n")
    events, malformed = parse(log, "jsonl", mapping=ColumnMapping())
    assert malformed == [] and len(events) == 4
    assert events["user"].tolist()[:2] == ["18446744073709551616", "1.8446744073709552e+19"]
    same = events.drop(columns="line")
    assert same.iloc[2].equals(same.iloc[3])  # an unmapped NaN changes nothing


def test_fhir_extensions_nested_deep_are_malformed(tmp_path: Path) -> None:
    ext: dict[str, Any] = {"url": "x"}
    for _ in range(100):
        ext = {"url": "x", "extension": [ext]}
    log = tmp_path / "ext.ndjson"
    log.write_text(json.dumps({"resourceType": "AuditEvent", "recorded": "2024-01-01T00:00:00Z",
                               "entity": [{"extension": [ext]}]}) + "\n")
    events, malformed = parse(log, "fhir")
    assert events.empty and reasons(malformed) == [(1, "extensions nested too deep")]


@pytest.mark.parametrize("number", [2**63, 2**70, "1e400", -(2**64)])
def test_numbers_past_two_to_the_63_are_malformed(number: object, tmp_path: Path) -> None:
    value = str(number)
    ct = tmp_path / "ct.json"
    ct.write_text('{"Records": [' + json.dumps(_ct(1)).replace(
        "}", ', "additionalEventData": {"bytesTransferredOut": ' + value + "}}")
        + ", " + json.dumps(_ct(2)) + "]}")
    events, malformed = parse(ct, "cloudtrail")
    assert len(events) == 1 and reasons(malformed) == [(1, "number out of range")]
    atna = tmp_path / "atna.xml"
    atna.write_text(
        '<AuditMessage><EventIdentification EventActionCode="R" EventOutcomeIndicator="0" '
        'EventDateTime="2024-01-01T00:00:00Z"><EventID csd-code="110103"/>'
        '</EventIdentification><ActiveParticipant UserID="u"/>'
        '<ParticipantObjectIdentification ParticipantObjectID="1.2.3" '
        'ParticipantObjectTypeCode="2"><ParticipantObjectIDTypeCode csd-code="110180"/>'
        f'<ParticipantObjectDescription><SOPClass UID="1.2" NumberOfInstances="{value}"/>'
        "</ParticipantObjectDescription></ParticipantObjectIdentification></AuditMessage>\n")
    events, malformed = parse(atna, "atna")
    assert events.empty and reasons(malformed) == [(1, "number out of range")]
    text = tmp_path / "big.csv"
    text.write_text(f"time,user,action,bytes\n2024-01-01T00:00:00Z,u,view,{value}\n"
                    "2024-01-01T00:00:00Z,u,view,5\n")
    events, malformed = parse(text, "csv", mapping=ColumnMapping())
    assert events["bytes"].tolist() == [5] and reasons(malformed) == [(2, "number out of range")]


def test_cloudtrail_resumes_after_a_damaged_record(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A JSON error inside Records costs that record only, counted; the rest are read."""
    monkeypatch.setattr(jsonstream, "_BLOCK", 64)  # the search for the next record spans blocks
    text = json.dumps({"Records": [_ct(i) for i in range(1, 11)]})
    damaged = text.replace('"00000000-0000-4000-8000-000000000004"',
                           '"00000000-0000-4000-8000-000000000004', 1)  # a quote missing
    log = tmp_path / "ct.json"
    log.write_text(damaged)
    events, malformed = parse(log, "cloudtrail")
    assert reasons(malformed) == [(4, "bad JSON")]
    assert sorted(events["line"].tolist()) == [1, 2, 3, 5, 6, 7, 8, 9, 10]
    log.write_text(text.replace("}, {", "} {", 1))  # a comma missing between records 1 and 2
    events, malformed = parse(log, "cloudtrail")
    assert len(events) == 10 and reasons(malformed) == [(2, "bad JSON between records")]
    log.write_text(text[:text.index('"00000000-0000-4000-8000-000000000008"')])  # cut off
    events, malformed = parse(log, "cloudtrail")
    assert len(events) == 7 and reasons(malformed) == [(8, "truncated JSON")]


def _csv_rows(n: int, device: dict[int, str] | None = None) -> list[str]:
    device = device or {}
    return [f"2024-01-01T{i // 60 % 24:02d}:{i % 60:02d}:00Z,u{i},view,{device.get(i, f'ws{i}')}"
            for i in range(n)]


@pytest.mark.parametrize("chunk_rows", [7, 200_000])
def test_csv_unbalanced_quote_loses_one_line_not_the_rows_it_swallowed(
        tmp_path: Path, chunk_rows: int) -> None:
    """A stray quote used to swallow every row up to the next quote, with 0 malformed."""
    log = tmp_path / "audit.csv"
    rows = _csv_rows(300, {10: '"ws10', 200: 'ws200"'})
    log.write_text("time,user,action,device\n" + "\n".join(rows) + "\n")
    events, malformed = parse(log, "csv", chunk_rows=chunk_rows, mapping=ColumnMapping())
    open_quote = "unbalanced quote (a field swallows the lines after it)"
    assert reasons(malformed) == [(12, open_quote), (202, open_quote)]
    assert len(events) == 298  # every line is an event or a malformed record
    assert sorted(events["line"].tolist()) == [n for n in range(2, 302) if n not in (12, 202)]
    by_line = dict(zip(events["line"].tolist(), events["user"].tolist(), strict=True))
    assert by_line[13] == "u11" and by_line[203] == "u201"  # lines still name their rows


def test_csv_quote_open_to_the_end_keeps_the_other_rows(tmp_path: Path) -> None:
    log = tmp_path / "audit.csv"
    rows = _csv_rows(300, {10: '"ws10'})
    log.write_text("time,user,action,device\n" + "\n".join(rows) + "\n")
    events, malformed = parse(log, "csv", mapping=ColumnMapping())
    assert reasons(malformed) == [(12, "unbalanced quote (a field swallows the lines after it)")]
    assert len(events) == 299 and events["line"].max() == 301
    rows = _csv_rows(20, {15: '"ws15'})
    log.write_text("time,user,action,device\n" + "\n".join(rows) + "\n")
    events, malformed = parse(log, "csv", mapping=ColumnMapping())
    assert reasons(malformed) == [(17, "unbalanced quote (open to the end of the file)")]
    assert len(events) == 19


def test_csv_quoted_line_breaks_keep_line_numbers(tmp_path: Path) -> None:
    """A legitimate multi-line field is one record; the rows after it keep their own lines."""
    log = tmp_path / "audit.csv"
    rows = _csv_rows(12, {8: '"note\nsecond line\nthird line"'})
    log.write_text("time,user,action,device\n" + "\n".join(rows) + "\n")
    events, malformed = parse(log, "csv", mapping=ColumnMapping())
    assert malformed == []
    assert events["line"].tolist() == [*range(2, 11), 13, 14, 15]
    assert events["user"].tolist()[-1] == "u11"


# --- PHI in fields meant for staff and systems --------------------------------------------------

MRN = "MRN00424242"


def _fhir_login(agent: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"resourceType": "AuditEvent", "recorded": "2024-05-01T00:00:00Z",
            "type": {"code": "110114"}, "subtype": [{"code": "110122"}], "outcome": "4",
            "agent": [{"requestor": True, "network": {"address": "203.0.113.77", "type": "2"},
                       **agent}], **extra}


@pytest.mark.parametrize("agent", [
    {"who": {"identifier": {"value": MRN}}, "role": [{"coding": [{"code": "PAT"}]}]},
    {"who": {"identifier": {"value": MRN}}, "type": {"coding": [{"code": "PAT"}]}},
    {"who": {"identifier": {"value": MRN, "type": {"coding": [{"code": "MR"}]}}}},
], ids=["role-PAT", "type-PAT", "identifier-MR"])
def test_fhir_patient_agent_by_role_or_identifier_type(agent: dict[str, Any],
                                                       tmp_path: Path) -> None:
    """A patient known only by role PAT (or an MRN-typed identifier) is not a workforce user."""
    path = tmp_path / "portal.ndjson"
    path.write_text(json.dumps(_fhir_login(agent)) + "\n")
    events, _ = parse(path, "fhir")
    login = events.iloc[0]
    assert login["user"] == f"patient:{fp(MRN)}"
    assert login["source_ip"] == f"hmac:{fp('203.0.113.77')}"  # a patient's address is PHI
    assert login["action"] == "login" and login["outcome"] == "failure"


def test_fhir_agent_that_is_the_records_patient(tmp_path: Path) -> None:
    event = _fhir_login({"who": {"identifier": {"value": MRN}}},
                        entity=[{"what": {"reference": f"Patient/{MRN}"}}],
                        id=f"ae-{MRN}-1")
    path = tmp_path / "self.ndjson"
    path.write_text(json.dumps(event) + "\n")
    events, _ = parse(path, "fhir")
    assert events.iloc[0]["user"] == f"patient:{fp(MRN)}"
    assert events.iloc[0]["event_id"] == "self.ndjson:1"  # an id holding the MRN is not kept


def test_atna_patient_participant_role(tmp_path: Path) -> None:
    path = tmp_path / "portal.xml"
    path.write_text(
        '<AuditMessage><EventIdentification EventActionCode="E" EventOutcomeIndicator="4" '
        'EventDateTime="2024-01-01T00:00:00Z"><EventID csd-code="110114"/>'
        '<EventTypeCode csd-code="110122"/></EventIdentification>'
        f'<ActiveParticipant UserID="{MRN}" UserIsRequestor="true" '
        'NetworkAccessPointID="203.0.113.77" NetworkAccessPointTypeCode="2">'
        '<RoleIDCode csd-code="PAT" codeSystemName="RoleClass"/></ActiveParticipant>'
        f'<ActiveParticipant UserID="PORTAL-{MRN}" UserIsRequestor="false"/>'
        "</AuditMessage>\n")
    events, _ = parse(path, "atna")
    login = events.iloc[0]
    assert login["user"] == f"patient:{fp(MRN)}"
    assert login["source_ip"] == f"hmac:{fp('203.0.113.77')}"


def test_csv_patient_users_and_identifiers_in_free_text(tmp_path: Path) -> None:
    """Role patient, a user that is the row's patient, and MRNs inside ids, codes and targets."""
    path = tmp_path / "portal.csv"
    path.write_text(
        "time,user,role,action,patient,event_id,code,target,device,system\n"
        f"2024-01-01T00:00:00Z,{MRN},patient,view,,e-1,PORTAL_VIEW,,kiosk,PORTAL\n"
        f"2024-01-01T00:01:00Z,{MRN},,view,{MRN},e-2,PORTAL_VIEW,,kiosk,PORTAL\n"
        f"2024-01-01T00:02:00Z,jdoe,clerk,view,{MRN},evt-{MRN},VIEW_{MRN},chart/{MRN},"
        f"ws-{MRN},PACS\n"
        "2024-01-01T00:03:00Z,jdoe,clerk,view,,e-4,110106,EXT-PORTAL,WS-7,PACS\n")
    events, malformed = parse(path, "csv", mapping=ColumnMapping())
    assert malformed == []
    first, second, third, fourth = (events.iloc[i] for i in range(4))
    assert first["user"] == second["user"] == f"patient:{fp(MRN)}"
    assert first["device"] == f"hmac:{fp('kiosk')}"  # the patient's own device
    assert third["user"] == "jdoe"  # staff stay readable
    assert third["event_id"] == "portal.csv:4"
    assert third["code"] == f"hmac:{fp('VIEW_' + MRN)}"
    assert third["target"] == f"hmac:{fp('chart/' + MRN)}"
    assert third["device"] == f"hmac:{fp('ws-' + MRN)}"
    assert (fourth["event_id"], fourth["code"], fourth["target"], fourth["device"]) == (
        "e-4", "110106", "EXT-PORTAL", "WS-7")
    for column in events.columns:
        assert not events[column].astype(str).str.contains(MRN[3:]).any(), column


def test_cloudtrail_event_id_holding_an_identifier(tmp_path: Path) -> None:
    path = tmp_path / "ct.json"
    path.write_text(json.dumps({"Records": [_ct(1, eventID=f"evt-{MRN}",
                                                userAgent=f"portal/{MRN}")]}))
    events, _ = parse(path, "cloudtrail")
    assert events.iloc[0]["event_id"] == "ct.json:1"
    assert events.iloc[0]["device"] == f"hmac:{fp('portal/' + MRN)}"


# --- issue 16: identities, inbound stores, record offsets -----------------------------------

def _assumed(role: str, session: str, issuer: bool = True, path: str = "/") -> dict[str, Any]:
    ident: dict[str, Any] = {
        "type": "AssumedRole", "principalId": f"AROAEXAMPLE:{session}",
        "arn": f"arn:aws:sts::111122223333:assumed-role/{role}/{session}",
        "accountId": "111122223333"}
    if issuer:
        ident["sessionContext"] = {"sessionIssuer": {
            "type": "Role", "userName": role, "principalId": "AROAEXAMPLE",
            "arn": f"arn:aws:iam::111122223333:role{path}{role}"}}
    return ident


def test_cloudtrail_assumed_role_sessions_are_the_role(tmp_path: Path) -> None:
    records = [
        {"eventTime": "2024-05-01T02:00:00Z", "eventName": "GetObject", "eventID": f"e{i}",
         "eventSource": "s3.amazonaws.com", "userAgent": "[aws-cli/2.15.40]",
         "userIdentity": ident}
        for i, ident in enumerate([
            _assumed("ci-deploy", "gitlab-ci-4180094"), _assumed("ci-deploy", "gitlab-ci-4180095"),
            _assumed("ec2-pacs", "i-0abc1234def567890"),
            _assumed("ec2-pacs", "i-0fff1234def567890", issuer=False),
            _assumed("AWSReservedSSO_Radiology_0123456789abcdef", "jdoe@hosp-a.example",
                     path="/aws-reserved/sso.amazonaws.com/"),
            {"type": "IAMUser", "userName": "admin",
             "arn": "arn:aws:iam::111122223333:user/admin"}])]
    path = tmp_path / "ct.json"
    path.write_text(json.dumps({"Records": records}))
    events, _ = parse(path, "cloudtrail")
    users = events["user"].tolist()
    ci, pacs = "arn:aws:iam::111122223333:role/ci-deploy", "arn:aws:iam::111122223333:role/ec2-pacs"
    assert users[:4] == [ci, ci, pacs, pacs]  # each CI job or instance is not a new user
    assert events["role"].tolist()[:4] == ["ci-deploy", "ci-deploy", "ec2-pacs", "ec2-pacs"]
    # people share an Identity Center role: the session (the person) is the user
    assert users[4] == ("arn:aws:sts::111122223333:assumed-role/"
                        "AWSReservedSSO_Radiology_0123456789abcdef/jdoe@hosp-a.example")
    assert users[5] == "admin"


ARCHIVE_STORE = """<AuditMessage>
<EventIdentification EventActionCode="{act}" EventDateTime="2024-05-01T02:13:07-04:00"
  EventOutcomeIndicator="0"><EventID csd-code="110104" codeSystemName="DCM"
  originalText="DICOM Instances Transferred"/></EventIdentification>
<ActiveParticipant UserID="{src}" UserIsRequestor="{src_req}" NetworkAccessPointID="10.1.2.3"
  NetworkAccessPointTypeCode="2"><RoleIDCode csd-code="110153" codeSystemName="DCM"
  originalText="Source Role ID"/></ActiveParticipant>
<ActiveParticipant UserID="{dst}" UserIsRequestor="{dst_req}" NetworkAccessPointID="10.1.2.9"
  NetworkAccessPointTypeCode="2"><RoleIDCode csd-code="110152" codeSystemName="DCM"
  originalText="Destination Role ID"/></ActiveParticipant>
<AuditSourceIdentification AuditSourceID="DCM4CHEE"/>
<ParticipantObjectIdentification ParticipantObjectID="1.2.840.99.7.7" ParticipantObjectTypeCode="2"
  ParticipantObjectTypeCodeRole="3"><ParticipantObjectIDTypeCode csd-code="110180"
  codeSystemName="DCM" originalText="Study Instance UID"/></ParticipantObjectIdentification>
</AuditMessage>
"""


@pytest.mark.parametrize(("fields", "action"), [
    # a CT modality stores into the archive, which wrote the record: inbound
    ({"act": "C", "src": "CT_SCANNER_1", "src_req": "true", "dst": "DCM4CHEE", "dst_req": "false"},
     "import"),
    # a migration sends in; the archive's AE title differs from its audit source id, but the
    # sender asked and the receiver created the instances
    ({"act": "C", "src": "OLD_PACS", "src_req": "true", "dst": "ARCHIVE_AE", "dst_req": "false"},
     "import"),
    # the archive sends out to a remote node: it is the source
    ({"act": "R", "src": "DCM4CHEE", "src_req": "true", "dst": "REMOTE_AE", "dst_req": "false"},
     "download"),
    # a viewer retrieves (it asked, it is the destination)
    ({"act": "R", "src": "ARCHIVE_AE", "src_req": "false", "dst": "VIEWER", "dst_req": "true"},
     "download"),
])
def test_atna_inbound_store_is_not_an_export(fields: dict[str, str], action: str,
                                             tmp_path: Path) -> None:
    path = tmp_path / "store.xml"
    path.write_text(ARCHIVE_STORE.format(**fields))
    events, malformed = parse(path, "atna")
    assert malformed == [] and events.iloc[0]["action"] == action


def test_record_offsets_and_zone(tmp_path: Path) -> None:
    winter = "2024-01-15T09:00:00.000-05:00"
    summer = "2024-07-15T09:00:00-04:00"
    atna = tmp_path / "a.xml"
    atna.write_text("".join(f'<AuditMessage><EventIdentification EventDateTime="{t}"/>'
                            "</AuditMessage>\n" for t in [winter, summer] * 5))
    samples = parsers.record_offsets(atna)
    assert len(samples) == 10 and {o for _, o in samples} == {-300, -240}
    assert parsers.zone_of_offsets(samples) == ("America/New_York", 10)
    # an affiliate in Chicago does not move the zone of the majority
    chicago = [(w - 3600, o - 60) for w, o in samples[:3]]
    assert parsers.zone_of_offsets(samples + chicago) == ("America/New_York", 10)
    # Z is UTC as written, not a local offset
    ct = tmp_path / "ct.json"
    ct.write_text(json.dumps({"Records": [{"eventTime": "2024-05-01T02:00:00Z"}]}))
    assert parsers.record_offsets(ct) == [] and parsers.zone_of_offsets([]) is None
    # India keeps one offset all year
    assert parsers.zone_of_offsets([(1_700_000_000, 330)]) == ("Asia/Kolkata", 1)


def test_fhir_stu3_audit_event(tmp_path: Path) -> None:
    # STU3 names the agent by userId/reference, the source by identifier, the entity by reference
    event = {"resourceType": "AuditEvent", "id": "stu3-1", "recorded": "2024-05-01T02:13:07Z",
             "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110110"},
             "action": "R", "outcome": "0",
             "agent": [{"userId": {"value": "jdoe"}, "requestor": True,
                        "role": [{"text": "Radiologist"}],
                        "network": {"address": "10.20.30.41", "type": "2"}}],
             "source": {"site": "HOSP-A", "identifier": {"value": "portal.example.org"}},
             "entity": [{"reference": {"reference": "Patient/MRN00012345"},
                         "role": {"code": "1"}, "name": "PEMBERTON^ALICE"}]}
    path = tmp_path / "stu3.json"
    path.write_text(json.dumps(event))
    events, malformed = parse(path)
    assert malformed == []
    got = events.iloc[0]
    assert got["user"] == "jdoe" and got["role"] == "Radiologist" and got["action"] == "view"
    assert got["system"] == "portal.example.org" and got["source_ip"] == "10.20.30.41"
    assert got["patient"] == fp("MRN00012345") and got["patient_name"] == fp("PEMBERTON")


FHIR_XML_R4 = (
    '<AuditEvent xmlns="http://hl7.org/fhir"><id value="ae-xml-{n}"/>'
    '<text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml">PEMBERTON</div>'
    '</text>'
    '<type><system value="http://terminology.hl7.org/CodeSystem/audit-event-type"/>'
    '<code value="rest"/></type>'
    '<subtype><system value="http://hl7.org/fhir/restful-interaction"/><code value="read"/>'
    '</subtype><action value="R"/><recorded value="2024-05-01T02:1{n}:07+02:00"/>'
    '<outcome value="0"/>'
    '<agent><role><text value="Radiologist"/></role><who><identifier><value value="jdoe"/>'
    '</identifier></who><requestor value="true"/>'
    '<network><address value="10.20.30.41"/><type value="2"/></network>'
    '<purposeOfUse><coding><code value="BTG"/></coding></purposeOfUse></agent>'
    '<source><observer><display value="pacs.example.org"/></observer></source>'
    '<entity><what><reference value="Patient/MRN00012345"/></what>'
    '<role><code value="1"/></role><name value="PEMBERTON, ALICE"/></entity>'
    '<entity><what><identifier><system value="urn:dicom:uid"/>'
    '<value value="urn:oid:1.2.840.99.1.2.3"/></identifier></what>'
    '<extension url="http://nema.org/fhir/extensions#0008:1155">'
    '<extension url="NumberOfInstances"><valueInteger value="12"/></extension></extension>'
    '</entity></AuditEvent>')
FHIR_XML_STU3 = (
    '<AuditEvent xmlns="http://hl7.org/fhir"><id value="stu3-xml"/>'
    '<type><system value="http://dicom.nema.org/resources/ontology/DCM"/>'
    '<code value="110110"/></type><action value="R"/>'
    '<recorded value="2024-05-01T03:00:00Z"/><outcome value="4"/>'
    '<agent><role><text value="Nurse"/></role><userId><value value="asmith"/></userId>'
    '<requestor value="true"/><network><address value="10.20.30.42"/><type value="2"/>'
    '</network></agent>'
    '<source><site value="HOSP-A"/><identifier><value value="portal.example.org"/></identifier>'
    '</source><entity><reference><reference value="Patient/MRN00099999"/></reference>'
    '<role><code value="1"/></role><name value="QUILL^BEA"/></entity></AuditEvent>')


def check_fhir_xml_r4(got: pd.Series, n: int = 0) -> None:
    assert got["user"] == "jdoe" and got["role"] == "Radiologist" and got["action"] == "view"
    assert got["code"] == "rest/read" and got["purpose"] == "BTG"
    assert got["source_ip"] == "10.20.30.41" and got["system"] == "pacs.example.org"
    assert got["patient"] == fp("MRN00012345") and got["patient_name"] == fp("PEMBERTON")
    assert got["event_id"] == f"ae-xml-{n}" and got["outcome"] == "success"
    assert got["time"] == pd.Timestamp(f"2024-05-01T00:1{n}:07Z")
    assert got["objects"] == 12


def test_fhir_xml_single_resource(tmp_path: Path) -> None:
    path = tmp_path / "audit.xml"
    path.write_text('<?xml version="1.0" encoding="UTF-8"?>\n'
                    + FHIR_XML_R4.format(n=0).replace("><", ">\n<"))
    assert detect_format(path) == "fhir"
    events, malformed = parse(path)
    assert malformed == [] and len(events) == 1
    check_fhir_xml_r4(events.iloc[0])
    # the narrative is not read: nothing holds the name it shows
    assert "PEMBERTON" not in events.astype(str).to_string()


def test_fhir_xml_bundle_and_lines(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.xml.gz"
    entries = "".join(f"<entry><fullUrl value=\"urn:uuid:{n}\"/><resource>"
                      f"{FHIR_XML_R4.format(n=n)}</resource></entry>" for n in range(3))
    bundle.write_bytes(gzip.compress(
        ('<Bundle xmlns="http://hl7.org/fhir"><type value="collection"/>'
         f"{entries}</Bundle>").encode()))
    assert detect_format(bundle) == "fhir"
    events, malformed = parse(bundle)
    assert malformed == [] and list(events["event_id"]) == ["ae-xml-0", "ae-xml-1", "ae-xml-2"]
    for n in range(3):
        check_fhir_xml_r4(events.iloc[n], n)
    lines = tmp_path / "audit.xml"
    lines.write_text(FHIR_XML_R4.format(n=1) + "\n" + "not xml at all\n"
                     + FHIR_XML_STU3 + "\n" + "<AuditEvent xmlns=\"http://hl7.org/fhir\">"
                     "<id value=\"x\"/></AuditEvent>\n")
    assert detect_format(lines) == "fhir"
    events, malformed = parse(lines)
    assert reasons(malformed) == [(2, "no AuditEvent"), (4, "no recorded")]
    check_fhir_xml_r4(events.iloc[0], 1)
    stu3 = events.iloc[1]
    assert stu3["user"] == "asmith" and stu3["role"] == "Nurse" and stu3["action"] == "view"
    assert stu3["system"] == "portal.example.org" and stu3["outcome"] == "failure"
    assert stu3["patient"] == fp("MRN00099999") and stu3["patient_name"] == fp("QUILL")
    assert list(events["line"]) == [1, 3]


def test_fhir_xml_entities_refused_and_depth_bounded(tmp_path: Path) -> None:
    path = tmp_path / "bomb.xml"
    path.write_text('<!DOCTYPE AuditEvent [<!ENTITY a "aaaaaaaaaa">'
                    '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>\n'
                    '<AuditEvent xmlns="http://hl7.org/fhir"><id value="&b;"/>'
                    '<recorded value="2024-05-01T03:00:00Z"/></AuditEvent>\n'
                    + FHIR_XML_STU3 + "\n"
                    + '<AuditEvent xmlns="http://hl7.org/fhir">'
                    + "<extension>" * 200 + "</extension>" * 200
                    + '<recorded value="2024-05-01T03:00:00Z"/></AuditEvent>\n')
    events, malformed = parse(path, "fhir")
    assert reasons(malformed) == [(2, "DTD not allowed"), (4, "AuditEvent nested too deep")]
    assert list(events["event_id"]) == ["stu3-xml"]
