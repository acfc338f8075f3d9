"""The archive scanner behind the contract (:mod:`hipaa_audit.scanner`): plan, scan, summary.

The example to follow when adding a scanner: an options model in ``options.py``, a plan that
checks the inputs and raises :class:`~hipaa_audit.scanner.ScannerSetupError`, a scan that
streams results and records its evidence, and a typed summary; then its name in the
registry.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from hipaa_audit.archive.options import ArchiveOptions, ArchiveSummary
from hipaa_audit.model import AssetResult
from hipaa_audit.scanner import ScanContext, Scanner, ScannerSetupError, Setup, unverified


@dataclass(frozen=True, slots=True)
class ArchivePlan:
    """The paths to scan, and (in an assessment) the configured ones that do not exist."""

    options: ArchiveOptions
    present: list[str]
    missing: list[str]


class ArchiveScanner(Scanner[ArchiveOptions, ArchivePlan, ArchiveSummary],
                     name="archive", command="scan archive", unit="files"):
    """Folders, files and containers scanned for DICOM PHI, exposure and encryption."""

    def plan(self, options: ArchiveOptions, setup: Setup) -> ArchivePlan:
        """Split the paths into present and missing.

        A single scan refuses missing paths and an OCR that cannot run.
        """
        present = [p for p in options.paths if os.path.lexists(p)]
        missing = [p for p in options.paths if p not in present]
        if setup.strict:
            if missing:
                raise ScannerSetupError(f"no such file or directory: {', '.join(missing)}")
            if options.ocr:
                from hipaa_audit.archive.dicom.ocr import OcrUnavailable, check_available

                try:
                    check_available()
                except OcrUnavailable as exc:
                    raise ScannerSetupError(str(exc)) from None
        return ArchivePlan(options, present, missing)

    def targets(self, options: ArchiveOptions, plan: ArchivePlan | None,
                setup: Setup) -> list[str]:
        """The paths, masked when ``mask_paths``."""
        if not options.mask_paths:
            return list(options.paths)
        from hipaa_audit.archive.pathnames import mask_path

        return [mask_path(p, setup.masker) for p in options.paths]

    def describe(self, plan: ArchivePlan) -> dict[str, object]:
        """The options a ``scan archive`` run records."""
        o = plan.options
        return {"workers": o.workers, "max_depth": o.max_depth, "ocr": o.ocr,
                "scheduler": o.scheduler, "follow_symlinks": o.follow_symlinks,
                "mask_paths": o.mask_paths}

    def summary(self, options: ArchiveOptions) -> ArchiveSummary:
        """Whether pixel data was read by OCR and names were masked."""
        return ArchiveSummary(ocr=options.ocr, mask_paths=options.mask_paths)

    def total(self, plan: ArchivePlan) -> Callable[[], int] | None:
        """Count the files under the paths (run in the background by the progress display)."""
        from hipaa_audit.archive.walk import count_files

        return functools.partial(count_files, plan.present,
                                 follow_links=plan.options.follow_symlinks)

    def scan(self, plan: ArchivePlan, context: ScanContext) -> Iterator[AssetResult]:
        """Report missing paths, record each path's storage encryption, scan the files."""
        from hipaa_audit.archive.containers import Limits
        from hipaa_audit.archive.content import storage_encryption
        from hipaa_audit.archive.pathnames import mask_path, mask_result
        from hipaa_audit.archive.run import scan_archive

        o, masker = plan.options, context.masker
        for result in unverified(context.catalog, plan.missing,
                                 "The configured path does not exist."):
            yield mask_result(result, masker) if o.mask_paths else result
        context.evidence("storage").extend(
            {**storage_encryption(p), "target": mask_path(p, masker) if o.mask_paths else p}
            for p in plan.present)
        if plan.present:
            yield from scan_archive(plan.present, masker=masker, workers=o.workers,
                                    limits=Limits(max_depth=o.max_depth), ocr=o.ocr,
                                    scheduler=o.scheduler, follow_links=o.follow_symlinks,
                                    mask_paths=o.mask_paths)


#: The registered archive scanner.
SCANNER = ArchiveScanner()
