"""Render the reports: jinja2 templates to HTML here, WeasyPrint to PDF/A-3b in child processes.

WeasyPrint keeps the memory it used until its process ends, and its layout time grows with the
rows it lays out, so each PDF is rendered by a child process under a deadline and a memory
guard, and the templates show summaries with capped detail (every finding is attached).

Run as ``python -m hipaa_audit.report.render JOB.json`` the module is that child.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from hipaa_audit.children import module_command
from hipaa_audit.errors import HipaaAuditError
from hipaa_audit.report.charts import (
    LEVEL_COLOURS,
    access_paths,
    anomaly_timeline,
    domain_chart,
    trend_chart,
)

#: Seconds a PDF may take to render before its child is stopped.
RENDER_DEADLINE = 600.0
#: Resident memory (bytes) beyond which a rendering child is stopped.
RSS_LIMIT = 3 * 1024**3


class RenderError(HipaaAuditError):
    """A report could not be rendered (the message says why; it holds no finding values)."""


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file embedded in a PDF (``AFRelationship=Data``)."""

    path: Path
    description: str


@dataclass(frozen=True, slots=True)
class PdfJob:
    """One PDF to render from an HTML file."""

    html: Path
    pdf: Path
    attachments: tuple[Attachment, ...] = ()
    identifier: str = ""


@dataclass(frozen=True, slots=True)
class Rendered:
    """What rendering one PDF cost."""

    pdf: Path
    seconds: float
    peak_rss: int


def _template(name: str) -> str:
    return resources.files("hipaa_audit.report_templates").joinpath(name).read_text("utf-8")


def environment() -> jinja2.Environment:
    """Return the jinja2 environment of the packaged report templates."""
    env = jinja2.Environment(loader=jinja2.FunctionLoader(_template),
                             autoescape=jinja2.select_autoescape(default=True,
                                                                 default_for_string=True),
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["thousands"] = lambda n: f"{int(n):,}"
    env.filters["slug"] = lambda s: "".join(ch if ch.isalnum() else "-" for ch in str(s).lower())
    env.globals["level_colours"] = LEVEL_COLOURS
    return env


def render_html(template: str, context: Mapping[str, Any]) -> str:
    """Render one report template with ``context`` (charts drawn here)."""
    ctx = dict(context)
    if ctx.get("kind") == "risk":
        ctx["trend_svg"] = trend_chart(ctx["trend"], ctx["levels"]) if ctx["trend"] else ""
        ctx["domain_svg"] = domain_chart(ctx["domains"]) if ctx["domains"] else ""
        timeline = [t for log in ctx.get("logs", []) for t in log.get("timeline", [])]
        ctx["timeline_svg"] = anomaly_timeline(timeline) if timeline else ""
        riskiest = (ctx.get("permissions") or {}).get("riskiest", [])
        ctx["paths_svg"] = access_paths(riskiest) if riskiest else ""
    ctx["stylesheet"] = _template("report.css")
    return environment().get_template(template).render(ctx=ctx)


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def render_pdfs(jobs: Sequence[PdfJob], *, deadline: float = RENDER_DEADLINE,
                rss_limit: int = RSS_LIMIT) -> list[Rendered]:
    """Render every job in its own child process, in parallel; raise :class:`RenderError`."""
    started = time.monotonic()
    running = []
    with tempfile.TemporaryDirectory(prefix="hipaa-audit-render-") as tmp:
        for i, job in enumerate(jobs):
            spec = Path(tmp) / f"job{i}.json"
            spec.write_text(json.dumps({
                "html": str(job.html), "pdf": str(job.pdf), "identifier": job.identifier,
                "attachments": [[str(a.path), a.description] for a in job.attachments]}))
            log = open(Path(tmp) / f"job{i}.log", "w+b")  # noqa: SIM115 - closed below
            proc = subprocess.Popen(module_command("hipaa_audit.report.render", str(spec)),
                                    stdout=log, stderr=log)
            running.append((job, proc, log))
        results: dict[int, Rendered] = {}
        failure = ""
        while len(results) < len(running) and not failure:
            for i, (job, proc, log) in enumerate(running):
                if i in results:
                    continue
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid == 0:
                    if _rss(proc.pid) > rss_limit:
                        failure = f"{job.pdf.name}: stopped above {rss_limit >> 20} MiB"
                    elif time.monotonic() - started > deadline:
                        failure = f"{job.pdf.name}: not rendered within {deadline:.0f} s"
                    continue
                proc.returncode = os.waitstatus_to_exitcode(status)
                if proc.returncode != 0:
                    log.seek(0)
                    tail = log.read().decode("utf-8", "replace").strip().splitlines()[-3:]
                    failure = f"{job.pdf.name}: rendering failed: {' | '.join(tail)}"
                    break
                results[i] = Rendered(job.pdf, time.monotonic() - started,
                                      usage.ru_maxrss * 1024)
            if not failure and len(results) < len(running):
                time.sleep(0.05)
        for _job, proc, log in running:
            if proc.returncode is None:
                proc.kill()
                proc.wait()
            log.close()
    if failure:
        raise RenderError(failure)
    return [results[i] for i in range(len(running))]


def _child(spec_path: str) -> int:
    """Render one job (the child process)."""
    import logging

    import weasyprint

    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    spec = json.loads(Path(spec_path).read_text())
    html = Path(spec["html"])
    attachments = [weasyprint.Attachment(filename=path, name=Path(path).name,
                                         description=desc, relationship="Data")
                   for path, desc in spec["attachments"]]
    weasyprint.HTML(filename=str(html), base_url=str(html.parent)).write_pdf(
        spec["pdf"], pdf_variant="pdf/a-3b", attachments=attachments,
        pdf_identifier=spec["identifier"].encode() or None, custom_metadata=True)
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
