"""The network scanner's pure parts without a network: targets, policies, rules and grades."""

from __future__ import annotations

import pytest
from helpers import ECDHE, NOW, TLS13, cert, tls

from hipaa_audit.catalog import load_catalog
from hipaa_audit.network.collect import ProbeOptions
from hipaa_audit.network.grade import grade
from hipaa_audit.network.observation import (
    DicomProbe,
    HttpProbe,
    Observation,
    Suite,
    TlsObservation,
)
from hipaa_audit.network.policy import load_policies
from hipaa_audit.network.probes import parse_hsts
from hipaa_audit.network.rules import judge
from hipaa_audit.network.targets import Target, TargetError, parse_target

pytestmark = pytest.mark.unit

@pytest.mark.parametrize("text, url", [
    ("https://Portal.Example.org", "https://portal.example.org:443"),
    ("dicom://ct1:11112", "dicom://ct1:11112"),
    ("dicom+tls://pacs", "dicom+tls://pacs:2762"),
    ("http://[::1]:8080/viewer", "http://[::1]:8080"),
    ("10.0.0.5:104", "10.0.0.5:104"),
])
def test_targets_parse(text: str, url: str) -> None:
    assert parse_target(text).url == url


def test_every_policy_loads_and_cites_its_source() -> None:
    policies = load_policies()
    assert set(policies) == {"nist-800-52r2", "mozilla-intermediate", "mozilla-modern",
                             "dicom-bcp195"}
    assert "TLS_CHACHA20_POLY1305_SHA256" not in (policies["nist-800-52r2"].tls13_suites or ())
    assert not any(s.startswith("TLS_DHE_")
                   for s in policies["mozilla-intermediate"].tls12_suites or ())
    assert policies["dicom-bcp195"].cite("versions").startswith("DICOM PS3.15 Annex B B.10")


def judged(t: TlsObservation | None = None, kind: str = "https", policy: str = "nist-800-52r2",
           **obs_kw: object) -> tuple[set[tuple[str, str]], dict[str, object]]:
    obs = Observation(Target(kind, "portal.example.org", 443), kind, reachable="open",
                      speaks="tls", tls=t, alive_after=True)
    for k, v in obs_kw.items():
        setattr(obs, k, v)
    j = judge(obs, load_policies()[policy], load_catalog(), ProbeOptions(), now=NOW)
    return {(f.check_id, f.severity.value) for f in j.result.findings}, j.summary


def test_a_good_https_endpoint_passes_and_gets_a_plus() -> None:
    found, summary = judged(tls(), policy="mozilla-intermediate")
    assert found == set()
    assert summary["grade"] == "A+"


@pytest.mark.parametrize("change, expected, letter", [
    ({"versions": {"SSLv2": False, "SSLv3": True, "TLSv1.0": True, "TLSv1.1": False,
                   "TLSv1.2": True, "TLSv1.3": False}},
     # the weakness is SSL 3.0 and TLS 1.0 (their own checks); TLS 1.2 without 1.3 deviates
     {("tls-ssl-protocol", "critical"), ("tls-legacy-protocol", "high"),
      ("tls-required-protocol-missing", "low")}, "B"),
    ({"heartbleed": True}, {("tls-heartbleed", "critical")}, "F"),
    ({"hsts": None}, {("https-hsts-missing", "high")}, "A-"),
    ({"hsts": {"max_age": 600, "include_subdomains": False, "preload": False}},
     {("https-hsts-weak", "medium"), ("https-hsts-weak", "info")}, "A-"),
    ({"cert": cert(not_after="2026-12-01T00:00:00Z")}, {("cert-expiring-soon", "medium")}, "A+"),
    ({"cert": cert(not_after="2026-01-01T00:00:00Z",
                   validation={"Mozilla": "validation failed: cert is not valid at the "
                               "requested time"})}, {("cert-expired", "critical")}, "T"),
    ({"cert": cert(hostname_ok=False)}, {("cert-hostname-mismatch", "high")}, "M"),
    ({"cert": cert(key_size=1024, signature_hash="sha1",
                   signature_algorithm="sha1WithRSAEncryption")},
     {("cert-weak-key", "high"), ("cert-weak-signature", "high")}, "T"),
    ({"cert": cert(key_size=512)}, {("cert-weak-key", "critical")}, "F"),
    ({"suites": {"TLSv1.2": [Suite("TLS_RSA_WITH_AES_128_CBC_SHA", "AES128-SHA", 128, False)],
                 "TLSv1.3": [TLS13]}},
     {("tls-no-forward-secrecy", "high"), ("tls-cbc-cipher", "medium"),
      ("tls-cipher-outside-policy", "medium")}, "A+"),  # TLS 1.3 gives modern clients FS
    ({"suites": {"TLSv1.2": [Suite("TLS_DH_anon_WITH_AES_128_CBC_SHA", "ADH-AES128-SHA", 128,
                                   True, "DH", 1024)], "TLSv1.3": [TLS13]}},
     {("tls-broken-cipher", "critical"), ("tls-weak-key-exchange", "high")}, "F"),
])
def test_each_weakness_is_one_finding(change: dict[str, object],
                                      expected: set[tuple[str, str]], letter: str) -> None:
    found, summary = judged(tls(**change))
    assert found == expected
    assert summary["grade"] == letter


def test_self_signed_certificate_is_untrusted() -> None:
    found, summary = judged(tls(cert=cert(self_signed=True, validation={
        "Mozilla": "validation failed: candidates exhausted"})))
    assert ("cert-untrusted", "high") in found and summary["grade"] == "T"


def test_strict_rfc5280_failure_is_told_apart() -> None:
    found, _ = judged(tls(cert=cert(validation={
        "Mozilla": "validation failed: invalid extension: 2.5.29.35"})))
    assert ("cert-untrusted", "medium") in found


def test_failed_commands_are_errors_never_passes() -> None:
    obs = tls(robot=None, errors={"robot": "client certificate needed"})
    found, _ = judged(obs)
    assert ("network-target-unverifiable", "medium") in found
    obs_all = Observation(Target("tls", "h", 443), "tls", reachable="open", speaks="tls", tls=obs)
    j = judge(obs_all, load_policies()["nist-800-52r2"], load_catalog(), ProbeOptions(), now=NOW)
    assert j.result.coverage.counts["tls-robot"] == [1, 0, 1]  # run, undecided: an error


def test_plaintext_dicom_and_http() -> None:
    found, _ = judged(None, kind="dicom", dicom=DicomProbe("rejected", False), speaks="plain")
    assert found == {("dicom-plaintext", "critical")}
    found, _ = judged(None, kind="http", http=HttpProbe(404), speaks="plain")
    assert found == {("http-plaintext", "high")}
    found, summary = judged(None, kind="http", speaks="plain",
                            http=HttpProbe(301, "https://portal.example.org/"),
                            redirect_hsts=HttpProbe(200, hsts=parse_hsts("max-age=31536000")))
    assert found == {("https-hsts-weak", "info")} and summary["state"] == "redirect"


def test_stopped_answering_and_deadline() -> None:
    found, _ = judged(tls(), alive_after=False, deadline_hit=True, stage="scanning TLS")
    assert ("network-endpoint-stopped-answering", "high") in found
    assert ("network-target-unverifiable", "medium") in found


def test_hsts_header_parsing() -> None:
    assert parse_hsts('max-age="31536000"; includeSubDomains; preload') == {
        "max_age": 31536000, "include_subdomains": True, "preload": True}


def test_grade_without_tls13_is_a_minus() -> None:
    t = tls(versions={"SSLv2": False, "SSLv3": False, "TLSv1.0": False, "TLSv1.1": False,
                      "TLSv1.2": True, "TLSv1.3": False})
    g = grade(t, https=True, hostname_ok=True, trusted=True, expired=False)
    assert g is not None and g.letter == "A-" and "no TLS 1.3" in g.caps


def test_bad_target_message() -> None:
    with pytest.raises(TargetError, match="a port is required"):
        parse_target("tls://host")


def test_a_plaintext_scheme_that_speaks_tls_is_said_so() -> None:
    found, summary = judged(None, kind="http", speaks="tls",
                            http=HttpProbe(None, detail="no HTTP answer (SSLError)"))
    assert found == {("network-target-unverifiable", "medium")}
    assert summary["notes"] == ["speaks TLS: list as https://"]


def test_a_pass_is_not_counted_when_a_version_went_untested() -> None:
    t = tls(errors={"tls_1_0_cipher_suites": "connectivity issue"})
    del t.versions["TLSv1.0"]
    obs = Observation(Target("tls", "h", 443), "tls", reachable="open", speaks="tls", tls=t)
    j = judge(obs, load_policies()["nist-800-52r2"], load_catalog(), ProbeOptions(), now=NOW)
    assert j.result.coverage.counts["tls-broken-cipher"] == [1, 0, 1]
    assert j.result.coverage.counts["tls-legacy-protocol"] == [1, 0, 1]


def test_validation_errors_do_not_quote_the_certificate() -> None:
    from hipaa_audit.network.tlsscan import _validation_error

    text = _validation_error("validation failed: basicConstraints.cA must not be asserted in "
                             "an EE certificate (encountered processing <Certificate(subject="
                             "<Name(CN=Dr Jane Doe)>, ...)>)")
    assert "Jane" not in text and text.startswith("validation failed: basicConstraints")


CHACHA = Suite("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA-CHACHA20-POLY1305", 256,
               False, "ECDH", 253, "X25519")
NO_TLS = {"SSLv2": False, "SSLv3": False, "TLSv1.0": False, "TLSv1.1": False}


@pytest.mark.parametrize("policy", ["nist-800-52r2", "dicom-bcp195", "mozilla-intermediate"])
def test_a_tls13_only_server_is_a_low_deviation_never_high(policy: str) -> None:
    found, summary = judged(tls(versions={**NO_TLS, "TLSv1.2": False, "TLSv1.3": True},
                                suites={"TLSv1.3": [TLS13]}), policy=policy)
    assert found == {("tls-required-protocol-missing", "low")}
    assert summary["grade"] == "A+"


def test_a_chacha20_tls12_server_deviates_from_nist_without_weakness() -> None:
    t = tls(versions={**NO_TLS, "TLSv1.2": True, "TLSv1.3": False}, suites={"TLSv1.2": [CHACHA]})
    found, _ = judged(t)
    assert found == {("tls-cipher-outside-policy", "low"), ("tls-required-protocol-missing", "low")}
    found, _ = judged(t, policy="dicom-bcp195")  # RFC 9325 accepts CHACHA20-POLY1305
    assert found == {("tls-required-protocol-missing", "low")}


def test_outside_policy_suites_are_split_into_weak_and_deviation() -> None:
    cbc = Suite("TLS_ECDHE_RSA_WITH_CAMELLIA_128_CBC_SHA256", "ECDHE-RSA-CAMELLIA128-SHA256",
                128, False, "ECDH", 253, "X25519")
    obs = Observation(Target("https", "portal.example.org", 443), "https", reachable="open",
                      speaks="tls", alive_after=True,
                      tls=tls(suites={"TLSv1.2": [ECDHE, CHACHA, cbc], "TLSv1.3": [TLS13]}))
    j = judge(obs, load_policies()["nist-800-52r2"], load_catalog(), ProbeOptions(), now=NOW)
    outside = {f.severity.value: [loc.get("suite") for loc in f.locations]
               for f in j.result.findings if f.check_id == "tls-cipher-outside-policy"}
    assert outside == {"medium": ["TLS_ECDHE_RSA_WITH_CAMELLIA_128_CBC_SHA256"],
                       "low": ["TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"]}
    assert j.result.coverage.counts["tls-cipher-outside-policy"][:2] == [1, 1]


def test_tls12_and_an_rsa_2048_certificate_under_mozilla_modern_are_deviations() -> None:
    found, _ = judged(tls(), policy="mozilla-modern")
    assert ("tls-legacy-protocol", "low") in found
    assert ("cert-weak-key", "low") in found  # RSA 2048 is 112-bit; modern lists ECDSA only
    assert {sev for _check, sev in found} <= {"low", "info"}, found
    # a weak key of an unlisted type stays a weakness
    found, _ = judged(tls(cert=cert(key_size=1536)), policy="mozilla-modern")
    assert ("cert-weak-key", "high") in found and ("cert-weak-key", "medium") in found


def test_missing_both_modern_versions_is_still_high() -> None:
    found, _ = judged(tls(versions={**NO_TLS, "TLSv1.1": True, "TLSv1.2": False,
                                    "TLSv1.3": False},
                          suites={"TLSv1.1": [Suite("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
                                                    "ECDHE-RSA-AES128-SHA", 128, False, "ECDH",
                                                    253)]}))
    assert ("tls-required-protocol-missing", "high") in found
