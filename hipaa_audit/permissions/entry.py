"""The permission scan behind the scanner contract (:mod:`hipaa_audit.scanner`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hipaa_audit.evidence import PermissionSummary
from hipaa_audit.model import AssetResult
from hipaa_audit.permissions.graph import AccessGraph
from hipaa_audit.permissions.options import (
    PermissionSetupError,
    PermissionsOptions,
    PermissionsSummary,
    parse_source,
)
from hipaa_audit.permissions.run import (
    PermOptions,
    load_baseline_or_fail,
    load_mapping,
    previous_snapshot,
    scan_permissions,
)
from hipaa_audit.scanner import ScanContext, Scanner, Setup, unverified


@dataclass(frozen=True, slots=True)
class PermissionsPlan:
    """The scan options, and the access graphs the scan builds (for ``--graphml``)."""

    options: PermOptions
    graphs: list[AccessGraph] = field(default_factory=list)


def _mapping(options: PermissionsOptions, kind: str) -> Any:
    """The PACS or roster column mapping: from its TOML file, inline, or None."""
    from hipaa_audit.permissions.exports import PacsMapping, RosterMapping

    file = options.pacs_mapping_file if kind == "pacs" else options.roster_mapping_file
    if file:
        return load_mapping(Path(file), kind)
    inline = options.pacs_mapping if kind == "pacs" else options.roster_mapping
    if not inline:
        return None
    try:
        return (PacsMapping if kind == "pacs" else RosterMapping).from_toml(inline)
    except ValueError as exc:
        raise PermissionSetupError(str(exc)) from None


class PermissionsScanner(Scanner[PermissionsOptions, PermissionsPlan, PermissionsSummary],
                         name="permissions", command="scan permissions", unit="resources"):
    """Who can reach PHI, and how, compared with the baseline and the previous run."""

    def plan(self, options: PermissionsOptions, setup: Setup) -> PermissionsPlan:
        """Parse the sources, load the baseline, the previous snapshot and the mappings."""
        from hipaa_audit.aws.client import Access

        for source in options.sources:
            parse_source(source)
        base = load_baseline_or_fail(options.baseline)
        prev, label = (previous_snapshot(options.previous,
                                         Path(options.store) if options.store else None)
                       if options.previous else (None, None))
        return PermissionsPlan(PermOptions(
            base, tuple(options.sources),
            Access(profile=options.profile, region=options.region,
                   endpoint_url=options.endpoint_url, role_arn=options.role_arn),
            buckets=tuple(options.buckets), previous=prev, previous_label=label,
            phi=tuple(options.phi), pacs_mapping=_mapping(options, "pacs"),
            roster_mapping=_mapping(options, "roster"), fs_depth=options.fs_depth,
            strict=setup.strict))

    def targets(self, options: PermissionsOptions, plan: PermissionsPlan | None,
                setup: Setup) -> list[str]:
        """The sources as given."""
        return list(options.sources)

    def describe(self, plan: PermissionsPlan) -> dict[str, object]:
        """The options a ``scan permissions`` run records."""
        return plan.options.describe()

    def summary(self, options: PermissionsOptions) -> PermissionsSummary:
        """The baseline file and how many sources were read."""
        return PermissionsSummary(baseline=str(options.baseline), sources=len(options.sources))

    def scan(self, plan: PermissionsPlan, context: ScanContext) -> Iterator[AssetResult]:
        """Collect, build the graph, judge; record the summary (and the snapshot) of the run.

        In an assessment the previous snapshot is the last run's that read the same sources
        (another set would show as a change), PHI found by the earlier groups counts, and the
        vendors' principals are watched.
        """
        opts = plan.options
        sources = list(opts.sources)
        facts = context.assessment
        if facts is not None:
            previous, label = None, None
            for run_label, evidence in facts.previous_evidence("permissions"):
                if isinstance(evidence, dict) and isinstance(evidence.get("snapshot"), dict) \
                        and evidence.get("config_sources", sources) == sources:
                    previous, label = evidence["snapshot"], run_label
                    break
            opts = dataclasses.replace(opts, previous=previous, previous_label=label,
                                       phi=(*opts.phi, *facts.phi_found()), watch=facts.watch)

        def keep(summary: PermissionSummary) -> None:
            context.run.evidence["permissions"] = summary if context.group is None else {
                **summary, "group": context.group, "config_sources": sources}

        try:
            yield from scan_permissions(opts, context.catalog, context.masker, on_summary=keep,
                                        on_graph=plan.graphs.append)
        except PermissionSetupError as exc:
            if context.setup.strict:
                raise
            yield from unverified(context.catalog, sources, f"Not examined: {exc}.")


#: The registered permission scan.
SCANNER = PermissionsScanner()
