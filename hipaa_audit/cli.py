"""The ``hipaa-audit`` command line: parse options, call the library, render the result."""

from __future__ import annotations

import contextlib
import enum
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.padding import Padding
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from hipaa_audit import __version__, outfiles
from hipaa_audit.archive.options import DEFAULT_MAX_DEPTH
from hipaa_audit.catalog import CatalogError, load_catalog
from hipaa_audit.model import AssetResult, parse_severity
from hipaa_audit.output import OutputFormat, make_renderer
from hipaa_audit.redaction import Masker, installation_key
from hipaa_audit.scanner import ScanContext, ScannerOptions, ScannerSetupError, Setup, scanner_for
from hipaa_audit.scanrun import EXIT_INTERNAL, EXIT_USAGE, consume, new_run

if TYPE_CHECKING:
    from hipaa_audit.store import Store, StoredRun

app = typer.Typer(
    name="hipaa-audit",
    help="Audit an estate that holds medical images for HIPAA Security Rule risks, with evidence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
scan_app = typer.Typer(help="Scan assets for risks.", no_args_is_help=True)
checks_app = typer.Typer(help="The check catalog.", no_args_is_help=True)
runs_app = typer.Typer(help="The history of assessment runs.", no_args_is_help=True)
app.add_typer(scan_app, name="scan")
app.add_typer(checks_app, name="checks")
app.add_typer(runs_app, name="runs")
analyze_app = typer.Typer(help="Analyse audit logs.", no_args_is_help=True)
app.add_typer(analyze_app, name="analyze")
attest_app = typer.Typer(help="Attestations for the safeguards no scanner sees.",
                         no_args_is_help=True)
app.add_typer(attest_app, name="attest")

err = Console(stderr=True, highlight=False)


class FailOn(enum.Enum):
    """The ``--fail-on`` choices."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    NONE = "none"


class ListFormat(enum.Enum):
    """The ``checks list --format`` choices."""

    TABLE = "table"
    JSON = "json"


FormatOpt = Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")]
OutputOpt = Annotated[
    str | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
]
FailOnOpt = Annotated[
    FailOn, typer.Option("--fail-on", help="Exit 3 when a finding is at or above this severity.")
]
ProgressOpt = Annotated[
    bool, typer.Option("--progress", help="Show progress on stderr even when it is not a terminal.")
]
RevealOpt = Annotated[
    bool,
    typer.Option("--reveal-phi", help="Put the values read from assets into the evidence. "
                 "The output then holds PHI; the run records that this was asked."),
]


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print ``message`` on stderr and return the exit to raise."""
    err.print(f"hipaa-audit: error: {message}", soft_wrap=True, markup=False)
    return typer.Exit(code)


@contextlib.contextmanager
def open_output(path: str | None) -> Iterator[IO[str]]:
    """Yield the output stream: the ``--output`` file (written whole at the end), or stdout.

    See :mod:`hipaa_audit.outfiles` for FIFOs, devices and symbolic links.
    """
    if path is None:
        yield sys.stdout
        return
    try:
        with outfiles.open_output(path, newline="") as f:
            yield f
    except outfiles.OutputError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"cannot write {path}: {exc.strerror or type(exc).__name__}") from None


@contextlib.contextmanager
def progress_display(
    enabled: bool, label: str, count_total: Callable[[], int] | None = None,
    unit: str = "files",
) -> Iterator[Callable[[AssetResult], None] | None]:
    """Yield a callback that advances a progress display on stderr, or ``None``.

    ``count_total`` runs in a background thread; once it returns, the display shows a bar
    and an ETA. Files per second and findings show from the start.
    """
    if not enabled:
        yield None
        return
    progress = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=None),
        MofNCompleteColumn(), TextColumn(unit),
        TextColumn("{task.fields[rate]}/s, {task.fields[findings]} findings"),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=err, transient=True,
    )
    task = progress.add_task(label, total=None, findings=0, rate="-")
    counts = {"findings": 0}

    def advance(result: AssetResult) -> None:
        counts["findings"] += len(result.findings)
        speed = progress.tasks[0].speed
        progress.update(task, advance=result.stats.get(unit, 0), findings=counts["findings"],
                        rate=f"{speed:,.0f}" if speed else "-")

    if count_total is not None:
        threading.Thread(target=lambda: progress.update(task, total=count_total()),
                         daemon=True).start()
    with progress:
        yield advance


def run_scan(name: str, options: ScannerOptions, *, fmt: OutputFormat, output: str | None,
             fail_on: FailOn, progress: bool, reveal_phi: bool = False,
             after: Callable[[Any], None] | None = None) -> NoReturn:
    """Run one scanner through its contract: plan, scan, render, exit with the outcome's code.

    Every ``scan`` and ``analyze`` command parses its flags into the scanner's options model and
    calls this. A plan error exits 2 with its message; ``after`` receives the plan once the
    results are rendered (for extra files such as the permission graph).
    """
    from hipaa_audit.cluster import ClusterError
    from hipaa_audit.engine import WorkerError

    scanner = scanner_for(name)
    setup = Setup(strict=True, reveal_phi=reveal_phi)
    try:
        plan = scanner.plan(options, setup)
    except ScannerSetupError as exc:
        raise fail(str(exc)) from None
    catalog = load_catalog()
    run = new_run(scanner.command, scanner.targets(options, plan, setup), reveal_phi=reveal_phi,
                  options=scanner.describe(plan))
    threshold = None if fail_on is FailOn.NONE else parse_severity(fail_on.value)
    show = progress or err.is_terminal
    with open_output(output) as stream, progress_display(
            show, scanner.command, scanner.total(plan), unit=scanner.unit) as advance:
        renderer = make_renderer(fmt, stream, catalog, __version__)
        results = scanner.scan(plan, ScanContext(catalog, run, setup))
        try:
            outcome = consume(results, renderer, run, threshold, on_asset=advance)
        except (ScannerSetupError, ClusterError) as exc:
            raise fail(str(exc)) from None
        except WorkerError as exc:  # its assets' results are lost: the scan is incomplete
            raise fail(f"internal error: {exc}", EXIT_INTERNAL) from None
    if after is not None:
        after(plan)
    raise typer.Exit(outcome.exit_code)


@scan_app.command("archive")
def scan_archive_command(
    paths: Annotated[
        list[str], typer.Argument(help="Folders or files to scan.", metavar="PATH")
    ],
    fmt: FormatOpt = OutputFormat.TABLE,
    output: OutputOpt = None,
    fail_on: FailOnOpt = FailOn.HIGH,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, max=256,
                                         help="Worker processes.")] = 1,
    progress: ProgressOpt = False,
    reveal_phi: RevealOpt = False,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="Run on the Dask cluster at this address (tcp://host:8786); its "
        "workers must see PATH at the same place.")] = None,
    follow_symlinks: Annotated[bool, typer.Option(
        "--follow-symlinks", help="Follow links whose targets lie inside the paths given "
        "(links leaving them are never followed).")] = False,
    ocr: Annotated[bool, typer.Option(
        "--ocr",
        help="Read burned-in pixel text with Tesseract (slow: about 0.6 to 1 s of CPU an image).")
    ] = False,
    max_depth: Annotated[int, typer.Option(
        "--max-depth", min=1, max=16, help="How deep to open containers inside containers.")
    ] = DEFAULT_MAX_DEPTH,
    mask_paths: Annotated[bool, typer.Option(
        "--mask-paths", help="Replace every file or folder name that looks like a patient "
        "identifier by its shape and keyed fingerprint in all output.")] = False,
) -> None:
    """Scan folders, files and containers (zip, tar, gz, bz2, xz) for DICOM PHI.

    Example: hipaa-audit scan archive /mnt/pacs-export --format json --output findings.json
    """
    from hipaa_audit.archive.options import ArchiveOptions

    options = ArchiveOptions.from_command_line(
        paths=list(paths), ocr=ocr, workers=workers, follow_symlinks=follow_symlinks,
        max_depth=max_depth, scheduler=scheduler, mask_paths=mask_paths)
    run_scan("archive", options, fmt=fmt, output=output, fail_on=fail_on, progress=progress,
             reveal_phi=reveal_phi)


@scan_app.command("network")
def scan_network_command(
    targets: Annotated[list[str] | None, typer.Argument(
        help="https://host[:port], http://host[:port], tls://host:port, dicom+tls://host[:port], "
        "dicom://host[:port], or host:port (probed and classified).", metavar="TARGET")] = None,
    targets_file: Annotated[str | None, typer.Option(
        "--targets-file", help="Targets, one per line; # starts a comment.")] = None,
    policy: Annotated[str, typer.Option(
        "--policy", help="TLS policy: nist-800-52r2, mozilla-intermediate, mozilla-modern or "
        "dicom-bcp195.")] = "nist-800-52r2",
    ca_bundle: Annotated[str | None, typer.Option(
        "--ca-bundle", help="PEM file of the organisation's CA certificates (trusted in "
        "addition to the public stores).")] = None,
    client_cert: Annotated[str | None, typer.Option(
        "--client-cert", help="PEM client certificate for servers that demand mutual TLS.")
    ] = None,
    client_key: Annotated[str | None, typer.Option(
        "--client-key", help="PEM private key of --client-cert (unencrypted).")] = None,
    gentle: Annotated[bool, typer.Option(
        "--gentle", help="For fragile devices: one target and one connection at a time, no "
        "ROBOT or renegotiation tests.")] = False,
    deadline: Annotated[float, typer.Option(
        "--deadline", min=5, max=3600, help="Seconds each target may take before it is "
        "stopped and reported as not fully checked.")] = 90.0,
    concurrency: Annotated[int, typer.Option(
        "--concurrency", min=1, max=64, help="Targets scanned at once.")] = 8,
    timeout: Annotated[float, typer.Option(
        "--timeout", min=1, max=60, help="Seconds to wait for each network answer.")] = 5.0,
    calling_ae: Annotated[str, typer.Option(
        "--calling-ae", help="Our AE title in DICOM associations.")] = "HIPAA-AUDIT",
    called_ae: Annotated[str, typer.Option(
        "--called-ae", help="The AE title asked for; any answer, even a rejection, proves a "
        "DICOM listener.")] = "ANY-SCP",
    fmt: FormatOpt = OutputFormat.TABLE,
    output: OutputOpt = None,
    fail_on: FailOnOpt = FailOn.HIGH,
    progress: ProgressOpt = False,
) -> None:
    """Check network endpoints for weak TLS, bad certificates and PHI sent in clear.

    Example: hipaa-audit scan network https://portal.example.org dicom://modality1:104
    """
    from hipaa_audit.network.options import NetworkOptions

    options = NetworkOptions.from_command_line(
        targets=list(targets or []), targets_file=targets_file, policy=policy,
        ca_bundle=ca_bundle, client_cert=client_cert, client_key=client_key, gentle=gentle,
        deadline=deadline, concurrency=concurrency, timeout=timeout, calling_ae=calling_ae,
        called_ae=called_ae)
    run_scan("network", options, fmt=fmt, output=output, fail_on=fail_on, progress=progress)


class S3Provider(enum.Enum):
    """The ``scan s3 --provider`` choices."""

    AUTO = "auto"
    AWS = "aws"
    COMPATIBLE = "compatible"


@scan_app.command("s3")
def scan_s3_command(
    buckets: Annotated[list[str] | None, typer.Argument(
        help="Buckets to scan (default: every bucket the identity can list).", metavar="BUCKET")
    ] = None,
    endpoint_url: Annotated[str | None, typer.Option(
        "--endpoint-url", help="An S3-compatible store (https://minio.example.org:9000); "
        "default: AWS.")] = None,
    profile: Annotated[str | None, typer.Option(
        "--profile", help="AWS profile (default: the standard credential chain).")] = None,
    region: Annotated[str | None, typer.Option("--region", help="AWS region.")] = None,
    role_arn: Annotated[str | None, typer.Option(
        "--role-arn", help="Assume this read-only audit role first.")] = None,
    provider: Annotated[S3Provider, typer.Option(
        "--provider", help="aws: AWS semantics (account Block Public Access, S3 Inventory); "
        "compatible: an on-prem store; auto: AWS unless --endpoint-url names another host."
    )] = S3Provider.AUTO,
    ca_bundle: Annotated[str | None, typer.Option(
        "--ca-bundle", help="PEM CA bundle for an on-prem endpoint's certificate.")] = None,
    sample_objects: Annotated[int, typer.Option(
        "--sample-objects", min=0, max=1_000_000, help="Objects per bucket to read (head, ACL, "
        "first bytes); 0: bucket settings only.")] = 50,
    seed: Annotated[int, typer.Option(
        "--seed", help="Seed of the object sample (the same seed draws the same objects).")] = 0,
    trusted_account: Annotated[list[str] | None, typer.Option(
        "--trusted-account", help="An AWS account id that may be granted access (repeat).")
    ] = None,
    retention_bucket: Annotated[list[str] | None, typer.Option(
        "--retention-bucket", help="A bucket of audit logs or documentation that must be kept "
        "six years (repeat; or tag the bucket hipaa-retention=audit-log).")] = None,
    phi_bucket: Annotated[list[str] | None, typer.Option(
        "--phi-bucket", help="A bucket known to hold PHI (repeat; or tag it phi=true).")] = None,
    concurrency: Annotated[int, typer.Option(
        "--concurrency", min=1, max=128, help="Requests in flight at once.")] = 16,
    fmt: FormatOpt = OutputFormat.TABLE,
    output: OutputOpt = None,
    fail_on: FailOnOpt = FailOn.HIGH,
    progress: ProgressOpt = False,
    reveal_phi: RevealOpt = False,
) -> None:
    """Check S3 buckets for encryption, exposure, retention and PHI in objects (read-only).

    Example: hipaa-audit scan s3 imaging-archive --profile audit --sample-objects 100
    """
    from hipaa_audit.s3.options import S3ScanOptions

    options = S3ScanOptions.from_command_line(
        buckets=list(buckets or ()), endpoint_url=endpoint_url, profile=profile, region=region,
        role_arn=role_arn, provider=provider.value, ca_bundle=ca_bundle,
        sample_objects=sample_objects, seed=seed, concurrency=concurrency,
        trusted_accounts=list(trusted_account or ()),
        retention_buckets=list(retention_bucket or ()), phi_buckets=list(phi_bucket or ()))
    run_scan("s3", options, fmt=fmt, output=output, fail_on=fail_on, progress=progress,
             reveal_phi=reveal_phi)


@scan_app.command("permissions")
def scan_permissions_command(
    sources: Annotated[list[str], typer.Argument(
        help="aws (IAM and S3 of the current identity), fs:PATH, pacs:FILE.csv "
        "(pacs:NAME=FILE.csv), roster:FILE.csv", metavar="SOURCE")],
    baseline: Annotated[str, typer.Option(
        "--baseline", help="The access baseline (TOML: roles, principals, phi, trusted).")],
    previous: Annotated[str | None, typer.Option(
        "--previous", help="Compare with a previous run: a run of the history store (id or "
        "latest) or a graph JSON written by --graph-json.")] = None,
    store_path: Annotated[str | None, typer.Option(
        "--store", help="History store holding --previous (default: the user data directory)."
    )] = None,
    endpoint_url: Annotated[str | None, typer.Option(
        "--endpoint-url", help="IAM and S3 endpoint (a test or on-prem store); default: AWS.")
    ] = None,
    profile: Annotated[str | None, typer.Option("--profile", help="AWS profile.")] = None,
    region: Annotated[str | None, typer.Option("--region", help="AWS region.")] = None,
    role_arn: Annotated[str | None, typer.Option(
        "--role-arn", help="Assume this read-only audit role first.")] = None,
    bucket: Annotated[list[str] | None, typer.Option(
        "--bucket", help="Read only these buckets' policies and ACLs (repeat; default: all).")
    ] = None,
    phi: Annotated[list[str] | None, typer.Option(
        "--phi", help="A resource known to hold PHI (s3://b, fs:/path, pacs:NAME; patterns; "
        "repeat), besides the baseline's [phi].")] = None,
    pacs_mapping: Annotated[str | None, typer.Option(
        "--pacs-mapping", help="Column mapping of the PACS exports (TOML).")] = None,
    roster_mapping: Annotated[str | None, typer.Option(
        "--roster-mapping", help="Column mapping of the roster (TOML).")] = None,
    graphml: Annotated[str | None, typer.Option(
        "--graphml", help="Also write the access graph as GraphML to this file.")] = None,
    graph_json: Annotated[str | None, typer.Option(
        "--graph-json", help="Also write the access graph as node-link JSON (with the snapshot "
        "a later --previous compares with).")] = None,
    fmt: FormatOpt = OutputFormat.TABLE,
    output: OutputOpt = None,
    fail_on: FailOnOpt = FailOn.HIGH,
    progress: ProgressOpt = False,
) -> None:
    """Compare who can reach PHI, and how, with the access baseline and the previous run.

    Example: hipaa-audit scan permissions aws fs:/srv/pacs roster:staff.csv --baseline access.toml
    """
    from hipaa_audit.permissions.options import PermissionsOptions

    try:
        for graph_file in (graphml, graph_json):
            if graph_file:
                outfiles.check_output(graph_file)
    except outfiles.OutputError as exc:
        raise fail(str(exc)) from None
    options = PermissionsOptions.from_command_line(
        baseline=Path(baseline), sources=list(sources), endpoint_url=endpoint_url,
        profile=profile, region=region, role_arn=role_arn, buckets=list(bucket or ()),
        phi=list(phi or ()), previous=previous, store=store_path,
        pacs_mapping_file=pacs_mapping, roster_mapping_file=roster_mapping)

    def write_graphs(plan: Any) -> None:
        try:
            for graph in plan.graphs:
                if graphml:
                    graph.write_graphml(Path(graphml))
                if graph_json:
                    graph.write_json(Path(graph_json))
        except outfiles.OutputError as exc:
            raise fail(str(exc)) from None
        except OSError as exc:
            raise fail(f"cannot write the graph: {exc.strerror or type(exc).__name__} "
                       f"({exc.filename})") from None

    run_scan("permissions", options, fmt=fmt, output=output, fail_on=fail_on,
             progress=progress, after=write_graphs if graphml or graph_json else None)


class LogFormat(enum.Enum):
    """The ``analyze logs --log-format`` choices."""

    AUTO = "auto"
    ATNA = "atna"
    FHIR = "fhir"
    CLOUDTRAIL = "cloudtrail"
    CSV = "csv"
    JSONL = "jsonl"


@analyze_app.command("logs")
def analyze_logs_command(
    files: Annotated[list[str], typer.Argument(
        help="Log files, folders (a folder holding AWSLogs/ is a CloudTrail trail) or glob "
        "patterns.", metavar="FILE")],
    log_format: Annotated[LogFormat, typer.Option(
        "--log-format", help="Format of the logs (auto: detected per file).")] = LogFormat.AUTO,
    mapping: Annotated[str | None, typer.Option(
        "--mapping", help="TOML file mapping CSV/JSONL columns to the normalised ones.")] = None,
    sigma: Annotated[list[str] | None, typer.Option(
        "--sigma", help="Sigma rule file or folder (repeat); builtin: the rules shipped with "
        "the tool.")] = None,
    timezone: Annotated[str | None, typer.Option(
        "--timezone", help="The organisation's time zone for working hours (e.g. "
        "America/New_York).")] = None,
    settings: Annotated[str | None, typer.Option(
        "--settings", help="TOML file of detector settings ([detectors]).")] = None,
    roster: Annotated[str | None, typer.Option(
        "--roster", help="Workforce roster CSV (user,given,family,role) for snooping checks.")
    ] = None,
    vip: Annotated[str | None, typer.Option(
        "--vip", help="File of VIP patient ids, one per line.")] = None,
    coworkers: Annotated[str | None, typer.Option(
        "--coworkers", help="File of patient ids of co-workers, one per line.")] = None,
    patients: Annotated[str | None, typer.Option(
        "--patients", help="Patient list CSV (patient_id, address, deceased, department) for "
        "the relationship checks.")] = None,
    chain_key_env: Annotated[str | None, typer.Option(
        "--chain-key-env", help="Environment variable holding the hex MAC key of hash-chained "
        "logs.")] = None,
    anchor: Annotated[list[str] | None, typer.Option(
        "--anchor", help="Anchored head of a hash-chained log (JSON {count, head}); named after "
        "the log (repeat).")] = None,
    cloudtrail_key: Annotated[list[str] | None, typer.Option(
        "--cloudtrail-key", help="CloudTrail digest public key, PEM or DER (repeat).")] = None,
    no_cache: Annotated[bool, typer.Option(
        "--no-cache", help="Parse every file again instead of using the Parquet cache.")] = False,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="Parse the log files on the Dask cluster at this address "
        "(tcp://host:8786); the workers must see the files at the same paths.")] = None,
    fmt: FormatOpt = OutputFormat.TABLE,
    output: OutputOpt = None,
    fail_on: FailOnOpt = FailOn.HIGH,
    progress: ProgressOpt = False,
) -> None:
    """Review audit logs: anomalies HIPAA asks to review, Sigma rules, log integrity.

    Example: hipaa-audit analyze logs /var/log/pacs/audit/*.xml --timezone America/New_York
    """
    from hipaa_audit.logs.options import LogsOptions

    options = LogsOptions.from_command_line(
        paths=list(files), format=log_format.value, sigma=[Path(p) for p in sigma or []],
        timezone=timezone, roster=Path(roster) if roster else None,
        vip=Path(vip) if vip else None, coworkers=Path(coworkers) if coworkers else None,
        patients=Path(patients) if patients else None, chain_key_env=chain_key_env,
        anchors=[Path(p) for p in anchor or []],
        cloudtrail_keys=[Path(p) for p in cloudtrail_key or []], scheduler=scheduler,
        mapping_file=mapping, settings_file=settings, cache=not no_cache)
    run_scan("logs", options, fmt=fmt, output=output, fail_on=fail_on, progress=progress)


StoreOpt = Annotated[
    str | None, typer.Option("--store", help="History store (SQLite file). Default: the assessment "
                             "file's [store] path, else history.db in the user data directory.")
]


def open_store(path: str | None) -> Store:
    """Open the history store at ``path`` (the default when ``None``), or fail with exit 2."""
    from hipaa_audit.store import Store, StoreError, default_path

    try:
        return Store(Path(path) if path else default_path())
    except StoreError as exc:
        raise fail(str(exc)) from None


def find_run(store: Store, ref: str) -> StoredRun:
    """Resolve a run reference, or fail with exit 2."""
    from hipaa_audit.store import StoreError

    try:
        return store.resolve(ref)
    except StoreError as exc:
        raise fail(str(exc)) from None


@app.command("assess")
def assess_command(
    config: Annotated[str, typer.Option("--config", "-c", help="The assessment file.")
                      ] = "assessment.toml",
    store_path: StoreOpt = None,
    fail_on: FailOnOpt = FailOn.HIGH,
    progress: ProgressOpt = False,
    reveal_phi: RevealOpt = False,
    fail_on_new: Annotated[bool, typer.Option(
        "--fail-on-new", help="Exit 3 only for findings at or above --fail-on that the previous "
        "run of this assessment file (or --baseline-run) did not have.")] = False,
    baseline_run: Annotated[str | None, typer.Option(
        "--baseline-run", help="With --fail-on-new: compare with this stored run (id, prefix, "
        "latest, previous) instead of the previous run.")] = None,
) -> None:
    """Run the periodic assessment: every configured scanner, stored, scored and reported.

    Writes risk-analysis.pdf, baa-evidence.pdf, findings.json, findings.csv, findings.sarif,
    junit.xml, findings.ocsf.jsonl, oscal-assessment-results.json, oscal-poam.json and
    SHA256SUMS into the [report] output_dir.
    Example: hipaa-audit assess --config assessment.toml
    """
    from hipaa_audit.assess import plan_groups, run_assessment, write_assessment_files
    from hipaa_audit.config import ConfigError, load_config
    from hipaa_audit.engine import WorkerError
    from hipaa_audit.report.build import Signing, check_report_folder
    from hipaa_audit.report.render import RenderError
    from hipaa_audit.report.sign import SigningError

    try:
        cfg = load_config(Path(config))
        masker = Masker(installation_key(), reveal=reveal_phi)
        groups = plan_groups(cfg, masker)
        check_report_folder(cfg.data.report.output_dir)
    except (ConfigError, outfiles.OutputError) as exc:
        raise fail(str(exc)) from None
    rep = cfg.data.report
    signing = None
    if rep.sign_key is not None and rep.sign_cert is not None:
        passphrase = None
        if rep.sign_passphrase_env:
            value = os.environ.get(rep.sign_passphrase_env)
            if value is None:
                raise fail(f"{cfg.path}: report.sign_passphrase_env: the environment variable "
                           f"{rep.sign_passphrase_env} is not set")
            passphrase = value.encode()
        signing = Signing(rep.sign_key, rep.sign_cert, passphrase)
    with open_store(store_path or (str(cfg.data.store.path) if cfg.data.store.path else None)
                    ) as store:
        catalog = load_catalog()
        threshold = None if fail_on is FailOn.NONE else parse_severity(fail_on.value)
        if baseline_run is not None and not fail_on_new:
            raise fail("--baseline-run goes with --fail-on-new")
        baseline = find_run(store, baseline_run) if baseline_run is not None else None
        if baseline is not None and not baseline.complete:
            raise fail(f"--baseline-run: the run {baseline.id} was interrupted; "
                       "give a finished run (see: hipaa-audit runs list)")
        with progress_display(progress or err.is_terminal, "assess") as advance:
            try:
                done = run_assessment(cfg, store, catalog, masker, fail_on=threshold,
                                      on_asset=advance, fail_on_new=fail_on_new,
                                      baseline=baseline, groups=groups)
            except WorkerError as exc:  # the run stays stored as interrupted
                raise fail(f"internal error: {exc}", EXIT_INTERNAL) from None
        try:
            written, sums = write_assessment_files(store, done, catalog, cfg, signing)
        except (RenderError, SigningError, OSError, outfiles.OutputError) as exc:
            raise fail(f"the run {done.run.id} is stored, but its reports could not be "
                       f"written: {exc}", EXIT_INTERNAL) from None
        summary = done.run.meta["summary"]
        risk = summary["risk"]
        con = Console(highlight=False, soft_wrap=True)
        con.print(f"[bold]Assessment {done.run.id}[/] stored in {store.path}")
        con.print(f"  {summary['findings']:,} findings, {summary['errors']:,} not verifiable; "
                  f"{len(done.register)} risks: " + _levels(risk))
        treated = summary.get("treatment", {})
        if done.run.meta.get("treatment"):
            con.print(f"  treatment file: {treated.get('accepted', 0):,} findings accepted, "
                      f"{treated.get('suppressed', 0):,} suppressed; "
                      f"{treated.get('overdue', 0)} overdue mitigation(s), "
                      f"{treated.get('lapsed', 0)} lapsed acceptance(s) or suppression(s)")
        new = done.run.meta.get("fail_on_new")
        if new is not None:
            con.print(f"  --fail-on-new: {new['new_at_or_above']:,} new finding(s) at or above "
                      f"--fail-on since run {new['baseline'] or '(none: first run)'}")
        for path in [*written.pdfs.values(), *written.html, *written.findings, sums]:
            con.print(f"  wrote {path}")
        if written.fingerprint:
            con.print(f"  signed with certificate SHA-256 {written.fingerprint}")
    raise typer.Exit(done.exit_code)


class ReportKindChoice(enum.Enum):
    """The ``report`` kinds."""

    RISK = "risk"
    BAA = "baa"


@app.command("report")
def report_command(
    kind: Annotated[ReportKindChoice, typer.Argument(help="risk (risk analysis) or baa.")],
    output: Annotated[str, typer.Option("--output", "-o", help="The PDF to write.")],
    run_ref: Annotated[str, typer.Option("--run", help="Run id, prefix, latest or previous.")
                       ] = "latest",
    store_path: StoreOpt = None,
    detail_limit: Annotated[int, typer.Option(
        "--detail-limit", min=10, max=5000, help="Findings shown in detail (all are attached).")
    ] = 200,
) -> None:
    """Render the risk-analysis or BAA-evidence PDF of a stored run.

    Example: hipaa-audit report risk --run latest --output risk-analysis.pdf
    """
    from hipaa_audit.report.build import write_reports
    from hipaa_audit.report.render import RenderError

    try:
        outfiles.check_output(output)
    except outfiles.OutputError as exc:
        raise fail(str(exc)) from None
    with open_store(store_path) as store:
        run = find_run(store, run_ref)
        try:
            write_reports(store, run, load_catalog(), {kind.value: Path(output)},
                          detail_limit=detail_limit)
        except (RenderError, OSError, outfiles.OutputError) as exc:
            raise fail(f"cannot write {output}: {exc}", EXIT_INTERNAL) from None
    err.print(f"wrote {output} (run {run.id})")


def _levels(counts: dict[str, int]) -> str:
    """Say how many risks a run has at each level, most severe first."""
    from hipaa_audit.risk import LEVELS

    return ", ".join(f"{counts[lvl]} {lvl}" for lvl in reversed(LEVELS) if counts.get(lvl)) \
        or "none"


def _run_row(run: StoredRun) -> dict[str, object]:
    summary = run.meta.get("summary", {})
    return {"id": run.id, "started_at": run.started_at, "finished_at": run.finished_at,
            "command": run.command, "tool_version": run.tool_version,
            "complete": run.complete, "findings": summary.get("findings"),
            "errors": summary.get("errors"), "risk": summary.get("risk"),
            "exit_code": run.meta.get("exit_code"), "hash": run.hash,
            "config_sha256": run.config_digest}


@runs_app.command("list")
def runs_list_command(
    store_path: StoreOpt = None,
    fmt: Annotated[ListFormat, typer.Option("--format", "-f")] = ListFormat.TABLE,
) -> None:
    """List the stored runs, oldest first."""
    with open_store(store_path) as store:
        runs = store.runs()
        if fmt is ListFormat.JSON:
            sys.stdout.write(json.dumps({"runs": [_run_row(r) for r in runs]}, indent=1) + "\n")
            return
        out = Console(highlight=False, soft_wrap=True)
        if not runs:
            out.print(f"No runs in {store.path} yet. Start one with: hipaa-audit assess")
            return
        for r in runs:
            row = _run_row(r)
            if not r.complete:
                out.print(f"{r.id}  {r.started_at}  [yellow]interrupted (not in the chain)[/]")
                continue
            levels = _levels(r.meta.get("summary", {}).get("risk", {}))
            out.print(f"{r.id}  {r.started_at}  {row['findings']:,} findings, "
                      f"{row['errors']:,} not verifiable  risks: {levels}  "
                      f"exit {row['exit_code']}")


@runs_app.command("show")
def runs_show_command(
    run_ref: Annotated[str, typer.Argument(metavar="ID", help="Run id, prefix, latest, previous.")],
    store_path: StoreOpt = None,
    fmt: Annotated[ListFormat, typer.Option("--format", "-f")] = ListFormat.TABLE,
) -> None:
    """Show one run: metadata, asset groups, coverage and its risk register."""
    from hipaa_audit.assess import register_for

    with open_store(store_path) as store:
        run = find_run(store, run_ref)
        register = register_for(store, run, load_catalog()) if run.complete else []
        if fmt is ListFormat.JSON:
            doc = {**_run_row(run), "assessment": run.meta.get("assessment"),
                   "groups": run.meta.get("groups", []), "coverage": run.meta.get("coverage"),
                   "register": [{"id": r.id, "risk": r.risk, "likelihood": r.likelihood,
                                 "impact": r.impact, "check_id": r.check_id, "group": r.group,
                                 "assets": r.assets, "findings": r.findings,
                                 "hipaa": list(r.hipaa)} for r in register]}
            sys.stdout.write(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
            return
        out = Console(highlight=False, soft_wrap=True)
        a = run.meta.get("assessment", {})
        out.print(f"[bold]{run.id}[/]  {a.get('organization', '')}: {a.get('name', '')}")
        out.print(f"  {run.started_at} to {run.finished_at}; hipaa-audit {run.tool_version}; "
                  f"hash {run.hash}")
        for g in run.meta.get("groups", []):
            stats = ", ".join(f"{v:,} {k}" for k, v in g.get("stats", {}).items())
            out.print(f"  group {g['name']} ({g['scanner']}): {g['findings']:,} findings"
                      + (f"; {stats}" if stats else "") + (f"; {g['note']}" if g["note"] else ""),
                      markup=False)
        for r in register:
            out.print(f"  {r.id}  {r.risk:<9}  {r.title} [{r.group}] "
                      f"({r.assets:,} assets)", markup=False)


@runs_app.command("diff")
def runs_diff_command(
    base: Annotated[str, typer.Argument(metavar="A", help="The earlier run.")],
    head: Annotated[str, typer.Argument(metavar="B", help="The later run.")],
    store_path: StoreOpt = None,
    fmt: Annotated[ListFormat, typer.Option("--format", "-f")] = ListFormat.TABLE,
) -> None:
    """Show findings new in B, resolved since A, persisting ones, and changed decisions.

    Findings are compared by stable id; decisions by risk (check and asset group).
    """
    from hipaa_audit.assess import register_for
    from hipaa_audit.treatment import decision_changes

    with open_store(store_path) as store:
        d = store.diff(find_run(store, base), find_run(store, head))
        catalog = load_catalog()
        views = [{(r.check_id, r.group): r.treatment for r in register_for(store, run, catalog)}
                 if run.complete else {} for run in (d.base, d.head)]
        changes = decision_changes(*views)
        if fmt is ListFormat.JSON:
            def slim(f: Mapping[str, object]) -> dict[str, object]:
                keys = ("id", "check_id", "severity", "status", "asset", "title")
                return {k: f[k] for k in keys}

            doc = {"base": d.base.id, "head": d.head.id, "persisting": d.persisting,
                   "new": [slim(f) for f in d.new], "resolved": [slim(f) for f in d.resolved],
                   "decisions": changes}
            sys.stdout.write(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
            return
        out = Console(highlight=False, soft_wrap=True)
        out.print(f"{d.base.id} -> {d.head.id}: {len(d.new):,} new, {len(d.resolved):,} "
                  f"resolved, {d.persisting:,} persisting")
        for label, rows in (("new", d.new), ("resolved", d.resolved)):
            for f in rows:
                out.print(f"  {label:<8} {f['severity']:<8} {f['check_id']}  {f['asset']}",
                          markup=False)
        for c in changes:
            out.print(f"  decision {c['check_id']} [{c['group']}]: {c['before']} -> "
                      f"{c['after']}", markup=False)


@runs_app.command("verify")
def runs_verify_command(store_path: StoreOpt = None) -> None:
    """Check the hash chain of the history: exit 0 intact, 3 when tampering is found."""
    from hipaa_audit.scanrun import EXIT_FINDINGS

    with open_store(store_path) as store:
        checked, problems = store.verify()
    for p in problems:
        err.print(f"hipaa-audit: run {p.run_id}: {p.message}")
    if problems:
        err.print(f"hipaa-audit: the history in {store.path} was altered "
                  f"({len(problems)} problem(s) in {checked} runs)")
        raise typer.Exit(EXIT_FINDINGS)
    typer.echo(f"{checked} runs verified: the history chain in {store.path} is intact")


@attest_app.command("init")
def attest_init_command(
    path: Annotated[str, typer.Argument(metavar="FILE", help="The attestation file to write.")],
) -> None:
    """Write the starter attestation file: all 69 requirement rows, each with its question.

    Example: hipaa-audit attest init attestations.toml
    """
    from hipaa_audit.attest import starter_text

    target = Path(path)
    try:
        with open(target, "x", encoding="utf-8") as f:
            f.write(starter_text())
    except FileExistsError:
        raise fail(f"{target} exists; not overwritten") from None
    except OSError as exc:
        raise fail(f"cannot write {target}: {exc.strerror}") from None
    err.print(f"wrote {target}: answer each row, then name it in [assessment] attestations",
              markup=False)


@checks_app.command("list")
def checks_list_command(
    fmt: Annotated[ListFormat, typer.Option("--format", "-f")] = ListFormat.TABLE,
    scanner: Annotated[str | None, typer.Option(help="Only this scanner's checks.")] = None,
) -> None:
    """List every check: id, category, severity, likelihood, impact, HIPAA citations."""
    catalog = load_catalog()
    checks = [c for c in catalog.values() if scanner is None or c.scanner == scanner]
    if fmt is ListFormat.JSON:
        rows = [c.model_dump(mode="json", exclude={"params"}) for c in checks]
        sys.stdout.write(json.dumps({"checks": rows}, indent=1, ensure_ascii=False) + "\n")
        return
    out = Console(highlight=False, soft_wrap=True)
    for c in checks:
        out.print(f"[bold]{c.id}[/]  {c.severity.value}  {c.category.value}  "
                  f"(scanner {c.scanner}; likelihood {c.likelihood}, impact {c.impact})")
        out.print(Padding(f"{c.title}\n[dim]HIPAA {', '.join(c.hipaa)}[/]", (0, 0, 1, 4)))
    out.print(f"{len(checks)} checks. Details: hipaa-audit checks list --format json")


@app.callback(invoke_without_command=True)
def root(
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
) -> None:
    """Audit an estate that holds medical images for HIPAA Security Rule risks, with evidence."""
    if version:
        typer.echo(f"hipaa-audit {__version__}")
        raise typer.Exit(0)


def main() -> None:
    """Console-script entry point: run the app; an unexpected error exits 1 without values."""
    try:
        load_catalog()
    except CatalogError as exc:
        err.print(f"hipaa-audit: error: the check catalog is invalid: {exc}")
        sys.exit(EXIT_INTERNAL)
    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        err.print("hipaa-audit: interrupted")
        sys.exit(130)
    except Exception as exc:  # last resort: never a traceback that could hold values
        if os.environ.get("HIPAA_AUDIT_DEBUG"):
            raise
        where = exc.__traceback__
        while where is not None and where.tb_next is not None:
            where = where.tb_next
        origin = (f" in {where.tb_frame.f_code.co_filename}:{where.tb_lineno}"
                  if where is not None else "")
        err.print(f"hipaa-audit: internal error ({type(exc).__name__}{origin}); "
                  "set HIPAA_AUDIT_DEBUG=1 to see the traceback.")
        sys.exit(EXIT_INTERNAL)
