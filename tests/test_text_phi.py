"""PHI in plaintext exports: CSV, HL7 v2, FHIR, notes; and what is not PHI."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import run_cli
from test_fixtures import load_generator
from test_phi_never_leaves import leaks

from hipaa_audit.phi.text import analyse

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
