"""The options of the log analysis: ``analyze logs`` flags and ``[[logs]]`` sections."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypedDict

from pydantic import Field

from hipaa_audit.scanner import ScannerOptions, command_line_only


class LogsOptions(ScannerOptions):
    """Audit logs to analyse, and how."""

    paths: list[str] = Field(min_length=1)
    format: Literal["auto", "atna", "fhir", "cloudtrail", "csv", "jsonl"] = "auto"
    #: the column mapping of CSV/JSONL logs (inline; ``--mapping`` names a TOML file)
    mapping: dict[str, Any] = Field(default_factory=dict)
    sigma: list[Path] = Field(default_factory=list)
    timezone: str | None = None
    #: detector settings (inline; ``--settings`` names a TOML file)
    detectors: dict[str, Any] = Field(default_factory=dict)
    roster: Path | None = None
    vip: Path | None = None
    coworkers: Path | None = None
    patients: Path | None = None
    chain_key_env: str | None = None
    anchors: list[Path] = Field(default_factory=list)
    cloudtrail_keys: list[Path] = Field(default_factory=list)
    #: a Dask ``distributed`` scheduler that parses the files (``tcp://host:8786``)
    scheduler: str | None = None
    #: ``--mapping``: the column mapping as a TOML file
    mapping_file: str | None = command_line_only(None)
    #: ``--settings``: the detector settings as a TOML file
    settings_file: str | None = command_line_only(None)
    #: ``--no-cache`` turns it off: parse every file again
    cache: bool = command_line_only(True)


class LogsSummary(TypedDict):
    """What the reports say of a logs group's options."""

    log_format: str
    sigma: int
