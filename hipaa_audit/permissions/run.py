"""``scan permissions``: collect access from every source, build the graph, judge it.

Sources (``SOURCE`` arguments, or ``sources`` in ``[permissions]``):

- ``aws``: IAM users, groups, roles and policies, and the S3 bucket policies, ACLs and Block
  Public Access of the identity's account (read-only, :mod:`hipaa_audit.permissions.aws`);
- ``fs:PATH``: owners, groups, modes and POSIX ACLs of a folder tree (:mod:`.fs`);
- ``pacs:FILE.csv`` or ``pacs:NAME=FILE.csv``: a PACS/VNA user and role export (:mod:`.exports`);
  the system is named after the file unless ``NAME=`` is given;
- ``roster:FILE.csv``: the identity roster (active workforce and their roles).

The facts of every source are merged into one :class:`~.graph.AccessGraph`; resources hold PHI
when the baseline's ``[phi]`` or the configuration says so, or when this run's scanners found PHI
there. :func:`~.rules.judge` compares it with the baseline, the roster and the previous run's
snapshot. A source that cannot be used at all raises :class:`PermissionSetupError` (exit 2); what
a source could not read in part is an ``unverifiable`` finding.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hipaa_audit.aws.client import Access
from hipaa_audit.catalog import Catalog
from hipaa_audit.evidence import PermissionSummary, PhiResource, WatchedReach
from hipaa_audit.model import AssetResult
from hipaa_audit.permissions.baseline import Baseline, BaselineError, covers
from hipaa_audit.permissions.graph import AccessGraph, action_text
from hipaa_audit.permissions.model import Facts, Problem
from hipaa_audit.permissions.options import PermissionSetupError, parse_source
from hipaa_audit.permissions.rules import Context, is_external, judge, riskiest
from hipaa_audit.redaction import Masker

#: Principals listed per resource in the summary.
SHOWN = 12


@dataclass(frozen=True, slots=True)
class PermOptions:
    """What ``scan permissions`` reads and compares."""

    baseline: Baseline
    sources: tuple[str, ...]
    access: Access = field(default_factory=Access)
    buckets: tuple[str, ...] = ()
    #: The previous run's snapshot (grants and memberships), when there is one.
    previous: dict[str, list[str]] | None = None
    previous_label: str | None = None
    #: Resources (patterns) known to hold PHI from this run's other scanners or the config.
    phi: tuple[str, ...] = ()
    #: Principal patterns whose reach is kept in the summary (vendors' principals).
    watch: tuple[str, ...] = ()
    pacs_mapping: Any = None
    roster_mapping: Any = None
    fs_depth: int = 4
    #: A source that cannot be used at all stops the scan (the CLI: exit 2); otherwise (the
    #: assessment) it is an ``unverifiable`` finding and the other sources are judged.
    strict: bool = True

    def describe(self) -> dict[str, object]:
        """The options as recorded in the run."""
        return {**self.baseline.describe(), "sources": list(self.sources),
                "previous": self.previous_label, **(
                    {"endpoint_url": self.access.endpoint_url} if "aws" in self.sources else {})}


def collect(opts: PermOptions, masker: Masker) -> tuple[Facts, list[str]]:
    """Read every source into one :class:`Facts`; return it with per-source timings."""
    from hipaa_audit.aws.client import S3SetupError
    from hipaa_audit.permissions.exports import (
        PermissionSourceError,
        collect_pacs,
        collect_roster,
    )
    from hipaa_audit.permissions.fs import collect_fs

    facts = Facts()
    timings: list[str] = []
    for source in opts.sources:
        kind, path, system = parse_source(source)
        started = time.monotonic()
        try:
            if kind == "aws":
                from hipaa_audit.permissions.aws import collect_aws

                part = collect_aws(opts.access, buckets=list(opts.buckets) or None)
            elif kind == "fs":
                part = collect_fs(Path(path), max_depth=opts.fs_depth)
            elif kind == "pacs":
                part = collect_pacs(Path(path), system=system, mapping=opts.pacs_mapping)
            else:
                part = collect_roster(Path(path), masker, mapping=opts.roster_mapping)
        except (PermissionSourceError, S3SetupError) as exc:
            if opts.strict:
                raise PermissionSetupError(f"{source}: {exc}") from None
            facts.problems.append(Problem(kind, source, str(exc)))
            facts.sources.append(source)
            continue
        except Exception as exc:  # one source failing never stops the others; type only
            facts.problems.append(Problem(kind, source, f"the source could not be read "
                                          f"({type(exc).__name__})"))
            facts.sources.append(source)
            continue
        facts.merge(part)
        timings.append(f"{source}: {time.monotonic() - started:.2f} s")
    return facts, timings


def _own_accounts(facts: Facts) -> frozenset[str]:
    """The scanned AWS accounts: as the collector learnt them, and the buckets' owners."""
    return frozenset(facts.own_accounts) | frozenset(
        r.system.split(":", 1)[1] for r in facts.resources.values()
        if r.system.startswith("aws:") and r.system[4:].isdigit())


def summarise(g: AccessGraph, ctx: Context, results: Sequence[AssetResult],
              opts: PermOptions) -> PermissionSummary:
    """The run evidence the reports use.

    Counts, who reaches each PHI resource, the riskiest paths, the reach of watched (vendor)
    principals, and the snapshot for the next run.
    """
    principals = g.principals.values()
    reach: dict[str, dict[str, set[str]]] = {}
    watched: dict[str, list[WatchedReach]] = {}
    for leaf in g.leaves():
        keep = any(fnmatch.fnmatchcase(leaf, p) for p in opts.watch)
        acts_by_res = g.reach_table(leaf, None if keep else g.phi)
        for res, acts in acts_by_res.items():
            if res in g.phi:
                reach.setdefault(res, {})[leaf] = acts
        if keep:
            watched[leaf] = [{"resource": res, "actions": action_text(acts),
                              "phi": res in g.phi} for res, acts in sorted(acts_by_res.items())]
    phi_rows: list[PhiResource] = []
    for res in sorted(g.phi):
        who = reach.get(res, {})
        external = sorted(p for p in who if is_external(p, ctx))
        phi_rows.append({"resource": res, "principals": len(who),
                         "humans": sum(1 for p in who if g.principals[p].human),
                         "external": external[:SHOWN],
                         "writers": sum(1 for a in who.values() if "write" in a or
                                        "delete" in a or "admin" in a)})
    return {
        "sources": list(g.facts.sources),
        "baseline": opts.baseline.source,
        "previous": opts.previous_label,
        "principals": len(g.principals),
        "humans": sum(1 for p in principals if p.human),
        "grants": len(g.facts.grants),
        "memberships": len(g.facts.memberships),
        "resources": len(g.resources),
        "phi_resources": phi_rows,
        "problems": len(g.facts.problems),
        "findings": {check: n for check, n in sorted(_counts(results).items())},
        "riskiest": riskiest(results),
        "watched": watched,
        "snapshot": g.snapshot(),
    }


def _counts(results: Sequence[AssetResult]) -> dict[str, int]:
    out: dict[str, int] = {}
    for result in results:
        for f in result.findings:
            out[f.check_id] = out.get(f.check_id, 0) + 1
    return out


def analyse(facts: Facts, opts: PermOptions, catalog: Catalog
            ) -> tuple[AccessGraph, Context, list[AssetResult]]:
    """Build the graph of ``facts`` and judge it (no I/O)."""
    baseline = opts.baseline
    g = AccessGraph(facts, phi=lambda r: baseline.holds_phi(r) or
                    any(covers(p, r) for p in opts.phi))
    people = list(facts.people) if "roster" in facts.sources else None
    ctx = Context(baseline, people=people, previous=opts.previous,
                  own_accounts=_own_accounts(facts))
    return g, ctx, judge(g, ctx, catalog)


def scan_permissions(opts: PermOptions, catalog: Catalog, masker: Masker, *,
                     on_summary: Callable[[PermissionSummary], None] | None = None,
                     on_graph: Callable[[AccessGraph], None] | None = None,
                     ) -> Iterator[AssetResult]:
    """Collect, build the graph, judge: one result per resource or principal with findings."""
    facts, _timings = collect(opts, masker)
    g, ctx, results = analyse(facts, opts, catalog)
    if on_graph is not None:
        on_graph(g)
    if on_summary is not None:
        on_summary(summarise(g, ctx, results, opts))
    stats = AssetResult("permissions")
    stats.stats.update({"principals": len(g.principals), "grants": len(facts.grants),
                        "resources": len(g.resources)})
    yield stats
    yield from results


def previous_snapshot(ref: str, store_path: Path | None
                      ) -> tuple[dict[str, list[str]], str]:
    """The snapshot of a previous run: a graph JSON file (``--graph-json``) or a stored run.

    ``ref`` names a ``.json`` file, or a run of the history store (an id, ``latest``); a stored
    assessment without a permissions scan is an error, as is a file without a snapshot.
    """
    import json

    if ref.endswith(".json") or Path(ref).is_file():
        try:
            data = json.loads(Path(ref).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise PermissionSetupError(f"--previous {ref}: cannot read the graph "
                                       f"({type(exc).__name__})") from None
        snap = data.get("snapshot") if isinstance(data, dict) else None
        if not isinstance(snap, dict):
            raise PermissionSetupError(f"--previous {ref}: no snapshot in this file (write one "
                                       "with --graph-json)")
        return _checked(snap, ref), ref
    from hipaa_audit.store import Store, StoreError, default_path

    try:
        with Store(store_path or default_path()) as store:
            run = store.resolve(ref)
    except StoreError as exc:
        raise PermissionSetupError(f"--previous {ref}: {exc}") from None
    from hipaa_audit.evidence import stored_run_evidence

    evidence = stored_run_evidence(run.meta).get("permissions")
    if evidence is None or "snapshot" not in evidence:
        raise PermissionSetupError(f"--previous {ref}: the run {run.id} has no permissions scan")
    return _checked(evidence["snapshot"], ref), f"run {run.id}"


def _checked(snap: Any, ref: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for kind in ("grants", "memberships"):
        items = snap.get(kind, [])
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise PermissionSetupError(f"--previous {ref}: the snapshot's {kind} is not a list "
                                       "of strings")
        out[kind] = items
    return out


def load_mapping(path: Path, kind: str) -> Any:
    """A PACS or roster column mapping from a TOML file (``kind``: ``pacs`` or ``roster``)."""
    import tomllib

    from hipaa_audit.config import parse_toml
    from hipaa_audit.permissions.exports import PacsMapping, RosterMapping

    try:
        data = parse_toml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PermissionSetupError(f"{path}: cannot read the {kind} mapping "
                                   f"({type(exc).__name__})") from None
    try:
        return (PacsMapping if kind == "pacs" else RosterMapping).from_toml(data)
    except ValueError as exc:
        raise PermissionSetupError(f"{path}: {exc}") from None


def load_baseline_or_fail(path: Path) -> Baseline:
    """Load the baseline, turning its errors into :class:`PermissionSetupError`."""
    from hipaa_audit.permissions.baseline import load_baseline

    try:
        return load_baseline(path)
    except BaselineError as exc:
        raise PermissionSetupError(str(exc)) from None


__all__ = ["PermOptions", "PermissionSetupError", "analyse", "collect", "load_baseline_or_fail",
           "load_mapping", "parse_source", "previous_snapshot", "scan_permissions", "summarise"]
