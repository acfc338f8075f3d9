"""The options of the S3 scanner: ``scan s3`` flags and ``[[s3]]`` sections."""

from __future__ import annotations

from typing import Literal, TypedDict

from pydantic import Field, model_validator

from hipaa_audit.scanner import ScannerOptions


class S3ScanOptions(ScannerOptions):
    """Buckets to inspect (empty: every bucket the identity can list), and how."""

    buckets: list[str] = Field(default_factory=list)
    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    role_arn: str | None = None
    provider: Literal["auto", "aws", "compatible"] = "auto"
    ca_bundle: str | None = None
    sample_objects: int = Field(default=50, ge=0, le=1_000_000)
    seed: int = 0
    concurrency: int = Field(default=16, ge=1, le=128)
    trusted_accounts: list[str] = Field(default_factory=list)
    retention_buckets: list[str] = Field(default_factory=list)
    phi_buckets: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _accounts(self) -> S3ScanOptions:
        bad = [a for a in self.trusted_accounts if not is_account_id(a)]
        if bad:
            raise ValueError(f"trusted_accounts: not 12-digit AWS account ids: {', '.join(bad)}")
        return self


def is_account_id(value: str) -> bool:
    """True for a 12-digit AWS account id."""
    return value.isdigit() and len(value) == 12


class S3Summary(TypedDict):
    """What the reports say of an S3 group's options."""

    endpoint: str
    sample_objects: int
    seed: int
