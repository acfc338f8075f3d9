"""The TLS checks no peer of the main estate trips: each fires here, from a real peer when the
OpenSSL of this machine can serve the weakness, from the observation the rule reads otherwise.

Real peers (``fixtures/netpeers.py``): an ``openssl s_server`` whose groups add P-521 (outside
the Mozilla profiles), and a Python HTTPS server (TLS 1.2) without the Extended Master Secret
extension that honours client-initiated renegotiation. Neither staples an OCSP response. They
are scanned once, by the CLI, as a user would.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import ROOT, by_asset, run_cli
from helpers import NOW, tls

from hipaa_audit.catalog import load_catalog
from hipaa_audit.network.collect import ProbeOptions
from hipaa_audit.network.observation import Observation
from hipaa_audit.network.policy import load_policies
from hipaa_audit.network.rules import judge
from hipaa_audit.network.targets import Target

sys.path.insert(0, str(ROOT / "fixtures"))
import netpeers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("netfires")
    certs = netpeers.make_certs(folder / "certs")
    with netpeers.Peers(folder) as peers:
        groups = peers.start("extra_groups", netpeers.extra_groups, certs)
        weak = peers.start("https_weak_tls12", netpeers.https_server, certs,
                           netpeers.HSTS_GOOD, weak_tls12=True)
        res = run_cli("scan", "network", "--format", "json", "--policy", "mozilla-intermediate",
                      "--ca-bundle", str(certs.ca_crt), "--deadline", "120",
                      groups.target, weak.target, timeout=400)
    assert res.stdout.strip().startswith("{"), res.stderr
    doc = json.loads(res.stdout)
    found = by_asset(doc)
    yield {"groups": found.get(groups.target, []), "weak": found.get(weak.target, []),
           "coverage": {c["check_id"]: c for c in doc["coverage"]}}


def failed(found: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f["check_id"]: f for f in found if f["status"] == "fail"}


def test_a_group_outside_the_profile(scanned: dict[str, Any]) -> None:
    found = failed(scanned["groups"])
    curve = found["tls-curve-outside-policy"]
    assert curve["severity"] == "low"
    assert curve["locations"][0]["value"] == ["secp521r1"]
    assert curve["locations"][0]["policy"] == "mozilla-intermediate"
    # the same endpoint is otherwise a good one: nothing else about its groups or suites
    assert not {"tls-weak-key-exchange", "tls-broken-cipher"} & set(found)
    assert not [f for f in scanned["groups"] if f["status"] == "error"]


def test_no_ocsp_response_is_stapled(scanned: dict[str, Any]) -> None:
    for name in ("groups", "weak"):
        stapling = failed(scanned[name])["tls-no-ocsp-stapling"]
        assert stapling["severity"] == "info"
        assert stapling["locations"][0]["setting"] == "status_request"
    assert scanned["coverage"]["tls-no-ocsp-stapling"]["failed"] == 2


def test_no_extended_master_secret(scanned: dict[str, Any]) -> None:
    found = failed(scanned["weak"])
    assert found["tls-no-extended-master-secret"]["severity"] == "low"
    assert "tls-no-extended-master-secret" not in failed(scanned["groups"])
    cov = scanned["coverage"]["tls-no-extended-master-secret"]
    assert (cov["evaluated"], cov["failed"], cov["errors"]) == (2, 1, 0)


def test_client_initiated_renegotiation(scanned: dict[str, Any]) -> None:
    reneg = failed(scanned["weak"])["tls-insecure-renegotiation"]
    assert reneg["severity"] == "high"
    assert "client-initiated renegotiation" in reneg["message"]
    assert "tls-insecure-renegotiation" not in failed(scanned["groups"])
    assert not [f for f in scanned["weak"] if f["status"] == "error"]


# The OpenSSL 3.0 of this machine cannot serve the next four weaknesses: it is built without
# zlib (no TLS compression: ``openssl list -disabled`` shows ZLIB), it always answers
# TLS_FALLBACK_SCSV (RFC 7507; no switch turns that off), it was never vulnerable to CCS
# injection (CVE-2014-0224, fixed in 1.0.1h), and its RSA decryption gives no Bleichenbacher
# oracle (ROBOT). The tests give the rules the observation sslyze reports for such a server:
# the rules are pure, so this is the rule as the scan runs it.

def judged(**kw: Any) -> tuple[dict[str, str], dict[str, list[int]]]:
    obs = Observation(Target("tls", "pacs.example.org", 443), "tls", reachable="open",
                      speaks="tls", tls=tls(**kw))
    j = judge(obs, load_policies()["nist-800-52r2"], load_catalog(), ProbeOptions(), now=NOW)
    return ({f.check_id: f.severity.value for f in j.result.findings},
            j.result.coverage.counts)


def test_tls_compression() -> None:
    found, counts = judged(compression=True)
    assert found.get("tls-compression") == "high"
    assert counts["tls-compression"] == [1, 1, 0]
    assert "tls-compression" not in judged(compression=False)[0]


def test_ccs_injection() -> None:
    found, counts = judged(ccs_injection=True)
    assert found.get("tls-ccs-injection") == "critical"
    assert counts["tls-ccs-injection"] == [1, 1, 0]
    assert "tls-ccs-injection" not in judged(ccs_injection=False)[0]


def test_no_fallback_scsv() -> None:
    found, counts = judged(fallback_scsv=False)
    assert found.get("tls-no-fallback-scsv") == "low"
    assert counts["tls-no-fallback-scsv"] == [1, 1, 0]
    # TLS 1.3 alone needs no SCSV: the check does not apply, it records nothing
    only13 = {"SSLv2": False, "SSLv3": False, "TLSv1.0": False, "TLSv1.1": False,
              "TLSv1.2": False, "TLSv1.3": True}
    found, counts = judged(fallback_scsv=False, versions=only13)
    assert "tls-no-fallback-scsv" not in found and "tls-no-fallback-scsv" not in counts


def test_robot() -> None:
    found, counts = judged(robot="VULNERABLE_STRONG_ORACLE")
    assert found.get("tls-robot") == "critical"
    assert counts["tls-robot"] == [1, 1, 0]
    assert "tls-robot" not in judged(robot="NOT_VULNERABLE_NO_ORACLE")[0]
