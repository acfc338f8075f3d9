"""The network rules: pure functions from an :class:`Observation` to findings and a summary.

Thresholds come from the selected TLS policy (``checks/tls_policies.toml``) and the catalog's
``params``; every TLS finding names the policy clause it breaks. Coverage is counted per check:
a check whose sslyze command failed is an error on that check, never a pass.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Unpack

from hipaa_audit.catalog import Catalog
from hipaa_audit.evidence import (
    CipherSuite,
    EndpointDraft,
    EndpointSetting,
    EndpointSummary,
    Hsts,
    ProbeStage,
    ProtocolVersion,
)
from hipaa_audit.model import AssetResult, Location, Severity, Status
from hipaa_audit.network.collect import ProbeOptions
from hipaa_audit.network.grade import grade
from hipaa_audit.network.observation import (
    NEEDS_CLIENT_CERT,
    CertInfo,
    Observation,
    Suite,
    TlsObservation,
)
from hipaa_audit.network.policy import VERSIONS, Policy

UNVERIFIABLE = "network-target-unverifiable"
AEAD_MARKERS = ("GCM", "CCM", "CHACHA20")
CURVE_ALIASES = {"prime256v1": "secp256r1", "x25519": "X25519", "x448": "X448"}
#: check → the sslyze commands whose results it reads
NEEDS: dict[str, tuple[str, ...]] = {
    "tls-ssl-protocol": ("ssl_2_0_cipher_suites", "ssl_3_0_cipher_suites"),
    "tls-legacy-protocol": ("tls_1_0_cipher_suites", "tls_1_1_cipher_suites"),
    "tls-required-protocol-missing": ("tls_1_2_cipher_suites", "tls_1_3_cipher_suites"),
    "tls-heartbleed": ("heartbleed",),
    "tls-ccs-injection": ("openssl_ccs_injection",),
    "tls-robot": ("robot",),
    "tls-insecure-renegotiation": ("session_renegotiation",),
    "tls-compression": ("tls_compression",),
    "tls-no-fallback-scsv": ("tls_fallback_scsv",),
    "tls-no-extended-master-secret": ("tls_extended_master_secret",),
    "tls-curve-outside-policy": ("elliptic_curves",),
    "https-hsts-missing": ("http_headers",),
    "https-hsts-weak": ("http_headers",),
}
CERT_CHECKS = ("cert-expired", "cert-expiring-soon", "cert-untrusted", "cert-hostname-mismatch",
               "cert-weak-key", "cert-weak-signature", "cert-long-lifetime",
               "tls-no-ocsp-stapling")
SUITE_CHECKS = ("tls-broken-cipher", "tls-no-forward-secrecy", "tls-cbc-cipher",
                "tls-cipher-outside-policy", "tls-weak-key-exchange")


@dataclass(slots=True)
class Judged:
    """The findings of one endpoint and its summary row for the reports."""

    result: AssetResult
    summary: EndpointSummary


class _Verdicts:
    """Collects findings and per-check coverage for one asset."""

    def __init__(self, asset: str, catalog: Catalog, policy: Policy) -> None:
        self.asset, self.catalog, self.policy = asset, catalog, policy
        self.result = AssetResult(asset)

    def fail(self, check_id: str, message: str, *, key: str = "",
             severity: Severity | None = None, topic: str | None = None,
             **where: Unpack[EndpointSetting]) -> None:
        if topic is not None:
            where.setdefault("clause", self.policy.cite(topic))
            where.setdefault("policy", self.policy.name)
        self.add(check_id, message, (Location.of(**where),) if where else (),
                 severity=severity, key=key)

    def add(self, check_id: str, message: str, locations: tuple[Location, ...], *,
            severity: Severity | None = None, key: str = "") -> None:
        self.result.findings.append(self.catalog[check_id].finding(
            self.asset, message, severity=severity, key=key, locations=locations))
        self.result.coverage.record(check_id, "fail")

    def passed(self, *check_ids: str) -> None:
        for check_id in check_ids:
            self.result.coverage.record(check_id, "pass")

    def error(self, check_id: str) -> None:
        self.result.coverage.record(check_id, "error")

    def fail_version(self, check_id: str, message: str, version: str, *,
                     severity: Severity | None = None) -> None:
        """A protocol version offered or missing, against the policy's ``versions`` clause."""
        self.add(check_id, message, (Location.of_evidence(ProtocolVersion(
            protocol=version, clause=self.policy.cite("versions"), policy=self.policy.name)),),
            severity=severity, key=version)

    def unverifiable(self, message: str, key: str,
                     where: EndpointSetting | ProbeStage | None = None) -> None:
        check = self.catalog[UNVERIFIABLE]
        self.result.findings.append(check.finding(
            self.asset, message, status=Status.ERROR, key=key,
            locations=(Location.of_evidence(where),) if where is not None else ()))
        self.result.coverage.record(UNVERIFIABLE, "error")

    def finish(self) -> AssetResult:
        """Return the asset's result.

        Its coverage holds one outcome per check: a failure found stands; otherwise a check
        that any command it needs could not run is an error, never a pass.
        """
        self.result.stats["endpoints"] = 1
        return self.result


def _sev(value: Any) -> Severity:
    return Severity(str(value))


def judge(obs: Observation, policy: Policy, catalog: Catalog, opts: ProbeOptions,
          now: dt.datetime | None = None) -> Judged:
    """Judge one observation against ``policy``; return findings, coverage and summary."""
    now = now or dt.datetime.now(dt.UTC)
    v = _Verdicts(obs.asset, catalog, policy)
    summary: EndpointDraft = {
        "asset": obs.asset, "target": obs.target.url, "kind": obs.kind, "policy": policy.name,
        "state": "unverifiable", "grade": None, "grade_notes": [], "versions": [],
        "certificate": None, "hsts": None, "client_auth": None, "dicom": None,
        "seconds": round(obs.seconds, 2), "alive_after": obs.alive_after, "notes": [],
    }
    _reachability(obs, v)
    _plaintext(obs, v, catalog, summary)
    if obs.tls is not None:
        summary["state"] = "tls"
        _tls(obs, obs.tls, v, policy, catalog, opts, now, summary)
    if obs.dicom is not None:
        summary["dicom"] = obs.dicom.outcome
    if obs.reachable == "open" and obs.alive_after is False:
        v.fail("network-endpoint-stopped-answering",
               "The endpoint accepted connections before the scan and refused or ignored them "
               "after it." + ("" if opts.gentle else " Rescan with --gentle once it is back."),
               setting="liveness after scan")
        summary["notes"].append("stopped answering during the scan")
    elif obs.alive_after:
        v.passed("network-endpoint-stopped-answering")
    if obs.deadline_hit:
        v.unverifiable(f"The probe was stopped at its deadline ({obs.seconds:.0f} s) while "
                       f"{obs.stage}; what it had seen until then is reported.", "deadline",
                       ProbeStage(stage=obs.stage))
        summary["notes"].append(f"deadline reached while {obs.stage}")
    if obs.error:
        v.unverifiable(f"The probe failed: {obs.error}.", "error")
    result = v.finish()
    counts: dict[str, int] = {}
    for f in result.findings:
        if f.status is Status.FAIL:
            counts[f.severity.value] = counts.get(f.severity.value, 0) + 1
    return Judged(result, {**summary, "findings": counts, "unverifiable": sum(
        f.status is Status.ERROR for f in result.findings)})


def _reachability(obs: Observation, v: _Verdicts) -> None:
    t = obs.target
    reasons = {
        "unresolvable": f"The name {t.host} does not resolve.",
        "refused": f"Port {t.port} is closed (connection refused).",
        "timeout": f"Port {t.port} did not answer a TCP connection (filtered, or the host is "
                   "down).",
        "error": f"The connection to port {t.port} failed.",
    }
    if obs.reachable in reasons:
        v.unverifiable(reasons[obs.reachable], "reach", EndpointSetting(setting=obs.reachable))
    elif obs.reachable == "open" and obs.speaks == "silent" and obs.tls is None \
            and (obs.http is None or obs.http.status is None) \
            and (obs.dicom is None or obs.dicom.outcome not in ("accepted", "rejected")):
        v.unverifiable(f"Port {t.port} accepts TCP connections but never answers "
                       "(no TLS handshake, no HTTP, no DICOM).", "reach",
                       EndpointSetting(setting="silent"))


def _plaintext(obs: Observation, v: _Verdicts, catalog: Catalog,
               summary: EndpointDraft) -> None:
    t = obs.target
    d = obs.dicom
    if d is not None and not d.tls:
        if d.outcome in ("accepted", "rejected"):
            summary["state"] = "plaintext"
            said = {"accepted": "accepted the association and answered C-ECHO"
                    if d.echo_status is not None else "accepted the association",
                    "rejected": "rejected the association, which proves a DICOM listener"}
            v.fail("dicom-plaintext",
                   f"Port {t.port} speaks DICOM without TLS: it {said[d.outcome]}. Images and "
                   "their identifiers sent to this node travel in clear.",
                   protocol="DICOM UL",
                   setting="A-ASSOCIATE-AC" if d.outcome == "accepted" else "A-ASSOCIATE-RJ")
        elif obs.kind == "dicom":
            v.passed("dicom-plaintext")
            _misnamed(obs, v, summary, "a DICOM association", d.detail)
    h = obs.http
    if obs.kind == "http" and h is not None and h.status is None:
        v.passed("http-plaintext")
        _misnamed(obs, v, summary, "an HTTP request", h.detail)
    if h is not None and h.status is not None:
        summary["state"] = "plaintext"
        if h.redirects_to_https:
            v.passed("http-plaintext")
            summary["state"] = "redirect"
            summary["notes"].append(f"redirects to {h.location}")
            _redirect_hsts(obs, v, summary)
        else:
            params = catalog["http-plaintext"].params
            content = 200 <= h.status < 300
            what = ("serves content" if content else f"answers HTTP {h.status}")
            where = (f" (the {t.kind}:// target answers in plaintext HTTP)"
                     if t.kind in ("https", "tls") else "")
            v.fail("http-plaintext",
                   f"Port {t.port} {what} over plaintext HTTP instead of redirecting to HTTPS"
                   f"{where}.",
                   severity=None if content else _sev(params["non_content_severity"]),
                   protocol="HTTP", setting=f"status {h.status}")
    if obs.kind == "probe" and obs.reachable == "open" and obs.speaks != "silent":
        v.unverifiable(f"Port {t.port} answers neither HTTP, TLS nor a DICOM association; its "
                       "protocol and transport security are unknown.", "kind")


#: a plaintext scheme → the scheme to list the endpoint under when it speaks TLS instead
TLS_SCHEME = {"dicom": "dicom+tls", "http": "https"}


def _misnamed(obs: Observation, v: _Verdicts, summary: EndpointDraft, what: str,
              detail: str) -> None:
    """A ``dicom://`` or ``http://`` target that did not answer in clear: say what it is."""
    t = obs.target
    if obs.speaks == "tls":
        scheme = TLS_SCHEME[obs.kind]
        v.unverifiable(f"Port {t.port} speaks TLS, not plaintext {obs.kind.upper()}: list it "
                       f"as {scheme}://{t.host}:{t.port} to check its TLS.", "kind")
        summary["notes"].append(f"speaks TLS: list as {scheme}://")
    elif obs.speaks != "silent":
        v.unverifiable(f"Port {t.port} did not answer {what} ({detail}).", "kind")


def _redirect_hsts(obs: Observation, v: _Verdicts, summary: EndpointDraft) -> None:
    r = obs.redirect_hsts
    h = obs.http
    assert h is not None
    if r is None or r.status is None:
        v.error("https-hsts-missing")
        v.unverifiable(f"The redirect target {h.location} did not answer over HTTPS "
                       f"({r.detail if r else 'not probed'}); its HSTS is unknown.", "redirect")
        return
    summary["hsts"] = r.hsts
    _hsts_verdict(r.hsts, v, where=f" at the redirect target {h.location}")


def _hsts_verdict(hsts: Hsts | None, v: _Verdicts, where: str = "") -> None:
    policy = v.policy
    if hsts is None:
        v.fail("https-hsts-missing", f"No Strict-Transport-Security header{where}.",
               topic="hsts", setting="Strict-Transport-Security")
        v.passed("https-hsts-weak")
        return
    v.passed("https-hsts-missing")
    age = hsts.get("max_age")
    failed = False
    if not isinstance(age, int) or age < policy.hsts_min_age:
        v.fail("https-hsts-weak", f"HSTS max-age is {age} s{where}; the policy asks for at "
               f"least {policy.hsts_min_age} s.", key="max-age", topic="hsts",
               setting="max-age", value=age)
        failed = True
    if not hsts.get("include_subdomains"):
        sev = _sev(v.catalog["https-hsts-weak"].params["no_subdomains_severity"])
        v.fail("https-hsts-weak", f"HSTS is sent without includeSubDomains{where}.",
               key="subdomains", severity=sev, topic="hsts", setting="includeSubDomains")
        failed = True
    if not failed:
        v.passed("https-hsts-weak")


def _tls(obs: Observation, tls: TlsObservation, v: _Verdicts, policy: Policy, catalog: Catalog,
         opts: ProbeOptions, now: dt.datetime, summary: EndpointDraft) -> None:
    untested = set(tls.errors) | {c for c, why in tls.skipped.items() if why == NEEDS_CLIENT_CERT}
    for check_id, commands in NEEDS.items():
        if untested & set(commands):
            v.error(check_id)
    _versions(tls, v, policy, catalog)
    _suites(tls, v, policy, catalog)
    _curves(tls, v, policy)
    _vulnerabilities(tls, v)
    cert = tls.cert
    if cert is None:
        for check_id in CERT_CHECKS:
            v.error(check_id)
    else:
        _certificate(cert, v, policy, catalog, now, bool(opts.ca_bundle))
    if obs.kind == "https":
        if tls.hsts_checked:
            _hsts_verdict(tls.hsts, v)
        summary["hsts"] = tls.hsts
    if obs.kind == "dicom+tls":
        if tls.client_auth == "DISABLED":
            expected = policy.client_auth_expected
            v.fail("dicom-tls-no-client-auth",
                   "The node accepts TLS clients without a certificate (no mutual TLS).",
                   severity=Severity.LOW if expected else None,
                   topic="client_auth" if expected else None, setting="client authentication")
        else:
            v.passed("dicom-tls-no-client-auth")
    problems = {**{c: why for c, why in tls.skipped.items() if why == NEEDS_CLIENT_CERT},
                **tls.errors}
    if problems:
        listed = [f"{c} ({why})" for c, why in sorted(problems.items())]
        hint = (" Give --client-cert and --client-key to complete them."
                if opts.client is None and any("client certificate" in why
                                               for why in problems.values()) else "")
        if set(problems) <= set(LEGACY_CLIENT_COMMANDS) and _chacha20_only(tls):
            hint += (" sslyze runs these tests with its legacy OpenSSL 1.0.2 client, which has "
                     "no CHACHA20-POLY1305 suite, and the endpoint accepts no other suite "
                     "below TLS 1.3.")
        v.unverifiable(f"{len(problems)} TLS test(s) could not be completed: "
                       f"{'; '.join(listed)}.{hint}", "tls-tests",
                       EndpointSetting(setting="incomplete TLS tests"))
    trusted = None if cert is None else chain_trusted(cert)
    expired = cert is not None and _expired(cert, now)
    g = grade(tls, https=obs.kind == "https", hostname_ok=cert.hostname_ok if cert else None,
              trusted=trusted, expired=expired)
    summary.update({
        "versions": [ver for ver in VERSIONS if tls.versions.get(ver)],
        "grade": g.letter if g else None,
        "score": g.score if g else None,
        "grade_notes": g.caps if g else [],
        "client_auth": tls.client_auth,
        "skipped": [f"{c} ({why})" for c, why in tls.skipped.items()],
        "certificate": None if cert is None else {
            "key": f"{cert.key_type.upper()} {cert.key_size}",
            "signature": cert.signature_algorithm, "not_after": cert.not_after,
            "days_left": _days_left(cert, now), "trusted": trusted,
            "self_signed": cert.self_signed, "hostname_ok": cert.hostname_ok,
        },
    })


def _versions(tls: TlsObservation, v: _Verdicts, policy: Policy, catalog: Catalog) -> None:
    supported = {ver for ver, ok in tls.versions.items() if ok}
    ssl = sorted(supported & {"SSLv2", "SSLv3"})
    for ver in ssl:
        v.fail_version("tls-ssl-protocol", f"{ver} is offered.", ver)
    if not ssl and {"SSLv2", "SSLv3"} <= set(tls.versions):
        v.passed("tls-ssl-protocol")
    legacy = [ver for ver in ("TLSv1.0", "TLSv1.1", "TLSv1.2")
              if ver in supported and ver in policy.versions_forbidden]
    deviation = _sev(catalog["tls-legacy-protocol"].params["tls12_severity"])
    for ver in legacy:
        # TLS 1.2 is not deprecated: a profile that forbids it (Mozilla modern) is stricter
        # than the crypto needs; its weak suites, if any, are reported by the suite checks
        sev = deviation if ver == "TLSv1.2" else None
        v.fail_version("tls-legacy-protocol", f"{ver} is offered; {policy.name} does not allow "
                       "it" + (" (a policy deviation: TLS 1.2 itself is not deprecated)."
                               if ver == "TLSv1.2" else "."), ver, severity=sev)
    if not legacy and {"TLSv1.0", "TLSv1.1"} <= set(tls.versions):
        v.passed("tls-legacy-protocol")
    missing = False
    params = catalog["tls-required-protocol-missing"].params
    modern = sorted({"TLSv1.2", "TLSv1.3"} & supported)
    for ver in policy.versions_required + policy.versions_recommended:
        if ver not in tls.versions:
            continue
        if ver not in supported:
            required = ver in policy.versions_required
            wants = "requires" if required else "recommends"
            if modern:
                # a weakness only when no TLS 1.2+ is offered at all; a server with TLS 1.2 or
                # 1.3 that lacks the other deviates from the profile without being weaker
                # (RFC 9325: TLS 1.2 and 1.3 are both secure; a 1.3-only server is stronger)
                level: Severity | None = _sev(params["deviation_severity"])
                text = (f"{ver} is not offered; {policy.name} {wants} it. A policy deviation, "
                        f"not a weakness: the endpoint offers {' and '.join(modern)}.")
            else:
                level = None
                text = (f"{ver} is not offered; {policy.name} {wants} it, and no TLS 1.2 or "
                        "1.3 is offered at all.")
            v.fail_version("tls-required-protocol-missing", text, ver, severity=level)
            missing = True
    if not missing:
        v.passed("tls-required-protocol-missing")


#: sslyze commands that use its legacy OpenSSL 1.0.2 client (no CHACHA20-POLY1305 there)
LEGACY_CLIENT_COMMANDS = ("session_renegotiation", "tls_compression")


def _chacha20_only(tls: TlsObservation) -> bool:
    below13 = [s for ver, s in _accepted(tls) if ver != "TLSv1.3"]
    return bool(below13) and all("CHACHA20" in s.name for s in below13)


def _accepted(tls: TlsObservation) -> Iterable[tuple[str, Suite]]:
    for ver in VERSIONS:
        if tls.versions.get(ver):
            for s in tls.suites.get(ver, []):
                yield ver, s


def _broken(s: Suite, markers: list[str], min_bits: int) -> bool:
    return s.anonymous or s.key_size < min_bits or any(m in s.name for m in markers)


def _suite_finding(v: _Verdicts, check_id: str, hits: list[tuple[str, Suite]], what: str,
                   severity: Severity | None = None, key: str = "") -> None:
    """One finding per check, every offending suite a location (a scan lists dozens)."""
    if not hits:
        v.passed(check_id)
        return
    names = [f"{s.name} ({ver})" for ver, s in hits]
    shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    v.add(check_id, f"{len(hits)} accepted suite(s) {what}: {shown}.",
          tuple(Location.of_evidence(CipherSuite(protocol=ver, suite=s.name, policy=v.policy.name,
                                                 clause=v.policy.cite("suites")))
                for ver, s in hits),
          severity=severity, key=key)


def sound_suite(ver: str, s: Suite) -> bool:
    """True for a suite that weakens nothing: any TLS 1.3 suite, or AEAD with ephemeral ECDHE/DHE.

    Such a suite outside a policy's list (e.g. CHACHA20-POLY1305 under NIST SP 800-52r2, whose
    list is FIPS-based) is a policy deviation, not a weakness. Broken suites and weak key
    exchange are judged by their own checks before this is asked.
    """
    if ver == "TLSv1.3":
        return True
    return s.kx_type is not None and any(m in s.name for m in AEAD_MARKERS) \
        and "_CBC_" not in s.name


def _suites(tls: TlsObservation, v: _Verdicts, policy: Policy, catalog: Catalog) -> None:
    tested = [ver for ver in VERSIONS if ver in tls.versions]
    if len(tested) < len(VERSIONS):
        for check_id in SUITE_CHECKS:
            v.error(check_id)
    accepted = list(_accepted(tls))
    bp = catalog["tls-broken-cipher"].params
    markers, min_bits = list(bp["broken_markers"]), int(bp["min_key_bits"])
    broken = [(ver, s) for ver, s in accepted if _broken(s, markers, min_bits)]
    bad = {(ver, s.name) for ver, s in broken}
    _suite_finding(v, "tls-broken-cipher", broken,
                   "give no or broken protection (NULL, anonymous, export, RC4, DES, "
                   f"3DES, MD5 or under {min_bits} bits)")
    pre13 = [(ver, s) for ver, s in accepted if ver != "TLSv1.3" and (ver, s.name) not in bad]
    _suite_finding(v, "tls-no-forward-secrecy", [(ver, s) for ver, s in pre13 if s.kx_type is None],
                   "use static key exchange (no forward secrecy)")
    has_aead = any(ver == "TLSv1.3" for ver, _ in accepted) or any(
        m in s.name for _, s in pre13 for m in AEAD_MARKERS)
    high = _sev(catalog["tls-cbc-cipher"].params["no_aead_severity"])
    _suite_finding(v, "tls-cbc-cipher", [(ver, s) for ver, s in pre13 if "_CBC_" in s.name],
                   "are CBC (non-AEAD)" + ("" if has_aead else "; no AEAD suite is offered"),
                   severity=None if has_aead else high)
    outside: list[tuple[str, Suite]] = []
    for ver, allow in (("TLSv1.2", policy.tls12_suites), ("TLSv1.3", policy.tls13_suites)):
        if allow is None or ver in policy.versions_forbidden or not tls.versions.get(ver):
            continue
        outside += [(ver, s) for s in tls.suites.get(ver, [])
                    if s.name not in allow and (ver, s.name) not in bad]
    sound = [(ver, s) for ver, s in outside if sound_suite(ver, s)]
    lacking = [(ver, s) for ver, s in outside if not sound_suite(ver, s)]
    if not lacking and not sound:
        v.passed("tls-cipher-outside-policy")
    if lacking:
        _suite_finding(v, "tls-cipher-outside-policy", lacking,
                       f"are not in the {policy.name} list and lack forward secrecy or AEAD",
                       key="weak")
    if sound:
        deviation = _sev(catalog["tls-cipher-outside-policy"].params["deviation_severity"])
        _suite_finding(v, "tls-cipher-outside-policy", sound,
                       f"are not in the {policy.name} list (a policy deviation: they are AEAD "
                       "with forward secrecy and weaken nothing)", severity=deviation,
                       key="deviation")
    dh_min = policy.dh_min or 2048
    ecdh_min = policy.ecdh_min or 256
    weak: dict[str, tuple[str, int]] = {}
    for ver, s in accepted:
        size = s.kx_bits
        if s.kx_type == "DH" and size < dh_min:
            weak[f"DH{size}"] = (ver, size)
        if s.kx_type == "ECDH" and size < ecdh_min:
            weak[f"ECDH{size}"] = (ver, size)
    for key, (ver, size) in sorted(weak.items()):
        kind = "DH group" if key.startswith("DH") else "elliptic curve"
        floor = dh_min if key.startswith("DH") else ecdh_min
        v.fail("tls-weak-key-exchange", f"A {size}-bit {kind} is negotiated (policy minimum "
               f"{floor} bits).", key=key, topic="key_exchange", protocol=ver,
               setting=key)
    v.passed("tls-weak-key-exchange")


def _curves(tls: TlsObservation, v: _Verdicts, policy: Policy) -> None:
    if policy.curves is None:
        return
    if tls.curves is None:
        v.error("tls-curve-outside-policy")
        return
    allowed = {CURVE_ALIASES.get(c, c) for c in policy.curves}
    extra = sorted({CURVE_ALIASES.get(c, c) for c in tls.curves} - allowed)
    if extra:
        v.fail("tls-curve-outside-policy", f"Groups outside {policy.name}: "
               f"{', '.join(extra)}.", topic="curves", setting="groups", value=extra)
    else:
        v.passed("tls-curve-outside-policy")


def _vulnerabilities(tls: TlsObservation, v: _Verdicts) -> None:
    checks: list[tuple[str, bool | None, str]] = [
        ("tls-heartbleed", tls.heartbleed, "The server answers Heartbleed probes with memory."),
        ("tls-ccs-injection", tls.ccs_injection, "The server accepts an early ChangeCipherSpec."),
        ("tls-compression", tls.compression, "The server accepts TLS compression."),
        ("tls-robot", None if tls.robot is None else tls.robot.startswith("VULNERABLE"),
         f"ROBOT: {tls.robot}."),
    ]
    if tls.secure_renegotiation is not None:
        insecure = not tls.secure_renegotiation or bool(tls.client_renegotiation)
        what = ("does not support secure renegotiation" if not tls.secure_renegotiation
                else "honours client-initiated renegotiation")
        checks.append(("tls-insecure-renegotiation", insecure, f"The server {what}."))
    supported = {ver for ver, ok in tls.versions.items() if ok}
    if tls.fallback_scsv is not None and supported - {"TLSv1.3"}:
        checks.append(("tls-no-fallback-scsv", not tls.fallback_scsv,
                       "Versions below TLS 1.3 are enabled without TLS_FALLBACK_SCSV."))
    if tls.ems is not None and supported & {"TLSv1.0", "TLSv1.1", "TLSv1.2"}:
        checks.append(("tls-no-extended-master-secret", not tls.ems,
                       "TLS 1.2 or older is enabled without the Extended Master Secret "
                       "extension."))
    for check_id, bad, message in checks:
        if bad is None:
            continue
        if bad:
            topic = "extensions" if check_id in ("tls-no-extended-master-secret",
                                                 "tls-insecure-renegotiation") else None
            v.fail(check_id, message, topic=topic, setting=check_id.removeprefix("tls-"))
        else:
            v.passed(check_id)


def _parse(ts: str) -> dt.datetime:
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))


def _expired(cert: CertInfo, now: dt.datetime) -> bool:
    return now > _parse(cert.not_after) or now < _parse(cert.not_before)


def _days_left(cert: CertInfo, now: dt.datetime) -> int:
    return (_parse(cert.not_after) - now).days


TIME_ERRORS = ("not valid at", "expired", "validity")
NAME_ERRORS = ("subjectaltname", "hostname", "no matching", "name mismatch")
STRICT_ERRORS = ("must not be asserted", "invalid extension", "extension", "aki", "ski",
                 "key identifier", "basicconstraints")


def _certificate(cert: CertInfo, v: _Verdicts, policy: Policy, catalog: Catalog,
                 now: dt.datetime, ca_given: bool) -> None:
    days = _days_left(cert, now)
    if _expired(cert, now):
        when = "expired" if now > _parse(cert.not_after) else "is not valid yet"
        v.fail("cert-expired", f"The certificate {when} (valid {cert.not_before[:10]} to "
               f"{cert.not_after[:10]}).", topic="certificate", setting="validity",
               value=cert.not_after)
        v.passed("cert-expiring-soon")
    else:
        v.passed("cert-expired")
        warn = int(catalog["cert-expiring-soon"].params["warn_days"])
        if days < warn:
            v.fail("cert-expiring-soon", f"The certificate expires in {days} day(s) "
                   f"({cert.not_after[:10]}).", setting="validity", value=cert.not_after)
        else:
            v.passed("cert-expiring-soon")
    _trust(cert, v, ca_given)
    if cert.hostname_ok is False:
        v.fail("cert-hostname-mismatch", f"{cert.hostname_used} is not among the "
               "certificate's subject alternative names.", topic="certificate",
               setting="subjectAltName")
    elif cert.hostname_ok is None:
        v.fail("cert-hostname-mismatch", "The certificate has no subject alternative names; "
               "clients that follow RFC 6125 cannot match it.", topic="certificate",
               setting="subjectAltName")
    else:
        v.passed("cert-hostname-mismatch")
    _cert_key(cert, v, policy, catalog)
    _cert_signature(cert, v, policy)
    limit = policy.cert_max_days or 398
    if cert.lifetime_days > limit:
        v.fail("cert-long-lifetime", f"The certificate is valid for {cert.lifetime_days} days "
               f"(policy maximum {limit}).", topic="certificate", setting="lifetime",
               value=cert.lifetime_days)
    else:
        v.passed("cert-long-lifetime")
    if cert.ocsp_stapled:
        v.passed("tls-no-ocsp-stapling")
    else:
        v.fail("tls-no-ocsp-stapling", "No OCSP response is stapled to the certificate.",
               topic="extensions", setting="status_request")


def trust(cert: CertInfo) -> str:
    """Classify path validation, expiry and name apart (their own checks judge those).

    ``unknown`` (no result), ``trusted`` (a store validated it), ``self-signed``,
    ``time-or-name`` (only expiry or the name failed), ``strict`` (only strict RFC 5280
    failed) or ``untrusted``.
    """
    if not cert.validation:
        return "unknown"
    errors = [e.lower() for e in cert.validation.values() if e is not None]
    if len(errors) < len(cert.validation):
        return "trusted"
    if cert.self_signed:
        return "self-signed"
    if all(any(m in e for m in TIME_ERRORS) for e in errors) or \
            all(any(m in e for m in NAME_ERRORS) for e in errors):
        return "time-or-name"
    if all(any(m in e for m in STRICT_ERRORS) for e in errors):
        return "strict"
    return "untrusted"


def chain_trusted(cert: CertInfo) -> bool | None:
    """Whether a trust store validates the chain, ignoring expiry and name."""
    state = trust(cert)
    return None if state == "unknown" else state in ("trusted", "time-or-name")


def _trust(cert: CertInfo, v: _Verdicts, ca_given: bool) -> None:
    state = trust(cert)
    if state == "unknown":
        v.error("cert-untrusted")
        return
    if state in ("trusted", "time-or-name"):
        v.passed("cert-untrusted")  # expiry and the name are reported by their own checks
        return
    stores = ", ".join(sorted(cert.validation))
    raw = next(e for e in cert.validation.values() if e)[:160]
    if state == "self-signed":
        v.fail("cert-untrusted", f"The certificate is self-signed; no trust store ({stores}) "
               "validates it.", key="self-signed", topic="certificate", setting="chain",
               error=raw)
    elif state == "strict":
        v.fail("cert-untrusted", "The chain fails strict RFC 5280 validation (lenient clients "
               f"may still accept it): {raw}", key="strict", severity=Severity.MEDIUM,
               topic="certificate", setting="chain", error=raw)
    else:
        hint = "" if ca_given else " Give the organisation's CA with --ca-bundle if it is private."
        v.fail("cert-untrusted", f"No trust store ({stores}) validates the chain.{hint}",
               key="untrusted", topic="certificate", setting="chain", error=raw)


def _cert_key(cert: CertInfo, v: _Verdicts, policy: Policy, catalog: Catalog) -> None:
    critical_bits = int(catalog["cert-weak-key"].params["critical_rsa_bits"])
    rsa_min = policy.cert_rsa_min or 2048
    failed = False
    if cert.key_type == "rsa" and cert.key_size < rsa_min:
        sev = Severity.CRITICAL if cert.key_size < critical_bits else None
        v.fail("cert-weak-key", f"The certificate has a {cert.key_size}-bit RSA key "
               f"(minimum {rsa_min}).", key="size", severity=sev, topic="certificate",
               setting="key", value=f"RSA {cert.key_size}")
        failed = True
    if cert.key_type not in policy.cert_types:
        # a weak key is judged above; a strong one of an unlisted type weakens nothing
        strong = not failed and cert.key_type in ("rsa", "ecdsa")
        params = catalog["cert-weak-key"].params
        v.fail("cert-weak-key", f"{policy.name} does not allow {cert.key_type.upper()} "
               "certificates" + (" (a policy deviation: the key itself is strong enough)."
                                 if strong else "."), key="type",
               severity=_sev(params["deviation_severity"]) if strong else Severity.MEDIUM,
               topic="certificate", setting="key", value=cert.key_type)
        failed = True
    if cert.curve and policy.cert_curves is not None and cert.curve not in policy.cert_curves:
        v.fail("cert-weak-key", f"The certificate key is on {cert.curve}, not one of "
               f"{', '.join(policy.cert_curves)}.", key="curve", severity=Severity.LOW,
               topic="certificate", setting="key", value=cert.curve)
        failed = True
    if not failed:
        v.passed("cert-weak-key")


def _cert_signature(cert: CertInfo, v: _Verdicts, policy: Policy) -> None:
    h = (cert.signature_hash or "").lower()
    if h in ("md5", "md2", "md4"):
        v.fail("cert-weak-signature", f"The certificate is signed with {cert.signature_algorithm}.",
               severity=Severity.CRITICAL, topic="certificate", setting="signature",
               value=cert.signature_algorithm)
    elif h == "sha1":
        v.fail("cert-weak-signature", f"The certificate is signed with {cert.signature_algorithm}.",
               topic="certificate", setting="signature", value=cert.signature_algorithm)
    elif policy.cert_signatures is not None and not cert.self_signed and \
            cert.signature_algorithm not in policy.cert_signatures:
        v.fail("cert-weak-signature", f"{cert.signature_algorithm} is not among the "
               f"signatures {policy.name} lists.", severity=Severity.LOW, topic="certificate",
               setting="signature", value=cert.signature_algorithm)
    else:
        v.passed("cert-weak-signature")
