"""``hipaa-audit assess``: run every configured scanner, store the run, score the risks.

Each scanner section of ``assessment.toml`` is an asset group. Its findings stream into the
history store as they come (memory stays flat); coverage, counts and timings are kept per group.
Every group runs through the scanner contract (:mod:`hipaa_audit.scanner`): planned once before
anything is scanned (:func:`plan_groups`), then scanned. A configured target that cannot be
examined (a missing path, credentials that do not work) becomes an ``unverifiable`` finding:
nothing configured is skipped silently.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hipaa_audit import __version__
from hipaa_audit.catalog import Catalog
from hipaa_audit.config import (
    ConfigError,
    LoadedConfig,
)
from hipaa_audit.document import GroupDoc, RunMeta, ScannerSummary, TreatmentCounts
from hipaa_audit.evidence import stored_run_evidence
from hipaa_audit.model import AssetResult, Coverage, Finding, RunInfo, Severity
from hipaa_audit.redaction import Masker
from hipaa_audit.risk import GroupInfo, RegisterRow, Tally, build_register, level_counts
from hipaa_audit.scanner import (
    AnyScanner,
    AssessmentFacts,
    ScanContext,
    ScannerSetupError,
    Setup,
    scanner_for,
    scanner_names,
    unverified,
)
from hipaa_audit.scanrun import Outcome, consume, exit_code, new_run, utc_now
from hipaa_audit.store import Store, StoredRun
from hipaa_audit.treatment import (
    Evaluation,
    Treatment,
    evaluate,
    from_record,
    record,
    row_view,
    run_day,
)

if TYPE_CHECKING:
    from hipaa_audit.report.build import Signing, Written

#: Finding categories that show PHI is stored in an asset (marks it for the permission scan).
PHI_CATEGORIES = ("residual-identifier", "burned-in-phi", "unencrypted-phi")


@dataclass(slots=True)
class GroupRun:
    """What one scanner section produced."""

    info: GroupInfo
    #: Section options the reports mention (e.g. whether pixel data was read by OCR).
    options: ScannerSummary
    coverage: Coverage = field(default_factory=Coverage)
    stats: dict[str, int] = field(default_factory=dict)
    findings: int = 0
    errors: int = 0
    seconds: float = 0.0
    note: str = ""

    def as_dict(self) -> GroupDoc:
        """Return the group as stored in the run's metadata."""
        return {"name": self.info.name, "scanner": self.info.scanner,
                "criticality": self.info.criticality, "targets": list(self.info.targets),
                "coverage": self.coverage.as_list(), "stats": dict(sorted(self.stats.items())),
                "findings": self.findings, "errors": self.errors,
                "seconds": round(self.seconds, 3), "note": self.note,
                "options": self.options.copy()}


class _StoreSink:
    """A renderer that writes findings into the store in batches."""

    def __init__(self, store: Store, seq: int, group: str) -> None:
        self.store, self.seq, self.group = store, seq, group
        self.buffer: list[Finding] = []

    def add(self, finding: Finding) -> None:
        self.buffer.append(finding)
        if len(self.buffer) >= 5000:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            self.store.add_findings(self.seq, self.group, self.buffer)
            self.buffer = []

    def finish(self, run: RunInfo, coverage: Coverage, stats: dict[str, int],
               exit_code: int) -> None:
        self.flush()


@dataclass(slots=True)
class Assessed:
    """The outcome of ``assess``: the stored run, its register, and the exit code."""

    run: StoredRun
    register: list[RegisterRow]
    exit_code: int
    evaluation: Evaluation | None = None


@dataclass(slots=True)
class PlannedGroup:
    """One scanner section of the assessment, planned before anything is scanned.

    ``info`` is the asset group as stored and reported; ``plan`` is None when the plan step
    failed with ``problem`` (the group's targets are then reported as unverifiable).
    """

    info: GroupInfo
    section: Any
    setup: Setup
    scanner: AnyScanner
    plan: Any = None
    problem: str | None = None


def _section_list(cfg: LoadedConfig, scanner: str) -> list[Any]:
    """The sections of ``scanner`` in the assessment file (``[permissions]`` is a single one)."""
    value = getattr(cfg.data, scanner, None)
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def plan_groups(cfg: LoadedConfig, masker: Masker) -> list[PlannedGroup]:
    """Plan every scanner section of the assessment, in the order they run, each once.

    A section whose scanner refuses it outright (:attr:`Scanner.setup_stops_assessment`) raises
    :class:`ConfigError` naming the file and the section; another plan error makes the group's
    targets unverifiable when it runs.
    """
    out: list[PlannedGroup] = []
    for scanner_name in scanner_names():
        sections = _section_list(cfg, scanner_name)
        for i, s in enumerate(sections, 1):
            name = s.name or (scanner_name if len(sections) == 1 else f"{scanner_name}-{i}")
            setup = Setup(strict=False, reveal_phi=masker.reveal, group=name, masker_=masker)
            scanner = scanner_for(scanner_name)
            plan, problem = None, None
            try:
                plan = scanner.plan(s, setup)
            except ScannerSetupError as exc:
                if scanner.setup_stops_assessment:
                    where = f"{scanner_name}[{i}]" if isinstance(
                        getattr(cfg.data, scanner_name), list) else scanner_name
                    raise ConfigError(f"{cfg.source or cfg.path}: {where}: {exc}") from None
                problem = str(exc)
            targets = tuple(scanner.targets(s, plan, setup))
            out.append(PlannedGroup(GroupInfo(name, scanner_name, s.criticality, targets), s,
                                    setup, scanner, plan, problem))
    return out


def _config_record(cfg: LoadedConfig, masker: Masker, mask_paths: bool) -> dict[str, Any]:
    """The configuration as stored, its archive paths masked when ``mask_paths``."""
    record = cfg.as_record()
    if mask_paths:
        from hipaa_audit.archive.pathnames import mask_path

        for section in record.get("archive", []):
            section["paths"] = [mask_path(str(p), masker) for p in section.get("paths", [])]
    return record


def _phi_found(store: Store, seq: int, cfg: LoadedConfig,
               masker: Masker | None = None) -> tuple[str, ...]:
    """Resources this run's scanners found PHI in: S3 buckets and archive roots.

    With ``mask_paths`` the stored assets name the roots masked: ``masker`` masks them alike.
    """
    roots = sorted({str(p).rstrip("/") for a in cfg.data.archive for p in a.paths},
                   key=len, reverse=True)
    stored = dict.fromkeys(roots, "")
    if cfg.data.report.mask_paths and masker is not None:
        from hipaa_audit.archive.pathnames import mask_path

        stored = {root: mask_path(root, masker) for root in roots}
    found: set[str] = set()
    for asset in store.assets_in(seq, PHI_CATEGORIES):
        if asset.startswith("s3://"):
            found.add("s3://" + asset[5:].split("/", 1)[0])
            continue
        outer = asset.split("!/", 1)[0]
        for root in roots:
            named = stored[root] or root
            if outer == named or outer.startswith(named + "/"):
                found.add(f"fs:{os.path.abspath(root)}")
                break
    return tuple(sorted(found))


def _previous_evidence(store: Store, key: str) -> Iterator[tuple[str, Any]]:
    """The run evidence ``key`` of the finished runs, newest first, each with its run's label."""
    for old in reversed(store.complete_runs()):
        evidence = stored_run_evidence(old.meta).get(key)
        if evidence is not None:
            yield f"run {old.id}", evidence


def previous_assessment(store: Store, cfg: LoadedConfig) -> StoredRun | None:
    """The last finished run of the same assessment file (the ``--fail-on-new`` baseline)."""
    for old in reversed(store.complete_runs()):
        if old.command == "assess" and \
                old.meta.get("run", {}).get("options", {}).get("config") == str(cfg.path):
            return old
    return None


def run_assessment(cfg: LoadedConfig, store: Store, catalog: Catalog, masker: Masker, *,
                   fail_on: Severity | None,
                   on_asset: Callable[[AssetResult], None] | None = None,
                   fail_on_new: bool = False, baseline: StoredRun | None = None,
                   groups: list[PlannedGroup] | None = None) -> Assessed:
    """Run every configured scanner into ``store``; return the stored run and its register.

    ``groups``: the sections as :func:`plan_groups` planned them (planned here when None).

    Findings that the treatment file accepts or suppresses do not count for ``fail_on``. With
    ``fail_on_new`` only findings absent from ``baseline`` (default: the previous run of the
    same assessment file) do.
    """
    if fail_on_new and baseline is None:
        baseline = previous_assessment(store, cfg)
    planned = plan_groups(cfg, masker) if groups is None else groups
    mask_paths = cfg.data.report.mask_paths
    run = new_run("assess", [t for p in planned for t in p.info.targets],
                  reveal_phi=masker.reveal,
                  options={"config": str(cfg.path), "config_sha256": cfg.digest})
    seq = store.open_run(run.id, run.command, run.started_at, __version__, cfg.digest)
    done: list[GroupRun] = []
    total = Outcome(run)
    facts = AssessmentFacts(
        previous_evidence=lambda key: _previous_evidence(store, key),
        phi_found=lambda: _phi_found(store, seq, cfg, masker),
        watch=tuple(p for v in cfg.data.vendor for p in v.principals))
    for p in planned:
        info, section = p.info, p.section
        started = time.monotonic()
        group = GroupRun(info, p.scanner.summary(section))
        if p.plan is None:
            group.note = f"not examined: {p.problem}"
            results = unverified(catalog, info.targets, f"Not examined: {p.problem}.")
        else:
            results = p.scanner.scan(p.plan, ScanContext(catalog, run, p.setup, facts))
        outcome = consume(results, _StoreSink(store, seq, info.name), run, None,
                          on_asset=on_asset)
        group.seconds = time.monotonic() - started
        group.coverage, group.stats, group.errors = outcome.coverage, outcome.stats, outcome.errors
        group.findings = sum(outcome.failures.values()) + outcome.errors
        done.append(group)
        total.coverage.merge(outcome.coverage)
        total.errors += outcome.errors
        for sev, n in outcome.failures.items():
            total.failures[sev] = total.failures.get(sev, 0) + n
        for k, n in outcome.stats.items():
            total.stats[k] = total.stats.get(k, 0) + n
    run.finished_at = utc_now()
    register = _score(store, seq, catalog, [g.info for g in done])
    ev = _treat(store, seq, register, cfg.treatment, run_day(run.started_at))
    known = store.finding_ids(baseline.seq) if fail_on_new and baseline is not None else set()
    counted = {fid: sev for fid, sev in ev.open_failures.items() if fid not in known}
    worst_open = max((Severity(s) for s in counted.values()), default=None)
    code = exit_code(worst_open, ev.open_errors, fail_on)
    meta: RunMeta = {
        "run": run.as_dict(),
        "assessment": cfg.data.assessment.model_dump(mode="json"),
        "config": _config_record(cfg, masker, mask_paths),
        "coverage": total.coverage.as_list(),
        "stats": dict(sorted(total.stats.items())),
        "groups": [g.as_dict() for g in done],
        "exit_code": code,
        "fail_on": fail_on.value if fail_on else "none",
        "summary": {
            "findings": sum(total.failures.values()),
            "errors": total.errors,
            "severity": {s.value: total.failures.get(s, 0) for s in Severity},
            "risk": level_counts(register),
            "treatment": _treatment_summary(register, ev),
        },
    }
    if cfg.attestations is not None:
        meta["attestations"] = cfg.attestations
    if any(v.document for v in cfg.data.vendor):
        from hipaa_audit.attest import vendor_documents

        meta["vendor_documents"] = vendor_documents(cfg.data.vendor)
    if cfg.treatment is not None and cfg.data.assessment.treatment is not None:
        meta["treatment"] = record(cfg.treatment, cfg.data.assessment.treatment,
                                   cfg.treatment_digest or "")
    if fail_on_new:
        new_at = sum(1 for s in counted.values() if fail_on and Severity(s) >= fail_on)
        meta["fail_on_new"] = {"baseline": baseline.id if baseline else None,
                               "new_at_or_above": new_at}
    store.close_run(seq, run.finished_at, meta)
    return Assessed(store.resolve(run.id), register, code, ev)


def write_assessment_files(store: Store, done: Assessed, catalog: Catalog, cfg: LoadedConfig,
                           signing: Signing | None) -> tuple[Written, Path]:
    """Write every file of an assessment into ``[report] output_dir``; return them and SHA256SUMS.

    The PDFs (signed when ``signing``), the findings as JSON and CSV, SARIF, JUnit, OCSF and the
    OSCAL documents. Raises what the renderers and writers raise (``RenderError``,
    ``SigningError``, ``OutputError``, ``OSError``); the run stays stored either way.
    """
    from hipaa_audit.report.build import write_checksums, write_reports

    rep = cfg.data.report
    out = rep.output_dir
    written = write_reports(
        store, done.run, catalog,
        {"risk": out / "risk-analysis.pdf", "baa": out / "baa-evidence.pdf"},
        findings_dir=out, detail_limit=rep.detail_limit, signing=signing)
    sarif = out / "findings.sarif"
    if done.evaluation is not None:
        from hipaa_audit.output.exports import export_junit, export_ocsf
        from hipaa_audit.output.oscal import export_oscal
        from hipaa_audit.output.sarifrun import export_sarif

        export_sarif(store, done.run, catalog, sarif, done.evaluation, cfg.treatment)
        export_junit(done.run, done.register, out / "junit.xml")
        export_ocsf(store, done.run, done.evaluation, out / "findings.ocsf.jsonl")
        oscal = [out / "oscal-assessment-results.json", out / "oscal-poam.json"]
        export_oscal(store, done.run, catalog, done.register, done.evaluation,
                     cfg.treatment, *oscal)
        written.findings += [sarif, out / "junit.xml", out / "findings.ocsf.jsonl", *oscal]
    sums = write_checksums(out, [*written.findings, *written.pdfs.values(), *written.html])
    return written, sums


def _treatment_summary(register: list[RegisterRow], ev: Evaluation) -> TreatmentCounts:
    """How many findings the treatment file accepted and suppressed, and rows it flags."""
    return {"accepted": ev.accepted, "suppressed": len(ev.suppressed),
            "overdue": sum(1 for r in register if r.treatment.get("overdue")),
            "lapsed": sum(1 for r in register if r.treatment.get("lapsed"))}


def _treat(store: Store, seq: int, register: list[RegisterRow], treatment: Treatment | None,
           day: Any) -> Evaluation:
    """Decide every finding of run ``seq`` by the treatment file; annotate the register."""
    levels = {(r.check_id, r.group): r.risk for r in register}
    ev = evaluate(treatment, store.findings(seq), levels, day)
    for r in register:
        r.treatment = row_view(treatment, ev.rows.get((r.check_id, r.group)), r.risk, day)
    return ev


def treated_register(store: Store, run: StoredRun, catalog: Catalog
                     ) -> tuple[list[RegisterRow], Evaluation, Treatment | None]:
    """The register of a stored run with the decisions of the treatment file stored with it."""
    infos = [GroupInfo(g["name"], g["scanner"], g.get("criticality", "moderate"),
                       tuple(g.get("targets", ()))) for g in run.meta.get("groups", [])]
    register = _score(store, run.seq, catalog, infos)
    treatment = from_record(run.meta)
    return register, _treat(store, run.seq, register, treatment, run_day(run.started_at)), \
        treatment


def register_for(store: Store, run: StoredRun, catalog: Catalog) -> list[RegisterRow]:
    """Rebuild the register of a stored run from its findings, groups and treatment file."""
    return treated_register(store, run, catalog)[0]


def _score(store: Store, seq: int, catalog: Catalog,
           groups: Iterable[GroupInfo]) -> list[RegisterRow]:
    """Build the register of stored run ``seq`` from its findings, grouped per asset group."""
    return build_register((Tally(*row) for row in store.aggregate(seq)), catalog,
                          {g.name: g for g in groups}, store.sample_assets(seq))
