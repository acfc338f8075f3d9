"""The options of the network scanner: ``scan network`` flags and ``[[network]]`` sections."""

from __future__ import annotations

from typing import TypedDict

from pydantic import Field, model_validator

from hipaa_audit.scanner import ScannerOptions


class NetworkOptions(ScannerOptions):
    """Endpoints to probe, and how."""

    targets: list[str] = Field(default_factory=list)
    targets_file: str | None = None
    policy: str = "nist-800-52r2"
    ca_bundle: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    gentle: bool = False
    deadline: float = Field(default=90.0, ge=5, le=3600)
    concurrency: int = Field(default=8, ge=1, le=64)
    timeout: float = Field(default=5.0, ge=1, le=60)
    calling_ae: str = "HIPAA-AUDIT"
    called_ae: str = "ANY-SCP"

    @model_validator(mode="after")
    def _some_targets(self) -> NetworkOptions:
        if not self.targets and self.targets_file is None:
            raise ValueError("give targets or targets_file")
        return self


class NetworkSummary(TypedDict):
    """What the reports say of a network group's options."""

    policy: str
    gentle: bool
