"""The S3 scanner against real servers on 127.0.0.1: moto (AWS semantics) and SeaweedFS.

``fixtures/s3peers.py`` builds one bucket per planted misconfiguration and good buckets beside
them. Every planted problem must be reported with its citation, nothing the store did not confirm
may pass, the scan must send no write, and no planted PHI value may reach any output.
"""

from __future__ import annotations

import json
import sys
import time
import types
from pathlib import Path
from typing import Any

import botocore.endpoint
import botocore.retries.bucket
import pytest
from conftest import ROOT, run_cli
from helpers import leaks, scan_and_render

sys.path.insert(0, str(ROOT / "fixtures"))

import s3peers

from hipaa_audit.aws.client import Access, Connection, WriteRefused, is_read_only
from hipaa_audit.catalog import load_catalog
from hipaa_audit.model import Status
from hipaa_audit.redaction import Masker
from hipaa_audit.s3 import entry as s3_entry
from hipaa_audit.s3.run import S3Options, scan_s3
from hipaa_audit.scanner import Setup, scanner_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
TRUSTED = "111111111111"


@pytest.fixture(scope="module")
def servers(s3_set: dict[str, s3peers.S3Server]) -> dict[str, s3peers.S3Server]:
    """The session's moto and SeaweedFS estates (``s3_set`` in conftest.py)."""
    return s3_set


def scan(server: s3peers.S3Server, *args: str, fmt: str = "json") -> Any:
    provider = "aws" if server.kind == "moto" else "compatible"
    result = run_cli("scan", "s3", "--endpoint-url", server.endpoint_url, "--provider", provider,
                     "--format", fmt, "--fail-on", "none", *args, env=server.env())
    assert "Traceback" not in result.stderr, result.stderr
    return result


def findings(doc: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for f in doc["findings"]:
        out.setdefault(f["asset"], []).append(f)
    return out


def checks_of(doc: dict[str, Any], asset: str, status: str = "fail") -> set[str]:
    return {f["check_id"] for f in findings(doc).get(asset, []) if f["status"] == status}


def unverified(doc: dict[str, Any], asset: str) -> set[str]:
    return {f["locations"][0].get("check", "") for f in findings(doc).get(asset, [])
            if f["status"] == "error" and f["locations"]}


def scan_here(server: s3peers.S3Server, calls: list[tuple[str, str]] | None = None,
              formats: tuple[str, ...] = ("json",), **options: Any) -> tuple[int, dict[str, str]]:
    """``scan(server, ...)`` in this process (:func:`helpers.scan_and_render`): the exit code
    (as with ``--fail-on none``) and each format's text (every format when ``formats`` is
    empty); each API call the scan's connection makes is added to ``calls``."""
    opts = scanner_for("s3").options_model.from_command_line(
        endpoint_url=server.endpoint_url,
        provider="aws" if server.kind == "moto" else "compatible", **options)
    with pytest.MonkeyPatch.context() as mp:
        if calls is not None:
            def connect(access: Access, seen: list[tuple[str, str]] = calls) -> Connection:
                return Connection(access, lambda service, op: seen.append((service, op)))

            mp.setattr(s3_entry, "Connection", connect)
        return scan_and_render("s3", opts, Setup(strict=True, masker_=Masker(b"k" * 32)),
                               formats, env=server.env())


@pytest.fixture(scope="module")
def estates(servers: dict[str, s3peers.S3Server]
            ) -> dict[str, tuple[dict[str, str], list[tuple[str, str]]]]:
    """Each whole estate scanned once (no bucket named), in this process: kind → each format's
    text and every API call the scan made."""
    out = {}
    for kind, options in (("moto", {"trusted_accounts": [TRUSTED]}), ("seaweedfs", {})):
        calls: list[tuple[str, str]] = []
        code, texts = scan_here(servers[kind], calls, (), **options)
        assert code == 4, kind  # findings, and objects a policy keeps from us
        out[kind] = texts, calls
    return out


@pytest.fixture(scope="module")
def moto_doc(estates: dict[str, tuple[dict[str, str], list[tuple[str, str]]]]) -> Any:
    return json.loads(estates["moto"][0]["json"])


@pytest.fixture(scope="module")
def seaweed_doc(estates: dict[str, tuple[dict[str, str], list[tuple[str, str]]]]) -> Any:
    return json.loads(estates["seaweedfs"][0]["json"])


PLANTED_MOTO = {
    "s3://no-encryption": {"s3-default-encryption"},
    "s3://public-acl": {"s3-public-acl", "s3-public-access-block"},
    "s3://public-policy": {"s3-public-policy", "s3-public-access-block"},
    "s3://cross-account": {"s3-cross-account"},
    "s3://tls-wrong": {"s3-tls-only"},
    "s3://audit-logs-weak": {"s3-object-lock", "s3-lifecycle-retention"},
    "s3://docs-nolock": {"s3-object-lock", "s3-versioning"},
    "s3://replicated": {"s3-replication-encryption"},
    "s3://inventoried": {"s3-object-unencrypted"},
    "s3://inventoried-parquet": {"s3-object-unencrypted"},
}


@pytest.mark.parametrize(("asset", "expected"), sorted(PLANTED_MOTO.items()))
def test_every_planted_misconfiguration_is_reported(moto_doc: dict[str, Any], asset: str,
                                                    expected: set[str]) -> None:
    assert expected <= checks_of(moto_doc, asset)


def test_good_buckets_pass(moto_doc: dict[str, Any]) -> None:
    # the good bucket: KMS + bucket key, TLS-only, Block Public Access, owner-enforced,
    # versioned and logged; nothing fails
    assert checks_of(moto_doc, "s3://good-imaging") == set()
    # the log bucket: locked six years in compliance mode, BoolIfExists/false TLS deny,
    # seven-year lifecycle; moto does not echo MFA delete, and its ownership allows ACLs
    assert checks_of(moto_doc, "s3://good-access-logs") <= {"s3-mfa-delete",
                                                            "s3-object-ownership"}
    cov = {c["check_id"]: c for c in moto_doc["coverage"]}
    assert cov["s3-object-lock"]["evaluated"] >= 3  # the three retention buckets


def test_traps_are_not_reported(moto_doc: dict[str, Any]) -> None:
    # Principal "*" confined to a VPC endpoint is not public
    assert "s3-public-policy" not in checks_of(moto_doc, "s3://restricted-policy")
    # the trusted account is not named, the untrusted one is
    [finding] = [f for f in findings(moto_doc)["s3://cross-account"]
                 if f["check_id"] == "s3-cross-account"]
    assert "999999999999" in finding["message"] and TRUSTED not in finding["message"]
    # a partial TLS deny says what it lacks
    [tls] = [f for f in findings(moto_doc)["s3://tls-wrong"] if f["check_id"] == "s3-tls-only"]
    assert "denies only s3:PutObject" in tls["message"]


def test_findings_cite_hipaa(moto_doc: dict[str, Any]) -> None:
    by_check = {f["check_id"]: f for f in moto_doc["findings"]}
    assert "164.316(b)(2)(i)" in by_check["s3-object-lock"]["hipaa"]
    assert "164.316(b)(2)(i)" in by_check["s3-lifecycle-retention"]["hipaa"]
    assert "164.312(e)(1)" in by_check["s3-tls-only"]["hipaa"]
    assert "164.312(a)(1)" in by_check["s3-public-acl"]["hipaa"]
    assert "164.312(a)(2)(iv)" in by_check["s3-default-encryption"]["hipaa"]
    assert all(f["hipaa"] for f in moto_doc["findings"])


def test_phi_objects(moto_doc: dict[str, Any]) -> None:
    by_asset = findings(moto_doc)
    phi = {a: {f["check_id"] for f in fs} for a, fs in by_asset.items()
           if a.startswith("s3://phi-objects/")}
    dicom = [a for a, checks in phi.items() if "dicom-residual-identifier" in checks]
    # the identified DICOM, the one whose patient group starts past 8 KiB, and the public one
    assert len(dicom) == 3, phi
    assert any("archive-unencrypted-phi" in c for c in phi.values())  # the CSV export
    assert "s3-object-public-acl" in phi["s3://phi-objects/public/handout.dcm"]
    unencrypted = [f for fs in by_asset.values() for f in fs
                   if f["check_id"] == "s3-object-unencrypted"
                   and f["asset"].startswith("s3://phi-objects/")]
    assert {f["severity"] for f in unencrypted if f["asset"] in dicom} == {"high"}
    # the de-identified object stored with SSE passes both
    clean = [a for a, checks in phi.items() if not checks & {"dicom-residual-identifier",
                                                             "archive-unencrypted-phi"}]
    assert all("s3-object-unencrypted" not in phi[a] or "filler" in a for a in clean)
    summary = {b["bucket"]: b for b in moto_doc["run"]["evidence"]["buckets"]}
    assert summary["phi-objects"]["phi"] == "PHI found in its sampled objects"
    assert summary["phi-objects"]["objects_sampled"] == summary["phi-objects"]["objects_seen"]


def test_inventory_is_read_from_the_latest_report(moto_doc: dict[str, Any]) -> None:
    [inv] = [f for f in findings(moto_doc)["s3://inventoried"]
             if f["check_id"] == "s3-object-unencrypted"]
    assert "3 of 5" in inv["message"]
    assert inv["locations"][0]["method"] == "inventory"
    assert "2026-11-29" in inv["locations"][0]["report"]
    [pq] = [f for f in findings(moto_doc)["s3://inventoried-parquet"]
            if f["check_id"] == "s3-object-unencrypted"]
    assert "2 of 3" in pq["message"]
    summary = {b["bucket"]: b for b in moto_doc["run"]["evidence"]["buckets"]}
    assert summary["inventoried"]["sample_method"] == "inventory"


def test_access_denied_is_unverifiable(moto_doc: dict[str, Any]) -> None:
    denied = [f for a, fs in findings(moto_doc).items() if a.startswith("s3://denied-objects/")
              for f in fs]
    # moto lets HeadObject through but denies GetObject and GetObjectAcl: what could be read
    # is judged, the content and the ACL of each object are unverifiable, never passed
    errors = [f for f in denied if f["status"] == "error"]
    assert {f["asset"] for f in errors} == {f["asset"] for f in denied} and len(
        {f["asset"] for f in denied}) == 2
    assert all("access denied" in f["message"] for f in errors)
    assert {f["check_id"] for f in denied} <= {"s3-unverifiable", "s3-object-unencrypted"}


def test_seaweedfs(seaweed_doc: dict[str, Any]) -> None:
    assert "s3-default-encryption" in checks_of(seaweed_doc, "s3://sw-plain")
    sw_objects = {f["check_id"] for a, fs in findings(seaweed_doc).items()
                  if a.startswith("s3://sw-plain/") for f in fs}
    assert {"dicom-residual-identifier", "archive-unencrypted-phi",
            "s3-object-unencrypted"} <= sw_objects
    # Block Public Access is not implemented there: said, never passed
    for bucket in ("sw-plain", "sw-encrypted", "sw-audit"):
        assert "s3-public-access-block" in unverified(seaweed_doc, f"s3://{bucket}")
    messages = [f["message"] for f in findings(seaweed_doc)["s3://sw-plain"]
                if f["status"] == "error"]
    assert any("not supported by this store (501 NotImplemented)" in m for m in messages)
    assert "s3-default-encryption" not in checks_of(seaweed_doc, "s3://sw-encrypted")
    assert "s3-versioning" not in checks_of(seaweed_doc, "s3://sw-encrypted")
    # the retention bucket: no lock, a 90-day expiry; MFA delete is not reported by the store
    assert {"s3-object-lock", "s3-lifecycle-retention"} <= checks_of(seaweed_doc, "s3://sw-audit")
    assert "s3-mfa-delete" in unverified(seaweed_doc, "s3://sw-audit")
    # a TLS-only policy locks plain HTTP out: every check unverified, none passed
    locked = findings(seaweed_doc)["s3://sw-tls-locked"]
    assert locked and {f["status"] for f in locked} == {"error"}
    assert any("a bucket policy denies this scanner" in f["message"] for f in locked)
    assert "tags" in unverified(seaweed_doc, "s3://sw-tls-locked")
    cov = {c["check_id"]: c for c in seaweed_doc["coverage"]}
    assert cov["s3-public-access-block"]["errors"] >= 4


def test_scan_sends_no_write(servers: dict[str, s3peers.S3Server],
                             estates: dict[str, tuple[dict[str, str], list[tuple[str, str]]]]
                             ) -> None:
    """Every call of a whole scan is a List, Get or Head; s3control only on AWS semantics."""
    for server in servers.values():
        texts, calls = estates[server.kind]
        aws = server.kind == "moto"
        access = Access(endpoint_url=server.endpoint_url, region="us-east-1",
                        provider="aws" if aws else "compatible")
        with pytest.MonkeyPatch.context() as mp:
            for k, v in server.env().items():
                mp.setenv(k, v)
            assert json.loads(texts["json"])["findings"]
            ops = {op for _, op in calls}
            assert all(is_read_only(op) for op in ops), ops
            assert {"ListObjectsV2", "HeadObject", "GetObject", "GetBucketPolicy"} <= ops
            services = {s for s, _ in calls}
            assert ("s3control" in services) is aws
            # and a write asked of the scanner's client is refused before it is sent
            conn = Connection(access)
            with pytest.raises(WriteRefused):
                conn.client("s3").put_object(Bucket="no-encryption", Key="written", Body=b"x")
            keys = server.client().list_objects_v2(Bucket=next(
                b for b in ("no-encryption", "sw-plain")
                if b in {x["Name"] for x in server.client().list_buckets()["Buckets"]}))
            assert "written" not in {o["Key"] for o in keys.get("Contents", [])}


def test_sample_is_bounded_and_reproducible(servers: dict[str, s3peers.S3Server]) -> None:
    moto = servers["moto"]
    picks = []
    # the command once, then the same scan in this process with the same seed and another
    docs = [scan(moto, "phi-objects", "--sample-objects", "5", "--seed", "1").json(),
            *(json.loads(scan_here(moto, buckets=["phi-objects"], sample_objects=5,
                                   seed=seed)[1]["json"]) for seed in (1, 2))]
    for doc in docs:
        assert doc["run"]["assets"]["objects"] == 5
        picks.append(sorted({f["asset"] for f in doc["findings"]
                             if "/" in f["asset"].removeprefix("s3://")}))
    assert picks[0] == picks[1] and picks[0] != picks[2]
    summary = doc["run"]["evidence"]["buckets"][0]
    assert summary["objects_seen"] == 25 and summary["objects_sampled"] == 5


def waits_take_no_time(mp: pytest.MonkeyPatch) -> None:
    """Run botocore's retry back-off and adaptive rate limiter on a clock that never waits.

    The back-off's sleep returns at once, and every reading of the limiter's clock is one
    token's time (2 s at its lowest rate, 0.5 a second) after the last, so its token bucket
    never has to wait: the limiter sees invented gaps, so this shows nothing of its timing. The
    store's answers, the retries and the verdicts are real (retries absorb throttling; a store
    that always throttles gives an error, never a pass); a scan that is throttled all the time
    would otherwise sleep about a minute.
    """
    skipped = [0.0]

    def now(_clock: object) -> float:
        skipped[0] += 2.0
        return time.time() + skipped[0]

    def sleep(seconds: float) -> None:
        skipped[0] += seconds

    mp.setattr(botocore.retries.bucket.Clock, "current_time", now)
    mp.setattr(botocore.endpoint, "time", types.SimpleNamespace(sleep=sleep))


def test_throttling(servers: dict[str, s3peers.S3Server]) -> None:
    catalog = load_catalog()
    flaky = s3peers.start_throttler(servers["moto"], every=3)
    jammed = s3peers.start_throttler(servers["moto"], always=True)
    try:
        with pytest.MonkeyPatch.context() as mp:
            for k, v in servers["moto"].env().items():
                mp.setenv(k, v)
            waits_take_no_time(mp)
            # every third request throttled: the adaptive retries absorb it
            opts = S3Options(Access(endpoint_url=flaky.endpoint_url, provider="aws",
                                    region="us-east-1"), ("no-encryption", "public-acl"))
            results = list(scan_s3(opts, catalog, Masker(b"k" * 32)))
            assert not [f for r in results for f in r.findings if f.status is Status.ERROR]
            assert {"s3-default-encryption", "s3-public-acl"} <= {
                f.check_id for r in results for f in r.findings}
            # throttled past every retry: unverifiable, never a pass
            opts = S3Options(Access(endpoint_url=jammed.endpoint_url, provider="aws",
                                    region="us-east-1", max_attempts=2), ("no-encryption",))
            [result] = list(scan_s3(opts, catalog, Masker(b"k" * 32)))
            assert result.findings
            assert {f.status for f in result.findings} == {Status.ERROR}
            assert all("kept throttling" in f.message for f in result.findings)
            assert all(failed == 0 for _, failed, _ in result.coverage.counts.values())
    finally:
        flaky.stop()
        jammed.stop()


PHI_BUCKETS = (("moto", "phi-objects"), ("seaweedfs", "sw-plain"))


@pytest.mark.parametrize("fmt", ["table", "json", "jsonl", "sarif", "csv"])
def test_no_phi_in_any_output(estates: dict[str, tuple[dict[str, str], list[tuple[str, str]]]],
                              fmt: str) -> None:
    """Every format's writer on each whole estate (its PHI buckets among them)."""
    for kind, _ in PHI_BUCKETS:
        text = estates[kind][0][fmt]
        assert "dicom-residual-identifier" in text
        assert not leaks(text), f"{kind} {fmt}: {leaks(text)}"


@pytest.mark.parametrize(("kind", "fmt"), [("moto", "table"), ("seaweedfs", "jsonl")])
def test_no_phi_in_the_commands_output(servers: dict[str, s3peers.S3Server], kind: str,
                                       fmt: str) -> None:
    """The real command, its progress on stderr included, prints no planted value."""
    bucket = dict(PHI_BUCKETS)[kind]
    result = scan(servers[kind], bucket, "--progress", fmt=fmt)
    assert "dicom-residual-identifier" in result.stdout
    for where, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        assert not leaks(text), f"{kind} {fmt} {where}: {leaks(text)}"


def test_reveal_phi_shows_what_the_leak_search_finds(
        servers: dict[str, s3peers.S3Server]) -> None:
    result = scan(servers["moto"], "phi-objects", "--reveal-phi")
    assert leaks(result.stdout)  # the search itself works on this output


def test_bad_usage(servers: dict[str, s3peers.S3Server], tmp_path: Path) -> None:
    result = run_cli("scan", "s3", "--trusted-account", "12", env=servers["moto"].env())
    assert result.code == 2 and "12 digits" in result.stderr
    empty = tmp_path / "empty"
    empty.write_text("")
    result = run_cli("scan", "s3", "--endpoint-url", servers["moto"].endpoint_url,
                     env={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "",
                          "AWS_CONFIG_FILE": str(empty),
                          "AWS_SHARED_CREDENTIALS_FILE": str(empty),
                          "AWS_EC2_METADATA_DISABLED": "true"})
    assert result.code == 2 and "no AWS credentials" in result.stderr
    result = scan(servers["moto"], "no-such-bucket")
    assert result.code == 4
    [finding] = result.json()["findings"]
    assert finding["check_id"] == "s3-unverifiable" and "does not exist" in finding["message"]


def test_no_scope_scans_every_bucket(moto_doc: dict[str, Any]) -> None:
    """``moto_doc`` names no bucket: every bucket the identity can list is scanned."""
    assert {b["bucket"] for b in moto_doc["run"]["evidence"]["buckets"]} >= {
        "good-imaging", "phi-objects", "denied-objects"}


def test_unreachable_endpoint_fails_fast(servers: dict[str, s3peers.S3Server]) -> None:
    from netpeers import free_port

    result = run_cli("scan", "s3", "--endpoint-url", f"http://127.0.0.1:{free_port()}", "b",
                     env=servers["moto"].env(), timeout=60)
    assert result.code == 2 and "cannot reach" in result.stderr


def test_role_and_profile(servers: dict[str, s3peers.S3Server], tmp_path: Path) -> None:
    moto = servers["moto"]
    # an audit role assumed through STS first (in this process)
    doc = json.loads(scan_here(moto, buckets=["public-acl"],
                               role_arn="arn:aws:iam::123456789012:role/hipaa-audit")[1]["json"])
    assert doc["run"]["options"]["role_arn"].endswith("role/hipaa-audit")
    assert "s3-public-acl" in checks_of(doc, "s3://public-acl")
    # a named profile from the shared credentials file, no keys in the environment
    creds = tmp_path / "credentials"
    creds.write_text("[audit]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    env = {**moto.env(), "AWS_SHARED_CREDENTIALS_FILE": str(creds), "AWS_ACCESS_KEY_ID": "",
           "AWS_SECRET_ACCESS_KEY": ""}
    result = run_cli("scan", "s3", "--endpoint-url", moto.endpoint_url, "--provider", "aws",
                     "--profile", "audit", "public-acl", "--format", "json", env=env)
    assert result.code == 3, result.stderr
    result = run_cli("scan", "s3", "--endpoint-url", moto.endpoint_url, "--profile", "nobody",
                     "public-acl", env=env)
    assert result.code == 2 and "profile" in result.stderr


def test_table_shows_the_buckets(servers: dict[str, s3peers.S3Server]) -> None:
    result = run_cli("scan", "s3", "--endpoint-url", servers["seaweedfs"].endpoint_url,
                     "sw-plain", "sw-tls-locked", env={**servers["seaweedfs"].env(),
                                                       "COLUMNS": "200"})
    assert result.code == 3, result.stderr
    assert "Buckets" in result.stdout and "s3://sw-tls-locked" in result.stdout
    assert "none; not verified: access-logging" in result.stdout
