"""The log analysis behind the scanner contract (:mod:`hipaa_audit.scanner`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from hipaa_audit.logs.options import LogsOptions, LogsSummary
from hipaa_audit.logs.run import LogOptions
from hipaa_audit.model import AssetResult
from hipaa_audit.scanner import ScanContext, Scanner, Setup, unverified


class LogsScanner(Scanner[LogsOptions, LogOptions, LogsSummary],
                  name="logs", command="analyze logs", unit="events"):
    """Audit logs reviewed for anomalies, Sigma rule matches and broken integrity."""

    def plan(self, options: LogsOptions, setup: Setup) -> LogOptions:
        """Read and check the mapping, settings, Sigma rules, roster and patient lists."""
        from hipaa_audit.logs.setup import load_mapping_file, load_settings_file, log_options

        if options.mapping_file is not None:
            mapping = load_mapping_file(Path(options.mapping_file))
            source = options.mapping_file
        else:
            mapping = options.mapping
            source = f"logs group {setup.group}" if setup.group is not None else "mapping"
        detectors = (load_settings_file(Path(options.settings_file))
                     if options.settings_file is not None else options.detectors)
        return log_options(
            options.paths, setup.masker, fmt=options.format, mapping=mapping,
            mapping_source=source, sigma=options.sigma, timezone=options.timezone,
            detectors=detectors, roster=options.roster, vip=options.vip,
            coworkers=options.coworkers, patients=options.patients,
            chain_key_env=options.chain_key_env, anchors=options.anchors,
            cloudtrail_keys=options.cloudtrail_keys, cache=options.cache,
            scheduler=options.scheduler)

    def targets(self, options: LogsOptions, plan: LogOptions | None, setup: Setup) -> list[str]:
        """The log files, folders and patterns as given."""
        return list(options.paths)

    def describe(self, plan: LogOptions) -> dict[str, object]:
        """The options an ``analyze logs`` run records (no keys)."""
        return plan.describe()

    def summary(self, options: LogsOptions) -> LogsSummary:
        """The log format and how many Sigma rule sources were given."""
        return LogsSummary(log_format=options.format, sigma=len(options.sigma))

    def scan(self, plan: LogOptions, context: ScanContext) -> Iterator[AssetResult]:
        """Analyse the logs; record each summary.

        In an assessment a Dask cluster that cannot be used makes the logs unverifiable.
        """
        from hipaa_audit.cluster import ClusterError
        from hipaa_audit.logs.run import analyze_logs

        summaries = context.evidence("logs")
        try:
            yield from analyze_logs(plan, context.catalog, context.masker,
                                    on_summary=lambda s: summaries.append(context.grouped(s)))
        except ClusterError as exc:
            if context.setup.strict:
                raise
            yield from unverified(context.catalog, plan.paths, f"Not examined: {exc}.")


#: The registered log analysis.
SCANNER = LogsScanner()
