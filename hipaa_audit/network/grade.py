"""A letter grade per TLS endpoint, following the SSL Labs server rating guide (2009q/r).

Score: protocol support 30 %, key exchange 30 %, cipher strength 40 %; A >= 80, B >= 65,
C >= 50, D >= 35, E >= 20, else F (a zero category is F). Caps then lower the grade: F for
SSL 2.0, broken suites, Heartbleed, CCS injection, ROBOT, MD5 signatures, RSA < 1024; C for no
TLS 1.2, compression; B for TLS 1.0/1.1 or SSL 3.0, no forward secrecy, no AEAD, RSA < 2048.
Trust problems give ``T`` and a name mismatch ``M``, as SSL Labs shows them. A- instead of A
when TLS 1.3, secure renegotiation or (on HTTPS) a long HSTS is missing; A+ needs none of these
warnings and HSTS of at least 180 days, so only HTTPS endpoints can reach it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hipaa_audit.network.observation import Suite, TlsObservation

ORDER = ["A+", "A", "A-", "B", "C", "D", "E", "F"]
PROTOCOL_SCORE = {"SSLv2": 0, "SSLv3": 80, "TLSv1.0": 90, "TLSv1.1": 95, "TLSv1.2": 100,
                  "TLSv1.3": 100}
HSTS_A_PLUS = 15768000


@dataclass(slots=True)
class Grade:
    """The letter, the numeric score and why the letter is capped."""

    letter: str
    score: int
    caps: list[str] = field(default_factory=list)


#: (bits below, score) steps of the guide; at or above the last step: 100
CIPHER_STEPS = ((1, 0), (128, 20), (256, 80))
KX_STEPS = ((1, 0), (512, 20), (1024, 40), (2048, 80), (4096, 90))


def _score(bits: int, steps: tuple[tuple[int, int], ...]) -> int:
    return next((score for below, score in steps if bits < below), 100)


def _rsa_equivalent_bits(suite: Suite, cert_rsa: int | None) -> int:
    """The key exchange's strength in RSA-equivalent bits (NIST SP 800-57)."""
    if suite.anonymous:
        return 0
    if suite.kx_type == "ECDH" and suite.kx_bits:
        return 3072 if suite.kx_bits < 384 else 7680  # 256 → 3072, 384 → 7680
    if suite.kx_type == "DH" and suite.kx_bits:
        return suite.kx_bits
    return cert_rsa or 2048


def _cap(letter: str, limit: str) -> str:
    return letter if ORDER.index(letter) >= ORDER.index(limit) else limit


def grade(tls: TlsObservation, *, https: bool, hostname_ok: bool | None,
          trusted: bool | None, expired: bool) -> Grade | None:
    """Grade one endpoint; ``None`` when its protocol support could not be established."""
    supported = [v for v, ok in tls.versions.items() if ok]
    if not supported:
        return None
    suites = [s for v in supported for s in tls.suites.get(v, [])]
    if not suites:
        return None
    cert = tls.cert
    cert_rsa = cert.key_size if cert is not None and cert.key_type == "rsa" else None
    scores = [PROTOCOL_SCORE[v] for v in supported]
    protocol = (max(scores) + min(scores)) / 2
    kx = min(_score(_rsa_equivalent_bits(s, cert_rsa), KX_STEPS) for s in suites)
    strengths = [_score(s.key_size, CIPHER_STEPS) for s in suites]
    cipher = (max(strengths) + min(strengths)) / 2
    score = round(0.3 * protocol + 0.3 * kx + 0.4 * cipher)
    letter = ("A" if score >= 80 else "B" if score >= 65 else "C" if score >= 50
              else "D" if score >= 35 else "E" if score >= 20 else "F")
    caps: list[str] = []
    if min(protocol, kx, cipher) == 0:
        letter = "F"
        caps.append("a zero-scored category (SSL 2.0, anonymous or NULL suites)")

    def cap(limit: str, why: str) -> None:
        nonlocal letter
        new = _cap(letter, limit)
        if new != letter or limit == "F":
            caps.append(why)
        letter = new

    names = " ".join(s.name for s in suites)
    if "SSLv2" in supported:
        cap("F", "SSL 2.0 offered")
    if max(supported, key=PROTOCOL_SCORE.__getitem__) == "SSLv3":
        cap("F", "SSL 3.0 is the best protocol")
    if "EXPORT" in names or any(0 < s.key_size < 112 for s in suites):
        cap("F", "export or sub-112-bit suites")
    if tls.heartbleed:
        cap("F", "Heartbleed")
    if tls.ccs_injection:
        cap("F", "CCS injection")
    if tls.robot and tls.robot.startswith("VULNERABLE"):
        cap("F", "ROBOT")
    if cert is not None and (cert.signature_hash or "") in ("md5", "md2", "md4"):
        cap("F", "MD5/MD2 certificate signature")
    if cert_rsa is not None and cert_rsa < 1024:
        cap("F", "RSA key under 1024 bits")
    if "TLSv1.2" not in supported and "TLSv1.3" not in supported:
        cap("C", "no TLS 1.2 or 1.3")
    if tls.compression:
        cap("C", "TLS compression (CRIME)")
    if "RC4" in names or "3DES" in names or "DES_CBC" in names:
        cap("C", "RC4 or 64-bit block ciphers")
    if any(v in supported for v in ("SSLv3", "TLSv1.0", "TLSv1.1")):
        cap("B", "TLS 1.0/1.1 or SSL 3.0 offered")
    pre13 = [s for v in supported if v != "TLSv1.3" for s in tls.suites.get(v, [])]
    if pre13 and not any(s.kx_type for s in pre13) and "TLSv1.3" not in supported:
        cap("B", "no forward secrecy")
    if "TLSv1.3" not in supported and not any(
            m in s.name for s in pre13 for m in ("GCM", "CCM", "CHACHA20")):
        cap("B", "no AEAD suite")
    if cert_rsa is not None and cert_rsa < 2048:
        cap("B", "RSA key under 2048 bits")
    if letter == "A":
        warnings = []
        if "TLSv1.3" not in supported:
            warnings.append("no TLS 1.3")
        if tls.secure_renegotiation is False:
            warnings.append("no secure renegotiation")
        if https:
            age = tls.hsts["max_age"] if tls.hsts else None
            if not isinstance(age, int) or age < HSTS_A_PLUS:
                warnings.append("HSTS missing or shorter than 180 days")
        if warnings:
            letter = "A-"
            caps.extend(warnings)
        elif https:
            letter = "A+"
    if trusted is False or expired or (cert is not None and cert.signature_hash == "sha1"):
        caps.append("certificate not trusted (SSL Labs shows T)")
        return Grade("T", score, caps)
    if hostname_ok is False:
        caps.append("certificate name mismatch (SSL Labs shows M)")
        return Grade("M", score, caps)
    return Grade(letter, score, caps)
