"""PHI in plaintext exports: CSV, HL7 v2, FHIR, notes; and what is not PHI."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import run_cli
from helpers import leaks, load_generator

from hipaa_audit.phi.text import analyse

pytestmark = pytest.mark.e2e

gen = load_generator()
PHI = gen.EXPORT_PHI
NOT_PHI = gen.EXPORT_NOT_PHI
CSV = gen.CSV

@pytest.mark.parametrize("name", sorted(PHI))
def test_phi_formats(name: str) -> None:
    body = gen.EXPORT_BODIES[name]
    result = analyse(body.encode())
    fmt, kinds = PHI[name]
    assert result is not None and result.format == fmt
    assert set(result.kinds) >= kinds, result.kinds
    assert result.records >= 1


@pytest.mark.parametrize("name", sorted(NOT_PHI))
def test_not_phi(name: str) -> None:
    result = analyse(NOT_PHI[name].encode())
    assert result is not None and result.kinds == {}, result


def test_binary_is_not_text() -> None:
    assert analyse(bytes(range(256)) * 10) is None


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("text") / "exports"
    gen.write_exports(root.parent)
    result = run_cli("scan", "archive", "exports", "--format", "json", cwd=root.parent)
    assert result.code == 3, result.stderr
    doc: dict[str, Any] = result.json()
    doc["_raw"] = result.stdout
    return doc


def test_scan_reports_each_export(scanned: dict[str, Any]) -> None:
    found = {f["asset"]: f for f in scanned["findings"]
             if f["check_id"] == "archive-unencrypted-phi"}
    assert set(found) == {"exports/adt.hl7", "exports/patient.json", "exports/patient.xml",
                          "exports/worklist.csv", "exports/dictation.txt",
                          "exports/worklist.csv.gz!/worklist.csv"}
    assert found["exports/adt.hl7"]["severity"] == "critical"  # it carries an SSN
    assert found["exports/worklist.csv"]["category"] == "unencrypted-phi"
    assert found["exports/worklist.csv"]["locations"][0]["found"] == {
        "birth-date": 2, "mrn": 2, "name": 2}
    assert scanned["run"]["assets"]["text"] == len(NOT_PHI) + 6


def test_no_value_leaves(scanned: dict[str, Any]) -> None:
    assert not leaks(scanned["_raw"])
    for value in ("Whitmore", "4471902", "19610427", "1961-04-27", "201-4477", "219-09-9999",
                  "Larkspur", "Baker"):
        assert value not in scanned["_raw"]


#: Texts built to make a backtracking pattern rescan the rest of the line from every position.
HOSTILE_TEXT = """
import sys
from hipaa_audit.phi.patterns import safe_harbor_counts
from hipaa_audit.phi.text import analyse

n = 128 * 1024
for text in ("1 " + "a." * n, "1 x@" + "a." * n, "1 " + "a-a@b-b." * (n // 4)):
    safe_harbor_counts(text)
for i in range(20):  # the CSV dialect sniffer, and FHIR XML tags that never close
    analyse((f"h{i}, 'b' ," * 8000 + "\\n" + "a, 'b' ," * 100).encode()[:65536])
    analyse((f"<Patient{i} " + "<Patient " * 7000).encode()[:65536])
print("done")
"""


def test_hostile_text_costs_linear_time() -> None:
    """Each of these took minutes with the unbounded patterns; now the whole set takes seconds.

    Run in a child so that a regression shows as this test's failure, not a hung test run; the
    limit is a guard against a hang, far above the time the linear patterns need.
    """
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", HOSTILE_TEXT], capture_output=True, text=True,
                          timeout=120, check=True)
    assert proc.stdout.strip() == "done"


def test_long_texts_are_not_remembered() -> None:
    """Only short texts enter the detectors' caches: long values never make them grow."""
    from hipaa_audit.phi import patterns

    before = patterns._cached_safe_harbor_counts.cache_info().currsize
    words = patterns._cached_words_of.cache_info().currsize
    for i in range(50):
        text = f"note {i} " + "x" * (patterns.MAX_CACHED + 1)
        assert patterns.safe_harbor_counts(text) == ()
        assert f"{i}" in patterns.words_of(text)
    assert patterns._cached_safe_harbor_counts.cache_info().currsize == before
    assert patterns._cached_words_of.cache_info().currsize == words
    assert patterns.safe_harbor_counts("call 555-123-4567") == (("phone", 1),)


def test_json_nested_past_the_parser_is_read_as_text() -> None:
    deep = b'{"resourceType": "Bundle", "entry": ' + b"[" * 200_000
    result = analyse(deep[:65536])
    assert result is not None and result.kinds == {}


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        # CMS MBI format, with and without the dashes printed on the card
        ("Medicare: 1EG4-TE5-MK73", "mbi"),
        ("1EG4TE5MK73", "mbi"),
        ("Medicare claim number 123-45-6789A", "hicn"),
        ("HICN: 123456789B1", "hicn"),
        ("NPI: 1234567893", "npi"),  # the Luhn check digit with the 80840 prefix
        ("DEA # AB1234563", "dea"),  # (1+3+5) + 2*(2+4+6) = 33: check digit 3
        ("Member ID: XYZ123456789", "health-plan"),
        ("subscriber no. W2345678901", "health-plan"),
        ("Policy #: 00412-55871", "health-plan"),
    ],
)
def test_health_identifiers_with_context(text: str, kind: str) -> None:
    """Issue 17 item 1: Medicare MBI and HICN, NPI, DEA and health-plan ids are recognised."""
    from hipaa_audit.phi.patterns import safe_harbor_kinds

    assert safe_harbor_kinds(text).get(kind) == 1, safe_harbor_kinds(text)


@pytest.mark.parametrize(
    "text",
    [
        "1eg4te5mk73",  # MBIs are upper case
        "1SG4TE5MK73",  # S is never an MBI letter
        "123456789A",  # a HICN's digits need their context word
        "NPI: 1234567890",  # wrong check digit
        "1234567893",  # a bare ten-digit number is no NPI
        "DEA AB1234564",  # wrong check digit
        "AB1234563",  # no context word
        "policy number 5",
        "member of the team since 2019",
    ],
)
def test_health_identifiers_need_their_shape_and_context(text: str) -> None:
    from hipaa_audit.phi.patterns import safe_harbor_kinds

    kinds = safe_harbor_kinds(text)
    assert not kinds.keys() & {"mbi", "hicn", "npi", "dea", "health-plan"}, kinds


def test_a_roster_of_prescribers_is_not_phi() -> None:
    """NPI and DEA numbers identify clinicians: with their names they are no patient's PHI."""
    roster = ("name,npi,dea\nAaron Attend,1234567893,AB1234563\n"
              "Bonnie Myler,1245319599,BM7654329\n")
    result = analyse(roster.encode())
    assert result is not None and result.format == "csv" and result.kinds == {}
    with_patient = roster.replace("name,", "patient ssn,").replace("Aaron Attend", "219-09-9999")
    result = analyse(with_patient.replace("Bonnie Myler", "219-09-9998").encode())
    assert result is not None and result.kinds == {"dea": 2, "npi": 2, "ssn": 2}, result


def test_hl7_batch_files_are_read_to_their_pid_segments() -> None:
    """Issue 17 item 1: FHS/BHS batches, with LF or CRLF between segments."""
    batch = ["FHS|^~\\&|ADT1|GHH", "BHS|^~\\&|ADT1|GHH",
             "MSH|^~\\&|ADT1|GHH|||2007||ADT^A01|1|P|2.5.1",
             "PID|1||4471902^^^GHH^MR||Whitmore^Eleanor||19610427|F", "BTS|1", "FTS|1"]
    for sep in ("\r", "\n", "\r\n"):
        result = analyse(sep.join(batch).encode())
        assert result is not None and result.format == "hl7v2", result
        assert result.kinds == {"birth-date": 1, "mrn": 1, "name": 1}


def test_utf16_and_unknown_headers() -> None:
    """Excel "Unicode text" (UTF-16LE with BOM, tabs) is read; cells under unknown headers
    are pattern-checked; header words such as ``Pt MRN#`` name their column."""
    import codecs

    tsv = "Patient Name\tDOB\tMRN\r\nWhitmore, Eleanor\t04/27/1961\t4471902\r\n"
    result = analyse(codecs.BOM_UTF16_LE + tsv.encode("utf-16-le"))
    assert result is not None and result.kinds == {"birth-date": 1, "mrn": 1, "name": 1}
    odd = "Ref,Tax,Notes\nMRN 4471902,219-09-9999,ok\nMRN 4471903,219-09-9998,ok\n"
    result = analyse(odd.encode())
    assert result is not None and result.kinds == {"mrn": 2, "ssn": 2}, result
    worded = "Pt MRN#,Visit\n4471902,1\n4471903,2\n"
    result = analyse(worded.encode())
    assert result is not None and result.kinds == {"mrn": 2}, result


HOSTILE_IDS = """
from hipaa_audit.phi.patterns import safe_harbor_counts

n = 128 * 1024
for text in ("npi" + " " * n, "member id" + " :" * n, "1EG4-" * n, "medicare claim " * n,
             "dea " + "a9" * n, "policy no. " + "a" * n):
    safe_harbor_counts(text)
print("done")
"""


def test_identifier_patterns_cost_linear_time() -> None:
    """The context patterns bound their gaps: long runs of blanks or cues cost linear time."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", HOSTILE_IDS], capture_output=True, text=True,
                          timeout=120, check=True)
    assert proc.stdout.strip() == "done"
