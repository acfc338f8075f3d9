"""The options of the archive scanner: ``scan archive`` flags and ``[[archive]]`` sections."""

from __future__ import annotations

from typing import TypedDict

from pydantic import Field

from hipaa_audit.scanner import ScannerOptions, command_line_only

#: How deep containers inside containers are opened by default.
DEFAULT_MAX_DEPTH = 3


class ArchiveOptions(ScannerOptions):
    """Folders and files to scan for PHI, and how."""

    #: folders or files, as given (``./x`` stays ``./x``: the findings name assets under it)
    paths: list[str] = Field(min_length=1)
    ocr: bool = False
    workers: int = Field(default=1, ge=1, le=256)
    follow_symlinks: bool = False
    max_depth: int = Field(default=DEFAULT_MAX_DEPTH, ge=1, le=16)
    #: a Dask scheduler that scans the files (``--scheduler``)
    scheduler: str | None = command_line_only(None)
    #: mask names that look like patient identifiers (``--mask-paths``; in an assessment,
    #: ``[report] mask_paths``)
    mask_paths: bool = command_line_only(False)


class ArchiveSummary(TypedDict):
    """What the reports say of an archive group's options."""

    ocr: bool
    mask_paths: bool
