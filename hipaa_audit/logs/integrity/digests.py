"""Tamper evidence for audit logs: CloudTrail digest files.

CloudTrail digest files
=======================

:func:`verify_cloudtrail` follows the AWS CLI's ``validate-logs`` on a *local copy* of a trail
bucket (``ROOT/[prefix/]AWSLogs/ACCOUNT/CloudTrail[-Digest]/REGION/YYYY/MM/DD/*.json.gz``):

1. digest files are grouped by folder (``…/CloudTrail-Digest/REGION``) and trail, then walked
   from the newest backwards;
2. a digest's ``digestS3Object`` must equal the file's path relative to ``root`` (POSIX
   separators; so ``root`` must be the copy of the bucket root, key prefix included below it).
   ``digestS3Bucket`` is only compared when ``bucket`` is given; otherwise the bucket named in
   the messages is the root folder's name. A mismatch is DIGEST_MOVED;
3. the signature is verified (RSA PKCS#1 v1.5, SHA-256) over the four lines ``digestEndTime``,
   ``digestS3Bucket/digestS3Object``, hex SHA-256 of the *uncompressed* digest, and
   ``previousDigestSignature`` (``null`` for the first digest of a chain). A local copy has no S3
   object metadata, so the signature is read from a **sidecar file** next to the digest,
   ``<digest file name>.sig``, holding ``{"signature": "<hex>", "signature-algorithm":
   "SHA256withRSA"}`` (the values S3 returns as ``x-amz-meta-signature`` and
   ``x-amz-meta-signature-algorithm``; ``aws s3api head-object`` prints them). A missing sidecar
   or a bad signature is SIGNATURE_FAILED; no key for ``digestPublicKeyFingerprint`` is
   NO_PUBLIC_KEY;
4. every ``logFiles[]`` entry of a valid digest is found by its ``s3Object`` key under ``root``
   (LOG_NOT_FOUND), its uncompressed content hashed with SHA-256 (LOG_HASH_MISMATCH) and any
   bytes after the end of the first gzip stream flagged (TRAILING_DATA: a second gzip member
   would be read by ordinary gzip readers but is covered by no digest);
5. ``previousDigestS3Object`` is followed; a missing file is DIGEST_NOT_FOUND and the walk resumes
   at the next older digest. When the linked digest verifies but its SHA-256 or signature is not
   the ``previousDigestHashValue``/``previousDigestSignature`` recorded by the newer digest, the
   chain was spliced: CHAIN_BROKEN. A digest that starts a new chain while older digests exist
   gives DIGEST_GAP, "No log files were delivered by CloudTrail between T1 and T2" (logging or
   validation was off; not tampering by itself);
6. beyond the AWS CLI: a log file whose delivery time (from its name) falls inside the period
   covered by the folder's digests (present, or missing but linked to) but which no valid digest
   lists is UNDIGESTED_LOG (an injected file, or one whose digest is missing or invalid). Not
   reported for a folder where no digest verified at all (wrong key: the digest issues say it).

Public keys are PEM or DER files (PKCS#1 ``RSA PUBLIC KEY`` or SubjectPublicKeyInfo), a file
holding the base64 DER ``Value`` of ``aws cloudtrail list-public-keys``, or that command's JSON
output (its ``Fingerprint`` values are used as given), or a mapping ``fingerprint -> DER bytes``
(used as given). AWS does not document how ``digestPublicKeyFingerprint`` is computed; for key
files this module registers the hex MD5 of the DER PKCS#1 ``RSAPublicKey`` (the form
``ListPublicKeys`` returns) and, as well, the hex MD5 of the DER SubjectPublicKeyInfo. The test
fixtures sign with the former.

Known limits: deleting the *newest* digest (with or without its log files) looks like "not
delivered yet" on a local copy; logs listed only by an invalid or missing digest are not hashed
(as in the AWS CLI) but are reported as UNDIGESTED_LOG.

No issue's ``detail`` ever quotes record content: only line and sequence numbers, field names,
counts, hashes, file names and times.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from hipaa_audit.logs.integrity.common import IntegrityIssue, _iso, _json_object, _parse_time

#: Largest digest file read (digests list one hour of log files: a few hundred kB at most).
MAX_DIGEST = 64 * 1024 * 1024


_CHUNK = 1024 * 1024


@dataclass
class DigestReport:
    """The result of :func:`verify_cloudtrail` for one trail bucket copy.

    ``digests`` counts the digest files read (valid or not), ``logs_checked`` the log files
    listed by valid digests that were looked for; ``valid_digests``/``valid_logs`` those that
    verified. ``first_time``/``last_time`` span the periods of the valid digests.
    """

    folder: str
    digests: int
    logs_checked: int
    issues: list[IntegrityIssue]
    first_time: str | None
    last_time: str | None
    valid_digests: int = 0
    valid_logs: int = 0

    @property
    def ok(self) -> bool:
        """True when no issue was found."""
        return not self.issues


_DIGEST_REQUIRED = (
    "digestPublicKeyFingerprint",
    "digestS3Bucket",
    "digestS3Object",
    "previousDigestSignature",
    "digestEndTime",
    "digestStartTime",
)
_DIGEST_DATE = re.compile(r"_(\d{8}T\d{6}Z)\.json\.gz$")
_LOG_DATE = re.compile(r"_(\d{8}T\d{4}Z)_[^_/]+\.json\.gz$")


def _fingerprints(key: rsa.RSAPublicKey) -> list[str]:
    pkcs1 = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    spki = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return [hashlib.md5(pkcs1).hexdigest(), hashlib.md5(spki).hexdigest()]


def _load_key_bytes(data: bytes) -> rsa.RSAPublicKey:
    stripped = data.strip()
    if stripped.startswith(b"-----BEGIN"):
        key = serialization.load_pem_public_key(stripped)
    else:
        try:
            key = serialization.load_der_public_key(data)
        except (ValueError, UnsupportedAlgorithm):
            key = serialization.load_der_public_key(base64.b64decode(stripped, validate=True))
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key


def load_public_keys(
    public_keys: Mapping[str, bytes] | Sequence[Path] | Path,
) -> dict[str, rsa.RSAPublicKey]:
    """Return ``{hex fingerprint: key}`` from a mapping or key files (see the module docstring).

    Raises ``ValueError`` naming the file when a key cannot be loaded.
    """
    keys: dict[str, rsa.RSAPublicKey] = {}
    if isinstance(public_keys, str | Path):
        public_keys = [Path(public_keys)]
    if isinstance(public_keys, Mapping):
        for fingerprint, der in public_keys.items():
            try:
                keys[fingerprint.lower()] = _load_key_bytes(der)
            except (ValueError, UnsupportedAlgorithm, binascii.Error) as exc:
                raise ValueError(f"public key {fingerprint}: cannot be loaded") from exc
        return keys
    for item in public_keys:
        path = Path(item)
        data = path.read_bytes()
        try:
            if data.lstrip().startswith(b"{"):
                listing = json.loads(data)
                entries = listing.get("PublicKeyList", []) if isinstance(listing, dict) else []
                for entry in entries:
                    value, fingerprint = entry.get("Value"), entry.get("Fingerprint")
                    if isinstance(value, str) and isinstance(fingerprint, str):
                        keys[fingerprint.lower()] = _load_key_bytes(base64.b64decode(value))
                continue
            key = _load_key_bytes(data)
        except (ValueError, UnsupportedAlgorithm, binascii.Error) as exc:
            raise ValueError(
                f"{path}: not a PEM, DER, base64 DER or list-public-keys JSON RSA public key"
            ) from exc
        for fingerprint in _fingerprints(key):
            keys[fingerprint] = key
    return keys


def _gunzip_first(data: bytes) -> tuple[bytes, bool]:
    """Decompress the first gzip member; return (content, complete)."""
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
    content = inflater.decompress(data) + inflater.flush()
    return content, inflater.eof


def _display_date(stamp: str) -> str:
    """``20240501T020000Z`` -> ``2024-05-01T02:00:00Z``."""
    try:
        return _iso(datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC))
    except ValueError:
        return stamp


def _group_of(rel: str, marker: str) -> str | None:
    """``prefix/AWSLogs/ACCT/<marker>/REGION`` for a key, or None when it is not under one."""
    parts = rel.split("/")
    try:
        index = parts.index(marker)
    except ValueError:
        return None
    if index + 1 >= len(parts) - 1:
        return None
    return "/".join([*parts[:index], "@", parts[index + 1]])


def _within(root: Path, key: str) -> Path | None:
    candidate = (root / key).resolve()
    try:
        candidate.relative_to(root.resolve())
    except ValueError:
        return None
    return candidate


@dataclass
class _TrailWalk:
    root: Path
    bucket: str | None
    keys: dict[str, rsa.RSAPublicKey]
    issues: list[IntegrityIssue] = field(default_factory=list)
    digests: int = 0
    valid_digests: int = 0
    logs_checked: int = 0
    valid_logs: int = 0
    first: datetime | None = None
    last: datetime | None = None
    covered_from: dict[str, datetime] = field(default_factory=dict)
    covered_to: dict[str, datetime] = field(default_factory=dict)
    listed: set[str] = field(default_factory=set)
    verified_groups: set[str] = field(default_factory=set)

    @property
    def bucket_name(self) -> str:
        return self.bucket or self.root.name

    def url(self, key: str) -> str:
        return f"s3://{self.bucket_name}/{key}"

    def add(self, kind: str, stream: str, detail: str, first: str | None = None,
            last: str | None = None) -> None:
        self.issues.append(IntegrityIssue(kind, stream, None, first, last, detail))

    def walk(self, group: str, keys: list[str]) -> None:
        """Walk one trail's digests from the newest backwards (AWS CLI DigestTraverser)."""
        pending = sorted(keys, key=lambda k: (_digest_stamp(k), k))
        key: str | None = pending.pop() if pending else None
        expected: tuple[object, object, str] | None = None
        visited: set[str] = set()
        while key is not None:
            if key in visited:
                self.add("CHAIN_BROKEN", key, f"Digest file\t{self.url(key)}\tINVALID: the "
                         "previousDigestS3Object links form a loop")
                break
            visited.add(key)
            data = self.check_digest(group, key, expected)
            if data is None:
                key, expected = _older(pending, key), None
                continue
            prev_bucket = data.get("previousDigestS3Bucket")
            prev_key = data.get("previousDigestS3Object")
            if prev_bucket is None or not isinstance(prev_key, str):
                older = _older(pending, key)
                if older is not None:
                    start = _parse_time(data.get("digestStartTime"))
                    self.add(
                        "DIGEST_GAP",
                        group.replace("/@/", "/CloudTrail-Digest/"),
                        "No log files were delivered by CloudTrail between "
                        f"{_display_date(_digest_stamp(older))} and "
                        f"{_iso(start) if start else 'the start of ' + key}",
                        _display_date(_digest_stamp(older)),
                        _iso(start) if start else None,
                    )
                key, expected = older, None
            else:
                expected = (data.get("previousDigestHashValue"),
                            data.get("previousDigestSignature"), key)
                key = prev_key

    def _cover(self, group: str, start: datetime, end: datetime) -> None:
        self.covered_from[group] = min(self.covered_from.get(group, start), start)
        self.covered_to[group] = max(self.covered_to.get(group, end), end)

    def check_digest(
        self, group: str, key: str, expected: tuple[object, object, str] | None
    ) -> dict[str, Any] | None:
        """Validate one digest and its log files; None when it is missing or invalid."""
        url = self.url(key)
        path = _within(self.root, key)
        if path is None or not path.is_file():
            stamp = _digest_stamp(key)
            end = None
            with contextlib.suppress(ValueError):
                end = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            if end is not None:  # a missing digest still says which hour it covered
                self._cover(group, end - timedelta(hours=1), end)
            self.add("DIGEST_NOT_FOUND", key, f"Digest file\t{url}\tINVALID: not found",
                     _iso(end - timedelta(hours=1)) if end else None,
                     _iso(end) if end else None)
            return None
        self.digests += 1
        try:
            with path.open("rb") as handle:
                compressed = handle.read(MAX_DIGEST + 1)
            if len(compressed) > MAX_DIGEST:
                raise ValueError("too large")
            raw, complete = _gunzip_first(compressed)
            if not complete:
                raise ValueError("incomplete")
            data = json.loads(raw.decode("utf-8"))
            if not isinstance(data, dict) or any(k not in data for k in _DIGEST_REQUIRED):
                raise ValueError("fields")
        except (OSError, ValueError, zlib.error, UnicodeDecodeError):
            self.add("MALFORMED", key, f"Digest file\t{url}\tINVALID: invalid format")
            return None
        start = _parse_time(data.get("digestStartTime"))
        end = _parse_time(data.get("digestEndTime"))
        start_iso = _iso(start) if start else None
        end_iso = _iso(end) if end else None
        if start is not None and end is not None:
            self._cover(group, start, end)
        if data["digestS3Object"] != key or (
            self.bucket is not None and data["digestS3Bucket"] != self.bucket
        ):
            self.add("DIGEST_MOVED", key,
                     f"Digest file\t{url}\tINVALID: has been moved from its original location",
                     start_iso, end_iso)
            return None
        signature = _read_sidecar(path)
        if signature is None:
            self.add("SIGNATURE_FAILED", key,
                     f"Digest file\t{url}\tINVALID: signature verification failed (no "
                     f"{path.name}.sig sidecar with a SHA256withRSA hex signature)",
                     start_iso, end_iso)
            return None
        fingerprint = str(data["digestPublicKeyFingerprint"]).lower()
        public_key = self.keys.get(fingerprint)
        if public_key is None:
            self.add("NO_PUBLIC_KEY", key,
                     f"Digest file\t{url}\tINVALID: public key not found for fingerprint "
                     f"{fingerprint}", start_iso, end_iso)
            return None
        digest_sha = hashlib.sha256(raw).hexdigest()
        previous = data["previousDigestSignature"]
        to_sign = "{}\n{}/{}\n{}\n{}".format(
            data["digestEndTime"], data["digestS3Bucket"], data["digestS3Object"], digest_sha,
            "null" if previous is None else previous,
        ).encode("utf-8")
        try:
            public_key.verify(bytes.fromhex(signature), to_sign, padding.PKCS1v15(),
                              hashes.SHA256())
        except (InvalidSignature, ValueError):
            self.add("SIGNATURE_FAILED", key,
                     f"Digest file\t{url}\tINVALID: signature verification failed",
                     start_iso, end_iso)
            return None
        self.valid_digests += 1
        self.verified_groups.add(group)
        if start is not None:
            self.first = start if self.first is None else min(self.first, start)
        if end is not None:
            self.last = end if self.last is None else max(self.last, end)
        if expected is not None:
            exp_hash, exp_sig, newer = expected
            if (not isinstance(exp_hash, str) or exp_hash.lower() != digest_sha
                    or not isinstance(exp_sig, str) or exp_sig.lower() != signature.lower()):
                self.add("CHAIN_BROKEN", key,
                         f"Digest file\t{url}\tINVALID: its SHA-256 or signature is not the "
                         f"previousDigestHashValue/previousDigestSignature recorded in {newer}: "
                         "the digest chain was spliced", start_iso, end_iso)
        log_files = data.get("logFiles")
        for entry in log_files if isinstance(log_files, list) else []:
            if isinstance(entry, dict):
                self.check_log(entry)
        return data

    def check_log(self, entry: dict[str, Any]) -> None:
        """Hash one listed log file (streaming) and look for data after its gzip stream."""
        log_key = entry.get("s3Object")
        expected = entry.get("hashValue")
        if not isinstance(log_key, str):
            return
        self.logs_checked += 1
        self.listed.add(log_key)
        url = self.url(log_key)
        first = _parse_time(entry.get("oldestEventTime"))
        last = _parse_time(entry.get("newestEventTime"))
        times = (_iso(first) if first else None, _iso(last) if last else None)
        path = _within(self.root, log_key)
        if path is None or not path.is_file():
            self.add("LOG_NOT_FOUND", log_key, f"Log file\t{url}\tINVALID: not found", *times)
            return
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        rolling = hashlib.sha256()
        trailing = False
        try:
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(_CHUNK), b""):
                    if inflater.eof:
                        trailing = True
                        break
                    rolling.update(inflater.decompress(chunk))
                    if inflater.eof and inflater.unused_data:
                        trailing = True
                        break
                rolling.update(inflater.flush())
        except (OSError, zlib.error):
            self.add("MALFORMED", log_key, f"Log file\t{url}\tINVALID: invalid format", *times)
            return
        ok = True
        if not inflater.eof or not isinstance(expected, str) or \
                rolling.hexdigest() != expected.lower():
            ok = False
            self.add("LOG_HASH_MISMATCH", log_key,
                     f"Log file\t{url}\tINVALID: hash value doesn't match", *times)
        if trailing:
            ok = False
            self.add("TRAILING_DATA", log_key,
                     f"Log file\t{url}\tINVALID: unexpected data after end of compressed stream",
                     *times)
        if ok:
            self.valid_logs += 1

    def undigested(self, logs: list[str]) -> None:
        """Report log files inside the digested period that no valid digest lists."""
        for log_key in logs:
            if log_key in self.listed:
                continue
            group = _group_of(log_key, "CloudTrail")
            match = _LOG_DATE.search(log_key)
            if group is None or match is None or group not in self.verified_groups:
                continue  # no digest of this folder verified: the digest issues say it all
            start, end = self.covered_from.get(group), self.covered_to.get(group)
            if start is None or end is None:
                continue
            delivered = datetime.strptime(match.group(1), "%Y%m%dT%H%MZ").replace(tzinfo=UTC)
            if start <= delivered < end:
                self.add("UNDIGESTED_LOG", log_key,
                         f"Log file\t{self.url(log_key)}\tINVALID: delivered at "
                         f"{_iso(delivered)}, inside the digested period, but listed by no "
                         "valid digest (injected, or its digest is missing or invalid)",
                         _iso(delivered), None)


def _digest_stamp(key: str) -> str:
    match = _DIGEST_DATE.search(key)
    return match.group(1) if match else ""


def _older(pending: list[str], before: str) -> str | None:
    """Pop digests until one older than ``before`` (by the date in its name) is found."""
    limit = _digest_stamp(before)
    while pending:
        candidate = pending.pop()
        if _digest_stamp(candidate) < limit:
            return candidate
    return None


def _read_sidecar(path: Path) -> str | None:
    value = _json_object(path.with_name(path.name + ".sig"))
    if value is None:
        return None
    signature = value.get("signature", value.get("x-amz-meta-signature"))
    algorithm = value.get("signature-algorithm",
                          value.get("x-amz-meta-signature-algorithm", "SHA256withRSA"))
    if not isinstance(signature, str) or algorithm != "SHA256withRSA":
        return None
    with contextlib.suppress(ValueError):
        bytes.fromhex(signature)
        return signature
    return None


def verify_cloudtrail(
    root: Path,
    public_keys: Mapping[str, bytes] | Sequence[Path] | Path,
    *,
    bucket: str | None = None,
) -> DigestReport:
    """Verify the CloudTrail digest and log files of a local copy of a trail bucket.

    ``root`` is the copy of the bucket root (``root/[prefix/]AWSLogs/...``); each digest's
    signature is read from its ``.sig`` sidecar; ``public_keys`` are key files or a mapping
    ``fingerprint -> DER``; ``bucket``, when given, must equal every ``digestS3Bucket``. See
    the module docstring for the algorithm and each finding.
    """
    root = Path(root)
    walk = _TrailWalk(root, bucket, load_public_keys(public_keys))
    digest_groups: dict[str, list[str]] = {}
    logs: list[str] = []
    for path in sorted(root.rglob("*.json.gz")):
        if not path.is_file():
            continue
        rel = path.relative_to(root).as_posix()
        digest_group = _group_of(rel, "CloudTrail-Digest")
        if digest_group is not None:
            match = _DIGEST_DATE.search(path.name)
            trail = path.name[: match.start()] if match else path.name
            digest_groups.setdefault(f"{digest_group}\t{trail}", []).append(rel)
        elif _group_of(rel, "CloudTrail") is not None:
            logs.append(rel)
    for name, keys in sorted(digest_groups.items()):
        walk.walk(name.split("\t", 1)[0], keys)
    walk.undigested(logs)
    return DigestReport(
        folder=str(root),
        digests=walk.digests,
        logs_checked=walk.logs_checked,
        issues=walk.issues,
        first_time=_iso(walk.first) if walk.first else None,
        last_time=_iso(walk.last) if walk.last else None,
        valid_digests=walk.valid_digests,
        valid_logs=walk.valid_logs,
    )
