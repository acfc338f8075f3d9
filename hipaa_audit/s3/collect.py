"""Collect what the S3 checks judge: bucket settings, an object sample, the inventory, object heads.

Only List, Get and Head calls (see :mod:`hipaa_audit.aws.client`). Every answer is kept as an
:class:`~hipaa_audit.aws.client.Answer`, so the rules can tell "not configured" from "not
supported by this store" from "access denied".

Objects: a reservoir sample of ``n`` keys over the whole listing (pages of 1,000 keys: one list
call per 1,000 objects), drawn with a generator seeded by ``--seed`` and the bucket name, so the
same estate gives the same sample. When an S3 Inventory report with EncryptionStatus exists
(AWS), every object's encryption comes from its latest report and the sample is drawn from its
rows, without listing. The first 8 KiB of a sampled object is read by a ranged GET; a DICOM
header that runs longer is read further, up to 64 KiB.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import random
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from hipaa_audit.archive.dicom.parser import NeedMoreData, ParsedHeader, parse_header
from hipaa_audit.aws.client import Answer, Connection, call, classify

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

FIRST_READ = 8 * 1024
MAX_READ = 64 * 1024
PAGE = 1000
#: Bucket settings read for every bucket: observation key -> boto3 operation.
BUCKET_CALLS = {
    "encryption": "get_bucket_encryption",
    "policy": "get_bucket_policy",
    "policy_status": "get_bucket_policy_status",
    "bpa": "get_public_access_block",
    "acl": "get_bucket_acl",
    "ownership": "get_bucket_ownership_controls",
    "versioning": "get_bucket_versioning",
    "lock": "get_object_lock_configuration",
    "logging": "get_bucket_logging",
    "lifecycle": "get_bucket_lifecycle_configuration",
    "replication": "get_bucket_replication",
    "tagging": "get_bucket_tagging",
}
UNENCRYPTED_STATUS = "NOT-SSE"
SAMPLE_KEYS_SHOWN = 20


@dataclass(slots=True)
class Inventory:
    """What the latest S3 Inventory report says about every object's encryption."""

    config_id: str
    report: str
    fmt: str
    total: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    unencrypted: list[str] = field(default_factory=list)
    problem: str | None = None


@dataclass(slots=True)
class BucketObservation:
    """One bucket's settings as the store answered them."""

    name: str
    exists: Answer
    region: str | None = None
    answers: dict[str, Answer] = field(default_factory=dict)
    #: Account Block Public Access (AWS only; ``None`` when not asked).
    account_bpa: Answer | None = None
    account_id: str | None = None
    #: Default encryption of each replication destination, by bucket name.
    destinations: dict[str, Answer] = field(default_factory=dict)
    inventory: Inventory | None = None

    def data(self, key: str) -> dict[str, Any]:
        """The data of one answer (empty unless the call succeeded)."""
        answer = self.answers.get(key)
        return answer.data if answer is not None and answer.ok else {}

    @property
    def tags(self) -> dict[str, str]:
        """The bucket's tags (lower-case keys)."""
        return {str(t.get("Key", "")).lower(): str(t.get("Value", ""))
                for t in self.data("tagging").get("TagSet", [])}


@dataclass(slots=True)
class Sample:
    """The objects drawn from a bucket for content checks, and how they were found."""

    keys: list[tuple[str, int]]
    seen: int
    list_calls: int
    method: str
    problem: Answer | None = None


@dataclass(slots=True)
class ObjectObservation:
    """One sampled object: its head, its ACL, and its first bytes."""

    bucket: str
    key: str
    size: int
    head: Answer
    acl: Answer | None = None
    body: Answer | None = None
    data: bytes = b""
    header: ParsedHeader | None = None
    #: The DICOM header runs past :data:`MAX_READ`; only its first part was checked.
    header_cut: bool = False


def bucket_region(conn: Connection, bucket: str) -> str | None:
    """The bucket's region on AWS (``None`` on other stores or when it cannot be read)."""
    if not conn.access.aws or conn.access.endpoint_url:
        return None
    answer = call(conn.client("s3"), "get_bucket_location", Bucket=bucket)
    if not answer.ok:
        return None
    location = answer.data.get("LocationConstraint") or "us-east-1"
    return "eu-west-1" if location == "EU" else str(location)


def observe_bucket(conn: Connection, bucket: str) -> BucketObservation:
    """Read every setting of ``bucket`` the bucket checks need."""
    region = bucket_region(conn, bucket)
    s3 = conn.client("s3", region)
    obs = BucketObservation(bucket, call(s3, "head_bucket", Bucket=bucket), region,
                            account_id=conn.account_id)
    if obs.exists.state in ("absent", "failed") and obs.exists.http in (0, 404):
        return obs
    for key, operation in BUCKET_CALLS.items():
        obs.answers[key] = call(s3, operation, Bucket=bucket)
    if conn.access.aws and conn.account_id:
        obs.account_bpa = call(conn.client("s3control"), "get_public_access_block",
                               AccountId=conn.account_id)
    for rule in obs.data("replication").get("ReplicationConfiguration", {}).get("Rules", []):
        dest = str(rule.get("Destination", {}).get("Bucket", "")).rsplit(":", 1)[-1]
        if dest and dest not in obs.destinations:
            obs.destinations[dest] = call(s3, "get_bucket_encryption", Bucket=dest)
    if conn.access.aws:
        obs.inventory = _inventory_config(s3, bucket)
    return obs


def _inventory_config(s3: S3Client, bucket: str) -> Inventory | None:
    answer = call(s3, "list_bucket_inventory_configurations", Bucket=bucket)
    configs = answer.data.get("InventoryConfigurationList", []) if answer.ok else []
    # a configuration listing EncryptionStatus first; the report's own schema is checked later
    configs.sort(key=lambda c: "EncryptionStatus" not in c.get("OptionalFields", []))
    for config in configs:
        dest = config.get("Destination", {}).get("S3BucketDestination", {})
        if config.get("IsEnabled") and dest.get("Bucket"):
            prefix = str(dest.get("Prefix", "")).strip("/")
            base = "/".join(p for p in (prefix, bucket, str(config["Id"])) if p) + "/"
            dest_bucket = str(dest["Bucket"]).rsplit(":", 1)[-1]
            return Inventory(str(config["Id"]), f"s3://{dest_bucket}/{base}",
                             str(dest.get("Format", "CSV")))
    return None


def _split(url: str) -> tuple[str, str]:
    bucket, _, key = url.removeprefix("s3://").partition("/")
    return bucket, key


def _latest_manifest(s3: S3Client, inv: Inventory) -> dict[str, Any] | None:
    bucket, base = _split(inv.report)
    answer = call(s3, "list_objects_v2", Bucket=bucket, Prefix=base, Delimiter="/")
    if not answer.ok:
        inv.problem = answer.reason("the inventory destination")
        return None
    folders = sorted((p["Prefix"] for p in answer.data.get("CommonPrefixes", [])
                      if p["Prefix"][len(base):len(base) + 1].isdigit()), reverse=True)
    for folder in folders:
        got = call(s3, "get_object", Bucket=bucket, Key=f"{folder}manifest.json")
        if got.ok:
            try:
                manifest: dict[str, Any] = json.loads(got.data["Body"].read())
            except (ValueError, OSError, BotoCoreError):
                continue
            inv.report = f"s3://{bucket}/{folder}"
            return manifest
    inv.problem = "no inventory report (manifest.json) was found at the destination"
    return None


def _schema(manifest: dict[str, Any]) -> list[str]:
    return [c.strip() for c in str(manifest.get("fileSchema", "")).split(",")]


def _csv_rows(body: Any, names: list[str]) -> Iterator[dict[str, str]]:
    with gzip.GzipFile(fileobj=body) as raw, io.TextIOWrapper(raw, encoding="utf-8") as text:
        for row in csv.reader(text):
            yield dict(zip(names, row, strict=False))


def _parquet_rows(data: bytes) -> Iterator[dict[str, str]]:
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    canon = {n: n.replace("_", "").lower() for n in table.column_names}
    names = {"key": "Key", "size": "Size", "encryptionstatus": "EncryptionStatus"}
    for batch in table.to_batches(max_chunksize=10_000):
        columns = {names[canon[n]]: batch.column(n).to_pylist()
                   for n in batch.schema.names if canon[n] in names}
        for i in range(batch.num_rows):
            yield {k: "" if v[i] is None else str(v[i]) for k, v in columns.items()}


def inventory_rows(conn: Connection, obs: BucketObservation) -> Iterator[dict[str, str]]:
    """Every row of the bucket's latest inventory report (``Key``, ``Size``, EncryptionStatus).

    Problems (no report, an unreadable file) are recorded in ``obs.inventory.problem``.
    """
    inv = obs.inventory
    if inv is None:
        return
    s3 = conn.client("s3", obs.region)
    manifest = _latest_manifest(s3, inv)
    if manifest is None:
        return
    fmt = str(manifest.get("fileFormat", inv.fmt)).lower()
    schema = str(manifest.get("fileSchema", "")).replace("_", "").lower()
    if "encryptionstatus" not in schema:
        inv.problem = "the latest inventory report has no EncryptionStatus field"
        return
    dest = str(manifest.get("destinationBucket", "")).rsplit(":", 1)[-1] or _split(inv.report)[0]
    for entry in manifest.get("files", []):
        got = call(s3, "get_object", Bucket=dest, Key=entry["key"])
        if not got.ok:
            inv.problem = got.reason(f"inventory file {entry['key']}")
            return
        try:
            if fmt == "csv":
                yield from _csv_rows(got.data["Body"], _schema(manifest))
            elif fmt == "parquet":
                yield from _parquet_rows(got.data["Body"].read())
            else:
                inv.problem = f"inventory format {fmt} is not read by this version (CSV, Parquet)"
                return
        except (OSError, ValueError, EOFError, BotoCoreError) as exc:
            inv.problem = f"inventory file {entry['key']} is unreadable ({type(exc).__name__})"
            return
        except Exception as exc:  # pyarrow raises its own errors on damaged Parquet files
            inv.problem = f"inventory file {entry['key']} is unreadable ({type(exc).__name__})"
            return


class _Reservoir:
    """A uniform sample of ``n`` items from a stream of unknown length (Algorithm R)."""

    def __init__(self, n: int, rng: random.Random) -> None:
        self.n, self.rng, self.seen = n, rng, 0
        self.items: list[tuple[str, int]] = []

    def offer(self, item: tuple[str, int]) -> None:
        self.seen += 1
        if len(self.items) < self.n:
            self.items.append(item)
        else:
            j = self.rng.randrange(self.seen)
            if j < self.n:
                self.items[j] = item


def rng_for(seed: int, bucket: str) -> random.Random:
    """The sampling generator of one bucket: the same seed and bucket give the same sample."""
    return random.Random(f"{seed}:{bucket}")


def sample_from_listing(conn: Connection, obs: BucketObservation, n: int,
                        seed: int) -> Sample:
    """List every object (pages of 1,000) and keep a reproducible sample of ``n``."""
    reservoir = _Reservoir(n, rng_for(seed, obs.name))
    calls = 0
    paginator = conn.client("s3", obs.region).get_paginator("list_objects_v2")
    try:
        for page in paginator.paginate(Bucket=obs.name,
                                       PaginationConfig={"PageSize": PAGE}):
            calls += 1
            for item in page.get("Contents", []):
                key = str(item["Key"])
                if not (key.endswith("/") and not item.get("Size")):
                    reservoir.offer((key, int(item.get("Size", 0))))
    except (ClientError, BotoCoreError) as exc:
        return Sample(sorted(reservoir.items), reservoir.seen, calls, "listing", classify(exc))
    return Sample(sorted(reservoir.items), reservoir.seen, calls, "listing")


def sample_from_inventory(conn: Connection, obs: BucketObservation, n: int,
                          seed: int) -> Sample | None:
    """Read the latest inventory report: every object's encryption, and the sample.

    Returns ``None`` when no usable report exists (then the bucket is listed instead).
    """
    inv = obs.inventory
    if inv is None:
        return None
    reservoir = _Reservoir(n, rng_for(seed, obs.name))
    for row in inventory_rows(conn, obs):
        key = row.get("Key", "")
        status = row.get("EncryptionStatus", "") or "unknown"
        inv.total += 1
        inv.by_status[status] += 1
        if status == UNENCRYPTED_STATUS and len(inv.unencrypted) < SAMPLE_KEYS_SHOWN:
            inv.unencrypted.append(key)
        size = row.get("Size", "")
        reservoir.offer((key, int(size) if size.isdigit() else -1))
    if inv.problem is not None and inv.total == 0:
        return None
    return Sample(sorted(reservoir.items), reservoir.seen, 0, "inventory")


def read_head(s3: S3Client, bucket: str, key: str, size: int) -> tuple[Answer, bytes,
                                                                  ParsedHeader | None, bool]:
    """Read an object's first bytes and walk its DICOM header, growing the read when needed.

    Returns the last answer, the bytes read, the parsed header (``None``: not DICOM) and whether
    the header runs past :data:`MAX_READ`.
    """
    want = FIRST_READ
    data = b""
    while True:
        got = call(s3, "get_object", Bucket=bucket, Key=key, Range=f"bytes={len(data)}-{want - 1}")
        if got.ok:
            try:
                data += got.data["Body"].read()
            except (OSError, BotoCoreError) as exc:
                return classify(exc), data, None, False
            complete = len(data) < want or (0 <= size <= len(data))
        elif got.http == 416 or got.code == "InvalidRange":  # nothing past the end
            got, complete = Answer("ok"), True
        else:
            return got, data, None, False
        try:
            return got, data, parse_header(data, complete=complete), False
        except NeedMoreData as need:
            if want >= MAX_READ or complete:
                return got, data, parse_header(data, complete=True), True
            want = min(MAX_READ, max(want * 2, int(need.args[0]) if need.args else 0))


def observe_object(conn: Connection, obs: BucketObservation, key: str, size: int, *,
                   acls: bool) -> ObjectObservation:
    """Head an object, read its ACL (when ``acls``) and its first bytes."""
    s3 = conn.client("s3", obs.region)
    head = call(s3, "head_object", Bucket=obs.name, Key=key)
    if head.ok and size < 0:
        size = int(head.data.get("ContentLength", 0))
    item = ObjectObservation(obs.name, key, size, head)
    if acls:
        item.acl = call(s3, "get_object_acl", Bucket=obs.name, Key=key)
    if not head.ok:  # GetObject needs the same permission as HeadObject
        return item
    if size == 0:
        item.body = Answer("ok")
        return item
    item.body, item.data, item.header, item.header_cut = read_head(s3, obs.name, key, size)
    if (item.body.ok and item.header is None and len(item.data) < min(size, MAX_READ)
            and _textual(item.data)):
        more = call(s3, "get_object", Bucket=obs.name, Key=key,
                    Range=f"bytes={len(item.data)}-{MAX_READ - 1}")
        if more.ok:
            with contextlib.suppress(OSError, BotoCoreError):
                item.data += more.data["Body"].read()
    return item


def _textual(data: bytes) -> bool:
    return bool(data) and b"\x00" not in data[:FIRST_READ]


def all_buckets(conn: Connection) -> tuple[list[str], Answer]:
    """Every bucket the identity can list."""
    s3 = conn.client("s3")
    names: list[str] = []
    try:
        if s3.can_paginate("list_buckets"):
            for page in s3.get_paginator("list_buckets").paginate():
                names.extend(str(b["Name"]) for b in page.get("Buckets", []))
        else:
            names = [str(b["Name"]) for b in s3.list_buckets().get("Buckets", [])]
    except (ClientError, BotoCoreError) as exc:
        return names, classify(exc)
    return sorted(names), Answer("ok")


def unique(items: Iterable[str]) -> list[str]:
    """The items once each, in their first order."""
    return list(dict.fromkeys(items))
