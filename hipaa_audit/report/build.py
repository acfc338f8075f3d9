"""Write the reports of a stored run: findings attachments, then the PDFs, then signatures."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from hipaa_audit.catalog import Catalog
from hipaa_audit.hipaa import security_rule_data
from hipaa_audit.outfiles import check_output, copy_file, private_dirs, write_text
from hipaa_audit.report.context import baa_context, risk_context
from hipaa_audit.report.export import export_findings, sha256_file
from hipaa_audit.report.render import Attachment, PdfJob, Rendered, render_html, render_pdfs
from hipaa_audit.store import Store, StoredRun, canonical

ReportKind = Literal["risk", "baa"]
TEMPLATES: dict[ReportKind, str] = {"risk": "risk_analysis.html.j2",
                                    "baa": "baa_evidence.html.j2"}
FINDINGS_JSON = "findings.json"
FINDINGS_CSV = "findings.csv"
CHECKSUMS = "SHA256SUMS"
#: What ``assess`` writes into the report folder.
REPORT_FILES = ("risk-analysis.pdf", "baa-evidence.pdf", FINDINGS_JSON, FINDINGS_CSV, CHECKSUMS)


@dataclass(frozen=True, slots=True)
class Signing:
    """A key and certificate to sign the PDFs with (PAdES B-B)."""

    key: Path
    cert: Path
    passphrase: bytes | None = None


@dataclass(slots=True)
class Written:
    """What :func:`write_reports` wrote."""

    pdfs: dict[ReportKind, Path] = field(default_factory=dict)
    rendered: list[Rendered] = field(default_factory=list)
    findings: list[Path] = field(default_factory=list)
    fingerprint: str | None = None
    #: the reports as standalone HTML pages (the same templates), when written
    html: list[Path] = field(default_factory=list)


def catalog_digest(catalog: Catalog) -> str:
    """Return the SHA-256 of the check catalog (every check's metadata, canonical JSON)."""
    body = canonical([c.model_dump(mode="json") for c in catalog.values()])
    return hashlib.sha256(body.encode()).hexdigest()


def write_reports(store: Store, run: StoredRun, catalog: Catalog,
                  outputs: Mapping[ReportKind, Path], *, findings_dir: Path | None = None,
                  detail_limit: int = 200, signing: Signing | None = None) -> Written:
    """Render the reports named in ``outputs`` for ``run``.

    The complete findings are written as JSON and CSV to ``findings_dir`` (when given) and
    attached to the risk-analysis PDF. Everything is made in a private temporary folder and
    then written to its place by :mod:`hipaa_audit.outfiles` (mode 0600, folders it creates
    0700; a symbolic link in the way is refused before anything is rendered). Raises
    ``RenderError``, ``SigningError``, ``OutputError`` or ``OSError``.
    """
    written = Written()
    copies = {FINDINGS_JSON: findings_dir / FINDINGS_JSON,
              FINDINGS_CSV: findings_dir / FINDINGS_CSV} if findings_dir is not None else {}
    for target in [*copies.values(), *outputs.values()]:
        check_output(target)
    with tempfile.TemporaryDirectory(prefix="hipaa-audit-report-") as tmp:
        work = Path(tmp)
        fjson, fcsv = work / FINDINGS_JSON, work / FINDINGS_CSV
        export_findings(store, run, fjson, fcsv)
        if findings_dir is not None:
            private_dirs(findings_dir)
        for name, target in copies.items():
            copy_file(work / name, target)
            written.findings.append(target)
        evidence = [
            {"name": FINDINGS_JSON, "sha256": sha256_file(fjson),
             "description": "every finding, schema hipaa-audit.findings/1"},
            {"name": FINDINGS_CSV, "sha256": sha256_file(fcsv),
             "description": "every finding, one row each"},
        ]
        jobs = []
        attachments: tuple[Attachment, ...]
        for kind, pdf in outputs.items():
            if kind == "risk":
                ctx = risk_context(store, run, catalog, detail_limit)
                ctx.update(evidence_files=evidence, catalog_digest=catalog_digest(catalog),
                           prev_hash=_prev_hash(store, run),
                           scale=security_rule_data()["nist_sp800_30r1"]["levels"])
                attachments = (Attachment(fjson, "All findings of the run (JSON)"),
                               Attachment(fcsv, "All findings of the run (CSV)"))
                # attestation evidence, when the file still has the content hashed at the run
                attachments += tuple(
                    Attachment(Path(e["path"]), "Attestation evidence for "
                               + ", ".join(e["citations"]))
                    for e in (ctx.get("attestations") or {}).get("evidence", [])
                    if e["unchanged"])
            else:
                ctx = baa_context(store, run, catalog)
                attachments = ()
            html = work / f"{kind}.html"
            html.write_text(render_html(TEMPLATES[kind], ctx), encoding="utf-8")
            if findings_dir is not None:  # the same page, standalone (inline CSS and charts)
                page = findings_dir / pdf.with_suffix(".html").name
                private_dirs(page.parent)
                copy_file(html, page)
                written.html.append(page)
            (work / kind).mkdir()
            jobs.append((kind, pdf, PdfJob(html, work / kind / pdf.name, attachments,
                                           identifier=f"{run.id}-{kind}")))
        written.rendered = render_pdfs([j for _, _, j in jobs])
        if signing is not None:
            from hipaa_audit.report.sign import sign_pdf

            for kind, _, job in jobs:
                written.fingerprint = sign_pdf(
                    job.pdf, signing.key, signing.cert, passphrase=signing.passphrase,
                    reason=f"hipaa-audit {kind} report of run {run.id}")
        for kind, pdf, job in jobs:
            private_dirs(pdf.parent)
            copy_file(job.pdf, pdf)
            written.pdfs[kind] = pdf
    return written


def _prev_hash(store: Store, run: StoredRun) -> str:
    prev = store.previous(run)
    if prev is None:
        return "none: first run in the history store"
    return prev.hash or ""


def check_report_folder(folder: Path) -> None:
    """Raise ``OutputError`` if a file ``assess`` writes into ``folder`` would be refused."""
    for name in REPORT_FILES:
        check_output(folder / name)


def write_checksums(folder: Path, files: list[Path]) -> Path:
    """Write ``SHA256SUMS`` (the ``sha256sum`` format) for ``files`` into ``folder``."""
    out = folder / CHECKSUMS
    write_text(out, "".join(f"{sha256_file(f)}  {f.name}\n" for f in files))
    return out
