"""Drive one scan: stream a scanner's results into a renderer, count, and decide the exit code.

Exit codes (DESIGN.md section 3): ``0`` nothing at or above ``--fail-on``; ``3`` findings at or
above it; ``4`` some assets could not be checked (and nothing at or above ``--fail-on``);
``2`` bad usage; ``1`` internal error.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from hipaa_audit.model import AssetResult, Coverage, RunInfo, Severity, Status
from hipaa_audit.output import Renderer

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_FINDINGS = 3
EXIT_UNVERIFIED = 4


def iso_utc(value: dt.datetime) -> str:
    """Return ``value`` in UTC as ISO 8601 with a ``Z``, to the second."""
    return value.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def utc_now() -> str:
    """Return the current UTC time as ISO 8601 with a ``Z``."""
    return iso_utc(dt.datetime.now(dt.UTC))


def new_run(command: str, targets: list[str], *, reveal_phi: bool,
            options: dict[str, object] | None = None) -> RunInfo:
    """Start the metadata of a run with a fresh id (time-ordered, then random)."""
    started = utc_now()
    stamp = started.replace("-", "").replace(":", "")
    return RunInfo(
        id=f"{stamp}-{secrets.token_hex(4)}",
        command=command,
        started_at=started,
        targets=targets,
        reveal_phi=reveal_phi,
        options=dict(options or {}),
    )


def exit_code(worst_failure: Severity | None, errors: int, fail_on: Severity | None) -> int:
    """Return the exit code for the most severe failure, the error count and ``--fail-on``."""
    if fail_on is not None and worst_failure is not None and worst_failure >= fail_on:
        return EXIT_FINDINGS
    if errors:
        return EXIT_UNVERIFIED
    return EXIT_OK


@dataclass(slots=True)
class Outcome:
    """What a finished scan adds up to."""

    run: RunInfo
    coverage: Coverage = field(default_factory=Coverage)
    stats: dict[str, int] = field(default_factory=dict)
    failures: dict[Severity, int] = field(default_factory=dict)
    errors: int = 0
    exit_code: int = EXIT_OK

    @property
    def worst_failure(self) -> Severity | None:
        """The most severe failed finding, if any."""
        return max(self.failures, default=None)


def consume(
    results: Iterable[AssetResult],
    renderer: Renderer,
    run: RunInfo,
    fail_on: Severity | None,
    on_asset: Callable[[AssetResult], None] | None = None,
) -> Outcome:
    """Feed every result to ``renderer``, then finish it; return the outcome and exit code."""
    outcome = Outcome(run)
    for result in results:
        for finding in result.findings:
            renderer.add(finding)
            if finding.status is Status.ERROR:
                outcome.errors += 1
            else:
                outcome.failures[finding.severity] = outcome.failures.get(finding.severity, 0) + 1
        outcome.coverage.merge(result.coverage)
        for key, n in result.stats.items():
            outcome.stats[key] = outcome.stats.get(key, 0) + n
        if on_asset is not None:
            on_asset(result)
    run.finished_at = utc_now()
    outcome.exit_code = exit_code(outcome.worst_failure, outcome.errors, fail_on)
    renderer.finish(run, outcome.coverage, outcome.stats, outcome.exit_code)
    return outcome
