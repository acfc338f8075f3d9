"""``assessment.toml``: the periodic job, validated before anything is scanned.

Unknown keys and bad values raise :class:`ConfigError` naming the file and the key
(``archive[1].paths``). Relative paths are resolved against the folder of the config file.

Each scanner section is its scanner's options model (``<scanner>/options.py``) plus ``name`` and
``criticality``; this module imports those models and no other scanner code. What needs parsing
or files (network targets, policies, certificates, baselines) is checked by the scanner's plan
step, once per section, when the assessment is planned (``assess.plan_groups``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hipaa_audit.archive.options import ArchiveOptions
from hipaa_audit.errors import HipaaAuditError
from hipaa_audit.logs.options import LogsOptions
from hipaa_audit.network.options import NetworkOptions
from hipaa_audit.permissions.options import PermissionsOptions
from hipaa_audit.s3.options import S3ScanOptions
from hipaa_audit.treatment import Treatment, TreatmentError, load_treatment
from hipaa_audit.validation import problems

Criticality = Literal["low", "moderate", "high"]
#: How deep arrays and tables may nest in a TOML file given by the user.
MAX_TOML_DEPTH = 32


class ConfigError(HipaaAuditError):
    """The assessment file is missing, not TOML, or holds an unknown key or a bad value."""


def parse_toml(text: str) -> dict[str, Any]:
    """Parse a TOML document the user gave; raise ``tomllib.TOMLDecodeError`` if it is bad.

    Every TOML file the tool reads from the user (the assessment, permission baselines, column
    mappings, detector settings) goes through here. ``tomllib`` recurses once per nested array
    or inline table, so a document nested a thousand levels deep raised ``RecursionError``;
    dotted keys nest without recursion but then trip whatever walks the result. Both are
    refused as nested more than :data:`MAX_TOML_DEPTH` levels (no real file comes near it).
    """
    too_deep = f"arrays or tables nested more than {MAX_TOML_DEPTH} levels deep"
    try:
        doc = tomllib.loads(text)
    except RecursionError:
        raise tomllib.TOMLDecodeError(too_deep) from None
    stack: list[tuple[object, int]] = [(doc, 1)]
    while stack:
        value, level = stack.pop()
        children: list[Any] | None = (list(value.values()) if isinstance(value, dict)
                                      else value if isinstance(value, list) else None)
        if children is None:
            continue
        if level > MAX_TOML_DEPTH:
            raise tomllib.TOMLDecodeError(too_deep)
        stack.extend((child, level + 1) for child in children)
    return doc


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AssessmentInfo(_Section):
    """``[assessment]``: who is assessed, by whom, and for which period."""

    organization: str = Field(min_length=1)
    name: str = Field(min_length=1)
    assessor: str = Field(min_length=1)
    period: str | None = None
    scope: str | None = None
    reviewer: str | None = None
    approver: str | None = None
    #: the risk treatment register: decisions, acceptances and suppressions (treatment.py)
    treatment: Path | None = None
    #: the organization's answers for the safeguards no scanner sees (attest.py)
    attestations: Path | None = None


class StoreSection(_Section):
    """``[store]``: where the history of runs is kept."""

    path: Path | None = None


class _Scanner(_Section):
    """What every scanner section shares: a name for its asset group and its criticality.

    A section is its scanner's options model (the package's ``options.py``) plus these two
    keys; the options only the command line sets are refused here.
    """

    name: str | None = Field(default=None, min_length=1)
    criticality: Criticality = "moderate"

    @model_validator(mode="before")
    @classmethod
    def _file_keys_only(cls, data: Any) -> Any:
        cli_only = getattr(cls, "command_line_only", None)
        if isinstance(data, dict) and cli_only is not None:
            bad = sorted(set(data) & cli_only())
            if bad:
                raise ValueError(f"{', '.join(bad)}: a command-line option, not a key of "
                                 "this section")
        return data


class ArchiveSection(ArchiveOptions, _Scanner):
    """``[[archive]]``: folders and files to scan for PHI (the options of ``scan archive``)."""


class NetworkSection(NetworkOptions, _Scanner):
    """``[[network]]``: endpoints to probe, and how (the options of ``scan network``)."""


class S3Section(S3ScanOptions, _Scanner):
    """``[[s3]]``: buckets to inspect (empty: every bucket the identity can list), and how."""


class LogsSection(LogsOptions, _Scanner):
    """``[[logs]]``: audit logs to analyse (the options of ``analyze logs``)."""


class PermissionsSection(PermissionsOptions, _Scanner):
    """``[permissions]``: the access baseline and the sources to compare with it."""


class VendorDocument(_Section):
    """``[[vendor.document]]``: a document the vendor sent as evidence for BAA provisions."""

    #: the provisions it evidences: ``BAA-01`` ... ``BAA-16``, ``BAA-S1`` ... ``BAA-S3``
    provisions: list[str] = Field(min_length=1)
    file: Path
    title: str = ""
    received: dt.date
    reviewer: str = Field(min_length=1)
    reviewed: dt.date

    @field_validator("provisions")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        from hipaa_audit.hipaa import security_rule_data

        ids = {p["id"] for p in security_rule_data()["baa_required_provisions_164_504e"]}
        bad = [p for p in value if p not in ids]
        if bad:
            raise ValueError(f"unknown provision(s) {', '.join(bad)}; expected one of "
                             f"{', '.join(sorted(ids))}")
        return value

    @model_validator(mode="after")
    def _dates(self) -> VendorDocument:
        if self.reviewed < self.received:
            raise ValueError("reviewed is before received")
        return self


class Vendor(_Section):
    """``[[vendor]]``: a business associate and the systems it operates."""

    name: str = Field(min_length=1)
    services: str = ""
    baa_signed: dt.date | None = None
    contact: str | None = None
    s3_buckets: list[str] = Field(default_factory=list)
    endpoints: list[str] = Field(default_factory=list)
    archives: list[str] = Field(default_factory=list)
    #: ``[[logs]]`` group names or log paths of the systems the vendor runs
    logs: list[str] = Field(default_factory=list)
    #: Principals (patterns of the permission scan's ids) the vendor's staff and systems use
    principals: list[str] = Field(default_factory=list)
    subcontractors: list[str] = Field(default_factory=list)
    #: documents received from the vendor, each evidencing BAA provisions
    document: list[VendorDocument] = Field(default_factory=list)


class ReportSection(_Section):
    """``[report]``: where the reports go, how much detail, and an optional signature."""

    output_dir: Path = Path("reports")
    detail_limit: int = Field(default=200, ge=10, le=5000)
    #: mask file and folder names that look like patient identifiers (``--mask-paths``)
    mask_paths: bool = False
    sign_key: Path | None = None
    sign_cert: Path | None = None
    sign_passphrase_env: str | None = None
    #: vendor documents received longer ago than this are flagged as stale evidence
    evidence_max_age_days: int = Field(default=365, ge=1, le=3650)

    @model_validator(mode="after")
    def _pair(self) -> ReportSection:
        if (self.sign_key is None) != (self.sign_cert is None):
            raise ValueError("sign_key and sign_cert go together")
        return self


class Assessment(_Section):
    """The whole ``assessment.toml``."""

    assessment: AssessmentInfo
    store: StoreSection = StoreSection()
    archive: list[ArchiveSection] = Field(default_factory=list)
    network: list[NetworkSection] = Field(default_factory=list)
    s3: list[S3Section] = Field(default_factory=list)
    logs: list[LogsSection] = Field(default_factory=list)
    permissions: PermissionsSection | None = None
    vendor: list[Vendor] = Field(default_factory=list)
    report: ReportSection = ReportSection()


class LoadedConfig(BaseModel):
    """A validated assessment with its source file and the digest of its bytes."""

    model_config = ConfigDict(frozen=True)

    path: Path
    digest: str
    data: Assessment
    #: the path as it was given (messages name the file as the user wrote it)
    source: str = ""
    #: the treatment file named in ``[assessment]``, validated, and the SHA-256 of its bytes
    treatment: Treatment | None = None
    treatment_digest: str | None = None
    #: the attestation file, validated, its evidence files hashed (``attest.load_attestations``)
    attestations: dict[str, Any] | None = None

    def as_record(self) -> dict[str, Any]:
        """Return the configuration as JSON-ready data for the history store."""
        return self.data.model_dump(mode="json")


def _rel_source(source: str, rel: Any) -> str:
    """A permission source with its file or folder made relative to the assessment file."""
    kind, sep, rest = source.partition(":")
    if not sep or kind not in ("fs", "pacs", "roster"):
        return source
    name, eq, path = rest.partition("=")
    if kind == "pacs" and eq and name and "/" not in name:
        return f"{kind}:{name}={rel(Path(path))}"
    return f"{kind}:{rel(Path(rest))}"


def _resolve(base: Path, data: Assessment) -> Assessment:
    """Return ``data`` with every relative path made relative to ``base``."""
    def rel(p: Path) -> Path:
        return p if p.is_absolute() else base / p

    update: dict[str, Any] = {
        "archive": [a.model_copy(update={"paths": [str(rel(Path(p))) for p in a.paths],
                                         "mask_paths": data.report.mask_paths})
                    for a in data.archive],
        "report": data.report.model_copy(update={
            "output_dir": rel(data.report.output_dir),
            "sign_key": rel(data.report.sign_key) if data.report.sign_key else None,
            "sign_cert": rel(data.report.sign_cert) if data.report.sign_cert else None,
        }),
        "store": StoreSection(path=rel(data.store.path) if data.store.path else None),
        "assessment": data.assessment.model_copy(update={
            "treatment": rel(data.assessment.treatment) if data.assessment.treatment else None,
            "attestations": rel(data.assessment.attestations) if data.assessment.attestations
            else None}),
        "logs": [s.model_copy(update={
            "paths": [str(rel(Path(p))) for p in s.paths],
            "sigma": [p if str(p) == "builtin" else rel(p) for p in s.sigma],
            "anchors": [rel(p) for p in s.anchors],
            "cloudtrail_keys": [rel(p) for p in s.cloudtrail_keys],
            **{k: rel(getattr(s, k)) for k in ("roster", "vip", "coworkers", "patients")
               if getattr(s, k) is not None}}) for s in data.logs],
        "s3": [b.model_copy(update={"ca_bundle": str(rel(Path(b.ca_bundle)))})
               if b.ca_bundle else b for b in data.s3],
        "vendor": [v.model_copy(update={"document": [
            d.model_copy(update={"file": rel(d.file)}) for d in v.document]})
            for v in data.vendor],
        "network": [n.model_copy(update={
            k: str(rel(Path(getattr(n, k)))) for k in ("targets_file", "ca_bundle",
                                                       "client_cert", "client_key")
            if getattr(n, k) is not None})
            for n in data.network],
    }
    if data.permissions is not None:
        update["permissions"] = data.permissions.model_copy(
            update={"baseline": rel(data.permissions.baseline),
                    "sources": [_rel_source(s, rel) for s in data.permissions.sources]})
    return data.model_copy(update=update)


def load_config(path: Path) -> LoadedConfig:
    """Read and validate ``path``; raise :class:`ConfigError` naming the file and the key."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the assessment file: {exc.strerror}") from None
    try:
        doc = parse_toml(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        data = Assessment.model_validate(doc)
    except ValidationError as exc:
        raise ConfigError("\n".join(problems(exc, str(path)))) from None
    names = [n for n in group_names(data) if n]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"{path}: name: used by more than one scanner section: {', '.join(dup)}")
    data = _resolve(path.resolve().parent, data)
    treatment, treatment_digest = None, None
    if data.assessment.treatment is not None:
        try:
            treatment, treatment_digest = load_treatment(data.assessment.treatment)
        except TreatmentError as exc:
            raise ConfigError(f"{path}: assessment.treatment: {exc}") from None
    for i, vendor in enumerate(data.vendor, 1):
        for j, received in enumerate(vendor.document, 1):
            if not received.file.is_file():
                raise ConfigError(f"{path}: vendor[{i}].document[{j}].file: cannot read "
                                  f"{received.file}")
    attestations = None
    if data.assessment.attestations is not None:
        from hipaa_audit.attest import AttestationError, load_attestations

        try:
            attestations = load_attestations(data.assessment.attestations)
        except AttestationError as exc:
            raise ConfigError(f"{path}: assessment.attestations: {exc}") from None
    return LoadedConfig(path=path.resolve(), source=str(path),
                        digest=hashlib.sha256(raw).hexdigest(), data=data,
                        treatment=treatment, treatment_digest=treatment_digest,
                        attestations=attestations)


def group_names(data: Assessment) -> list[str | None]:
    """Return the ``name`` of every scanner section, in the order they run."""
    sections: list[_Scanner] = [*data.archive, *data.network, *data.s3, *data.logs]
    if data.permissions is not None:
        sections.append(data.permissions)
    return [s.name for s in sections]
