"""The catalog: shipped checks validate, and bad entries are refused with a clear reason."""

from __future__ import annotations

import json

import pytest

from hipaa_audit.catalog import CatalogError, load_catalog, parse_catalog_file
from hipaa_audit.hipaa import known_citations
from hipaa_audit.model import Category

pytestmark = pytest.mark.unit

GOOD = """
[[check]]
id = "demo-check"
scanner = "archive"
title = "A demo check"
category = "residual-identifier"
severity = "high"
likelihood = "Moderate"
impact = "High"
hipaa = ["164.312(a)(1)"]
description = "A description long enough."
remediation = "A remediation long enough."
"""


def test_shipped_catalog_is_valid() -> None:
    catalog = load_catalog()
    assert len(catalog) >= 10
    for check in catalog.values():
        assert check.category in Category
        assert set(check.hipaa) <= known_citations()


def test_a_good_entry_parses() -> None:
    (check,) = parse_catalog_file("demo.toml", GOOD)
    assert check.id == "demo-check"
    assert check.category is Category.RESIDUAL_IDENTIFIER


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        ('category = "residual-identifier"', 'category = "scary-stuff"', "category"),
        ('hipaa = ["164.312(a)(1)"]', 'hipaa = ["164.999(z)"]', "164.999(z)"),
        ('hipaa = ["164.312(a)(1)"]', "hipaa = []", "hipaa"),
        ('severity = "high"', 'severity = "urgent"', "severity"),
        ('likelihood = "Moderate"', 'likelihood = "Sometimes"', "likelihood"),
        ('id = "demo-check"', 'id = "Demo Check"', "id"),
        ('title = "A demo check"', 'title = "A demo check"\nsurprise = 1', "surprise"),
    ],
)
def test_bad_entries_are_refused(old: str, new: str, complaint: str) -> None:
    with pytest.raises(CatalogError) as info:
        parse_catalog_file("demo.toml", GOOD.replace(old, new))
    message = str(info.value)
    assert "demo.toml" in message
    assert complaint in message


def test_duplicate_ids_are_refused() -> None:
    from hipaa_audit.catalog import Catalog

    (check,) = parse_catalog_file("demo.toml", GOOD)
    with pytest.raises(CatalogError, match="twice"):
        Catalog([check, check])


def test_every_security_rule_citation_is_known() -> None:
    cites = known_citations()
    for c in ("164.308(a)(1)(ii)(A)", "164.312(e)(2)(ii)", "164.316(b)(2)(i)",
              "164.514(b)(2)(i)(A)", "164.514(b)(2)(i)(R)"):
        assert c in cites
    assert "164.312(z)" not in cites


def test_checks_list_json_and_table(cli) -> None:  # type: ignore[no-untyped-def]
    out = cli("checks", "list", "--format", "json")
    assert out.code == 0, out.stderr
    rows = json.loads(out.stdout)["checks"]
    ids = {r["id"] for r in rows}
    assert "dicom-residual-identifier" in ids
    for r in rows:
        assert set(r) >= {"id", "title", "category", "severity", "likelihood", "impact",
                          "hipaa", "description", "remediation", "references"}
    table = cli("checks", "list")
    assert table.code == 0
    assert "dicom-residual-identifier" in table.stdout
