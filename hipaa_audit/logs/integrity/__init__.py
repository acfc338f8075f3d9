"""Tamper evidence for audit logs: hash-chained JSONL files and CloudTrail digest files.

:mod:`~hipaa_audit.logs.integrity.chain` verifies hash-chained JSONL files (its docstring
describes the format and what each tampering yields); :mod:`~hipaa_audit.logs.integrity.digests`
verifies a local copy of a CloudTrail trail bucket against its signed digest files, as the AWS
CLI's ``validate-logs`` does. Both report :class:`IntegrityIssue` records.

No issue's ``detail`` ever quotes record content: only line and sequence numbers, field names,
counts, hashes, file names and times.
"""

from hipaa_audit.logs.integrity.chain import (
    GENESIS,
    ChainReport,
    canonical_bytes,
    looks_chained,
    record_hash,
    record_mac,
    verify_chain,
)
from hipaa_audit.logs.integrity.common import IntegrityIssue
from hipaa_audit.logs.integrity.digests import DigestReport, load_public_keys, verify_cloudtrail

__all__ = [
    "GENESIS",
    "ChainReport",
    "DigestReport",
    "IntegrityIssue",
    "canonical_bytes",
    "load_public_keys",
    "looks_chained",
    "record_hash",
    "record_mac",
    "verify_chain",
    "verify_cloudtrail",
]
