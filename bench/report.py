"""Reports: both PDFs of a 10,000-finding run, against an uncapped findings table, in one run.

Builds a synthetic assessment in a temporary history store (N findings over G archive asset
groups, every archive check of the catalog, masked evidence only, two business associates) and an
earlier run holding about 90 % of the same finding ids, so that the trend chart and the "changes
since the previous assessment" section have data. Then it measures:

  (a) ``write_reports``: findings.json and findings.csv exported from the store, then the
      risk-analysis and BAA-evidence PDFs, each rendered by its own child process (the
      detail table capped at 200 findings, every finding attached to the risk analysis)
  (b) the baseline: B findings (every N/B-th) laid out as ONE uncapped HTML table (the report's
      own row markup and stylesheet) by WeasyPrint in a child process, and the same page with
      no rows (the fixed cost), extrapolated linearly to N rows

and prints the bars of DESIGN.md section 5 (both PDFs under 60 s and 1 GiB peak) with PASS/FAIL,
page counts (``pdfinfo``), and whether the risk analysis carries findings.json and findings.csv
holding every finding (``pdfdetach``).

    .venv/bin/python bench/report.py [--findings N] [--groups G] [--quick] [--keep DIR]

Exit status is 0 when the figures were measured (even if a bar fails), 1 on an error.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from hipaa_audit.catalog import Catalog, Check
from hipaa_audit.model import Coverage, Finding, Location, RunInfo, Severity, Status, outcome_of
from hipaa_audit.redaction import Masker
from hipaa_audit.store import Store, StoredRun

BAR_SECONDS = 60.0
#: DESIGN.md says "1 GB"; the bar is read as 1 GiB of peak RSS in the largest rendering child.
BAR_BYTES = 1 << 30
DETAIL_LIMIT = 200  # the default of [report] detail_limit
#: Share of the latest run's finding ids the earlier run also holds.
KEPT_SHARE = 0.90
#: Findings of the earlier run that the latest no longer has (resolved), as a share of N.
RESOLVED_SHARE = 0.08
SEED = 20240315
BENCH_KEY = b"hipaa-audit-bench-key-not-secret"
MIB = 1 << 20

LAST_NAMES = (
    "Smith", "Okafor", "Lindqvist", "Moreau", "Tanaka", "Novak", "Garcia", "Haddad", "Kowalski",
    "Nguyen", "Fischer", "Rossi", "Silva", "Jensen", "Murphy", "Ivanova", "Dubois", "Sato",
)
FIRST_NAMES = (
    "John", "Amara", "Erik", "Claire", "Hiro", "Petra", "Lucia", "Omar", "Grace", "Tomasz",
    "Linh", "Jonas", "Giulia", "Rafael", "Freja", "Sean", "Olga", "Louis",
)
INSTITUTIONS = ("St Elsewhere General Hospital", "Riverside Imaging Centre", "North Clinic")
CREATORS = ("GEMS_IDEN_01", "SIEMENS CSA HEADER", "PHILIPS MR IMAGING DD 001", "ACME_CORP")
UNREADABLE = (
    "truncated in the middle of an element (the file ends 312 bytes early)",
    "an element length runs past the end of the file",
    "not DICOM although its name says so (no DICM prefix, no recognisable data set)",
    "the file could not be read (permission denied)",
)

#: (keyword, tag, VR, kind, action, severity) of the attributes the residual check reports.
RESIDUAL = (
    ("PatientName", "00100010", "PN", "patient-name", "Z", Severity.CRITICAL),
    ("PatientID", "00100020", "LO", "patient-id", "Z", Severity.CRITICAL),
    ("PatientBirthDate", "00100030", "DA", "birth-date", "Z", Severity.HIGH),
    ("AccessionNumber", "00080050", "SH", "accession", "Z", Severity.HIGH),
    ("ReferringPhysicianName", "00080090", "PN", "name", "Z", Severity.HIGH),
    ("InstitutionName", "00080080", "LO", "institution", "X", Severity.MEDIUM),
    ("StudyDate", "00080020", "DA", "date", "Z", Severity.MEDIUM),
    ("StudyTime", "00080030", "TM", "time", "Z", Severity.LOW),
)
DIRECT = frozenset({"patient-name", "patient-id", "birth-date", "accession", "name"})


# --------------------------------------------------------------------------- the estate


@dataclass(slots=True)
class Asset:
    """One file of the synthetic estate and the findings scanning it produced."""

    path: str
    kind: str  # "dicom", "zip" (a ZipCrypto member) or "text" (a plaintext export)
    ocr: bool
    findings: list[Finding] = field(default_factory=list)


def _value(rng: random.Random, keyword: str, i: int) -> str:
    """A made-up value for an attribute (masked before it is stored; never a real person)."""
    last, first = rng.choice(LAST_NAMES), rng.choice(FIRST_NAMES)
    return {
        "PatientName": f"{last}^{first}",
        "PatientID": f"MRN{700000 + i}",
        "PatientBirthDate": f"19{40 + i % 60:02d}{1 + i % 12:02d}{1 + i % 28:02d}",
        "AccessionNumber": f"ACC{400000 + i}",
        "ReferringPhysicianName": f"{last}^Robert^^Dr",
        "InstitutionName": INSTITUTIONS[i % len(INSTITUTIONS)],
        "StudyDate": f"2024{1 + i % 12:02d}{1 + i % 28:02d}",
        "StudyTime": f"{8 + i % 10:02d}{i % 60:02d}12",
    }[keyword]


class Generator:
    """Deterministic synthetic findings over the archive checks of the catalog."""

    def __init__(self, catalog: Catalog, seed: int = SEED) -> None:
        self.checks: dict[str, Check] = {c.id: c for c in catalog.for_scanner("archive")}
        self.masker = Masker(BENCH_KEY)
        self.rng = random.Random(seed)

    def ev(self, value: str, vr: str) -> str:
        return self.masker.evidence(value, vr)

    def assets(self, group: int, ocr: bool) -> Iterator[Asset]:
        """Yield the files of one asset group, 20 images a study, a few exports and bundles."""
        i = 0
        while True:
            study, image = divmod(i, 20)
            roll = self.rng.random()
            if roll < 0.01:
                yield self.text_export(Asset(f"/srv/pacs/g{group}/exports/adt{i:06d}.hl7",
                                             "text", ocr), i)
            elif roll < 0.02:
                yield self.zip_member(Asset(f"/srv/pacs/g{group}/outgoing/study{study}.zip!/"
                                            f"IM{image}.dcm", "zip", ocr))
            else:
                yield self.dicom(Asset(f"/srv/pacs/g{group}/study{study}/IM{image}.dcm", "dicom",
                                       ocr), i)
            i += 1

    def text_export(self, asset: Asset, i: int) -> Asset:
        if self.rng.random() < 0.8:
            kinds = {"mrn": 1 + i % 40, "name": 1 + i % 40, "birth-date": 1 + i % 40}
            if i % 3 == 0:
                kinds["ssn"] = 1 + i % 40
            check = self.checks["archive-unencrypted-phi"]
            summary = ", ".join(f"{k} x{n}" for k, n in kinds.items())
            records = 1 + i % 40
            asset.findings.append(check.finding(
                asset.path,
                f"This unencrypted HL7 v2 export holds PHI ({summary}) in {records} record(s); "
                "anyone who can read the file can read them.",
                severity=Severity.CRITICAL if "ssn" in kinds else None,
                locations=(Location.of(format="hl7v2", found=kinds, records=records,
                                       sample="first 64 KiB", unread_items=None),)))
        return asset

    def zip_member(self, asset: Asset) -> Asset:
        asset.findings.append(self.checks["archive-zipcrypto"].finding(
            asset.path,
            "The member is encrypted with legacy ZipCrypto, a cipher broken by known-plaintext "
            "attacks: not encryption in the HIPAA sense.",
            locations=(Location.of(setting="zip encryption", evidence="ZipCrypto"),)))
        return asset

    def dicom(self, asset: Asset, i: int) -> Asset:
        rng, c, path, out = self.rng, self.checks, asset.path, asset.findings
        if rng.random() < 0.02:
            out.append(c["archive-unverifiable"].finding(
                path, f"Not checked: {rng.choice(UNREADABLE)}.", status=Status.ERROR))
            return asset
        if rng.random() < 0.10:
            return asset  # a clean file
        declared = rng.random() < 0.15
        attrs = rng.sample(RESIDUAL, rng.randint(1, 5))
        locs = tuple(Location.of(
            tag_path=(tag,), keyword=kw, path=kw, vr=vr, kind=kind, action=action,
            severity=sev.value, evidence=self.ev(_value(rng, kw, i), vr))
            for kw, tag, vr, kind, action, sev in sorted(attrs, key=lambda a: -a[5].rank))
        severity = max(a[5] for a in attrs)
        if declared and any(a[3] in DIRECT for a in attrs):
            found = [a for a in attrs if a[3] in DIRECT]
            out.append(c["dicom-false-deidentification"].finding(
                path,
                f"The file declares de-identification (PatientIdentityRemoved YES) but "
                f"{len(found)} patient attribute(s) hold real-looking values "
                f"({', '.join(sorted(a[3] for a in found))}): "
                f"{', '.join(a[0] for a in found)}. The declaration is false.",
                locations=tuple(loc for loc in locs if loc.get("kind") in DIRECT)))
        if rng.random() < 0.85:
            direct = sorted({a[3] for a in attrs if a[3] in DIRECT})
            basis = (f"direct patient identifiers remain ({', '.join(direct)})"
                     if direct and severity >= Severity.HIGH
                     else f"the most sensitive is {severity.value}")
            out.append(c["dicom-residual-identifier"].finding(
                path,
                f"{len(locs)} attribute(s) that PS3.15 Table E.1-1 says to remove or replace "
                f"still hold values: {', '.join(str(loc.get('keyword')) for loc in locs)}; "
                f"{basis}. The file {'declares' if declared else 'does not declare'} "
                "de-identification.",
                severity=severity, locations=locs))
        if rng.random() < 0.45:
            blocks = rng.randint(1, 2)
            plocs = tuple(Location.of(
                tag_path=(f"00{9 + 2 * b:02X}0010",), keyword="PrivateCreator",
                path=f"(00{9 + 2 * b:02X},0010)", creator=rng.choice(CREATORS),
                elements=rng.randint(1, 40)) for b in range(blocks))
            count = sum(int(loc.get("elements")) for loc in plocs)
            out.append(c["dicom-private-elements"].finding(
                path, f"{count} private element(s) in {blocks} block(s) remain and the file "
                "does not declare Retain Safe Private.", locations=plocs))
        if rng.random() < 0.30:
            text = (f"Follow-up of {rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)} "
                    f"MRN{700000 + i}, call (555) 010-{i % 10000:04d}")
            out.append(c["dicom-identifier-in-text"].finding(
                path,
                "1 text attribute(s) contain identifiers (mrn x1, patient-name-value x2, phone "
                "x1): ImageComments.",
                severity=Severity.CRITICAL if declared else Severity.HIGH,
                locations=(Location.of(
                    tag_path=("00204000",), keyword="ImageComments", path="ImageComments",
                    vr="LT", found={"mrn": 1, "patient-name-value": 2, "phone": 1},
                    evidence=self.ev(text, "LT")),)))
        if rng.random() < 0.25:
            out.append(c["archive-exposed-phi"].finding(
                path, "This file holds PHI and any local account may read it (mode 0644, "
                "owner pacs, group pacs).",
                locations=(Location.of(setting="file-system permissions", owner="pacs",
                                       group="pacs", mode="0644", permissions="-rw-r--r--",
                                       acl=None, writable_folder=None),)))
        if rng.random() < 0.04:
            out.append(c["dicom-overlay"].finding(
                path, "1 overlay element(s) remain (OverlayComments); overlays are drawn over "
                "the image and may show the patient's name, ID or dates.",
                locations=(Location.of(
                    tag_path=("60004000",), keyword="OverlayComments", path="OverlayComments",
                    vr="LT", evidence=self.ev(f"Marked by {rng.choice(LAST_NAMES)}", "LT")),)))
        if rng.random() < 0.01:
            out.append(c["dicom-curve-data"].finding(
                path, "1 retired curve group(s) remain.",
                locations=(Location.of(tag_path=("50000005",), keyword="CurveData",
                                       path="(5000,xxxx)", elements=4),)))
        if rng.random() < 0.02:
            out.append(c["dicom-icon-image"].finding(
                path, "An Icon Image Sequence remains: a thumbnail of the pixels, with any "
                "burned-in text.",
                locations=(Location.of(tag_path=("00880200",), keyword="IconImageSequence",
                                       path="IconImageSequence"),)))
        burned = rng.random() < 0.05
        if burned:
            out.append(c["dicom-burned-in-annotation"].finding(
                path, "BurnedInAnnotation is YES: the pixels show text that header "
                "de-identification does not remove.",
                locations=(Location.of(tag_path=("00280301",), keyword="BurnedInAnnotation",
                                       path="BurnedInAnnotation", evidence="YES"),)))
            if asset.ocr and rng.random() < 0.6:
                out.append(c["dicom-burned-in-text"].finding(
                    path, "Text burned into the pixels matches identifiers (patient-id-value, "
                    "patient-name-value) in 2 place(s); boxes are given, words are not.",
                    locations=tuple(Location.of(
                        frame=0, box={"left": 12, "top": 8 + 14 * n, "width": 180, "height": 12},
                        found={"patient-name-value": 1} if n else {"patient-id-value": 1},
                        words=3) for n in range(2))))
        if declared and burned:
            out.append(c["dicom-deidentification-declaration"].finding(
                path, "PatientIdentityRemoved is YES but the declaration leaves "
                "BurnedInAnnotation YES.",
                locations=(Location.of(tag_path=("00280301",), keyword="BurnedInAnnotation",
                                       setting="YES"),)))
        return asset


def generate(catalog: Catalog, n: int, groups: int, extra: int,
             ) -> tuple[list[list[Asset]], list[list[Asset]]]:
    """Return (latest, earlier) estates: per group, the assets scanned and their findings.

    The latest run holds exactly ``n`` findings; the earlier run holds about ``KEPT_SHARE`` of
    them plus about ``extra`` findings on files the latest run found clean (resolved since).
    """
    gen = Generator(catalog)
    streams = [gen.assets(g, ocr=g == 0) for g in range(groups)]
    latest: list[list[Asset]] = [[] for _ in range(groups)]
    total, g = 0, 0
    while total < n:
        asset = next(streams[g])
        asset.findings = asset.findings[:n - total]
        latest[g].append(asset)
        total += len(asset.findings)
        g = (g + 1) % groups
    rng = random.Random(SEED + 1)
    earlier: list[list[Asset]] = [[] for _ in range(groups)]
    for g, assets in enumerate(latest):
        for a in assets:
            kept = [f for f in a.findings if rng.random() < KEPT_SHARE]
            earlier[g].append(Asset(a.path, a.kind, a.ocr, kept))
    added = 0
    while added < extra:
        # files that had findings then and are clean now (kept in the latest run, as clean)
        for g in range(groups):
            asset = next(streams[g])
            if asset.findings and added < extra:
                earlier[g].append(asset)
                latest[g].append(Asset(asset.path, asset.kind, asset.ocr))
                added += len(asset.findings)
    return latest, earlier


# --------------------------------------------------------------------------- the stored runs


DICOM_CHECKS = ("dicom-residual-identifier", "dicom-false-deidentification",
                "dicom-identifier-in-text", "dicom-private-elements", "dicom-overlay",
                "dicom-curve-data", "dicom-burned-in-annotation", "dicom-icon-image",
                "dicom-deidentification-declaration")


def coverage_and_stats(assets: Sequence[Asset]) -> tuple[Coverage, dict[str, int]]:
    """Per-check coverage and file counts consistent with the assets and their findings."""
    cov = Coverage()
    stats: Counter[str] = Counter()
    containers: set[str] = set()
    for a in assets:
        own = Coverage()  # this asset's outcomes, merged into the run's below
        failed = {f.check_id for f in a.findings if f.status is Status.FAIL}
        stats["files"] += 1
        error = any(f.status is Status.ERROR for f in a.findings)
        own.record("archive-unverifiable", outcome_of(failed=False, error=error))
        if a.kind == "text" and not error:
            stats["text"] += 1
            own.record("archive-unencrypted-phi",
                       outcome_of(failed="archive-unencrypted-phi" in failed))
        elif a.kind == "zip" and not error:
            containers.add(a.path.split("!/", 1)[0])
            stats["container_members"] += 1
            own.record("archive-zipcrypto", outcome_of(failed="archive-zipcrypto" in failed))
        elif not error:
            stats["dicom"] += 1
            for check_id in DICOM_CHECKS:
                own.record(check_id, outcome_of(failed=check_id in failed))
            if a.ocr:
                stats["images_read_by_ocr"] += 1
                own.record("dicom-burned-in-text",
                           outcome_of(failed="dicom-burned-in-text" in failed))
        if failed and not error:  # permissions are judged on the files found holding PHI
            own.record("archive-exposed-phi", outcome_of(failed="archive-exposed-phi" in failed))
        cov.merge(own)
    stats["containers"] = len(containers)
    return cov, dict(sorted(stats.items()))


def _assessment_record(groups: int) -> dict[str, Any]:
    """The stored configuration, validated by the real model (as ``cfg.as_record()`` gives)."""
    from hipaa_audit.config import Assessment

    names = [f"pacs-g{g}" for g in range(groups)]
    half = max(1, (groups + 1) // 2)
    doc = {
        "assessment": {"organization": "Example Regional Health (synthetic)",
                       "name": "Quarterly imaging estate review", "assessor": "A. Assessor",
                       "period": "2024-Q3", "reviewer": "R. Reviewer",
                       "approver": "P. Approver"},
        "store": {"path": "/var/lib/hipaa-audit/history.db"},
        "archive": [{"name": name, "paths": [f"/srv/pacs/g{g}"], "criticality": "high",
                     "ocr": g == 0, "workers": 2} for g, name in enumerate(names)],
        "vendor": [
            {"name": "Cloud PACS Hosting Ltd (synthetic)",
             "services": "PACS hosting and off-site image archive", "baa_signed": "2012-06-01",
             "archives": names[:half], "s3_buckets": ["example-pacs-offsite"],
             "endpoints": ["pacs.example-hosting.test:11112"],
             "subcontractors": ["Example Object Storage Inc"]},
            {"name": "Teleradiology Reading Group (synthetic)",
             "services": "after-hours reads of CT and MR studies", "baa_signed": "2021-02-15",
             "archives": names[half:] or names[-1:], "s3_buckets": ["example-telerad-inbox"],
             "endpoints": ["https://reads.example-telerad.test"],
             "subcontractors": ["Example Transcription Services"]},
        ],
        "report": {"output_dir": "/srv/reports", "detail_limit": DETAIL_LIMIT},
    }
    record: dict[str, Any] = Assessment.model_validate(doc).model_dump(mode="json")
    return record


def store_run(store: Store, catalog: Catalog, estate: Sequence[Sequence[Asset]],
              started: dt.datetime, record: dict[str, Any]) -> StoredRun:
    """Store one run the way ``run_assessment`` does: findings per group, then the metadata."""
    from hipaa_audit import __version__
    from hipaa_audit.assess import register_for
    from hipaa_audit.risk import level_counts

    def stamp(t: dt.datetime) -> str:
        return t.isoformat(timespec="seconds").replace("+00:00", "Z")

    digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()
    finished = started + dt.timedelta(minutes=47)
    targets = [f"/srv/pacs/g{g}" for g in range(len(estate))]
    compact = stamp(started).replace("-", "").replace(":", "")
    token = hashlib.sha256(f"{compact}{digest}".encode()).hexdigest()[:8]
    run = RunInfo(id=f"{compact}-{token}", command="assess", started_at=stamp(started),
                  targets=targets, finished_at=stamp(finished),
                  options={"config": "/etc/hipaa-audit/assessment.toml",
                           "config_sha256": digest},
                  evidence={"storage": [{"target": t, "device": "dm-3", "encrypted": True,
                                         "evidence": "dm-crypt (CRYPT-LUKS2)"}
                                        for t in targets]})
    seq = store.open_run(run.id, run.command, run.started_at, __version__, digest)
    total_cov = Coverage()
    total_stats: Counter[str] = Counter()
    failures: Counter[Severity] = Counter()
    errors = 0
    groups = []
    for g, assets in enumerate(estate):
        name = f"pacs-g{g}"
        findings = [f for a in assets for f in a.findings]
        store.add_findings(seq, name, findings)
        cov, stats = coverage_and_stats(assets)
        g_errors = sum(f.status is Status.ERROR for f in findings)
        failures.update(f.severity for f in findings if f.status is Status.FAIL)
        errors += g_errors
        total_cov.merge(cov)
        total_stats.update(stats)
        groups.append({"name": name, "scanner": "archive", "criticality": "high",
                       "targets": [targets[g]], "coverage": cov.as_list(), "stats": stats,
                       "findings": len(findings), "errors": g_errors,
                       "seconds": round(len(assets) * 0.0041, 3), "note": ""})
    meta: dict[str, Any] = {
        "run": run.as_dict(),
        "assessment": record["assessment"],
        "config": record,
        "coverage": total_cov.as_list(),
        "stats": dict(sorted(total_stats.items())),
        "groups": groups,
        "exit_code": 3,
        "fail_on": "high",
        "summary": {
            "findings": sum(failures.values()),
            "errors": errors,
            "severity": {s.value: failures.get(s, 0) for s in Severity},
            "risk": {},
        },
    }
    # the register is built from the stored findings and the groups, as assess does
    provisional = StoredRun(seq, run.id, run.command, run.started_at, None, __version__,
                            digest, meta, None)
    meta["summary"]["risk"] = level_counts(register_for(store, provisional, catalog))
    assert run.finished_at is not None
    store.close_run(seq, run.finished_at, meta)
    return store.resolve(run.id)


# --------------------------------------------------------------------------- measuring


@dataclass(slots=True)
class Figures:
    seconds: float
    peaks: list[int]
    pages: list[int]


def pdf_pages(pdf: Path) -> int:
    out = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True)
    for line in out.stdout.splitlines():
        if line.startswith("Pages:"):
            return int(line.split()[1])
    raise RuntimeError(f"pdfinfo printed no page count for {pdf.name}")


def measure_reports(store: Store, run: StoredRun, catalog: Catalog, out: Path) -> Figures:
    """(a): what ``hipaa-audit assess`` does after the scan: export, then both PDFs."""
    from hipaa_audit.report.build import write_reports

    started = time.monotonic()
    written = write_reports(store, run, catalog, {"risk": out / "risk-analysis.pdf",
                                                  "baa": out / "baa-evidence.pdf"},
                            findings_dir=out, detail_limit=DETAIL_LIMIT)
    seconds = time.monotonic() - started
    return Figures(seconds, [r.peak_rss for r in written.rendered],
                   [pdf_pages(written.pdfs["risk"]), pdf_pages(written.pdfs["baa"])])


# The uncapped table: one row per finding, with the risk-analysis template's own row markup and
# stylesheet (table-layout: fixed, the faster layout), so a row costs what it would cost in the
# report if the report did not cap its detail.
UNCAPPED = """{% import "_macros.html.j2" as m %}
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Every finding, uncapped</title>
<style>{{ css|safe }}</style></head>
<body>
<h2>Every finding ({{ rows|length|thousands }})</h2>
<table class="fixed">
  <colgroup><col style="width:9%"><col style="width:20%"><col style="width:31%"><col style="width:40%"></colgroup>
  <thead><tr><th>Severity</th><th>Check</th><th>Asset</th><th>Finding and masked evidence</th></tr></thead>
  {% for f in rows %}
  <tr><td>{{ m.sev(f.severity) }}</td><td class="small break">{{ f.check_id }}</td><td class="mono">{{ f.asset }}</td>
  <td class="small">{{ f.message }}{% for loc in f.locations[:3] %}<br><span class="mono">{{ loc.get("keyword") or loc.get("field") or loc.get("line") or loc.get("setting") or "" }} {{ loc.get("evidence", "") }}</span>{% endfor %}{% if f.locations|length > 3 %}<br><i>{{ f.locations|length - 3 }} more locations in the attachments</i>{% endif %}</td></tr>
  {% endfor %}
</table>
</body></html>
"""  # noqa: E501


def render_table(rows: list[dict[str, Any]], folder: Path, name: str) -> tuple[float, int]:
    """Render ``rows`` as one uncapped table in a WeasyPrint child; return (wall s, peak RSS)."""
    from hipaa_audit.report.render import PdfJob, environment, render_pdfs

    css = resources.files("hipaa_audit.report_templates").joinpath("report.css").read_text(
        "utf-8")
    html = folder / f"{name}.html"
    html.write_text(environment().from_string(UNCAPPED).render(rows=rows, css=css),
                    encoding="utf-8")
    started = time.monotonic()
    (done,) = render_pdfs([PdfJob(html, folder / f"{name}.pdf")])
    return time.monotonic() - started, done.peak_rss


def attached(pdf: Path, folder: Path) -> tuple[list[str], int, int]:
    """Names ``pdfdetach -list`` shows, and the findings in the attached JSON and CSV."""
    listing = subprocess.run(["pdfdetach", "-list", str(pdf)], capture_output=True, text=True,
                             check=True).stdout
    names = [line.split(":", 1)[1].strip() for line in listing.splitlines()[1:] if ":" in line]
    folder.mkdir()
    subprocess.run(["pdfdetach", "-saveall", "-o", str(folder), str(pdf)], check=True,
                   capture_output=True)
    n_json = n_csv = -1
    if (folder / "findings.json").exists():
        n_json = len(json.loads((folder / "findings.json").read_text("utf-8"))["findings"])
    if (folder / "findings.csv").exists():
        with open(folder / "findings.csv", encoding="utf-8", newline="") as f:
            n_csv = sum(1 for _ in csv.reader(f)) - 1
    return names, n_json, n_csv


def size(n: float) -> str:
    return f"{n / (1 << 30):.1f} GiB" if n >= 1 << 30 else f"{n / MIB:.0f} MiB"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# --------------------------------------------------------------------------- main


def run(n: int, groups: int, base_rows: int, keep: Path | None) -> None:
    from hipaa_audit.catalog import load_catalog

    for tool in ("pdfinfo", "pdfdetach"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed (Debian: poppler-utils)")
    catalog = load_catalog()
    with tempfile.TemporaryDirectory(prefix="hipaa-audit-bench-report-") as tmp:
        work = Path(tmp)
        out = keep or work / "reports"
        out.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        latest, earlier = generate(catalog, n, groups, extra=round(n * RESOLVED_SHARE))
        record = _assessment_record(groups)
        now = dt.datetime(2024, 9, 30, 6, 0, tzinfo=dt.UTC)
        with Store(work / "history.db") as store:
            before = store_run(store, catalog, earlier, now - dt.timedelta(days=91), record)
            head = store_run(store, catalog, latest, now, record)
            stored = store.count_findings(head.seq)
            d = store.diff(before, head, limit=0)
            setup = time.monotonic() - started
            n_files = sum(len(g) for g in latest)
            n_checks = len({f.check_id for g in latest for a in g for f in a.findings})
            print(f"findings: {stored:,} in {groups} groups ({n_files:,} files, {n_checks} "
                  f"archive checks, {head.meta['summary']['errors']:,} not verifiable); "
                  f"earlier run {store.count_findings(before.seq):,}: {d.persisting:,} "
                  f"persisting, {stored - d.persisting:,} new "
                  f"(generated and stored in {setup:.1f} s)")
            if stored != n:
                raise RuntimeError(f"stored {stored:,} findings, expected {n:,}")

            a = measure_reports(store, head, catalog, out)
            peak_a = max(a.peaks)
            print(f"(a) both PDFs, capped detail: {a.seconds:.1f} s wall, peak child RSS "
                  f"{peak_a / MIB:.0f} MiB, pages {a.pages[0]} + {a.pages[1]}")
            print(f"    risk-analysis child {a.peaks[0] / MIB:.0f} MiB, baa-evidence child "
                  f"{a.peaks[1] / MIB:.0f} MiB (run in parallel: together "
                  f"{sum(a.peaks) / MIB:.0f} MiB)")

            # (b) WeasyPrint's cost is linear in the rows it lays out: about 10 ms of CPU and
            # 160 KB of resident memory per findings row (the reports reference,
            # section 8; the memory is not returned before the process ends). A table of every
            # finding of a 10,000-finding run would take minutes and more than 1.5 GB, which is
            # why the report caps its detail table (detail_limit) and attaches every finding as
            # findings.json / findings.csv instead. The page with no rows gives the fixed cost
            # (interpreter, fonts, stylesheet), so that only the per-row part is scaled up to
            # N; a linear extrapolation cannot flatter the report (if anything, layout grows
            # slightly faster than linearly).
            # every k-th finding, so the sample is not only the most severe (longest) rows
            everything = list(store.findings(head.seq))
            rows = everything[::max(1, len(everything) // base_rows)][:base_rows]
            del everything
            t0, r0 = render_table([], work, "empty")
            tb, rb = render_table(rows, work, "uncapped")
            scale = n / len(rows)
            t_n = t0 + (tb - t0) * scale
            r_n = r0 + (rb - r0) * scale
            print(f"(b) uncapped table baseline: {len(rows):,} rows {tb:.1f} s, {rb / MIB:.0f} "
                  f"MiB -> extrapolated {t_n:.0f} s, {size(r_n)} for {n:,}")
            per_ms = (tb - t0) / len(rows) * 1000
            per_kib = (rb - r0) / len(rows) / 1024
            print(f"    fixed cost (no rows) {t0:.1f} s, {r0 / MIB:.0f} MiB; per row "
                  f"{per_ms:.1f} ms, {per_kib:.0f} KiB")
            print(f"  ours / uncapped-extrapolated: time {a.seconds / t_n:.2f}, "
                  f"peak RSS {peak_a / r_n:.2f}")
            print(f"  speed-up (b)/(a): {t_n / a.seconds:.1f}x")
            print(f"  memory (b)/(a): {r_n / peak_a:.1f}x")
            parent = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            print(f"parent peak RSS {parent / MIB:.0f} MiB (generation, store, export, HTML; "
                  "rendering happens in the children)")

            names, n_json, n_csv = attached(out / "risk-analysis.pdf", work / "detached")
            ok_time = a.seconds < BAR_SECONDS
            ok_mem = peak_a < BAR_BYTES
            ok_att = "findings.json" in names and "findings.csv" in names
            ok_all = n_json == n_csv == n
            print(f"bar: both PDFs < {BAR_SECONDS:.0f} s  {verdict(ok_time)}")
            print(f"bar: peak < 1 GiB  {verdict(ok_mem)}")
            print(f"attachments: findings.json findings.csv  {verdict(ok_att)}")
            print(f"attached findings: {n_json:,} in findings.json, {n_csv:,} in findings.csv "
                  f"of {n:,}  {verdict(ok_all)}")
            print(f"overall: {verdict(ok_time and ok_mem and ok_att and ok_all)}")
            if keep is not None:
                print(f"reports kept in {keep}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, default=10_000, help="findings in the run")
    parser.add_argument("--groups", type=int, default=5, help="archive asset groups")
    parser.add_argument("--quick", action="store_true",
                        help="1,000 findings, a 200-row baseline (what the test runs)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="write the PDFs and findings files into this folder and keep them")
    args = parser.parse_args(argv)
    n = 1_000 if args.quick else args.findings
    base_rows = min(n, 200 if args.quick else 1_000)
    if n < 1 or args.groups < 1:
        parser.error("--findings and --groups must be at least 1")
    try:
        run(n, args.groups, base_rows, args.keep)
    except Exception as exc:  # any failure to measure is an error, not a figure
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
