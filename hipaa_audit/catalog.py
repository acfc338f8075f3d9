"""The check catalog: every check's metadata, loaded from ``checks/*.toml`` and validated.

Each TOML file holds ``[[check]]`` tables. A check names its category, default severity,
NIST SP 800-30 likelihood and impact, HIPAA citations (which must exist in the packaged rule
data), description, remediation and references, plus optional ``params`` its rules read.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from functools import cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hipaa_audit.errors import HipaaAuditError
from hipaa_audit.hipaa import known_citations
from hipaa_audit.model import Category, Finding, Location, Severity, Status

NistLevel = Literal["Very Low", "Low", "Moderate", "High", "Very High"]


class CatalogError(HipaaAuditError):
    """The catalog is malformed: a bad field, a duplicate id, an unknown citation."""


class Check(BaseModel):
    """Metadata of one check, as written in ``checks/*.toml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    title: str = Field(min_length=3)
    scanner: str
    category: Category
    severity: Severity
    likelihood: NistLevel
    impact: NistLevel
    hipaa: tuple[str, ...] = Field(min_length=1)
    description: str = Field(min_length=10)
    remediation: str = Field(min_length=10)
    references: tuple[str, ...] = ()
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("hipaa")
    @classmethod
    def _citations_exist(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [c for c in value if c not in known_citations()]
        if unknown:
            raise ValueError(f"cites sections not in the HIPAA rule data: {', '.join(unknown)}")
        return value

    def finding(
        self,
        asset: str,
        message: str,
        *,
        severity: Severity | None = None,
        locations: tuple[Location, ...] = (),
        status: Status = Status.FAIL,
        key: str = "",
    ) -> Finding:
        """Build a finding of this check; ``severity`` overrides the catalog default."""
        return Finding(
            check_id=self.id,
            title=self.title,
            category=self.category,
            severity=severity or self.severity,
            status=status,
            asset=asset,
            message=message,
            hipaa=self.hipaa,
            remediation=self.remediation,
            locations=locations,
            key=key,
        )


Domain = Literal["De-identification", "Encryption at rest", "Transmission security",
                 "Access control", "Exposure", "Audit logging", "Configuration", "Verifiability"]


class CategoryInfo(BaseModel):
    """What a finding category means for the risk register: NIST SP 800-30 threat and domain."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    domain: Domain
    threat_source: str = Field(min_length=3)
    threat_event: str = Field(min_length=3)
    vulnerability: str = Field(min_length=3)


class Catalog(Mapping[str, Check]):
    """All checks by id, in the order the catalog files list them, and the finding categories."""

    def __init__(self, checks: list[Check],
                 categories: dict[Category, CategoryInfo] | None = None) -> None:
        self.categories: dict[Category, CategoryInfo] = dict(categories or {})
        self._checks: dict[str, Check] = {}
        for check in checks:
            if check.id in self._checks:
                raise CatalogError(f"check id {check.id!r} is defined twice")
            self._checks[check.id] = check

    def __getitem__(self, check_id: str) -> Check:
        return self._checks[check_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._checks)

    def __len__(self) -> int:
        return len(self._checks)

    def for_scanner(self, scanner: str) -> list[Check]:
        """Return the checks of one scanner (``archive``, ``network``...)."""
        return [c for c in self._checks.values() if c.scanner == scanner]


def parse_categories(name: str, text: str) -> dict[Category, CategoryInfo]:
    """Parse the ``[category.NAME]`` tables of one catalog document."""
    out: dict[Category, CategoryInfo] = {}
    for key, raw in tomllib.loads(text).get("category", {}).items():
        try:
            out[Category(key)] = CategoryInfo.model_validate(raw)
        except ValueError as exc:
            raise CatalogError(f"{name}: category {key}: {exc}") from None
    return out


def parse_catalog_file(name: str, text: str) -> list[Check]:
    """Parse one catalog TOML document; raise ``CatalogError`` naming the file and check."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{name}: not valid TOML: {exc}") from None
    # ``policy`` tables (TLS profiles) are read by the network scanner, not the catalog
    extra = set(doc) - {"check", "category", "policy"}
    if extra:
        raise CatalogError(f"{name}: unknown top-level keys: {', '.join(sorted(extra))}")
    checks = []
    for i, raw in enumerate(doc.get("check", [])):
        try:
            checks.append(Check.model_validate(raw))
        except ValidationError as exc:
            label = raw.get("id", f"#{i + 1}") if isinstance(raw, dict) else f"#{i + 1}"
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise CatalogError(f"{name}: check {label}: {problems}") from None
    return checks


@cache
def load_catalog() -> Catalog:
    """Load and validate every ``*.toml`` catalog file shipped in ``hipaa_audit.checks``."""
    root = resources.files("hipaa_audit.checks")
    checks: list[Check] = []
    categories: dict[Category, CategoryInfo] = {}
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".toml"):
            text = entry.read_text(encoding="utf-8")
            checks.extend(parse_catalog_file(entry.name, text))
            categories.update(parse_categories(entry.name, text))
    missing = [c.value for c in Category if c not in categories]
    if missing:
        raise CatalogError(f"no [category.NAME] entry for: {', '.join(missing)}")
    return Catalog(checks, categories)


def read_check_data(name: str) -> str:
    """Return the text of a data file shipped beside the catalog (e.g. the E.1-1 table)."""
    return resources.files("hipaa_audit.checks").joinpath(name).read_text(encoding="utf-8")
