"""The options of the permission scan: ``scan permissions`` flags and ``[permissions]``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypedDict

from pydantic import Field, model_validator

from hipaa_audit.errors import ScannerSetupError
from hipaa_audit.scanner import ScannerOptions, command_line_only


class PermissionSetupError(ScannerSetupError):
    """A source or the baseline cannot be used (a clear message; the CLI exits 2)."""


def parse_source(source: str) -> tuple[str, str, str]:
    """Split a SOURCE argument into (kind, path or name, system); raise PermissionSetupError."""
    if source == "aws":
        return "aws", "", "aws"
    kind, sep, rest = source.partition(":")
    if not sep or kind not in ("fs", "pacs", "roster") or not rest:
        raise PermissionSetupError(
            f"unknown source {source!r}: use aws, fs:PATH, pacs:FILE.csv (or pacs:NAME=FILE.csv) "
            "or roster:FILE.csv")
    if kind == "pacs":
        name, eq, path = rest.partition("=")
        if eq and name and "/" not in name:
            return kind, path, name
        return kind, rest, Path(rest).stem
    return kind, rest, kind


class PermissionsOptions(ScannerOptions):
    """The access baseline and the sources to compare with it."""

    baseline: Path
    #: ``aws``, ``fs:PATH``, ``pacs:FILE.csv`` (``pacs:NAME=FILE.csv``), ``roster:FILE.csv``
    sources: list[str] = Field(min_length=1)
    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    role_arn: str | None = None
    buckets: list[str] = Field(default_factory=list)
    #: Resources (patterns) known to hold PHI, besides the baseline's ``[phi]``.
    phi: list[str] = Field(default_factory=list)
    #: column mappings of the PACS exports and the roster (inline; the flags name TOML files)
    pacs_mapping: dict[str, Any] = Field(default_factory=dict)
    roster_mapping: dict[str, Any] = Field(default_factory=dict)
    fs_depth: int = Field(default=4, ge=1, le=32)
    #: ``--previous``: a stored run (id or latest) or a graph JSON to compare with
    previous: str | None = command_line_only(None)
    #: ``--store``: the history store holding ``previous``
    store: str | None = command_line_only(None)
    #: ``--pacs-mapping`` and ``--roster-mapping``: the column mappings as TOML files
    pacs_mapping_file: str | None = command_line_only(None)
    roster_mapping_file: str | None = command_line_only(None)

    @model_validator(mode="after")
    def _sources(self) -> PermissionsOptions:
        for source in self.sources:
            try:
                parse_source(source)
            except PermissionSetupError as exc:
                raise ValueError(str(exc)) from None
        return self


class PermissionsSummary(TypedDict):
    """What the reports say of the permission group's options."""

    baseline: str
    sources: int
