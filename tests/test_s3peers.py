"""fixtures/s3peers.py: the S3 servers are real and the planted estates read back as described.

moto (server mode) and SeaweedFS ``weed mini`` run on 127.0.0.1 for the whole session
(``s3_set`` in conftest.py); every check uses boto3 (or plain unsigned HTTP) directly, never the
scanner.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import ROOT, pid_running
from helpers import served_json, serving, sigterm_exit
from pydicom import dcmread

sys.path.insert(0, str(ROOT / "fixtures"))
import generate
import s3peers

pytestmark = [pytest.mark.fixtures, pytest.mark.timeout(300)]

SCRIPT = ROOT / "fixtures" / "s3peers.py"

MOTO_BUCKETS = {
    "good-imaging", "good-access-logs", "no-encryption", "public-acl", "public-policy",
    "restricted-policy", "cross-account", "tls-wrong", "audit-logs-weak", "docs-nolock",
    "phi-objects", "replicated", "replica-plain", "denied-objects", "inventoried",
    "inventory-dest", "inventoried-parquet",
}
SEAWEED_BUCKETS = {"sw-plain", "sw-encrypted", "sw-tls-locked", "sw-audit"}
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
LOG_DELIVERY = "http://acs.amazonaws.com/groups/s3/LogDelivery"
# Ports weed mini would take by default: none may be used by our instances.
WEED_DEFAULT_PORTS = {7333, 8181, 8333, 8888, 9101, 9333, 9340, 18333, 18888, 19333, 19340,
                      23646, 33646}


@pytest.fixture(scope="module")
def estate(s3_set: dict[str, s3peers.S3Server]) -> dict[str, Any]:
    """The session's servers (``s3_set`` in conftest.py checks at its end that both stopped)."""
    return {"servers": s3_set}


@pytest.fixture(scope="module")
def moto(estate: dict[str, Any]) -> s3peers.S3Server:
    server: s3peers.S3Server = estate["servers"]["moto"]
    return server


@pytest.fixture(scope="module")
def weed(estate: dict[str, Any]) -> s3peers.S3Server:
    server: s3peers.S3Server = estate["servers"]["seaweedfs"]
    return server


@pytest.fixture(scope="module")
def s3(moto: s3peers.S3Server) -> Any:
    return moto.client()


@pytest.fixture(scope="module")
def sw(weed: s3peers.S3Server) -> Any:
    return weed.client()


# ---------------------------------------------------------------------------------------------
# helpers


def error_of(call: Any, *args: Any, **kwargs: Any) -> tuple[str, int]:
    """(error code, HTTP status) of a boto3 call that must fail."""
    with pytest.raises(ClientError) as info:
        call(*args, **kwargs)
    response = info.value.response
    return str(response["Error"].get("Code")), int(response["ResponseMetadata"]["HTTPStatusCode"])


def anonymous_get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def policy_of(client: Any, bucket: str) -> dict[str, Any]:
    policy: dict[str, Any] = json.loads(client.get_bucket_policy(Bucket=bucket)["Policy"])
    return policy


def bpa(client: Any, bucket: str) -> dict[str, bool]:
    config: dict[str, bool] = client.get_public_access_block(
        Bucket=bucket)["PublicAccessBlockConfiguration"]
    return config


def tags(client: Any, bucket: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in client.get_bucket_tagging(Bucket=bucket)["TagSet"]}


def keys(client: Any, bucket: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def body(client: Any, bucket: str, key: str) -> bytes:
    data: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return data


def listening_sockets(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state that process ``pid`` owns."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found: list[tuple[str, int]] = []
    for table, width in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] != "0A" or cols[9] not in inodes:
                continue
            addr_hex, port_hex = cols[1].split(":")
            assert len(addr_hex) == width
            if width == 8:
                addr = ".".join(str(b) for b in reversed(bytes.fromhex(addr_hex)))
            else:
                addr = "ipv6:" + addr_hex
            found.append((addr, int(port_hex, 16)))
    return found


# ---------------------------------------------------------------------------------------------
# servers


def test_set_serves_both(estate: dict[str, Any], s3: Any, sw: Any) -> None:
    servers = estate["servers"]
    assert list(servers) == ["moto", "seaweedfs"]
    for server in servers.values():
        assert server.endpoint_url.startswith("http://127.0.0.1:")
        assert server.alive()
    assert {b["Name"] for b in s3.list_buckets()["Buckets"]} == MOTO_BUCKETS
    assert {b["Name"] for b in sw.list_buckets()["Buckets"]} == SEAWEED_BUCKETS


def test_client_and_env(moto: s3peers.S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/no/such/file")
    client = moto.client()
    assert client.meta.config.s3 == {"addressing_style": "path"}
    assert client.meta.config.retries["total_max_attempts"] == 1
    assert client.meta.region_name == "us-east-1"
    assert client.list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200
    retrying = moto.client(retries={"mode": "standard", "max_attempts": 5})
    assert retrying.meta.config.retries["mode"] == "standard"
    sts = moto.client("sts")
    assert sts.get_caller_identity()["Account"] == "123456789012"
    env = moto.env()
    assert env["AWS_ACCESS_KEY_ID"] == "testing" and env["AWS_SECRET_ACCESS_KEY"] == "testing"
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert "AWS_PROFILE" not in env
    for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        assert Path(env[name]).read_bytes() == b""


def test_seaweed_binds_loopback_only_on_chosen_ports(weed: s3peers.S3Server) -> None:
    assert weed.pid is not None
    sockets = listening_sockets(weed.pid)
    assert len(sockets) >= 10  # master, volume, filer, s3, admin: HTTP + gRPC each
    assert {addr for addr, _ in sockets} == {"127.0.0.1"}
    ports = {port for _, port in sockets}
    assert weed.port in ports
    assert not ports & WEED_DEFAULT_PORTS


def test_second_seaweed_instance_does_not_collide(weed: s3peers.S3Server,
                                                  tmp_path: Path) -> None:
    other = s3peers.start_seaweedfs(tmp_path)
    try:
        assert other.port != weed.port
        assert other.pid is not None and weed.pid is not None
        mine = {p for _, p in listening_sockets(weed.pid)}
        theirs = {p for _, p in listening_sockets(other.pid)}
        assert not mine & theirs
        assert other.client().list_buckets()["Buckets"] == []
    finally:
        other.stop()
    assert not other.alive()
    assert weed.alive()
    leftovers = [str(path) for port in theirs
                 for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock")]
    assert leftovers == []


def test_start_moto_refuses_a_busy_port(moto: s3peers.S3Server, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="already in use"):
        s3peers.start_moto(tmp_path, port=moto.port)


# ---------------------------------------------------------------------------------------------
# moto estate


def test_good_imaging(s3: Any) -> None:
    b = "good-imaging"
    assert tags(s3, b) == {"phi": "true"}
    rule = s3.get_bucket_encryption(Bucket=b)["ServerSideEncryptionConfiguration"]["Rules"][0]
    default = rule["ApplyServerSideEncryptionByDefault"]
    assert default["SSEAlgorithm"] == "aws:kms"
    assert default["KMSMasterKeyID"].startswith("arn:aws:kms:us-east-1:123456789012:key/")
    assert rule["BucketKeyEnabled"] is True
    assert bpa(s3, b) == dict.fromkeys(("BlockPublicAcls", "IgnorePublicAcls",
                                        "BlockPublicPolicy", "RestrictPublicBuckets"), True)
    ownership = s3.get_bucket_ownership_controls(Bucket=b)["OwnershipControls"]["Rules"]
    assert ownership == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert s3.get_bucket_versioning(Bucket=b)["Status"] == "Enabled"
    logging = s3.get_bucket_logging(Bucket=b)["LoggingEnabled"]
    assert logging["TargetBucket"] == "good-access-logs"
    assert logging["TargetPrefix"] == "good-imaging/"
    (stmt,) = policy_of(s3, b)["Statement"]
    assert stmt["Effect"] == "Deny" and stmt["Principal"] == "*" and stmt["Action"] == "s3:*"
    assert stmt["Resource"] == ["arn:aws:s3:::good-imaging", "arn:aws:s3:::good-imaging/*"]
    assert stmt["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert keys(s3, b) == []
    kms = s3peers.S3Server("moto", s3.meta.endpoint_url, "testing", "testing").client("kms")
    assert kms.describe_key(KeyId=default["KMSMasterKeyID"])["KeyMetadata"]["Enabled"]


def test_good_access_logs(s3: Any) -> None:
    b = "good-access-logs"
    rule = s3.get_bucket_encryption(Bucket=b)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert all(bpa(s3, b).values())
    assert s3.get_bucket_versioning(Bucket=b)["Status"] == "Enabled"
    assert tags(s3, b) == {"hipaa-retention": "audit-log"}
    lock = s3.get_object_lock_configuration(Bucket=b)["ObjectLockConfiguration"]
    assert lock["ObjectLockEnabled"] == "Enabled"
    retention = lock["Rule"]["DefaultRetention"]
    assert retention["Mode"] == "COMPLIANCE" and retention["Years"] == 6
    (stmt,) = policy_of(s3, b)["Statement"]
    assert stmt["Effect"] == "Deny" and stmt["Action"] == "s3:*"
    assert stmt["Condition"] == {"BoolIfExists": {"aws:SecureTransport": False}}
    (life,) = s3.get_bucket_lifecycle_configuration(Bucket=b)["Rules"]
    assert life["Status"] == "Enabled" and life["Expiration"]["Days"] == 2557
    ownership = s3.get_bucket_ownership_controls(Bucket=b)["OwnershipControls"]["Rules"]
    assert ownership == [{"ObjectOwnership": "BucketOwnerPreferred"}]
    grants = {(g["Grantee"].get("URI"), g["Permission"])
              for g in s3.get_bucket_acl(Bucket=b)["Grants"]}
    assert {(LOG_DELIVERY, "WRITE"), (LOG_DELIVERY, "READ_ACP")} <= grants


def test_no_encryption(s3: Any) -> None:
    b = "no-encryption"
    code, status = error_of(s3.get_bucket_encryption, Bucket=b)
    assert (code, status) == ("ServerSideEncryptionConfigurationNotFoundError", 404)
    assert error_of(s3.get_public_access_block, Bucket=b)[1] == 404
    assert error_of(s3.get_bucket_policy, Bucket=b)[1] == 404
    assert "Status" not in s3.get_bucket_versioning(Bucket=b)
    assert keys(s3, b) == ["readme.txt"]
    assert "ServerSideEncryption" not in s3.head_object(Bucket=b, Key="readme.txt")


def test_public_acl(s3: Any) -> None:
    b = "public-acl"
    assert bpa(s3, b) == dict.fromkeys(("BlockPublicAcls", "IgnorePublicAcls",
                                        "BlockPublicPolicy", "RestrictPublicBuckets"), False)
    ownership = s3.get_bucket_ownership_controls(Bucket=b)["OwnershipControls"]["Rules"]
    assert ownership == [{"ObjectOwnership": "ObjectWriter"}]
    grants = {(g["Grantee"].get("URI"), g["Permission"])
              for g in s3.get_bucket_acl(Bucket=b)["Grants"]}
    assert (ALL_USERS, "READ") in grants


def test_public_and_restricted_policies(s3: Any) -> None:
    (public,) = policy_of(s3, "public-policy")["Statement"]
    assert public["Effect"] == "Allow" and public["Principal"] == "*"
    assert public["Action"] == "s3:GetObject" and "Condition" not in public
    assert public["Resource"] == "arn:aws:s3:::public-policy/*"
    assert s3.get_bucket_policy_status(Bucket="public-policy")["PolicyStatus"]["IsPublic"]
    assert not any(bpa(s3, "public-policy").values())
    (restricted,) = policy_of(s3, "restricted-policy")["Statement"]
    assert restricted["Principal"] == "*" and restricted["Effect"] == "Allow"
    assert restricted["Condition"] == {"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}}
    assert not any(bpa(s3, "restricted-policy").values())


def test_cross_account_and_tls_wrong(s3: Any) -> None:
    (stmt,) = policy_of(s3, "cross-account")["Statement"]
    assert stmt["Principal"] == {"AWS": ["arn:aws:iam::999999999999:root",
                                         "arn:aws:iam::111111111111:role/reader"]}
    assert stmt["Action"] == "s3:GetObject"
    (deny,) = policy_of(s3, "tls-wrong")["Statement"]
    assert deny["Effect"] == "Deny" and deny["Action"] == "s3:PutObject"
    assert deny["Resource"] == "arn:aws:s3:::tls-wrong/*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_audit_logs_weak_and_docs_nolock(s3: Any) -> None:
    b = "audit-logs-weak"
    assert tags(s3, b) == {"hipaa-retention": "audit-log"}
    assert s3.get_bucket_versioning(Bucket=b)["Status"] == "Enabled"
    retention = s3.get_object_lock_configuration(
        Bucket=b)["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
    assert retention["Mode"] == "GOVERNANCE" and retention["Days"] == 365
    (life,) = s3.get_bucket_lifecycle_configuration(Bucket=b)["Rules"]
    assert life["Expiration"]["Days"] == 365
    assert life["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30
    assert keys(s3, b) == ["2026/11/01/audit.log"]
    head = s3.head_object(Bucket=b, Key="2026/11/01/audit.log")
    assert head.get("ObjectLockMode") == "GOVERNANCE"

    b = "docs-nolock"
    assert tags(s3, b) == {"hipaa-retention": "documentation"}
    assert "Status" not in s3.get_bucket_versioning(Bucket=b)
    assert error_of(s3.get_object_lock_configuration, Bucket=b)[1] == 404
    assert error_of(s3.get_bucket_lifecycle_configuration, Bucket=b)[1] == 404


def test_phi_objects(s3: Any, moto: s3peers.S3Server) -> None:
    b = "phi-objects"
    assert error_of(s3.get_bucket_encryption, Bucket=b)[1] == 404
    assert not any(bpa(s3, b).values())
    listed = keys(s3, b)
    planted = {s3peers.IDENTIFIED_KEY, s3peers.LONG_HEADER_KEY, s3peers.DEIDENTIFIED_KEY,
               "exports/patients.csv", "public/handout.dcm"}
    assert planted <= set(listed)
    assert sorted(k for k in listed if k.startswith("filler/")) == [
        f"filler/{i:04d}.txt" for i in range(20)]
    assert len(listed) == 25
    assert not [k for k in listed if k.endswith(".dcm") and k != "public/handout.dcm"]
    sse = {k: s3.head_object(Bucket=b, Key=k).get("ServerSideEncryption") for k in planted}
    assert sse[s3peers.DEIDENTIFIED_KEY] == "AES256"
    assert [k for k, v in sse.items() if v is not None] == [s3peers.DEIDENTIFIED_KEY]

    for key in (s3peers.IDENTIFIED_KEY, s3peers.LONG_HEADER_KEY, "public/handout.dcm"):
        ds = dcmread(io.BytesIO(body(s3, b, key)))
        assert str(ds.PatientName) == generate.PATIENT_NAME
        assert ds.PatientID == generate.PATIENT_ID
        assert ds.PatientBirthDate == generate.BIRTH_DATE
    deid = dcmread(io.BytesIO(body(s3, b, s3peers.DEIDENTIFIED_KEY)))
    assert deid.PatientIdentityRemoved == "YES"
    assert str(deid.PatientName) == generate.PSEUDO_NAME

    long_header = body(s3, b, s3peers.LONG_HEADER_KEY)
    assert long_header[128:132] == b"DICM"
    assert long_header.find(b"\x10\x00\x10\x00PN") > 12_000
    assert long_header.find(b"\xe0\x7f\x10\x00") < 60_000  # header before the pixels
    assert len(long_header) < 60_000
    partial = dcmread(io.BytesIO(long_header[:8192]), stop_before_pixels=True, force=True)
    assert "PatientName" not in partial  # an 8 KB ranged GET misses the patient group

    text = body(s3, b, "exports/patients.csv").decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["mrn", "patient_name", "dob", "ssn"]
    assert rows[1:] == [[generate.PATIENT_ID, generate.PATIENT_NAME, generate.BIRTH_DATE,
                         generate.SSN]] * 3

    grants = {(g["Grantee"].get("URI"), g["Permission"])
              for g in s3.get_object_acl(Bucket=b, Key="public/handout.dcm")["Grants"]}
    assert (ALL_USERS, "READ") in grants
    base = f"{moto.endpoint_url}/{b}"
    assert anonymous_get(f"{base}/public/handout.dcm") == 200
    assert anonymous_get(f"{base}/{s3peers.IDENTIFIED_KEY}") == 403


def test_replication(s3: Any) -> None:
    config = s3.get_bucket_replication(Bucket="replicated")["ReplicationConfiguration"]
    assert config["Role"] == "arn:aws:iam::123456789012:role/replication"
    (rule,) = config["Rules"]
    assert rule["Status"] == "Enabled"
    assert rule["Destination"]["Bucket"] == "arn:aws:s3:::replica-plain"
    assert "EncryptionConfiguration" not in rule["Destination"]
    assert "SourceSelectionCriteria" not in rule
    default = s3.get_bucket_encryption(Bucket="replicated")[
        "ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"]
    imaging = s3.get_bucket_encryption(Bucket="good-imaging")[
        "ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"]
    assert default == imaging  # the same CMK
    for b in ("replicated", "replica-plain"):
        assert s3.get_bucket_versioning(Bucket=b)["Status"] == "Enabled"
    assert error_of(s3.get_bucket_encryption, Bucket="replica-plain")[1] == 404


def test_denied_objects(s3: Any) -> None:
    b = "denied-objects"
    listed = keys(s3, b)
    assert len(listed) == 2 and s3peers.IDENTIFIED_KEY in listed
    (stmt,) = policy_of(s3, b)["Statement"]
    assert stmt["Effect"] == "Deny" and stmt["Action"] == ["s3:GetObject", "s3:GetObjectAcl"]
    for key in listed:
        assert error_of(s3.get_object, Bucket=b, Key=key)[1] == 403
        assert error_of(s3.get_object, Bucket=b, Key=key, Range="bytes=0-8191")[1] == 403
        assert error_of(s3.get_object_acl, Bucket=b, Key=key)[1] == 403
    # moto quirk (documented in s3peers): HEAD object is not denied, AWS would deny it.
    assert s3.head_object(Bucket=b, Key=listed[0])["ContentLength"] > 0


def _manifest(s3: Any, source: str, stamp: str) -> dict[str, Any]:
    key = f"inv/{source}/weekly/{stamp}/manifest.json"
    raw = body(s3, "inventory-dest", key)
    checksum = body(s3, "inventory-dest", key.replace("manifest.json", "manifest.checksum"))
    assert checksum.decode() == hashlib.md5(raw).hexdigest()
    manifest: dict[str, Any] = json.loads(raw)
    return manifest


def test_inventory_csv(s3: Any) -> None:
    config = s3.get_bucket_inventory_configuration(Bucket="inventoried", Id="weekly")[
        "InventoryConfiguration"]
    assert config["IsEnabled"] is True
    # sent as "Current"; moto 5.2.5 hard-codes "All" in its answers
    assert config["IncludedObjectVersions"] in {"Current", "All"}
    assert config["Schedule"] == {"Frequency": "Weekly"}
    assert sorted(config["OptionalFields"]) == ["EncryptionStatus", "Size"]
    dest = config["Destination"]["S3BucketDestination"]
    assert dest == {"Bucket": "arn:aws:s3:::inventory-dest", "Format": "CSV", "Prefix": "inv"}
    listed = s3.list_bucket_inventory_configurations(Bucket="inventoried")
    assert [c["Id"] for c in listed["InventoryConfigurationList"]] == ["weekly"]
    objects = {o["Key"]: o["Size"] for o in s3.list_objects_v2(Bucket="inventoried")["Contents"]}
    assert sorted(objects) == [f"scans/{i:04d}.bin" for i in range(1, 6)]

    def rows(stamp: str) -> list[list[str]]:
        manifest = _manifest(s3, "inventoried", stamp)
        assert manifest["sourceBucket"] == "inventoried"
        assert manifest["destinationBucket"] == "arn:aws:s3:::inventory-dest"
        assert manifest["version"] == "2016-11-30" and manifest["fileFormat"] == "CSV"
        assert manifest["fileSchema"] == "Bucket, Key, Size, EncryptionStatus"
        assert manifest["creationTimestamp"].isdigit()
        (entry,) = manifest["files"]
        assert entry["key"].startswith("inv/inventoried/weekly/data/")
        assert entry["key"].endswith(".csv.gz")
        data = body(s3, "inventory-dest", entry["key"])
        assert entry["size"] == len(data) and entry["MD5checksum"] == hashlib.md5(data).hexdigest()
        text = gzip.decompress(data).decode()
        assert all(field.startswith('"') for line in text.splitlines()
                   for field in line.split(","))
        return list(csv.reader(io.StringIO(text)))

    latest = rows("2026-11-29T01-00Z")
    older = rows("2026-11-22T01-00Z")
    assert [r[1] for r in latest] == sorted(objects)
    assert all(r[0] == "inventoried" and int(r[2]) == objects[r[1]] for r in latest)
    assert [r[3] for r in latest].count("NOT-SSE") == 3
    assert [r[3] for r in latest].count("SSE-S3") == 2
    assert {r[3] for r in older} == {"SSE-S3"}
    assert int(_manifest(s3, "inventoried", "2026-11-22T01-00Z")["creationTimestamp"]) < int(
        _manifest(s3, "inventoried", "2026-11-29T01-00Z")["creationTimestamp"])


def test_inventory_parquet(s3: Any) -> None:
    import pyarrow.parquet as pq

    config = s3.get_bucket_inventory_configuration(Bucket="inventoried-parquet", Id="weekly")[
        "InventoryConfiguration"]
    assert config["Destination"]["S3BucketDestination"]["Format"] == "Parquet"
    manifest = _manifest(s3, "inventoried-parquet", "2026-11-29T01-00Z")
    assert manifest["fileFormat"] == "Parquet"
    assert manifest["fileSchema"].startswith("message s3.inventory {")
    (entry,) = manifest["files"]
    assert entry["key"].endswith(".parquet")
    table = pq.read_table(io.BytesIO(body(s3, "inventory-dest", entry["key"])))
    assert table.column_names == ["bucket", "key", "size", "encryption_status"]
    records = table.to_pylist()
    assert [r["key"] for r in records] == ["a.bin", "b.bin", "c.bin"]
    assert [r["encryption_status"] for r in records] == ["NOT-SSE", "NOT-SSE", "SSE-KMS"]
    assert keys(s3, "inventoried-parquet") == ["a.bin", "b.bin", "c.bin"]


# ---------------------------------------------------------------------------------------------
# SeaweedFS estate


def test_seaweed_estate(sw: Any) -> None:
    listed = keys(sw, "sw-plain")
    assert sorted(listed) == sorted([s3peers.IDENTIFIED_KEY, "exports/patients.csv",
                                     "public/open.dcm"])
    for key in listed:
        assert "ServerSideEncryption" not in sw.head_object(Bucket="sw-plain", Key=key)
    ds = dcmread(io.BytesIO(body(sw, "sw-plain", s3peers.IDENTIFIED_KEY)))
    assert str(ds.PatientName) == generate.PATIENT_NAME
    assert error_of(sw.get_bucket_encryption, Bucket="sw-plain")[1] == 404

    rule = sw.get_bucket_encryption(Bucket="sw-encrypted")[
        "ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert sw.get_bucket_versioning(Bucket="sw-encrypted")["Status"] == "Enabled"
    head = sw.head_object(Bucket="sw-encrypted", Key=s3peers.DEIDENTIFIED_KEY)
    assert head["ServerSideEncryption"] == "AES256"

    assert tags(sw, "sw-audit") == {"hipaa-retention": "audit-log"}
    (life,) = sw.get_bucket_lifecycle_configuration(Bucket="sw-audit")["Rules"]
    assert life["Expiration"]["Days"] == 90
    assert error_of(sw.get_object_lock_configuration, Bucket="sw-audit")[1] == 404


def test_seaweed_tls_lock_and_unsupported_bpa(sw: Any, weed: s3peers.S3Server) -> None:
    assert error_of(sw.get_bucket_policy, Bucket="sw-tls-locked")[1] == 403
    assert error_of(sw.list_objects_v2, Bucket="sw-tls-locked")[1] == 403
    assert error_of(sw.get_object, Bucket="sw-tls-locked", Key=s3peers.IDENTIFIED_KEY)[1] == 403
    assert error_of(sw.get_public_access_block, Bucket="sw-plain") == ("NotImplemented", 501)
    # public-read ACL accepted, anonymous GET still denied
    grants = {(g["Grantee"].get("URI"), g["Permission"])
              for g in sw.get_object_acl(Bucket="sw-plain", Key="public/open.dcm")["Grants"]}
    assert (ALL_USERS, "READ") in grants
    assert anonymous_get(f"{weed.endpoint_url}/sw-plain/public/open.dcm") == 403


# ---------------------------------------------------------------------------------------------
# throttler


def test_throttler_always_slows_down(moto: s3peers.S3Server) -> None:
    proxy = s3peers.start_throttler(moto, always=True)
    try:
        assert proxy.kind == "moto" and proxy.endpoint_url != moto.endpoint_url
        client = proxy.client()
        assert error_of(client.list_buckets) == ("SlowDown", 503)
        with pytest.raises(ClientError) as info:
            proxy.client(retries={"max_attempts": 1}).list_buckets()
        assert info.value.response["Error"]["Code"] == "SlowDown"
        assert info.value.response["Error"]["Message"] == "Please reduce your request rate."
    finally:
        proxy.stop()
    assert not s3peers.port_open(proxy.port)


def test_throttler_every_second_request_is_retried(moto: s3peers.S3Server) -> None:
    proxy = s3peers.start_throttler(moto, every=2)
    try:
        plain = proxy.client()
        assert plain.list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200  # request 1
        assert error_of(plain.list_buckets) == ("SlowDown", 503)  # request 2
        client = proxy.client(retries={"mode": "standard", "max_attempts": 5})
        for _ in range(4):
            names = {b["Name"] for b in client.list_buckets()["Buckets"]}
            assert names == MOTO_BUCKETS
        client.put_object(Bucket="no-encryption", Key="via-proxy.txt", Body=b"x" * 3000)
        assert body(client, "no-encryption", "via-proxy.txt") == b"x" * 3000
        client.delete_object(Bucket="no-encryption", Key="via-proxy.txt")
        head = client.head_object(Bucket="no-encryption", Key="readme.txt")
        assert head["ContentLength"] > 0
    finally:
        proxy.stop()


def test_throttler_keeps_seaweed_signatures_valid(weed: s3peers.S3Server) -> None:
    proxy = s3peers.start_throttler(weed)
    try:
        client = proxy.client()
        names = {b["Name"] for b in client.list_buckets()["Buckets"]}
        assert names == SEAWEED_BUCKETS
        payload = os.urandom(70_000)
        client.put_object(Bucket="sw-audit", Key="2026/12/01/proxy.log", Body=payload)
        got = client.get_object(Bucket="sw-audit", Key="2026/12/01/proxy.log",
                                Range="bytes=0-1023")["Body"].read()
        assert got == payload[:1024]
        assert body(client, "sw-audit", "2026/12/01/proxy.log") == payload
        client.delete_object(Bucket="sw-audit", Key="2026/12/01/proxy.log")
        # a wrong secret is still refused through the proxy: signatures are really checked
        bad = s3peers.S3Server("seaweedfs", proxy.endpoint_url, weed.access_key, "wrong-secret")
        assert error_of(bad.client().list_buckets)[1] == 403
    finally:
        proxy.stop()


# ---------------------------------------------------------------------------------------------
# demo and bench builders (on a second, private moto server)


@pytest.fixture(scope="module")
def spare_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[s3peers.S3Server]:
    server = s3peers.start_moto(tmp_path_factory.mktemp("spare-moto"))
    try:
        yield server
    finally:
        server.stop()
    assert server.pid is not None and not pid_running(server.pid)


def test_demo_estate(spare_moto: s3peers.S3Server) -> None:
    described = s3peers.build_demo_estate(spare_moto)
    s3 = spare_moto.client()
    assert set(described) == {"riverton-imaging-archive", "riverton-audit-logs",
                              "riverton-research-exports"}
    b = "riverton-imaging-archive"
    assert tags(s3, b) == {"phi": "true"}
    assert all(bpa(s3, b).values())
    assert error_of(s3.get_bucket_policy, Bucket=b)[1] == 404
    assert "LoggingEnabled" not in s3.get_bucket_logging(Bucket=b)
    sse = [s3.head_object(Bucket=b, Key=k).get("ServerSideEncryption") for k in keys(s3, b)]
    assert sorted(sse, key=str) == ["AES256", "AES256", "AES256", None]
    retention = s3.get_object_lock_configuration(Bucket="riverton-audit-logs")[
        "ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
    assert retention["Mode"] == "GOVERNANCE" and retention["Years"] == 1
    (life,) = s3.get_bucket_lifecycle_configuration(Bucket="riverton-audit-logs")["Rules"]
    assert life["Expiration"]["Days"] == 730
    b = "riverton-research-exports"
    grants = {(g["Grantee"].get("URI"), g["Permission"])
              for g in s3.get_bucket_acl(Bucket=b)["Grants"]}
    assert (ALL_USERS, "READ") in grants
    assert "exports/cohort.csv" in keys(s3, b)


@pytest.mark.bench  # the benchmark's bucket (bench/s3.py): `make bench` runs it
def test_bench_bucket_small(spare_moto: s3peers.S3Server,
                            capsys: pytest.CaptureFixture[str]) -> None:
    described = s3peers.build_bench_bucket(spare_moto, n=1001, bucket="bench-small")
    assert list(described) == ["bench-small"]
    assert "s3peers: filled bench-small with 1001 objects in" in capsys.readouterr().err
    s3 = spare_moto.client()
    listed = keys(s3, "bench-small")
    assert len(listed) == 1001
    assert len({k.split("/")[1] for k in listed}) == 100  # spread over study prefixes
    assert sorted(listed) == sorted(s3peers.bench_key(i) for i in range(1001))
    dicom = body(s3, "bench-small", s3peers.bench_key(1000))
    assert dicom[128:132] == b"DICM"
    assert len(body(s3, "bench-small", s3peers.bench_key(999))) == 256


# ---------------------------------------------------------------------------------------------
# command line


@pytest.mark.serial  # the demo's fixed port
def test_run_demo_set(tmp_path: Path) -> None:
    if s3peers.port_open(s3peers.DEMO_PORT):
        pytest.skip(f"port {s3peers.DEMO_PORT} is busy on this machine")
    check = (
        "import json, os, sys, boto3\n"
        "from botocore.config import Config\n"
        "info = json.load(open(os.environ['S3PEERS_JSON']))['moto']\n"
        "assert info['endpoint_url'] == 'http://127.0.0.1:18900', info\n"
        "assert 'AWS_PROFILE' not in os.environ\n"
        "s3 = boto3.client('s3', endpoint_url=info['endpoint_url'],"
        " config=Config(s3={'addressing_style': 'path'}))\n"
        "names = sorted(b['Name'] for b in s3.list_buckets()['Buckets'])\n"
        "print(json.dumps(names))\n"
        "sys.exit(7)\n"
    )
    ports_json = tmp_path / "ports.json"
    env = dict(os.environ, AWS_PROFILE="no-such-profile")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "run", "--set", "demo", "--folder", str(tmp_path / "demo"),
         "--ports-json", str(ports_json), "--", sys.executable, "-c", check],
        capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 7, proc.stderr
    assert json.loads(proc.stdout) == ["riverton-audit-logs", "riverton-imaging-archive",
                                       "riverton-research-exports"]
    written = json.loads((tmp_path / "demo" / "s3peers.json").read_text())
    assert written == json.loads(ports_json.read_text())
    assert written["moto"] == {"endpoint_url": "http://127.0.0.1:18900", "kind": "moto",
                               "access_key": "testing", "secret_key": "testing"}
    assert not s3peers.port_open(s3peers.DEMO_PORT)


def test_run_without_command_is_a_usage_error(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "run", "--set", "demo", "--folder",
                           str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "no COMMAND" in proc.stderr


def test_serve_bench_set_until_sigterm(tmp_path: Path) -> None:
    """The one test of a SeaweedFS set served until SIGTERM: no ``weed`` process is left."""
    with serving([sys.executable, str(SCRIPT), "serve", "--set", "bench", "--count", "120",
                  "--folder", str(tmp_path)]) as proc:
        served = served_json(proc)
        assert list(served) == ["seaweedfs"]
        assert served == json.loads((tmp_path / "s3peers.json").read_text())
        server = s3peers.S3Server("seaweedfs", served["seaweedfs"]["endpoint_url"],
                                  served["seaweedfs"]["access_key"],
                                  served["seaweedfs"]["secret_key"])
        assert len(keys(server.client(), "bench-100k")) == 120
        assert sigterm_exit(proc, timeout=60) == 128 + signal.SIGTERM
    assert not s3peers.port_open(server.port)
    weed_pids = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert weed_pids.stdout.strip() == ""
