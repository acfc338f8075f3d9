"""The S3 scanner behind the contract (:mod:`hipaa_audit.scanner`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from hipaa_audit.aws.client import Access, Connection, S3SetupError
from hipaa_audit.model import AssetResult
from hipaa_audit.s3.options import S3ScanOptions, S3Summary, is_account_id
from hipaa_audit.s3.rules import Scope
from hipaa_audit.s3.run import S3Options, scan_s3
from hipaa_audit.scanner import ScanContext, Scanner, ScannerSetupError, Setup, unverified


@dataclass(frozen=True, slots=True)
class S3Plan:
    """The scan options, and the connection when it was opened while planning."""

    options: S3Options
    conn: Connection | None = None


def _targets(buckets: Sequence[str]) -> list[str]:
    return [f"s3://{b}" for b in buckets] or ["s3://*"]


class S3Scanner(Scanner[S3ScanOptions, S3Plan, S3Summary],
                name="s3", command="scan s3", unit="objects"):
    """S3 buckets checked for encryption, exposure, retention and PHI in objects (read-only)."""

    def plan(self, options: S3ScanOptions, setup: Setup) -> S3Plan:
        """Check the account ids; a single scan also connects (credentials, role, endpoint).

        In an assessment the connection is opened when the group runs; if it cannot be, the
        group's buckets are unverifiable.
        """
        for account in options.trusted_accounts:
            if not is_account_id(account):
                raise ScannerSetupError(f"--trusted-account {account}: an AWS account id is "
                                        "12 digits")
        access = Access(profile=options.profile, region=options.region,
                        endpoint_url=options.endpoint_url, role_arn=options.role_arn,
                        provider=options.provider, ca_bundle=options.ca_bundle,
                        pool=options.concurrency + 4)
        opts = S3Options(access, tuple(options.buckets), options.sample_objects, options.seed,
                         options.concurrency,
                         Scope(frozenset(options.trusted_accounts),
                               frozenset(options.retention_buckets),
                               frozenset(options.phi_buckets)))
        if not setup.strict:
            return S3Plan(opts)
        try:
            return S3Plan(opts, Connection(access))
        except S3SetupError as exc:
            raise ScannerSetupError(str(exc)) from None

    def targets(self, options: S3ScanOptions, plan: S3Plan | None, setup: Setup) -> list[str]:
        """``s3://BUCKET`` per bucket named, or ``s3://*`` for every bucket listed."""
        return _targets(options.buckets)

    def describe(self, plan: S3Plan) -> dict[str, object]:
        """The options a ``scan s3`` run records."""
        return plan.options.describe()

    def summary(self, options: S3ScanOptions) -> S3Summary:
        """The endpoint, the object sample and its seed."""
        return S3Summary(endpoint=options.endpoint_url or "aws",
                         sample_objects=options.sample_objects, seed=options.seed)

    def scan(self, plan: S3Plan, context: ScanContext) -> Iterator[AssetResult]:
        """Connect (unless planning did), then scan; record each bucket's summary."""
        conn = plan.conn
        if conn is None:
            try:
                conn = Connection(plan.options.access)
            except S3SetupError as exc:
                yield from unverified(context.catalog, _targets(plan.options.buckets),
                                      f"Not examined: {exc}.")
                return
        buckets = context.evidence("buckets")
        yield from scan_s3(plan.options, context.catalog, context.masker, conn=conn,
                           on_bucket=lambda b: buckets.append(context.grouped(b)))


#: The registered S3 scanner.
SCANNER = S3Scanner()
