"""The HIPAA rule data the package ships.

Security Rule standards and specifications, BAA provisions, NIST SP 800-30 tables, and the
Privacy Rule de-identification standard.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def security_rule_data() -> dict[str, Any]:
    """Return the packaged ``hipaa_security_rule.json`` (164.308-316, 164.504(e), NIST tables)."""
    text = resources.files("hipaa_audit.data").joinpath("hipaa_security_rule.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


@cache
def deidentification_data() -> dict[str, Any]:
    """Return the packaged Privacy Rule de-identification rows (164.514(a)-(c))."""
    path = resources.files("hipaa_audit.data").joinpath("hipaa_privacy_deidentification.json")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@cache
def known_citations() -> frozenset[str]:
    """Return every citation a check may name: Security Rule, BAA provisions, 164.514."""
    rule = security_rule_data()
    cites = {row["citation"] for row in rule["security_rule"]}
    cites.update(row["citation"] for row in rule["baa_required_provisions_164_504e"])
    cites.update(row["citation"] for row in deidentification_data()["deidentification"])
    return frozenset(cites)
