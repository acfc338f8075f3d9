"""``--format table``: what a person reads in a terminal.

The most severe findings (up to :data:`MAX_ROWS`), then totals by severity, the coverage of each
check and what was not examined. Only the top rows are kept in memory.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING

from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from hipaa_audit.model import Coverage, Finding, RunInfo, Severity, Status

if TYPE_CHECKING:
    from hipaa_audit.evidence import BucketSummary, EndpointSummary

MAX_ROWS = 200
STYLE = {
    Severity.CRITICAL: "bold white on red",
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}


def _where(finding: Finding) -> str:
    parts = [loc.text("path") or loc.text("keyword") or loc.text("suite")
             or loc.text("protocol") or loc.text("setting")
             for loc in finding.locations]
    parts = [p for p in parts if p]
    shown = ", ".join(parts[:3])
    return shown + (f" (+{len(parts) - 3})" if len(parts) > 3 else "")


def endpoint_table(endpoints: Sequence[EndpointSummary]) -> Table:
    """The per-endpoint summary of a network scan: kind, grade, versions, certificate, HSTS."""
    table = Table(title="Endpoints", expand=False)
    for col in ("endpoint", "kind", "grade", "protocols", "certificate", "HSTS", "findings"):
        table.add_column(col)
    for e in sorted(endpoints, key=lambda e: str(e.get("asset"))):
        cert = e.get("certificate")
        days = cert["days_left"] if cert else None
        cert_text = "" if not cert else (
            f"expired {-days} d ago" if isinstance(days, int) and days < 0
            else f"{days} d left" if isinstance(days, int) else "")
        if cert and cert["trusted"] is False:
            cert_text += ", untrusted"
        hsts = e.get("hsts")
        hsts_text = "-" if e.get("kind") not in ("https", "http") else (
            f"max-age {hsts.get('max_age')}" if isinstance(hsts, dict) else "missing")
        counts = e.get("findings") or {}
        found = ", ".join(f"{k} {counts[k]}" for k in ("critical", "high", "medium", "low",
                                                        "info") if counts.get(k))
        if e.get("unverifiable"):
            found = (found + ", " if found else "") + f"unverifiable {e['unverifiable']}"
        grade = e.get("grade") or {"plaintext": "plaintext", "redirect": "redirect"}.get(
            str(e.get("state")), "-")
        table.add_row(str(e.get("asset")), str(e.get("kind")), grade,
                      " ".join(v.replace("TLSv", "") for v in e.get("versions") or []) or "-",
                      cert_text or "-", hsts_text, found or "none")
    return table


def bucket_table(buckets: Sequence[BucketSummary]) -> Table:
    """The per-bucket summary of an S3 scan: encryption, PHI, retention, exposure, failures."""
    table = Table(title="Buckets", expand=False)
    for col in ("bucket", "encryption", "PHI", "retention", "public", "objects read",
                "failed / not verified"):
        table.add_column(col)
    for b in sorted(buckets, key=lambda b: str(b.get("asset"))):
        failed = ", ".join(c.removeprefix("s3-") for c in b.get("failed") or []) or "none"
        unverified = ", ".join(c.removeprefix("s3-") for c in b.get("unverified") or [])
        read = f"{b.get('objects_sampled', 0):,} of {b.get('objects_seen', 0):,}"
        if b.get("sample_method") == "inventory":
            read += " (inventory)"
        table.add_row(str(b.get("asset")), str(b.get("encryption")),
                      "yes" if b.get("phi") else "not known", str(b.get("retention") or "-"),
                      "yes" if b.get("public") else "no", read,
                      failed + (f"; not verified: {unverified}" if unverified else ""))
    return table


class TableRenderer:
    """Keeps the most severe findings, prints everything at the end."""

    def __init__(self, stream: IO[str]) -> None:
        self.console = Console(file=stream, highlight=False, soft_wrap=False)
        self.top: list[tuple[int, int, Finding]] = []
        self.by_severity: Counter[Severity] = Counter()
        self.errors = 0
        self.seen = 0

    def add(self, finding: Finding) -> None:
        """Count one finding and keep it if it is among the most severe."""
        self.seen += 1
        if finding.status is Status.ERROR:
            self.errors += 1
        else:
            self.by_severity[finding.severity] += 1
        rank = finding.severity.rank + (10 if finding.status is Status.FAIL else 0)
        item = (rank, -self.seen, finding)
        if len(self.top) < MAX_ROWS:
            heapq.heappush(self.top, item)
        else:
            heapq.heappushpop(self.top, item)

    def finish(self, run: RunInfo, coverage: Coverage, stats: dict[str, int],
               exit_code: int) -> None:
        """Print findings, totals, coverage and the exit status."""
        con = self.console
        rows = sorted(self.top, reverse=True)
        for _, _, f in rows:
            label = "ERROR" if f.status is Status.ERROR else f.severity.value.upper()
            head = Text()
            head.append(f"{label:<8}", style=STYLE[f.severity])
            head.append(f" {f.check_id}  ", style="bold")
            head.append(f.asset)
            con.print(head)
            body = Text(f.message)
            where = _where(f)
            if where:
                body.append(f"\nat: {where}", style="dim")
            con.print(Padding(body, (0, 0, 1, 9)))
        if self.seen > len(rows):
            con.print(f"... and {self.seen - len(rows)} more findings: use --format json, "
                      "jsonl or csv to see them all.")
        if not rows:
            con.print("No findings.")
        totals = ", ".join(
            f"{s.value} {self.by_severity[s]}" for s in reversed(Severity) if self.by_severity[s]
        ) or "none"
        con.print(f"\nRun {run.id}: {self.seen} findings ({totals}); "
                  f"{self.errors} asset(s) could not be checked.")
        if stats:
            con.print("Assets: " + ", ".join(f"{k.replace('_', ' ')} {v}"
                                             for k, v in sorted(stats.items())))
        if stats.get("unrecognised"):
            con.print(f"{stats['unrecognised']} file(s) are neither DICOM, containers, text nor "
                      "encrypted envelopes: their content was not examined for PHI.")
        if stats.get("dicom") and not run.options.get("ocr", True):
            con.print("Pixels were not examined for burned-in text (use --ocr); image findings "
                      "rest on header evidence only.")
        if run.evidence.get("endpoints"):
            con.print(endpoint_table(run.evidence["endpoints"]))
        if run.evidence.get("buckets"):
            con.print(bucket_table(run.evidence["buckets"]))
        cov = Table(title="Coverage", expand=False)
        for col in ("check", "evaluated", "failed", "errors"):
            cov.add_column(col, justify="left" if col == "check" else "right")
        for row in coverage.as_list():
            cov.add_row(row["check_id"], str(row["evaluated"]), str(row["failed"]),
                        str(row["errors"]))
        con.print(cov)
        if run.reveal_phi:
            con.print("[bold red]--reveal-phi was given: evidence shows values read from the "
                      "assets. Handle this output as PHI.[/]")
        con.print(f"Exit code {exit_code}.")
