"""The ``hipaa-audit`` command line: parse options, call the library, render the result."""

from __future__ import annotations

import contextlib
import enum
import functools
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import IO, Annotated

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

from hipaa_audit import __version__
from hipaa_audit.archive.containers import Limits
from hipaa_audit.catalog import CatalogError, load_catalog
from hipaa_audit.model import AssetResult, parse_severity
from hipaa_audit.output import OutputFormat, make_renderer
from hipaa_audit.redaction import Masker, installation_key
from hipaa_audit.scanrun import EXIT_INTERNAL, EXIT_USAGE, consume, new_run

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
app.add_typer(scan_app, name="scan")
app.add_typer(checks_app, name="checks")

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
    err.print(f"hipaa-audit: error: {message}")
    return typer.Exit(code)


@contextlib.contextmanager
def open_output(path: str | None) -> Iterator[IO[str]]:
    """Yield the output stream: the ``--output`` file (written whole at the end), or stdout."""
    if path is None:
        yield sys.stdout
        return
    tmp = f"{path}.partial"
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            yield f
        os.replace(tmp, path)
    except OSError as exc:
        raise fail(f"cannot write {path}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def progress_display(
    enabled: bool, label: str, count_total: Callable[[], int] | None = None
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
        MofNCompleteColumn(), TextColumn("files"),
        TextColumn("{task.fields[rate]}/s, {task.fields[findings]} findings"),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=err, transient=True,
    )
    task = progress.add_task(label, total=None, findings=0, rate="-")
    counts = {"findings": 0}

    def advance(result: AssetResult) -> None:
        counts["findings"] += len(result.findings)
        speed = progress.tasks[0].speed
        progress.update(task, advance=result.stats.get("files", 0), findings=counts["findings"],
                        rate=f"{speed:,.0f}" if speed else "-")

    if count_total is not None:
        threading.Thread(target=lambda: progress.update(task, total=count_total()),
                         daemon=True).start()
    with progress:
        yield advance


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
        "--ocr", help="Read burned-in pixel text with Tesseract (slow: about 0.3 s an image).")
    ] = False,
    max_depth: Annotated[int, typer.Option(
        "--max-depth", min=1, max=16, help="How deep to open containers inside containers.")
    ] = Limits().max_depth,
) -> None:
    """Scan folders, files and containers (zip, tar, gz, bz2, xz) for DICOM PHI.

    Example: hipaa-audit scan archive /mnt/pacs-export --format json --output findings.json
    """
    from hipaa_audit.archive.content import storage_encryption
    from hipaa_audit.archive.run import scan_archive
    from hipaa_audit.archive.walk import count_files
    from hipaa_audit.cluster import ClusterError

    missing = [p for p in paths if not os.path.lexists(p)]
    if missing:
        raise fail(f"no such file or directory: {', '.join(missing)}")
    if ocr:
        from hipaa_audit.archive.dicom.ocr import OcrUnavailable, check_available

        try:
            check_available()
        except OcrUnavailable as exc:
            raise fail(str(exc)) from None
    catalog = load_catalog()
    masker = Masker(installation_key(), reveal=reveal_phi)
    run = new_run("scan archive", paths, reveal_phi=reveal_phi,
                  options={"workers": workers, "max_depth": max_depth, "ocr": ocr,
                           "scheduler": scheduler, "follow_symlinks": follow_symlinks})
    run.evidence["storage"] = [storage_encryption(p) for p in paths]
    threshold = None if fail_on is FailOn.NONE else parse_severity(fail_on.value)
    show = progress or err.is_terminal
    count = functools.partial(count_files, paths, follow_links=follow_symlinks)
    with open_output(output) as stream, progress_display(show, "scan archive", count) as advance:
        renderer = make_renderer(fmt, stream, catalog, __version__)
        results = scan_archive(paths, masker=masker, workers=workers,
                               limits=Limits(max_depth=max_depth), ocr=ocr, scheduler=scheduler,
                               follow_links=follow_symlinks)
        try:
            outcome = consume(results, renderer, run, threshold, on_asset=advance)
        except ClusterError as exc:
            raise fail(str(exc)) from None
    raise typer.Exit(outcome.exit_code)


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
    out = Console(highlight=False)
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
