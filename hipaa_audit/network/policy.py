"""TLS policy profiles, loaded from ``checks/tls_policies.toml`` and validated."""

from __future__ import annotations

import tomllib
from functools import cache

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hipaa_audit.catalog import CatalogError, read_check_data
from hipaa_audit.errors import HipaaAuditError

DEFAULT_POLICY = "nist-800-52r2"
VERSIONS = ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")


class Clauses(BaseModel):
    """Where in the profile each requirement is written, quoted in findings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    versions: str
    suites: str
    key_exchange: str
    certificate: str
    extensions: str
    hsts: str
    curves: str = ""
    client_auth: str = ""


class Policy(BaseModel):
    """One TLS profile: what it forbids, requires and lists.

    ``tls12_suites`` and ``tls13_suites`` are allowlists of IANA names (``None``: no list);
    ``curves`` likewise for key-exchange groups. Sizes are in bits, lifetimes in days.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    title: str
    source: str
    versions_forbidden: tuple[str, ...]
    versions_required: tuple[str, ...]
    versions_recommended: tuple[str, ...] = ()
    tls12_suites: tuple[str, ...] | None = None
    tls13_suites: tuple[str, ...] | None = None
    dh_min: int | None = Field(default=None, ge=512)
    ecdh_min: int | None = Field(default=None, ge=160)
    curves: tuple[str, ...] | None = None
    cert_types: tuple[str, ...] = ("rsa", "ecdsa")
    cert_curves: tuple[str, ...] | None = None
    cert_rsa_min: int | None = None
    cert_signatures: tuple[str, ...] | None = None
    cert_max_days: int | None = None
    hsts_min_age: int = 31536000
    client_auth_expected: bool = False
    clauses: Clauses

    def cite(self, topic: str) -> str:
        """Return ``"<source> <clause>"`` for one topic of the profile."""
        clause = getattr(self.clauses, topic, "") or ""
        return f"{self.source} {clause}".strip()


class PolicyError(HipaaAuditError, ValueError):
    """An unknown policy name."""


@cache
def load_policies() -> dict[str, Policy]:
    """Load every profile shipped in ``checks/tls_policies.toml``."""
    doc = tomllib.loads(read_check_data("tls_policies.toml"))
    out: dict[str, Policy] = {}
    for name, raw in doc.get("policy", {}).items():
        try:
            policy = Policy.model_validate({**raw, "name": name})
        except ValidationError as exc:
            raise CatalogError(f"tls_policies.toml: policy {name}: {exc}") from None
        unknown = set(policy.versions_forbidden + policy.versions_required) - set(VERSIONS)
        if unknown:
            raise CatalogError(f"tls_policies.toml: policy {name}: unknown versions {unknown}")
        out[name] = policy
    return out


def get_policy(name: str) -> Policy:
    """Return the profile called ``name``; raise :class:`PolicyError` naming the known ones."""
    policies = load_policies()
    try:
        return policies[name]
    except KeyError:
        raise PolicyError(
            f"unknown TLS policy {name!r}; expected one of {', '.join(sorted(policies))}"
        ) from None
