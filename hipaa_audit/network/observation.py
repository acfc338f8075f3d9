"""What the network collectors saw on one endpoint: plain data the pure rules judge.

Everything here is picklable (it travels from the probing process to the parent) and holds no
value read from the service beyond protocol facts: versions, suites, certificate properties,
status codes. Certificate subjects and page contents are never kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hipaa_audit.network.targets import Target

if TYPE_CHECKING:
    from hipaa_audit.evidence import Hsts

#: Why a TLS command was not run: the user asked for gentle mode...
GENTLE = "gentle mode"
#: ...or the server demands a client certificate and none was given.
NEEDS_CLIENT_CERT = "the server requires a client certificate"


@dataclass(frozen=True, slots=True)
class Suite:
    """One accepted cipher suite and the ephemeral key the server chose with it."""

    name: str
    openssl_name: str
    key_size: int
    anonymous: bool
    kx_type: str | None = None  # "ECDH", "DH" or None (static key exchange / TLS 1.3 default)
    kx_size: int | None = None
    kx_curve: str | None = None

    @property
    def kx_bits(self) -> int:
        """The ephemeral key's size; X25519 (a 253-bit field) and X448 count as 256 and 448."""
        curve = (self.kx_curve or "").upper()
        if curve == "X25519":
            return 256
        if curve == "X448":
            return 448
        return self.kx_size or 0


@dataclass(slots=True)
class CertInfo:
    """Properties of the leaf certificate and the outcome of path validation."""

    key_type: str  # rsa, ecdsa, dsa, ed25519, ed448, other
    key_size: int
    curve: str | None
    signature_algorithm: str
    signature_hash: str | None
    not_before: str  # ISO 8601 UTC
    not_after: str
    lifetime_days: int
    self_signed: bool
    hostname_used: str
    #: whether the name or address used is in the subject alternative names
    hostname_ok: bool | None = None
    #: trust store name → None when it validated, else the validation error
    validation: dict[str, str | None] = field(default_factory=dict)
    ocsp_stapled: bool = False


@dataclass(slots=True)
class TlsObservation:
    """The TLS configuration of an endpoint, from sslyze."""

    client_auth: str = "DISABLED"  # DISABLED, OPTIONAL, REQUIRED
    #: version → supported (True/False); a version whose test failed is absent
    versions: dict[str, bool] = field(default_factory=dict)
    suites: dict[str, list[Suite]] = field(default_factory=dict)
    curves: list[str] | None = None
    cert: CertInfo | None = None
    hsts: Hsts | None = None  # max_age, include_subdomains, preload
    hsts_checked: bool = False
    heartbleed: bool | None = None
    ccs_injection: bool | None = None
    robot: str | None = None
    secure_renegotiation: bool | None = None
    client_renegotiation: bool | None = None
    compression: bool | None = None
    fallback_scsv: bool | None = None
    ems: bool | None = None
    #: command → why it could not be completed
    errors: dict[str, str] = field(default_factory=dict)
    #: command → why it was deliberately not run (:data:`GENTLE` or :data:`NEEDS_CLIENT_CERT`)
    skipped: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DicomProbe:
    """The outcome of a DICOM association attempt (C-ECHO)."""

    outcome: str  # accepted, rejected, aborted, no-answer, tls-failed, error
    tls: bool
    detail: str = ""
    echo_status: int | None = None


@dataclass(frozen=True, slots=True)
class HttpProbe:
    """The answer of an HTTP(S) GET."""

    status: int | None
    location: str | None = None
    hsts: Hsts | None = None  # parsed Strict-Transport-Security
    detail: str = ""

    @property
    def redirects_to_https(self) -> bool:
        """A 3xx answer whose Location is an https:// URL."""
        return (self.status is not None and 300 <= self.status < 400
                and (self.location or "").lower().startswith("https://"))


@dataclass(slots=True)
class Observation:
    """Everything learnt about one target; ``stage`` is how far probing got."""

    target: Target
    kind: str  # the target's kind, or what a probed host:port turned out to be
    stage: str = "start"
    reachable: str = "unknown"  # open, refused, timeout, unresolvable, error
    address: str | None = None  # what the name resolved to
    speaks: str | None = None  # tls, plain, silent
    tls: TlsObservation | None = None
    dicom: DicomProbe | None = None
    http: HttpProbe | None = None
    redirect_hsts: HttpProbe | None = None
    alive_after: bool | None = None
    deadline_hit: bool = False
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def asset(self) -> str:
        """The finding asset: the target URL (a probed one under the scheme found)."""
        return self.target.as_kind(self.kind).url
