"""``scan archive``: walk the paths and scan every file, streaming one result per asset."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace

from hipaa_audit.archive.containers import Limits
from hipaa_audit.archive.pathnames import mask_result
from hipaa_audit.archive.scanner import ArchiveRules, scan_file
from hipaa_audit.archive.walk import FileTask, SkippedLink, SkippedSpecial, WalkItem, walk_paths
from hipaa_audit.catalog import load_catalog
from hipaa_audit.engine import map_in_order
from hipaa_audit.model import AssetResult
from hipaa_audit.redaction import Masker, silence_libraries

STAT_LINKS_SKIPPED = "links_inside_tree_skipped"
STAT_SPECIAL_SKIPPED = "special_files_skipped"

_rules: ArchiveRules | None = None


def _init(key: bytes, reveal: bool, limits: Limits, ocr: bool, mask_paths: bool = False
          ) -> None:
    global _rules
    silence_libraries()
    _rules = ArchiveRules.build(load_catalog(), Masker(key, reveal), limits, ocr, mask_paths)


def _scan_item(item: WalkItem) -> list[AssetResult]:
    assert _rules is not None, "worker not initialised"
    results = _scan_one(item, _rules)
    if _rules.mask_paths:  # judged files are masked already, with their own identifiers
        masker = _rules.dicom.masker
        results = [mask_result(r, masker) for r in results]
    return results


def _scan_one(item: WalkItem, rules: ArchiveRules) -> list[AssetResult]:
    """Scan one walked item: a file (and its members), or why it was not scanned."""
    if isinstance(item, FileTask):
        try:
            return scan_file(item, rules)
        except Exception as exc:  # one bad asset never stops the rest; the type only, no value
            return [rules.unchecked(
                item.asset, f"an internal error ({type(exc).__name__}) stopped its check")]
    result = AssetResult(item.asset)
    if isinstance(item, SkippedLink):
        result.stats[STAT_LINKS_SKIPPED] = 1
        return [result]
    if isinstance(item, SkippedSpecial):
        result.stats[STAT_SPECIAL_SKIPPED] = 1
        return [result]
    return [rules.unchecked(item.asset, item.reason)]


def scan_archive(
    paths: list[str], *, masker: Masker, workers: int = 1, limits: Limits | None = None,
    ocr: bool = False, scheduler: str | None = None, follow_links: bool = False,
    mask_paths: bool = False,
) -> Iterator[AssetResult]:
    """Scan every file under ``paths``; yield one :class:`AssetResult` per asset.

    Locally (``workers`` processes) results come in walk order; on a Dask cluster
    (``scheduler``, its address) in order of completion. A container yields its own result,
    then one per member (nested members included). With ``mask_paths`` every path component
    that looks like an identifier is masked in the results (see :mod:`.pathnames`).
    """
    initargs = (masker.key, masker.reveal, limits or Limits(), ocr, mask_paths)
    if scheduler is not None:
        from hipaa_audit.cluster import map_on_cluster

        # cluster workers do not share this process's working directory: absolute paths
        items = (replace(i, path=os.path.abspath(i.path)) if isinstance(i, FileTask) else i
                 for i in walk_paths(paths, follow_links=follow_links))
        batches = map_on_cluster(_scan_item, items, address=scheduler, initializer=_init,
                                 initargs=initargs)
    else:
        batches = map_in_order(_scan_item, walk_paths(paths, follow_links=follow_links),
                               workers=workers, initializer=_init, initargs=initargs,
                               preload=[__name__])
    for results in batches:
        yield from results
