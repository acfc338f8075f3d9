"""No value read from a scanned file appears in any output, unless ``--reveal-phi`` is given.

The fixture tree plants names, IDs, an SSN, a phone number, an e-mail address, a birth date, an
accession number, an institution, a private value, an overlay comment and a name in bytes that
are not UTF-8. Every output format is scanned for them (and their obvious variants), on stdout,
in ``--output`` files and on stderr (``--progress``), with one worker and with two. The last test
shows the same search does find them once ``--reveal-phi`` is given, so it can fail.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from conftest import run_cli_raw
from helpers import (
    PLANTED,
    analyse_logs_in_process,
    assess_without_pdfs,
    leaks,
    load_generator,
    scan_and_render,
    squash,
    variants,
)
from pydicom.dataset import Dataset

from hipaa_audit.archive.options import ArchiveOptions
from hipaa_audit.logs.options import LogsOptions
from hipaa_audit.redaction import Masker
from hipaa_audit.scanner import Setup

pytestmark = pytest.mark.e2e

FORMATS = ("table", "json", "jsonl", "sarif", "csv")



generator = load_generator()


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    output_file: str


def run_raw(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """Run the CLI capturing bytes (an output that is not UTF-8 must not hide a leak)."""
    return run_cli_raw(*args, cwd=cwd, env={"COLUMNS": "120"})


def decode(data: bytes) -> str:
    return data.decode("utf-8", "backslashreplace")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("phi") / "estate"
    generator.generate(root)
    return root


@cache  # a run is only read: tests asking for the same command line share it
def scan(tree: Path, fmt: str, *, to_file: bool, workers: int, reveal: bool = False) -> Run:
    out = tree.parent / f"out-{fmt}-{workers}-{to_file}-{reveal}.{fmt}"
    args = ["scan", "archive", tree.name, "--format", fmt, "--fail-on", "none", "--progress",
            "--workers", str(workers)]
    if to_file:
        args += ["--output", str(out)]
    if reveal:
        args.append("--reveal-phi")
    proc = run_raw(*args, cwd=tree.parent)
    written = decode(out.read_bytes()) if to_file else ""
    return Run(proc.returncode, decode(proc.stdout), decode(proc.stderr), written)


def test_needles_are_planted(tree: Path) -> None:
    """The values searched for really are in the scanned files (as bytes)."""
    blob = b"".join(p.read_bytes() for p in tree.rglob("*.dcm"))
    for label, value in PLANTED.items():
        encodings = ("latin-1",) if label == "non-utf-8 name" else ("utf-8", "latin-1")
        assert any(value.encode(e, "ignore") in blob for e in encodings), label
    assert generator.NON_UTF8_NAME in blob


@cache  # a scan is only read: the formats share it
def scanned_in_process(root: Path, workers: int = 1, mask_paths: bool = False
                       ) -> tuple[int, dict[str, str]]:
    """The exit code and every format's text of one scan of ``root/estate`` as
    ``scan archive estate --fail-on none`` prints it, run in this process from ``root`` (the
    calls the CLI makes, one scan fed to every writer)."""
    options = ArchiveOptions.from_command_line(paths=["estate"], workers=workers,
                                               mask_paths=mask_paths)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        return scan_and_render("archive", options, Setup(strict=True, masker_=Masker(b"k" * 32)))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("to_file", "workers"), [(False, 1), (True, 1), (False, 2)],
                         ids=["stdout", "output-file", "workers-2"])
def test_no_value_leaves(tree: Path, fmt: str, to_file: bool, workers: int) -> None:
    """Each format through the CLI on stdout and into an ``--output`` file; with two workers,
    the table through the CLI and every other format's writer fed by one scan in this process
    (the workers scan the files, the writers are the ones tested on one worker)."""
    if workers == 2 and fmt != "table":
        code, texts = scanned_in_process(tree.parent, workers)
        run = Run(code, texts[fmt], "", "")
    else:
        run = scan(tree, fmt, to_file=to_file, workers=workers)
    assert run.code == 4, run.stderr  # corrupt/ files could not be checked
    assert "Traceback" not in run.stderr
    body = run.output_file if to_file else run.stdout
    assert "fail_every_identifier.dcm" in body  # the scan did report on the planted file
    if to_file:
        assert run.stdout == ""
    for where, text in (("output", body), ("stdout", run.stdout), ("stderr", run.stderr)):
        assert not leaks(text), f"{fmt} {where} holds planted values: {leaks(text)}"


def test_evidence_is_masked_but_correlatable(tree: Path) -> None:
    run = scan(tree, "json", to_file=False, workers=1)
    doc = json.loads(run.stdout)
    assert doc["run"]["reveal_phi"] is False
    evidence = [
        loc["evidence"]
        for f in doc["findings"] if f["asset"].endswith("fail_every_identifier.dcm")
        for loc in f["locations"] if "evidence" in loc
    ]
    assert evidence and all("hmac=" in e and "value=" not in e for e in evidence)


def test_reveal_phi_shows_values_and_is_recorded(tree: Path) -> None:
    """With --reveal-phi the same search finds the values: the checks above can fail."""
    run = scan(tree, "json", to_file=False, workers=1, reveal=True)
    doc = json.loads(run.stdout)
    assert doc["run"]["reveal_phi"] is True
    found = leaks(run.stdout)
    for label in ("patient name", "patient id", "ssn", "phone", "email", "private", "overlay",
                  "non-utf-8 name", "latin-1 name", "utf-8 name"):
        assert label in found, f"--reveal-phi did not show {label}"
    table = scan(tree, "table", to_file=False, workers=1, reveal=True)
    assert "--reveal-phi was given" in table.stdout  # the table shows no evidence, only a warning


# --- audit logs -----------------------------------------------------------------------------

#: Values planted in audit logs where a reader expects staff and systems: a patient who logs in
#: (known only by role PAT and an MRN), an MRN inside event ids, codes, targets and devices, a
#: patient's family name in the observer's name, a patient's address.
LOG_PLANTED = {"patient mrn": "MRN77031234", "accession": "ACC99887766",
               "family name": "Quillfeather", "patient address": "203.0.113.199",
               "session token": "FwoGZXIvYXdzEQuillTokenSecret"}


def _log_estate(root: Path) -> list[Path]:
    root.mkdir()
    mrn, acc, family, address, _token = LOG_PLANTED.values()
    fhir = root / "portal.ndjson"
    fhir.write_text("".join(json.dumps({
        "resourceType": "AuditEvent", "id": f"ae-{mrn}-{i}",
        "recorded": f"2026-10-01T10:0{i}:00Z", "type": {"code": "110114"},
        "subtype": [{"code": "110122"}], "outcome": "4",
        "agent": [{"requestor": True, "role": [{"coding": [{"code": "PAT"}]}],
                   "who": {"identifier": {"value": mrn}},
                   "network": {"address": address, "type": "2"}}],
        "source": {"observer": {"display": f"{family}-kiosk"}},
        "entity": [{"what": {"reference": f"Patient/{mrn}"}, "name": f"{family}, Ann"}],
    }) + "\n" for i in range(6)))
    csv_log = root / "access.csv"
    csv_log.write_text("time,user,role,action,patient,event_id,code,target,device\n" + "".join(
        f"2026-10-01T11:0{i}:00Z,jdoe,clerk,view,{mrn},visit-{acc}-{i},VIEW_{acc},"
        f"chart/{mrn},ws-{acc}\n" for i in range(6)))
    trail = root / "trail.json"
    trail.write_text(json.dumps({"Records": [{
        "eventVersion": "1.08", "eventTime": "2026-10-01T12:00:00Z", "eventName": "GetObject",
        "eventSource": "s3.amazonaws.com", "eventID": f"evt-{mrn}",
        "userIdentity": {"type": "IAMUser", "userName": "jdoe"},
        "userAgent": f"portal/{acc}", "sourceIPAddress": "198.51.100.9",
        "requestParameters": {"bucketName": "imaging", "key": f"{mrn}/{acc}/img.dcm"},
        # free text a service writes, kept screened for Sigma rules; credentials never kept
        "errorMessage": f"No such key {mrn}/{acc}",
        "additionalEventData": {"note": f"restore {mrn}", acc: "x"},
        "responseElements": {"credentials": {"sessionToken": LOG_PLANTED["session token"]},
                             "x-amz-request-id": acc}}]}))
    return [fhir, csv_log, trail]


def _log_leaks(text: str) -> set[str]:
    flat = squash(text)
    found = set()
    for label, value in LOG_PLANTED.items():
        forms = {value, value[3:]} if label in ("patient mrn", "accession") else {value}
        if any(squash(f) in flat for f in forms):
            found.add(label)
    return found


def _cache_text(folder: Path) -> str:
    """Every value of every Parquet file (decoded: values are compressed) and other file."""
    import pyarrow.parquet as pq

    parts: list[str] = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            parts.extend(str(v) for column in table.columns for v in column.to_pylist())
        else:
            parts.append(decode(path.read_bytes()))
    return "\n".join(parts)


def test_log_values_never_leave(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No output of ``analyze logs`` and nothing in its Parquet cache holds a planted value."""
    files = _log_estate(tmp_path / "logs")
    rules = tmp_path / "rules.yml"  # a correlation grouped by CloudTrail free text
    rules.write_text(
        "title: Reads\nid: 7f3a1c2e-4b5d-4e6f-9a0b-1c2d3e4f5a6b\nlevel: high\n"
        "logsource:\n  product: aws\ndetection:\n  sel:\n    eventName: GetObject\n"
        "  condition: sel\n---\n"
        "title: Reads per error\nid: 8a4b2d3f-5c6e-4f70-8b1c-2d3e4f5a6b7c\nlevel: high\n"
        "correlation:\n  type: event_count\n  rules:\n    - 7f3a1c2e-4b5d-4e6f-9a0b-1c2d3e4f5a6b\n"
        "  group-by:\n    - errorMessage\n    - additionalEventData.note\n  timespan: 1h\n"
        "  condition:\n    gte: 1\n")
    data = tmp_path / "data"
    monkeypatch.setenv("HIPAA_AUDIT_DATA_DIR", str(data))
    env = {"COLUMNS": "120"}
    # the search finds the values where they are (the logs), so it can fail
    for label in LOG_PLANTED:
        assert label in _log_leaks("".join(p.read_text() for p in files)), label
    # every format's writer, fed by one analysis in this process (the calls the CLI makes)
    options = LogsOptions.from_command_line(paths=[str(p) for p in files], sigma=[rules])
    code, texts = analyse_logs_in_process(options, FORMATS)
    assert code == 0  # --fail-on none
    for fmt, text in texts.items():
        assert text.strip() and not _log_leaks(text), (fmt, _log_leaks(text))
    # the CLI with --progress: the table a user reads and the JSON a pipeline reads on stdout,
    # and an --output file (stderr searched each time)
    for fmt, to_file in [("table", False), ("json", False), ("sarif", True)]:
        out = tmp_path / f"logs.{fmt}"
        args = ["analyze", "logs", *map(str, files),
                "--format", fmt, "--fail-on", "none", "--progress", "--sigma", str(rules)]
        if to_file:
            args += ["--output", str(out)]
        proc = run_cli_raw(*args, env=env)
        assert proc.returncode == 0 and b"Traceback" not in proc.stderr, proc.stderr
        written = decode(out.read_bytes()) if to_file else ""
        assert written.strip() if to_file else proc.stdout.strip(), (fmt, to_file)
        for where, text in (("stdout", decode(proc.stdout)),
                            ("stderr", decode(proc.stderr)), ("output", written)):
            assert not _log_leaks(text), f"{fmt} {where}: {_log_leaks(text)}"
        if fmt == "json" and not to_file:
            doc = json.loads(proc.stdout)
            logins = [f for f in doc["findings"] if f["check_id"] == "log-failed-logins"]
            assert logins and "patient:" in logins[0]["message"]  # reported, not shown
    caches = list((data / "log-cache").glob("*.parquet"))
    assert len(caches) == 3
    cached = _cache_text(data)
    assert "jdoe" in cached and "patient:" in cached and "hmac:" in cached
    assert not _log_leaks(cached), _log_leaks(cached)


def test_log_cache_search_finds_a_planted_value(tmp_path: Path) -> None:
    """The cache search reads Parquet values (compressed on disk): it would find a leak."""
    import pandas as pd

    from hipaa_audit.logs import schema

    frame = schema.normalise(pd.DataFrame({"time": ["2026-10-01T10:00:00Z"],
                                           "user": [LOG_PLANTED["patient mrn"]],
                                           "action": ["view"]}))
    schema.write_parquet(schema.compact(frame), tmp_path / "x.parquet")
    assert _log_leaks(_cache_text(tmp_path)) == {"patient mrn"}


# -- values that used to pass as labels, and a folder named after the patient -----------------

#: The file's own PatientID: it reads like a vendor string, and is reused as a private creator.
OWN_ID = "ZEBRA_KITE"
#: Planted where the tool used to print them as they were: private creators, BurnedInAnnotation,
#: the file meta's PrivateInformation (and its creator UID), and a folder name.
HARDENING: dict[str, str] = {
    "creator mrn": "MRN7730418",
    "creator ssn": "321-54-9876",
    "creator phone": "555-867-5309",
    "creator address": "27 Quillby Road",
    "creator date": "1958-11-02",
    "creator own id": OWN_ID,
    "burned-in name": "MARIGOLD FENWICK",
    "private information": "Tansy Orbison MRN6620931",
    "private information creator": "Orbison",
}
FOLDER = "Doe_John_MRN12345678"
PATH_NEEDLES: dict[str, set[str]] = {"folder": {FOLDER, "Doe_John", "MRN12345678", "12345678"}}
VALUE_NEEDLES: dict[str, set[str]] = {
    label: variants(label, value) | ({"Orbison", "6620931"} if "private" in label else set())
    for label, value in HARDENING.items()
}
ALL_NEEDLES = {**VALUE_NEEDLES, **PATH_NEEDLES}


def hardening_file() -> bytes:
    """An identified ultrasound image declaring de-identification, the values above planted."""
    ds = generator.identify(generator.image("hardening", modality="US"))
    ds.PatientID = OWN_ID
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "in-house script"
    ds.add_new(0x00280301, "CS", HARDENING["burned-in name"])
    for group, label in zip(range(0x0009, 0x0015, 2), (
            "creator mrn", "creator ssn", "creator phone", "creator address", "creator date",
            "creator own id"), strict=True):
        ds.private_block(group, HARDENING[label], create=True).add_new(0x10, "LO", "x")
    data = generator.encode(ds)
    meta = Dataset()
    meta.PrivateInformationCreatorUID = HARDENING["private information creator"]
    meta.PrivateInformation = HARDENING["private information"].encode()
    return _with_meta(data, meta)


def _with_meta(data: bytes, extra: Dataset) -> bytes:
    """Add elements to the file meta of an encoded file (its group length fixed up)."""
    import io

    from pydicom import dcmread

    ds = dcmread(io.BytesIO(data), force=True)
    for elem in extra:
        ds.file_meta.add(elem)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.fixture(scope="module")
def hardened(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hardening")
    folder = root / "estate" / FOLDER
    folder.mkdir(parents=True)
    (folder / "IM0001.dcm").write_bytes(hardening_file())
    return root


def test_hardening_needles_are_planted(hardened: Path) -> None:
    blob = (hardened / "estate" / FOLDER / "IM0001.dcm").read_bytes()
    for label, value in HARDENING.items():
        assert value.encode() in blob, label


@cache  # a run is only read: tests asking for the same command line share it
def scanned_hardened(root: Path, fmt: str, *extra: str) -> subprocess.CompletedProcess[bytes]:
    """``scan archive`` of the planted estate with ``--progress``, as it ran."""
    return run_raw("scan", "archive", "estate", "--format", fmt, "--fail-on", "none",
                   "--progress", *extra, cwd=root)


def scan_hardened(root: Path, fmt: str, *extra: str) -> tuple[int, str]:
    proc = scanned_hardened(root, fmt, *extra)
    assert "Traceback" not in decode(proc.stderr)
    return proc.returncode, decode(proc.stdout) + decode(proc.stderr)


def hardened_output(root: Path, fmt: str, *, mask: bool) -> tuple[int, str]:
    """The table and the JSON from the CLI with ``--progress`` (stdout and stderr); the other
    formats' writers fed by one scan in this process (each writer runs in the CLI in
    :func:`test_no_value_leaves`)."""
    if fmt in ("table", "json"):
        return scan_hardened(root, fmt, *(["--mask-paths"] if mask else []))
    code, texts = scanned_in_process(root, mask_paths=mask)
    return code, texts[fmt]


@pytest.mark.parametrize("fmt", FORMATS)
def test_creators_burned_in_and_private_information_never_leave(hardened: Path,
                                                                  fmt: str) -> None:
    code, text = hardened_output(hardened, fmt, mask=False)
    assert code == 0
    assert FOLDER in text  # paths are shown unless masked: the search below is real
    assert not leaks(text, VALUE_NEEDLES), leaks(text, VALUE_NEEDLES)


@pytest.mark.parametrize("fmt", FORMATS)
def test_mask_paths_hides_the_folder_in_every_format(hardened: Path, fmt: str) -> None:
    code, text = hardened_output(hardened, fmt, mask=True)
    assert code == 0
    assert not leaks(text, ALL_NEEDLES), leaks(text, ALL_NEEDLES)
    if fmt != "table":  # the file is still named, its folder by shape (SARIF URL-quotes it)
        assert "IM0001.dcm" in text
        assert "[Aaa_Aaaa_AAA99999999 #" in text or "%5BAaa_Aaaa_AAA99999999%20%23" in text


def test_the_folder_is_a_finding_and_masked_ids_are_stable(hardened: Path) -> None:
    """Two runs (one of them the --progress run the test above searched) give the same ids."""
    docs = [json.loads(proc.stdout) for proc in (
        scanned_hardened(hardened, "json", "--mask-paths"),
        run_raw("scan", "archive", "estate", "--format", "json", "--fail-on", "none",
                "--mask-paths", cwd=hardened))]
    assert [f["id"] for f in docs[0]["findings"]] == [f["id"] for f in docs[1]["findings"]]
    path = [f for f in docs[0]["findings"] if f["check_id"] == "archive-identifier-in-path"]
    assert len(path) == 1 and path[0]["severity"] == "high"
    assert path[0]["locations"] == [{"component": 1, "found": ["mrn"],
                                     "evidence": path[0]["locations"][0]["evidence"]}]
    assert "hmac=" in path[0]["locations"][0]["evidence"]
    assert docs[0]["run"]["options"]["mask_paths"] is True
    by_check = {f["check_id"]: f for f in docs[0]["findings"]}
    meta = [loc for loc in by_check["dicom-residual-identifier"]["locations"]
            if loc["tag_path"] == ["00020102"]]
    assert len(meta) == 1 and "hmac=" in meta[0]["evidence"]
    burned = by_check["dicom-deidentification-declaration"]["locations"]
    assert [loc.get("setting") for loc in burned if loc["keyword"] == "BurnedInAnnotation"] == [
        "other value"]


def assessment(root: Path, name: str, *, mask: bool) -> Path:
    """A folder ``name`` with an assessment file of the planted estate; return the folder."""
    work = root / name
    work.mkdir()
    (work / "assessment.toml").write_text(f"""
[assessment]
organization = "Synthetic Clinic"
name = "hardening"
assessor = "A. Tester"

[store]
path = "history.db"

[[archive]]
paths = ["{root / 'estate'}"]

[report]
output_dir = "reports"
mask_paths = {str(mask).lower()}
""")
    return work


def written(work: Path) -> dict[str, str]:
    """The text of every PDF (and its attachments), findings file and the store in ``work``."""
    texts: dict[str, str] = {}
    reports = work / "reports"
    for pdf in sorted(reports.glob("*.pdf")):
        texts[pdf.name] = subprocess.run(["pdftotext", "-layout", str(pdf), "-"],
                                         capture_output=True, check=True).stdout.decode()
        out = work / f"{pdf.stem}-attachments"
        out.mkdir()
        subprocess.run(["pdfdetach", "-saveall", "-o", str(out), str(pdf)], check=True)
        for attached in out.iterdir():
            texts[f"{pdf.name}!/{attached.name}"] = attached.read_text("utf-8", "replace")
    for f in ("findings.json", "findings.csv", "findings.sarif", "junit.xml",
              "findings.ocsf.jsonl", "oscal-assessment-results.json", "oscal-poam.json"):
        texts[f] = (reports / f).read_text("utf-8", "replace")
    with sqlite3.connect(work / "history.db") as db:
        texts["history store"] = "\n".join(db.iterdump())
    texts["history store file"] = (work / "history.db").read_bytes().decode("latin-1")
    return texts


def assess_hardened(root: Path, name: str, *, mask: bool) -> dict[str, str]:
    """Run ``assess`` on the planted estate; return every output's text by where it is."""
    work = assessment(root, name, mask=mask)
    proc = run_raw("assess", "--config", "assessment.toml", "--fail-on", "none", cwd=work)
    assert proc.returncode == 0, decode(proc.stderr)
    return {"stdout/stderr": decode(proc.stdout) + decode(proc.stderr), **written(work)}


def test_assess_with_mask_paths_keeps_them_out_of_the_store_and_both_pdfs(hardened: Path
                                                                          ) -> None:
    texts = assess_hardened(hardened, "masked", mask=True)
    assert {"risk-analysis.pdf", "baa-evidence.pdf", "history store"} <= texts.keys()
    found = {where: hits for where, text in texts.items() if (hits := leaks(text, ALL_NEEDLES))}
    assert not found, found
    assert any("[Aaa_Aaaa_AAA99999999 #" in text for text in texts.values())


def test_reveal_phi_and_unmasked_paths_show_what_the_searches_look_for(hardened: Path) -> None:
    """The same searches find every planted value once asked to show them: they can fail."""
    _, text = scan_hardened(hardened, "json", "--reveal-phi")
    found = leaks(text, ALL_NEEDLES)
    for label in (*HARDENING, "folder"):
        if label != "private information creator":  # a UID nobody echoes, even asked
            assert label in found, f"--reveal-phi did not show {label}"
    # the assessment as ``assess --reveal-phi`` runs it, in this process, its files but the
    # PDFs written; then the risk analysis of the stored run by ``report risk``
    work = assessment(hardened, "revealed", mask=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        assert assess_without_pdfs(work / "assessment.toml", fail_on="none",
                                   reveal_phi=True).exit_code == 0
    proc = run_raw("report", "risk", "--store", "history.db", "--output",
                   "reports/risk-analysis.pdf", cwd=work)
    assert proc.returncode == 0, decode(proc.stderr)
    texts = written(work)
    for where in ("history store", "history store file", "risk-analysis.pdf", "findings.json",
                  "findings.csv", "findings.sarif", "junit.xml", "findings.ocsf.jsonl",
                  "oscal-assessment-results.json", "oscal-poam.json"):
        assert "folder" in leaks(texts[where], ALL_NEEDLES), where
    assert "creator mrn" in leaks(texts["history store"], ALL_NEEDLES)
