"""Helpers shared by several test files (tests never import each other).

- :func:`load_generator` imports ``fixtures/generate.py``;
- :func:`leaks` and its needles find the PHI planted by the generator (and variants of it) in
  any text;
- :func:`estate` writes a small assessment with an optional treatment file (:func:`accept`,
  :data:`SUPPRESS`, :data:`MITIGATE`); :func:`pdftext` reads a PDF back with poppler;
- :func:`oscal_documents` and :func:`check_integrity` validate the OSCAL exports;
- :func:`matches` tells whether a log finding matches an injected anomaly's label;
- :func:`analyse_logs_in_process` runs ``analyze logs`` in the test's process, in any formats;
- :func:`assess_stored` runs an assessment in the test's process, stored but without reports.
- :func:`render_every_format` scans once in-process and renders the findings in every format.

Fixtures go to ``conftest.py``; plain functions and constants come here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import io
import json
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import ROOT

from hipaa_audit import __version__
from hipaa_audit.aws.client import Answer
from hipaa_audit.catalog import load_catalog
from hipaa_audit.config import ConfigError, load_config
from hipaa_audit.logs.options import LogsOptions
from hipaa_audit.model import Severity
from hipaa_audit.network.observation import CertInfo, Suite, TlsObservation
from hipaa_audit.output import OutputFormat, make_renderer
from hipaa_audit.permissions.baseline import parse_baseline
from hipaa_audit.permissions.model import (
    ACTIONS,
    ANYONE,
    Facts,
    Grant,
    Membership,
    Person,
    Principal,
    Resource,
)
from hipaa_audit.permissions.run import PermOptions, analyse
from hipaa_audit.s3.collect import BucketObservation
from hipaa_audit.scanner import ScanContext, Setup, scanner_for
from hipaa_audit.scanrun import consume, new_run

sys.path.insert(0, str(ROOT / "fixtures"))
import generate

# ---------------------------------------------------------------------------------------------
# The fixture generator


def load_generator() -> ModuleType:
    """Import ``fixtures/generate.py`` (not a package) under a name of its own."""
    name = "hipaa_audit_fixture_generator"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "fixtures" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


generator = load_generator()


# ---------------------------------------------------------------------------------------------
# Planted PHI, and finding it in an output


#: Whitespace and the box-drawing characters of the table: a value folded over two table lines
#: must still be found.
_SQUASH = re.compile(r"[\s\u2500-\u257f]+")


def squash(text: str) -> str:
    """``text`` lower-cased, without whitespace and table rules (folded values still match)."""
    return _SQUASH.sub("", text).lower()


def variants(label: str, value: str) -> set[str]:
    """The forms in which ``value`` could leak: as is, PN parts, cases, dates, escapes."""
    forms = {value, value.replace("^", " "), value.replace("^", ", ")}
    if "^" in value:
        forms.update(part for part in value.split("^") if len(part) >= 4)
    if re.fullmatch(r"\d{8}", value):
        y, m, d = value[:4], value[4:6], value[6:]
        forms.update({f"{y}-{m}-{d}", f"{m}/{d}/{y}", f"{d}.{m}.{y}", f"{y}/{m}/{d}"})
    digits = re.sub(r"\D", "", value)
    if label in ("phone", "ssn"):
        forms.update({digits, re.sub(r"[()]", "", value).replace(" ", "-")})
    if label == "address":
        forms.add("Larkspur")
    if label == "non-utf-8 name":
        forms.update({"nnimann", "Br\\xf6nnimann", "Br\\u00f6nnimann"})
    for form in list(forms):
        forms.add(json.dumps(form)[1:-1])  # the JSON escape of non-ASCII letters
        forms.add(form.encode("unicode_escape").decode("ascii"))
    return {f for f in forms if len(f) >= 4}


PLANTED = generator.phi_values()
NEEDLES: dict[str, set[str]] = {label: variants(label, v) for label, v in PLANTED.items()}


def leaks(text: str, needles: dict[str, set[str]] | None = None) -> dict[str, set[str]]:
    """Return label -> the forms of that planted value found in ``text``."""
    flat = squash(text)
    found: dict[str, set[str]] = {}
    for label, forms in (NEEDLES if needles is None else needles).items():
        hits = {f for f in forms if squash(f) in flat}
        if hits:
            found[label] = hits
    return found


# ---------------------------------------------------------------------------------------------
# A small assessment with a treatment file


ACCEPT = """
[[risk]]
id = "ACC-1"
check = "dicom-identifier-in-text"
group = "share"
decision = "accept"
owner = "PACS administrator"
justification = "Teaching files stay on an isolated workstation until the vendor fix ships."
approver = "C. Chief, COO"
approved = {approved}
expires = {expires}
level = "{level}"
residual = "Low"
"""

SUPPRESS = """
[[suppression]]
id = "FP-1"
check = "dicom-residual-identifier"
asset = "*/b.dcm"
reason = "Phantom study: the value is the phantom's model name."
owner = "PACS administrator"
approver = "B. Reviewer, Privacy Officer"
approved = 2026-01-01
expires = 2099-01-01
"""

MITIGATE = """
[[risk]]
check = "dicom-overlay"
decision = "mitigate"
owner = "Imaging informatics"
due = 2000-01-15
"""


def accept(approved: str = "2026-01-01", expires: str = "2099-12-31",
           level: str = "High") -> str:
    """The :data:`ACCEPT` risk acceptance with these dates and level."""
    return ACCEPT.format(approved=approved, expires=expires, level=level)


def estate(folder: Path, treatment: str | None = None) -> Path:
    """Two failing DICOM files and an assessment file naming the treatment file."""
    (folder / "estate").mkdir(parents=True, exist_ok=True)
    (folder / "estate" / "a.dcm").write_bytes(generate.fail_every_identifier())
    (folder / "estate" / "b.dcm").write_bytes(generate.fail_top_level())
    for path in (folder / "estate").iterdir():  # private files: the risk levels do not depend
        path.chmod(0o600)                       # on where the test folder is
    (folder / "estate").chmod(0o700)
    named = 'treatment = "treatment.toml"\n' if treatment is not None else ""
    (folder / "assessment.toml").write_text(
        '[assessment]\norganization = "Org"\nname = "Q"\nassessor = "A"\n' + named
        + '[store]\npath = "history.db"\n[[archive]]\nname = "share"\npaths = ["estate"]\n'
        '[report]\noutput_dir = "reports"\n', encoding="utf-8")
    if treatment is not None:
        (folder / "treatment.toml").write_text(treatment, encoding="utf-8")
    return folder / "assessment.toml"


def pdftext(pdf: Path) -> str:
    """The PDF's text in reading order, every run of whitespace one space."""
    out = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True,
                         check=True).stdout
    return " ".join(out.split())


# ---------------------------------------------------------------------------------------------
# OSCAL exports


#: the OSCAL documents ``assess`` writes
OSCAL = ("oscal-assessment-results.json", "oscal-poam.json")


def oscal_documents(reports: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both OSCAL documents, validated with compliance-trestle's OSCAL models."""
    from trestle.oscal import assessment_results, poam

    ar = json.loads((reports / OSCAL[0]).read_text(encoding="utf-8"))
    plan = json.loads((reports / OSCAL[1]).read_text(encoding="utf-8"))
    assessment_results.Model.model_validate(ar)  # raises on any schema violation
    poam.Model.model_validate(plan)
    return ar["assessment-results"], plan["plan-of-action-and-milestones"]


def uuids_and_references(doc: Any) -> tuple[list[str], set[str]]:
    """Every ``uuid`` a document defines, and every UUID it refers to."""
    defined: list[str] = []
    used: set[str] = set()
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k == "uuid":
                defined.append(v)
            elif isinstance(v, str) and (k.endswith("-uuid") or k == "href"):
                used.add(v.lstrip("#"))
            elif k.endswith("-uuids"):
                used.update(v)
            else:
                d, u = uuids_and_references(v)
                defined += d
                used |= u
    elif isinstance(doc, list):
        for v in doc:
            d, u = uuids_and_references(v)
            defined += d
            used |= u
    return defined, used


def check_integrity(doc: dict[str, Any]) -> None:
    """UUIDs are version-5, unique, and every reference points inside the document."""
    defined, used = uuids_and_references(doc)
    assert not [u for u in set(defined) if defined.count(u) > 1]
    assert all(uuid.UUID(u).version == 5 for u in defined)
    assert used <= set(defined), used - set(defined)
    meta = doc["metadata"]
    assert meta["oscal-version"].startswith("1.1.") and meta["title"] and meta["version"]
    assert meta["last-modified"].endswith("Z")


# ---------------------------------------------------------------------------------------------
# Log findings against the generator's labels


#: CloudTrail holds the S3 and console side of the activity only: a user's few S3 calls give no
#: baseline of source addresses, and the trail's own StopLogging names the trail and an IAM user,
#: not the PACS the label names.
EXCEPTIONS = {("cloudtrail", "new-source"), ("cloudtrail", "logging-gap")}
#: CloudTrail has no role or permission events of the PACS: its permission changes are bucket
#: policy changes, reported as storage changes.
EQUIVALENT = {"permission-change": {"permission-change", "storage-change"}}


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def matches(finding: dict[str, Any], label: dict[str, Any]) -> bool:
    """Kinds agree, it names the label's user (or source, system, device), windows overlap."""
    kind = finding["check_id"].removeprefix("log-")
    if kind not in EQUIVALENT.get(label["kind"], {label["kind"]}):
        return False
    loc = finding["locations"][0]
    names = {loc.get(k) for k in ("user", "source_ip", "system", "device")} - {None}
    if not names & ({label.get(k) for k in ("user", "source_ip", "system", "device")} - {None}):
        return False
    start, end = (_time(t) for t in loc["window"].split("/"))
    slack = timedelta(minutes=5)
    return start <= _time(label["end"]) + slack and _time(label["start"]) <= end + slack


# ---------------------------------------------------------------------------------------------
# Builders of the network rules' observations (a good TLS 1.2+1.3 endpoint, changed per test)

NOW = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
ECDHE = Suite("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256", 128,
              False, "ECDH", 253, "X25519")
TLS13 = Suite("TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384", 256, False, "ECDH", 253,
              "X25519")


def scan_and_render(name: str, options: Any, setup: Setup, formats: Iterable[str] = (),
                    env: dict[str, str] | None = None, fail_on: Severity | None = None
                    ) -> tuple[int, dict[str, str]]:
    """Scan once as ``hipaa-audit scan NAME`` (``analyze logs``) does, in this process; return
    the exit code and each format's text (every format when ``formats`` is empty).

    The calls the CLI's ``run_scan`` makes (plan, scan, ``consume`` into the format's renderer,
    with ``--fail-on`` ``fail_on``, None for none), so each text is what that format's writer
    prints, and one scan feeds every writer. ``env`` is set while planning and scanning.
    """
    catalog = load_catalog()
    scanner = scanner_for(name)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in (env or {}).items():
            mp.setenv(k, v)
        plan = scanner.plan(options, setup)
        run = new_run(scanner.command, scanner.targets(options, plan, setup), reveal_phi=False,
                      options=scanner.describe(plan))
        results = list(scanner.scan(plan, ScanContext(catalog, run, setup)))
    texts, codes = {}, set()
    for fmt in formats or [f.value for f in OutputFormat]:
        stream = io.StringIO()
        renderer = make_renderer(OutputFormat(fmt), stream, catalog, __version__)
        codes.add(consume(results, renderer, run, fail_on).exit_code)
        texts[fmt] = stream.getvalue()
    [code] = codes
    return code, texts


def analyse_logs_in_process(options: LogsOptions, formats: Iterable[str],
                            fail_on: Severity | None = None) -> tuple[int, dict[str, str]]:
    """Analyse logs once as ``analyze logs`` does (:func:`scan_and_render`)."""
    return scan_and_render("logs", options, Setup(strict=True, reveal_phi=False), formats,
                           fail_on=fail_on)


def cert(**kw: object) -> CertInfo:
    base: dict[str, object] = dict(
        key_type="rsa", key_size=2048, curve=None, signature_algorithm="sha256WithRSAEncryption",
        signature_hash="sha256", not_before="2026-09-01T00:00:00Z",
        not_after="2027-08-01T00:00:00Z", lifetime_days=334, self_signed=False,
        hostname_used="portal.example.org", hostname_ok=True,
        validation={"Mozilla": None}, ocsp_stapled=True)
    base.update(kw)
    return CertInfo(**base)  # type: ignore[arg-type]


def tls(**kw: object) -> TlsObservation:
    obs = TlsObservation(
        versions={"SSLv2": False, "SSLv3": False, "TLSv1.0": False, "TLSv1.1": False,
                  "TLSv1.2": True, "TLSv1.3": True},
        suites={"TLSv1.2": [ECDHE], "TLSv1.3": [TLS13]}, curves=["X25519", "secp256r1"],
        cert=cert(), hsts={"max_age": 63072000, "include_subdomains": True, "preload": False},
        hsts_checked=True, heartbleed=False, ccs_injection=False,
        robot="NOT_VULNERABLE_RSA_NOT_SUPPORTED", secure_renegotiation=True,
        client_renegotiation=False, compression=False, fallback_scsv=True, ems=True)
    for k, v in kw.items():
        setattr(obs, k, v)
    return obs


# ---------------------------------------------------------------------------------------------
# Hand-made permission facts: one estate with each planted difference, and its analysis

ARCHIVE = "s3://imaging-archive"
BASELINE: dict[str, Any] = {
    "roles": {
        "radiologist": {"allow": [{"resource": ARCHIVE, "actions": ["read"]},
                                  {"resource": "fs:/srv/pacs/*", "actions": ["read"]}]},
        "archive-admin": {"allow": [{"resource": "*", "actions": ["admin"]}]},
        "public": {"allow": [{"resource": "s3://research-deid", "actions": ["read"]}]},
        "partner": {"allow": [{"resource": ARCHIVE, "actions": ["read"]}]},
    },
    "principals": {
        "aws:group/radiologists": ["radiologist"],
        "aws:group/admins": {"roles": ["archive-admin"], "members": ["aws:user/dave"]},
        "aws:user/dave": ["archive-admin"],
        "anyone": ["public"],
        "aws:role/partner-reader": ["partner"],
        "aws:role/archive-reader": ["partner"],
        "aws:account/111122223333": ["partner"],
    },
    "phi": {"resources": [ARCHIVE, "fs:/srv/pacs"]},
    "trusted": {"accounts": ["111122223333"]},
}
ALL = frozenset(ACTIONS)
READ = frozenset({"list", "read"})


def user(name: str, human: bool = True, disabled: bool = False) -> Principal:
    return Principal(f"aws:user/{name}", "user", name, "aws", human=human, disabled=disabled)


def perm_estate() -> Facts:
    f = Facts(sources=["aws", "roster"])
    for name in ("alice", "dave", "mallory", "erin", "frank", "carol"):
        f.add_principal(user(name))
    f.add_principal(user("svc-ingest", human=False))
    f.add_principal(Principal("aws:group/radiologists", "group", "radiologists", "aws"))
    f.add_principal(Principal("aws:group/admins", "group", "admins", "aws"))
    f.add_principal(Principal("aws:role/archive-reader", "role", "archive-reader", "aws"))
    f.add_principal(Principal("aws:role/partner-reader", "role", "partner-reader", "aws"))
    for r in (ARCHIVE, "s3://public-share", "s3://research-deid"):
        f.add_resource(Resource(r, "bucket", system="aws:123456789012"))
    f.memberships += [
        Membership("aws:user/alice", "aws:group/radiologists", "member-of", "iam"),
        Membership("aws:user/carol", "aws:group/radiologists", "member-of", "iam"),
        Membership("aws:user/dave", "aws:group/admins", "member-of", "iam"),
        Membership("aws:user/mallory", "aws:group/admins", "member-of", "iam"),
        Membership("aws:account/999999999999", "aws:role/archive-reader", "can-assume",
                   "iam:trust-policy:archive-reader"),
        Membership("aws:account/111122223333", "aws:role/partner-reader", "can-assume",
                   "iam:trust-policy:partner-reader"),
    ]
    f.grants += [
        Grant("aws:group/radiologists", ARCHIVE, READ, "iam:policy/ReadArchive"),
        Grant("aws:group/admins", ARCHIVE, ALL, "iam:inline/admins/all"),
        Grant("aws:user/erin", ARCHIVE, ALL, "iam:inline/erin/s3all"),
        Grant("aws:user/frank", ARCHIVE, READ, "s3:bucket-policy"),
        Grant(ANYONE, "s3://public-share", READ, "s3:acl"),
        Grant(ANYONE, "s3://research-deid", frozenset({"read"}), "s3:bucket-policy"),
        Grant("aws:role/archive-reader", ARCHIVE, READ, "iam:policy/ReadArchive"),
        Grant("aws:role/partner-reader", ARCHIVE, READ, "iam:policy/ReadArchive"),
    ]
    f.people += [
        Person("alice", "fp1", ("alice",), ("radiologist",), True),
        Person("erin", "fp2", ("erin",), ("Radiologist",), True),
        Person("dave", "fp3", ("dave",), (), True),
        Person("mallory", "fp4", ("mallory",), ("radiologist",), True),
        Person("carol", "fp5", ("carol",), ("radiologist",), False, ended="2026-06-30"),
    ]
    return f


def perm_run(catalog: Any, facts: Facts, previous: dict[str, list[str]] | None = None) -> Any:
    opts = PermOptions(parse_baseline(BASELINE), ("aws",), previous=previous)
    return analyse(facts, opts, catalog)


# ---------------------------------------------------------------------------------------------
# S3 answers and bucket observations for the pure bucket rules

def ok(**data: object) -> Answer:
    return Answer("ok", dict(data))


ABSENT = Answer("absent", code="NotFound", http=404)


def observation(**answers: Answer) -> BucketObservation:
    base = {k: ABSENT for k in ("encryption", "policy", "policy_status", "bpa", "ownership",
                                "lock", "lifecycle", "replication", "tagging")}
    base.update(acl=ok(Grants=[]), versioning=ok(), logging=ok())
    base.update(answers)
    return BucketObservation("b", ok(), answers=base, account_id="123456789012")


# ---------------------------------------------------------------------------------------------
# ``serve`` command lines of the fixture servers (fixtures/netpeers.py, fixtures/s3peers.py)

@contextlib.contextmanager
def serving(argv: list[str]) -> Iterator[subprocess.Popen[str]]:
    """Start ``argv`` (stdout and stderr piped, text); kill it on leaving if it still runs."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def served_json(proc: subprocess.Popen[str]) -> Any:
    """The JSON document a ``serve`` command prints first (up to its closing ``}`` line)."""
    assert proc.stdout is not None
    lines: list[str] = []
    while not lines or lines[-1] != "}\n":
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        lines.append(line)
    return json.loads("".join(lines))


def sigterm_exit(proc: subprocess.Popen[str], timeout: float) -> int:
    """SIGTERM ``proc`` and return its exit status (``128 + SIGTERM`` when it stopped cleanly)."""
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=timeout)


# ---------------------------------------------------------------------------------------------
# Configuration errors

def config_error(config: Path) -> str:
    """The message of the ConfigError that loading ``config`` raises (fails when none is)."""
    with pytest.raises(ConfigError) as info:
        load_config(config)
    return str(info.value)


# ---------------------------------------------------------------------------------------------
# An assessment run in this process, without its report files

def assess_stored(config: Path, *, fail_on: str = "high", fail_on_new: bool = False,
                  baseline: str | None = None, reveal_phi: bool = False) -> Any:
    """Run the assessment ``config`` names into its ``[store]`` as ``hipaa-audit assess`` does
    (``run_assessment``, the function the command calls, with the same options, ``reveal_phi``
    for ``--reveal-phi``), but in this process and without rendering the report files; return
    the ``Assessed`` run (its ``exit_code`` is the command's exit status).

    For tests that read only the exit status, the stored run or a report rendered later; the
    command itself (its output, its files) is tested through ``run_cli``.
    """
    from hipaa_audit.assess import plan_groups, run_assessment
    from hipaa_audit.catalog import load_catalog
    from hipaa_audit.model import parse_severity
    from hipaa_audit.redaction import Masker, installation_key
    from hipaa_audit.store import Store

    cfg = load_config(config)
    masker = Masker(installation_key(), reveal=reveal_phi)
    assert cfg.data.store.path is not None, "the assessment file names no [store] path"
    with Store(Path(cfg.data.store.path)) as store:
        base = store.resolve(baseline) if baseline is not None else None
        return run_assessment(cfg, store, load_catalog(), masker,
                              fail_on=None if fail_on == "none" else parse_severity(fail_on),
                              fail_on_new=fail_on_new, baseline=base,
                              groups=plan_groups(cfg, masker))


def scan_here(name: str, env: dict[str, str] | None = None, formats: Iterable[str] = (),
              cwd: Path | None = None, fail_on: Severity | None = None,
              **options: Any) -> tuple[int, dict[str, str]]:
    """Scan once as ``hipaa-audit scan NAME`` does, in this process (:func:`scan_and_render`),
    with the options the command line would give, from ``cwd`` when given: the exit code (at
    ``--fail-on`` ``fail_on``) and each format's writer's text (every format when ``formats``
    is empty)."""
    from hipaa_audit.redaction import Masker

    opts = scanner_for(name).options_model.from_command_line(**options)
    setup = Setup(strict=True, masker_=Masker(b"k" * 32))
    with pytest.MonkeyPatch.context() as mp:
        if cwd is not None:
            mp.chdir(cwd)
        return scan_and_render(name, opts, setup, formats, env=env, fail_on=fail_on)


def render_every_format(name: str, env: dict[str, str], **options: Any) -> dict[str, str]:
    """Each format's writer's output of one in-process scan (:func:`scan_here`)."""
    return scan_here(name, env, **options)[1]


def scan_json(name: str, env: dict[str, str], **options: Any) -> tuple[int, Any]:
    """Scan once as ``hipaa-audit scan NAME --format json --fail-on none`` does, in-process
    (:func:`scan_here`); return the exit code and the JSON document."""
    code, texts = scan_here(name, env, ["json"], **options)
    return code, json.loads(texts["json"])


def assess_without_pdfs(config: Path, **options: Any) -> Any:
    """Run the assessment ``config`` names in this process (:func:`assess_stored`, with the same
    options) and write its report files as ``hipaa-audit assess`` does
    (``write_assessment_files``, the function the command calls), except the two PDFs and
    their HTML pages; return the ``Assessed`` run.

    For tests that read only the findings files, SARIF, JUnit, OCSF or OSCAL of a run (and
    SHA256SUMS over them); the command itself, its PDFs and HTML pages are tested through
    ``run_cli``.
    """
    from hipaa_audit.assess import write_assessment_files
    from hipaa_audit.catalog import load_catalog
    from hipaa_audit.report import build
    from hipaa_audit.store import Store

    done = assess_stored(config, **options)
    cfg = load_config(config)
    assert cfg.data.store.path is not None, "the assessment file names no [store] path"
    render = build.write_reports

    def without_pdfs(store: Store, run: Any, catalog: Any, outputs: Any, **kw: Any) -> Any:
        return render(store, run, catalog, {}, **kw)  # the findings files only

    with Store(Path(cfg.data.store.path)) as store, pytest.MonkeyPatch.context() as mp:
        mp.setattr(build, "write_reports", without_pdfs)
        write_assessment_files(store, done, load_catalog(), cfg, None)
    return done
