"""``scan s3``: collect every bucket's settings, sample its objects, judge both.

Bucket settings are read for all buckets first (a thread pool; boto3 clients are thread-safe),
so the rules know which buckets receive another's access logs. Then, bucket by bucket, the
sampled objects are read concurrently and judged as they come; the bucket's own result follows
its objects, once it is known whether PHI was found in them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from hipaa_audit.archive.scanner import holds_phi
from hipaa_audit.aws.client import Access, Connection, Observer
from hipaa_audit.catalog import Catalog
from hipaa_audit.evidence import BucketSummary
from hipaa_audit.model import AssetResult, Status
from hipaa_audit.redaction import Masker
from hipaa_audit.s3.collect import (
    BucketObservation,
    ObjectObservation,
    Sample,
    all_buckets,
    observe_bucket,
    observe_object,
    sample_from_inventory,
    sample_from_listing,
    unique,
)
from hipaa_audit.s3.rules import (
    UNVERIFIABLE,
    S3Rules,
    Scope,
    acls_disabled,
    context_for,
    judge_bucket,
    judge_object,
    judge_sample,
    log_targets,
    summarize_bucket,
)

DEFAULT_SAMPLE = 50
DEFAULT_CONCURRENCY = 16


@dataclass(frozen=True, slots=True)
class S3Options:
    """The whole S3 scan: how to connect, which buckets, how many objects, what is trusted."""

    access: Access = field(default_factory=Access)
    buckets: tuple[str, ...] = ()
    sample_objects: int = DEFAULT_SAMPLE
    seed: int = 0
    concurrency: int = DEFAULT_CONCURRENCY
    scope: Scope = field(default_factory=Scope)

    def describe(self) -> dict[str, object]:
        """The options as recorded in the run."""
        return {**self.access.describe(), "buckets": list(self.buckets) or "all listed",
                "sample_objects": self.sample_objects, "seed": self.seed,
                "trusted_accounts": sorted(self.scope.trusted_accounts),
                "retention_buckets": sorted(self.scope.retention_buckets),
                "phi_buckets": sorted(self.scope.phi_buckets)}


def _merge(into: AssetResult, other: AssetResult) -> None:
    """Add the other half of a bucket's judgement (its object sample) to the bucket's."""
    into.findings.extend(other.findings)
    into.coverage.merge(other.coverage, same_asset=True)
    for key, value in other.stats.items():
        into.stats[key] = into.stats.get(key, 0) + value


def _listing_denied(rules: S3Rules, reason: str) -> AssetResult:
    result = AssetResult("s3://*")
    result.findings.append(rules.checks[UNVERIFIABLE].finding(
        result.asset, f"The buckets could not be listed. {reason}. Name the buckets to scan.",
        status=Status.ERROR))
    result.coverage.record(UNVERIFIABLE, "error")
    return result


def _sample(conn: Connection, obs: BucketObservation, opts: S3Options) -> Sample | None:
    if obs.inventory is not None:
        sample = sample_from_inventory(conn, obs, opts.sample_objects, opts.seed)
        if sample is not None:
            return sample
    if opts.sample_objects <= 0:
        return None
    return sample_from_listing(conn, obs, opts.sample_objects, opts.seed)


def _read_object(conn: Connection, obs: BucketObservation, acls: bool,
                 key_size: tuple[str, int]) -> ObjectObservation:
    return observe_object(conn, obs, key_size[0], key_size[1], acls=acls)


def scan_s3(opts: S3Options, catalog: Catalog, masker: Masker, *,
            on_bucket: Callable[[BucketSummary], None] | None = None,
            observer: Observer | None = None, conn: Connection | None = None,
            ) -> Iterator[AssetResult]:
    """Scan the buckets of ``opts``; yield one result per sampled object and per bucket.

    Raises :class:`~hipaa_audit.aws.client.S3SetupError` when the store cannot be used at all
    (no credentials, a role that cannot be assumed, an endpoint that does not answer).
    ``on_bucket`` receives each bucket's summary for the reports; ``observer`` each API call.
    """
    conn = conn or Connection(opts.access, observer)
    rules = S3Rules.build(catalog, masker)
    names = unique(opts.buckets)
    if not names:
        names, listing = all_buckets(conn)
        if not listing.ok:
            yield _listing_denied(rules, listing.reason("ListBuckets"))
            return
    with ThreadPoolExecutor(max(1, opts.concurrency), thread_name_prefix="s3") as pool:
        observations = list(pool.map(lambda b: observe_bucket(conn, b), names))
        targets = log_targets(observations)
        for obs in observations:
            ctx = context_for(obs, opts.scope, aws=opts.access.aws, log_targets=targets)
            sample = _sample(conn, obs, opts) if obs.answers else None
            sample_result: AssetResult | None = None
            if sample is not None:
                inventory_checked = sample.method == "inventory"
                read = functools.partial(_read_object, conn, obs, not acls_disabled(obs))
                for item in pool.map(read, sample.keys):
                    result = judge_object(item, obs, rules, inventory_checked=inventory_checked)
                    if ctx.phi is None and holds_phi([result]):
                        ctx.phi = "PHI found in its sampled objects"
                    yield result
                sample_result = judge_sample(obs, sample, rules)
            bucket = judge_bucket(obs, ctx, opts.scope, rules)
            if sample_result is not None:
                _merge(bucket, sample_result)
            if on_bucket is not None:
                on_bucket(summarize_bucket(obs, ctx, bucket, sample))
            yield bucket
