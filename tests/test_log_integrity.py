"""hipaa_audit.logs.integrity: hash chains and CloudTrail digests, on real files on disk.

Every tampering helper of fixtures/logchain.py is run and the exact findings asserted, including
the ones a chain cannot see (truncation and a re-chained rewrite without anchor or MAC).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import itertools
import json
import shutil
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import ROOT
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from hipaa_audit.logs.integrity import (
    GENESIS,
    ChainReport,
    DigestReport,
    IntegrityIssue,
    looks_chained,
    record_hash,
    verify_chain,
    verify_cloudtrail,
)
from hipaa_audit.logs.integrity import chain as chain_code

sys.path.insert(0, str(ROOT / "fixtures"))
import logchain as lc

pytestmark = pytest.mark.unit

N = 20
KEY = bytes.fromhex("6b" * 32)


def kinds(report: ChainReport | DigestReport) -> list[tuple[str, int | None]]:
    return [(i.kind, getattr(i, "position", None)) for i in report.issues]


def kind_set(report: ChainReport | DigestReport) -> set[tuple[str, int | None]]:
    return {(i.kind, i.position) for i in report.issues}


@pytest.fixture()
def chain(tmp_path: Path) -> Path:
    path = tmp_path / "audit.jsonl"
    lc.write_chain(path, lc.sample_records(N))
    return path


@pytest.fixture()
def mac_chain(tmp_path: Path) -> Path:
    path = tmp_path / "audit-mac.jsonl"
    lc.write_chain(path, lc.sample_records(N), mac_key=KEY)
    return path


# ---------------------------------------------------------------------------------------------
# hash chains


def test_valid_chain(chain: Path) -> None:
    head = lc.chain_hash(lc.read_records(chain)[-1])
    report = verify_chain(chain)
    assert report.issues == [] and report.ok
    assert (report.records, report.valid, report.head) == (N, N, head)
    assert report.first_time == "2024-05-01T00:00:00Z"
    assert report.last_time == "2024-05-01T00:09:30Z"
    assert report.stream == str(chain)
    assert looks_chained(chain)


def test_format_is_the_documented_one(chain: Path) -> None:
    records = lc.read_records(chain)
    assert records[0]["prev"] == GENESIS == "0" * 64
    assert [r["seq"] for r in records] == list(range(1, N + 1))
    for before, after in itertools.pairwise(records):
        canonical = json.dumps(before, sort_keys=True, separators=(",", ":"),
                               ensure_ascii=False).encode("utf-8")
        assert after["prev"] == record_hash(before) == hashlib.sha256(canonical).hexdigest()


def test_write_chain_returns_head(tmp_path: Path) -> None:
    head = lc.write_chain(tmp_path / "c.jsonl", lc.sample_records(5))
    assert verify_chain(tmp_path / "c.jsonl").head == head


def test_modify_breaks_the_next_link(chain: Path, tmp_path: Path) -> None:
    out = tmp_path / "modified.jsonl"
    lc.modify(chain, out, seq=7)
    report = verify_chain(out)
    assert kinds(report) == [("BROKEN_LINK", 8)]
    issue = report.issues[0]
    assert issue.first_time == "2024-05-01T00:03:00Z" and issue.last_time == "2024-05-01T00:03:30Z"
    assert "seq 8" in issue.detail and "line 7" in issue.detail
    assert report.valid == N - 1


def test_modify_last_record_is_invisible_without_anchor_or_mac(
    mac_chain: Path, tmp_path: Path
) -> None:
    out = tmp_path / "modified-last.jsonl"
    lc.modify(mac_chain, out, seq=N)
    assert verify_chain(out).issues == []
    anchor = tmp_path / "anchor.json"
    lc.write_anchor(mac_chain, anchor)
    assert kinds(verify_chain(out, anchor=anchor)) == [("HEAD_MISMATCH", N)]
    assert kinds(verify_chain(out, mac_key=KEY)) == [("BAD_MAC", N)]


def test_modify_with_mac(mac_chain: Path, tmp_path: Path) -> None:
    assert verify_chain(mac_chain, mac_key=KEY).issues == []
    out = tmp_path / "modified.jsonl"
    lc.modify(mac_chain, out, seq=7)
    assert kinds(verify_chain(out, mac_key=KEY)) == [("BAD_MAC", 7), ("BROKEN_LINK", 8)]


def test_delete(chain: Path, tmp_path: Path) -> None:
    out = tmp_path / "deleted.jsonl"
    lc.delete(chain, out, seq=7)
    report = verify_chain(out)
    # line 7 now holds seq 8: its prev is the hash of the deleted record
    assert kind_set(report) == {("BROKEN_LINK", 7), ("SEQ_GAP", 7)}
    gap = next(i for i in report.issues if i.kind == "SEQ_GAP")
    assert "seq 7 missing" in gap.detail
    assert (report.records, report.valid) == (N - 1, N - 2)


def test_delete_first_record(chain: Path, tmp_path: Path) -> None:
    out = tmp_path / "deleted-first.jsonl"
    lc.delete(chain, out, seq=1)
    assert kind_set(verify_chain(out)) == {("BROKEN_LINK", 1), ("SEQ_GAP", 1)}


def test_delete_several(chain: Path, tmp_path: Path) -> None:
    once, twice = tmp_path / "d1.jsonl", tmp_path / "d2.jsonl"
    lc.delete(chain, once, seq=7)
    lc.delete(once, twice, seq=8)
    report = verify_chain(twice)
    assert kind_set(report) == {("BROKEN_LINK", 7), ("SEQ_GAP", 7)}
    assert "seq 7-8 missing (2 records" in next(
        i.detail for i in report.issues if i.kind == "SEQ_GAP")


def test_reorder_adjacent(chain: Path, tmp_path: Path) -> None:
    out = tmp_path / "swapped.jsonl"
    lc.reorder(chain, out, 7, 8)
    report = verify_chain(out)
    assert kinds(report) == [
        ("BROKEN_LINK", 7),
        ("BROKEN_LINK", 8), ("SEQ_DUP_OR_BACKWARD", 8), ("TS_BACKWARD", 8),
        ("BROKEN_LINK", 9),
    ]
    assert "arrives out of order" in report.issues[2].detail
    assert not any(i.kind == "SEQ_GAP" for i in report.issues)


def test_reorder_apart(chain: Path, tmp_path: Path) -> None:
    out = tmp_path / "swapped.jsonl"
    lc.reorder(chain, out, 5, 12)
    assert kinds(verify_chain(out)) == [
        ("BROKEN_LINK", 5),
        ("BROKEN_LINK", 6), ("SEQ_DUP_OR_BACKWARD", 6), ("TS_BACKWARD", 6),
        ("BROKEN_LINK", 12), ("SEQ_DUP_OR_BACKWARD", 12), ("TS_BACKWARD", 12),
        ("BROKEN_LINK", 13),
    ]


def test_insert_forged_record(chain: Path, tmp_path: Path) -> None:
    out = tmp_path / "inserted.jsonl"
    lc.insert(chain, out, 7, {"user": "u0001", "action": "view", "outcome": "success"})
    report = verify_chain(out)
    # the forged line 8 links to seq 7; the genuine seq 8 (now line 9) does not link to it
    assert kinds(report) == [("BROKEN_LINK", 9), ("SEQ_DUP_OR_BACKWARD", 9)]
    assert report.records == N + 1


def test_insert_after_last_is_an_append_unless_mac(mac_chain: Path, tmp_path: Path) -> None:
    out = tmp_path / "appended.jsonl"
    lc.insert(mac_chain, out, N, {"user": "u0001", "action": "export"})
    assert verify_chain(out).issues == []
    report = verify_chain(out, mac_key=KEY)
    assert kinds(report) == [("BAD_MAC", N + 1)]
    assert "no mac field" in report.issues[0].detail


def test_truncation_needs_an_anchor(chain: Path, tmp_path: Path) -> None:
    anchor = tmp_path / "anchor.json"
    written = lc.write_anchor(chain, anchor)
    assert written == {"count": N, "head": verify_chain(chain).head}
    assert verify_chain(chain, anchor=anchor).issues == []
    out = tmp_path / "truncated.jsonl"
    lc.truncate(chain, out, keep=15)
    # honest limit: a shorter valid chain is still a valid chain
    plain = verify_chain(out)
    assert plain.issues == [] and plain.records == 15
    report = verify_chain(out, anchor=anchor)
    assert kinds(report) == [("TRUNCATED", 16)]
    assert "only 15 remain" in report.issues[0].detail
    assert report.valid == 15


def test_anchor_allows_later_appends(chain: Path, tmp_path: Path) -> None:
    anchor = tmp_path / "anchor.json"
    lc.write_anchor(chain, anchor, count=10)
    assert verify_chain(chain, anchor=anchor).issues == []
    out = tmp_path / "truncated.jsonl"
    lc.truncate(chain, out, keep=9)
    assert kinds(verify_chain(out, anchor=anchor)) == [("TRUNCATED", 10)]


def test_rechained_rewrite(mac_chain: Path, tmp_path: Path) -> None:
    anchor = tmp_path / "anchor.json"
    lc.write_anchor(mac_chain, anchor)
    out = tmp_path / "rechained.jsonl"
    head = lc.rechain(mac_chain, out, seq=7)
    # invisible to the chain alone: whoever can write the file can recompute it
    plain = verify_chain(out)
    assert plain.issues == [] and plain.head == head
    # an off-host anchor sees the head moved
    assert kinds(verify_chain(out, anchor=anchor)) == [("HEAD_MISMATCH", N)]
    # an off-host MAC key sees every rewritten record, reported as one run
    report = verify_chain(out, mac_key=KEY)
    assert kinds(report) == [("BAD_MAC", 7)]
    issue = report.issues[0]
    assert f"lines 7-{N}" in issue.detail and f"{N - 6} consecutive" in issue.detail
    assert issue.first_time == "2024-05-01T00:03:00Z" and issue.last_time == "2024-05-01T00:09:30Z"
    assert report.valid == 6


def test_wrong_mac_key(mac_chain: Path) -> None:
    report = verify_chain(mac_chain, mac_key=b"another key")
    assert kinds(report) == [("BAD_MAC", 1)]
    assert report.valid == 0


def test_gzip_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl.gz"
    lc.write_chain(path, lc.sample_records(N), mac_key=KEY)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    assert looks_chained(path)
    report = verify_chain(path, mac_key=KEY)
    assert report.issues == [] and report.valid == N
    out = tmp_path / "deleted.jsonl.gz"
    lc.delete(path, out, seq=3)
    assert kind_set(verify_chain(out)) == {("BROKEN_LINK", 3), ("SEQ_GAP", 3)}


def test_corrupt_gzip(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl.gz"
    lc.write_chain(path, lc.sample_records(2000))
    data = path.read_bytes()
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(data[: len(data) // 2])
    report = verify_chain(cut)
    assert report.issues[-1].kind == "MALFORMED"
    assert "cannot be read past line" in report.issues[-1].detail
    assert 0 < report.records < 2000


def test_malformed_line(chain: Path, tmp_path: Path) -> None:
    out = tmp_path / "malformed.jsonl"
    lc.write_malformed(chain, out, line=9)
    report = verify_chain(out)
    # the corrupted record's successor cannot be linked: the chain resumes there
    assert kinds(report) == [("MALFORMED", 9), ("BROKEN_LINK", 10)]
    assert "line 9 is not valid JSON" in report.issues[0].detail
    assert "resumes" in report.issues[1].detail
    assert (report.records, report.valid) == (N, N - 2)


def test_malformed_runs_and_missing_fields(chain: Path, tmp_path: Path) -> None:
    lines = chain.read_text().splitlines()
    record = json.loads(lines[4])
    del record["prev"]
    lines[4] = json.dumps(record)
    lines[5] = "[1, 2]"
    lines[6] = "\xff not json"
    out = tmp_path / "bad.jsonl"
    out.write_text("\n".join(lines) + "\n\n")
    report = verify_chain(out)
    assert kinds(report) == [("MALFORMED", 5), ("BROKEN_LINK", 8)]
    assert "lines 5-7: 3 consecutive lines" in report.issues[0].detail
    one = tmp_path / "one.jsonl"
    lines = chain.read_text().splitlines()
    lines[4] = json.dumps({k: v for k, v in json.loads(lines[4]).items() if k != "ts"})
    one.write_text("\n".join(lines) + "\n")
    report = verify_chain(one)
    assert kinds(report) == [("MALFORMED", 5), ("BROKEN_LINK", 6)]
    assert "missing or invalid ts" in report.issues[0].detail


def test_injected_garbage_line_does_not_break_the_chain(chain: Path, tmp_path: Path) -> None:
    lines = chain.read_text().splitlines()
    lines.insert(4, "garbage")
    out = tmp_path / "garbage.jsonl"
    out.write_text("\n".join(lines) + "\n")
    assert kinds(verify_chain(out)) == [("MALFORMED", 5)]


def test_oversized_line(chain: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chain_code, "MAX_LINE", 64)
    report = verify_chain(chain)
    assert {i.kind for i in report.issues} == {"MALFORMED"}
    assert "longer than 64 bytes" in report.issues[0].detail or "consecutive" in \
        report.issues[0].detail


def test_time_gap(tmp_path: Path) -> None:
    records = list(lc.sample_records(10, step=timedelta(minutes=1)))
    records[6]["ts"] = "2024-05-01T03:00:00Z"
    for n in range(7, 10):
        records[n]["ts"] = f"2024-05-01T03:0{n}:00Z"
    path = tmp_path / "gap.jsonl"
    lc.write_chain(path, records)
    assert verify_chain(path).issues == []
    report = verify_chain(path, max_gap=timedelta(minutes=30))
    assert kinds(report) == [("TIME_GAP", 7)]
    issue = report.issues[0]
    assert (issue.first_time, issue.last_time) == ("2024-05-01T00:05:00Z", "2024-05-01T03:00:00Z")
    assert report.valid == 10


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        verify_chain(tmp_path / "missing.jsonl")


def test_bad_anchor_file(chain: Path, tmp_path: Path) -> None:
    anchor = tmp_path / "anchor.json"
    anchor.write_text('{"count": "many"}')
    report = verify_chain(chain, anchor=anchor)
    assert [(i.kind, i.stream) for i in report.issues] == [("MALFORMED", str(anchor))]


def test_looks_chained(tmp_path: Path) -> None:
    plain = tmp_path / "plain.jsonl"
    plain.write_text('{"ts": "2024-05-01T00:00:00Z", "user": "u1"}\n')
    assert not looks_chained(plain)
    short = tmp_path / "short.jsonl"
    short.write_text('{"seq": 1, "ts": "2024-05-01T00:00:00Z", "prev": "00"}\n')
    assert not looks_chained(short)
    blank_first = tmp_path / "blank.jsonl"
    lc.write_chain(blank_first, lc.sample_records(2))
    blank_first.write_text("\n" + blank_first.read_text())
    assert looks_chained(blank_first)
    assert not looks_chained(tmp_path / "missing.jsonl")
    binary = tmp_path / "bin.dat"
    binary.write_bytes(b"\x00\x01\x02")
    assert not looks_chained(binary)


def test_details_never_quote_content(chain: Path, tmp_path: Path) -> None:
    secret = "DOE^JANE 1962-03-04"
    out = tmp_path / "m.jsonl"
    lc.modify(chain, out, 3, {"user": secret})
    lc.insert(out, tmp_path / "i.jsonl", 10, {"user": secret, "note": secret})
    lines = (tmp_path / "i.jsonl").read_text().splitlines()
    lines[14] = '{"seq": 15, "ts": "' + secret + '", "prev": "' + secret + '"}'
    (tmp_path / "x.jsonl").write_text("\n".join(lines) + "\n")
    report = verify_chain(tmp_path / "x.jsonl", mac_key=KEY, max_gap=timedelta(seconds=1))
    assert report.issues
    for issue in report.issues:
        for value in (issue.detail, issue.first_time or "", issue.last_time or ""):
            assert "DOE" not in value and "1962" not in value


def test_big_chain_memory_is_flat(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl.gz"
    count = 200_000
    lc.write_chain(path, lc.sample_records(count, step=timedelta(seconds=1)))
    # measured in a child process (tracemalloc would make this ten times slower): peak RSS
    # growth while verifying ~40 MB of JSON stays far below what loading the records would take
    script = (
        "import json, resource, sys\n"
        "from datetime import timedelta\n"
        "from pathlib import Path\n"
        "from hipaa_audit.logs.integrity import verify_chain\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "r = verify_chain(Path(sys.argv[1]), max_gap=timedelta(hours=1))\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(json.dumps({'records': r.records, 'valid': r.valid, 'issues': len(r.issues),\n"
        "                  'grew_kb': after - before}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                          text=True, check=True, cwd=ROOT)
    result = json.loads(done.stdout)
    assert result["issues"] == 0
    assert result["records"] == result["valid"] == count
    assert result["grew_kb"] < 32 * 1024, result


# ---------------------------------------------------------------------------------------------
# CloudTrail digests


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("trail")
    return lc.make_trail(base / "trail-bucket", hours=3, records_per_file=5)


@pytest.fixture()
def trail(pristine: tuple[Path, Path], tmp_path: Path) -> Path:
    root = tmp_path / "trail-bucket"
    shutil.copytree(pristine[0], root)
    return root


def rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def ct_kinds(report: DigestReport) -> Counter[str]:
    return Counter(i.kind for i in report.issues)


def test_trail_layout(pristine: tuple[Path, Path]) -> None:
    root, pub = pristine
    digests, logs = lc.trail_digests(root), lc.trail_logs(root)
    assert len(digests) == 3 and len(logs) == 6
    assert pub.parent == root.parent and pub.read_bytes().startswith(b"-----BEGIN RSA PUBLIC")
    first = json.loads(gzip.decompress(digests[0].read_bytes()))
    second = json.loads(gzip.decompress(digests[1].read_bytes()))
    assert first["previousDigestSignature"] is None
    assert second["previousDigestS3Object"] == rel(root, digests[0])
    assert first["digestS3Object"] == rel(root, digests[0])
    assert first["digestS3Bucket"] == "trail-bucket"
    sidecar = json.loads(digests[0].with_name(digests[0].name + ".sig").read_text())
    assert sidecar["signature-algorithm"] == "SHA256withRSA"
    assert second["previousDigestSignature"] == sidecar["signature"]
    records = json.loads(gzip.decompress(logs[0].read_bytes()))["Records"]
    assert len(records) == 5
    assert {r["eventName"] for r in records} <= {"GetObject", "ListObjects", "ConsoleLogin"}
    assert all(r["eventTime"].endswith("Z") and r["eventID"] for r in records)


def test_valid_trail(pristine: tuple[Path, Path]) -> None:
    root, pub = pristine
    report = verify_cloudtrail(root, [pub])
    assert report.issues == [] and report.ok
    assert (report.digests, report.valid_digests) == (3, 3)
    assert (report.logs_checked, report.valid_logs) == (6, 6)
    assert (report.first_time, report.last_time) == ("2024-05-01T00:00:00Z",
                                                    "2024-05-01T03:00:00Z")
    assert report.folder == str(root)
    assert verify_cloudtrail(root, [pub], bucket="trail-bucket").issues == []


def test_public_key_forms(pristine: tuple[Path, Path], tmp_path: Path) -> None:
    root, pub = pristine
    key = serialization.load_pem_public_key(pub.read_bytes())
    assert isinstance(key, rsa.RSAPublicKey)
    pkcs1 = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    spki_pem = key.public_bytes(serialization.Encoding.PEM,
                                serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = json.loads(gzip.decompress(lc.trail_digests(root)[0].read_bytes()))
    fingerprint = digest["digestPublicKeyFingerprint"]
    der_file, b64_file, spki_file, listing = (tmp_path / n for n in
                                              ("k.der", "k.b64", "k.pem", "keys.json"))
    der_file.write_bytes(pkcs1)
    b64_file.write_text(base64.b64encode(pkcs1).decode())
    spki_file.write_bytes(spki_pem)
    listing.write_text(json.dumps({"PublicKeyList": [
        {"Value": base64.b64encode(pkcs1).decode(), "Fingerprint": fingerprint}]}))
    for keys in ([der_file], [b64_file], [spki_file], [listing], {fingerprint: pkcs1}, pub):
        assert verify_cloudtrail(root, keys).issues == [], keys
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    with pytest.raises(ValueError, match=r"junk\.pem"):
        verify_cloudtrail(root, [junk])


def test_tamper_log(trail: Path, pristine: tuple[Path, Path]) -> None:
    path = lc.tamper_log(trail, 2)
    report = verify_cloudtrail(trail, [pristine[1]])
    assert [(i.kind, i.stream) for i in report.issues] == [("LOG_HASH_MISMATCH", rel(trail, path))]
    assert "INVALID: hash value doesn't match" in report.issues[0].detail
    assert report.issues[0].first_time and report.issues[0].last_time
    assert (report.logs_checked, report.valid_logs) == (6, 5)


def test_delete_log(trail: Path, pristine: tuple[Path, Path]) -> None:
    path = lc.delete_log(trail, 4)
    report = verify_cloudtrail(trail, [pristine[1]])
    assert [(i.kind, i.stream) for i in report.issues] == [("LOG_NOT_FOUND", rel(trail, path))]
    assert report.issues[0].detail.endswith("INVALID: not found")


def test_append_trailing_data(trail: Path, pristine: tuple[Path, Path]) -> None:
    path = lc.append_trailing_data(trail, 1)
    # an ordinary gzip reader sees the forged record
    assert b"GetObject" in gzip.decompress(path.read_bytes())[-200:]
    report = verify_cloudtrail(trail, [pristine[1]])
    assert [(i.kind, i.stream) for i in report.issues] == [("TRAILING_DATA", rel(trail, path))]
    assert "unexpected data after end of compressed stream" in report.issues[0].detail


def test_delete_middle_digest(trail: Path, pristine: tuple[Path, Path]) -> None:
    digest = lc.delete_digest(trail, 1)
    report = verify_cloudtrail(trail, [pristine[1]])
    assert ct_kinds(report) == Counter({"DIGEST_NOT_FOUND": 1, "UNDIGESTED_LOG": 2})
    missing = report.issues[0]
    assert missing.stream == rel(trail, digest)
    assert missing.detail.endswith("INVALID: not found")
    assert (missing.first_time, missing.last_time) == ("2024-05-01T01:00:00Z",
                                                      "2024-05-01T02:00:00Z")
    hour_one = {rel(trail, p) for p in lc.trail_logs(trail)[2:4]}
    assert {i.stream for i in report.issues if i.kind == "UNDIGESTED_LOG"} == hour_one
    assert (report.digests, report.logs_checked) == (2, 4)


def test_delete_oldest_digest(trail: Path, pristine: tuple[Path, Path]) -> None:
    lc.delete_digest(trail, 0)
    report = verify_cloudtrail(trail, [pristine[1]])
    assert ct_kinds(report) == Counter({"DIGEST_NOT_FOUND": 1, "UNDIGESTED_LOG": 2})


def test_delete_newest_digest_is_not_detectable(trail: Path, pristine: tuple[Path, Path]) -> None:
    # as with the AWS CLI: on a copy with no notion of "now", the newest hour looks undelivered
    lc.delete_digest(trail, 2)
    report = verify_cloudtrail(trail, [pristine[1]])
    assert report.issues == [] and report.digests == 2
    assert report.last_time == "2024-05-01T02:00:00Z"


def test_move_digest(trail: Path, pristine: tuple[Path, Path]) -> None:
    original = rel(trail, lc.trail_digests(trail)[1])
    moved = lc.move_digest(trail, 1)
    report = verify_cloudtrail(trail, [pristine[1]])
    assert ct_kinds(report) == Counter(
        {"DIGEST_NOT_FOUND": 1, "DIGEST_MOVED": 1, "UNDIGESTED_LOG": 2})
    by_kind = {i.kind: i for i in report.issues}
    assert by_kind["DIGEST_NOT_FOUND"].stream == original
    assert by_kind["DIGEST_MOVED"].stream == rel(trail, moved)
    assert "has been moved from its original location" in by_kind["DIGEST_MOVED"].detail


def test_forge_digest(trail: Path, pristine: tuple[Path, Path]) -> None:
    digest = lc.forge_digest(trail, 1)
    report = verify_cloudtrail(trail, [pristine[1]])
    assert ct_kinds(report) == Counter({"SIGNATURE_FAILED": 1, "UNDIGESTED_LOG": 2})
    failed = report.issues[0]
    assert failed.kind == "SIGNATURE_FAILED" and failed.stream == rel(trail, digest)
    assert "INVALID: signature verification failed" in failed.detail
    # the walk resumes at the older digest, as the AWS CLI does
    assert (report.digests, report.valid_digests, report.logs_checked) == (3, 2, 4)


def test_missing_signature_sidecar(trail: Path, pristine: tuple[Path, Path]) -> None:
    digest = lc.trail_digests(trail)[2]
    digest.with_name(digest.name + ".sig").unlink()
    report = verify_cloudtrail(trail, [pristine[1]])
    first = report.issues[0]
    assert (first.kind, first.stream) == ("SIGNATURE_FAILED", rel(trail, digest))


def test_resigned_digest_breaks_the_chain(trail: Path, pristine: tuple[Path, Path]) -> None:
    digest = lc.resign_digest(trail, 1, lc.private_key_path(pristine[0]))
    report = verify_cloudtrail(trail, [pristine[1]])
    assert ct_kinds(report) == Counter({"CHAIN_BROKEN": 1, "UNDIGESTED_LOG": 1})
    assert report.issues[0].stream == rel(trail, digest)
    dropped = rel(trail, lc.trail_logs(trail)[3])
    assert report.issues[1].stream == dropped


def test_injected_log(trail: Path, pristine: tuple[Path, Path]) -> None:
    path = lc.inject_log(trail)
    report = verify_cloudtrail(trail, [pristine[1]])
    assert [(i.kind, i.stream) for i in report.issues] == [("UNDIGESTED_LOG", rel(trail, path))]


def test_malformed_digest(trail: Path, pristine: tuple[Path, Path]) -> None:
    digest = lc.trail_digests(trail)[0]
    digest.write_bytes(b"not gzip")
    report = verify_cloudtrail(trail, [pristine[1]])
    assert ct_kinds(report) == Counter({"MALFORMED": 1})
    assert report.issues[0].detail.endswith("INVALID: invalid format")


def test_digest_gap(tmp_path: Path) -> None:
    root, pub = lc.make_trail(tmp_path / "trail-bucket", hours=3, gap_after=0)
    report = verify_cloudtrail(root, [pub])
    assert [i.kind for i in report.issues] == ["DIGEST_GAP"]
    gap = report.issues[0]
    assert gap.detail == ("No log files were delivered by CloudTrail between "
                          "2024-05-01T01:00:00Z and 2024-05-01T02:00:00Z")
    assert gap.stream == "AWSLogs/111122223333/CloudTrail-Digest/us-east-1"
    assert (report.digests, report.valid_digests, report.logs_checked) == (3, 3, 6)


def test_wrong_public_key(pristine: tuple[Path, Path], tmp_path: Path) -> None:
    root, _pub = pristine
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    other_pem = tmp_path / "other.pem"
    other_pem.write_bytes(other.public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.PKCS1))
    report = verify_cloudtrail(root, [other_pem])
    assert ct_kinds(report) == Counter({"NO_PUBLIC_KEY": 3})
    assert "public key not found" in report.issues[0].detail
    assert (report.valid_digests, report.logs_checked) == (0, 0)
    # a key registered under the right fingerprint but not the one that signed
    digest = json.loads(gzip.decompress(lc.trail_digests(root)[0].read_bytes()))
    wrong = {digest["digestPublicKeyFingerprint"]: other.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.PKCS1)}
    assert ct_kinds(verify_cloudtrail(root, wrong)) == Counter({"SIGNATURE_FAILED": 3})


def test_bucket_name_checked_when_given(pristine: tuple[Path, Path]) -> None:
    root, pub = pristine
    report = verify_cloudtrail(root, [pub], bucket="another-bucket")
    assert ct_kinds(report) == Counter({"DIGEST_MOVED": 3})
    assert "s3://another-bucket/" in report.issues[0].detail


def test_issue_is_frozen() -> None:
    issue = IntegrityIssue("BROKEN_LINK", "x", 1, None, None, "d")
    with pytest.raises(AttributeError):
        issue.kind = "OTHER"  # type: ignore[misc]
