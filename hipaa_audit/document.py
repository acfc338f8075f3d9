"""The findings document and the stored run, as types: what scanners hand to the exporters.

A scan writes the ``hipaa-audit.findings/1`` document (:class:`DocumentHead` and its findings,
:class:`FindingDoc`); ``assess`` stores each run with :class:`RunMeta` (its run object, groups,
coverage and totals) and its findings, which the store gives back as :class:`StoredFinding`.
The exporters (SARIF, OCSF, JUnit, OSCAL) and the reports read these types, so mypy checks every
key they read against what the producers write.

The history store is a boundary (see :mod:`hipaa_audit.evidence`): it gives back the JSON a run
was stored with, by this version or an older one, and it is not validated on the way back.
These types are what this version writes; a reader of a key an older version did not write uses
``.get`` with a default, as the readers do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NotRequired, TypeAlias, TypedDict

if TYPE_CHECKING:
    from hipaa_audit.archive.options import ArchiveSummary
    from hipaa_audit.evidence import EvidenceKey, RunEvidence
    from hipaa_audit.logs.options import LogsSummary
    from hipaa_audit.network.options import NetworkSummary
    from hipaa_audit.permissions.options import PermissionsSummary
    from hipaa_audit.s3.options import S3Summary

#: One location of a finding as the JSON shows it: the keys of one evidence type of
#: :mod:`hipaa_audit.evidence` (``None`` values left out, tuples as lists).
LocationDoc: TypeAlias = "dict[EvidenceKey, Any]"

#: The options summary of an asset group, whichever scanner it is (``Scanner.summary``).
ScannerSummary: TypeAlias = ("ArchiveSummary | NetworkSummary | S3Summary | LogsSummary"
                             " | PermissionsSummary")


class CoverageRow(TypedDict):
    """How one check ended over the assets it was run on (a ``coverage`` row)."""

    check_id: str
    evaluated: int
    failed: int
    errors: int


class FindingDoc(TypedDict):
    """One finding of the ``hipaa-audit.findings/1`` document."""

    id: str
    check_id: str
    title: str
    category: str
    severity: str
    status: str
    asset: str
    locations: list[LocationDoc]
    message: str
    hipaa: list[str]
    remediation: str


class StoredFinding(FindingDoc):
    """A finding as the history store gives it back, with the asset group that found it.

    ``group`` is always set by the store; an export that writes the finding object as the
    findings document has it drops the key.
    """

    group: NotRequired[str]


class SuppressedFinding(TypedDict):
    """A finding the treatment file suppressed, as the reports list it (no locations)."""

    id: str
    check_id: str
    severity: str
    status: str
    asset: str
    group: str


class RunDoc(TypedDict):
    """The ``run`` object: the command, its targets and times, options and run evidence."""

    id: str
    command: str
    started_at: str
    finished_at: str | None
    targets: list[str]
    reveal_phi: bool
    options: NotRequired[dict[str, Any]]
    evidence: NotRequired[RunEvidence]
    #: assets counted by kind (the findings document, not the stored run)
    assets: NotRequired[dict[str, int]]
    #: the run's chain hash (the findings document of a stored run)
    hash: NotRequired[str | None]


class DocumentHead(TypedDict):
    """The findings document without its findings: schema, tool, run and coverage."""

    schema: str
    tool: dict[str, str]
    run: RunDoc
    coverage: list[CoverageRow]


class GroupDoc(TypedDict):
    """One asset group of an assessment as its run stores it."""

    name: str
    scanner: str
    criticality: str
    targets: list[str]
    coverage: list[CoverageRow]
    stats: dict[str, int]
    findings: int
    errors: int
    seconds: float
    note: str
    options: ScannerSummary


class TreatmentCounts(TypedDict):
    """How many findings the treatment file accepted and suppressed, and rows it flags."""

    accepted: int
    suppressed: int
    overdue: int
    lapsed: int


class RunTotals(TypedDict):
    """The totals of an assessment run (its ``summary``)."""

    findings: int
    errors: int
    severity: dict[str, int]
    risk: dict[str, int]
    treatment: TreatmentCounts


class FailOnNew(TypedDict):
    """The baseline run of ``--fail-on-new`` and the new findings at or above ``--fail-on``."""

    baseline: str | None
    new_at_or_above: int


class RunMeta(TypedDict):
    """What ``assess`` stores with a run, besides its findings.

    ``assessment`` and ``config`` are the validated assessment file as JSON; ``attestations``,
    ``vendor_documents`` and ``treatment`` are there when the file names them.
    """

    run: RunDoc
    assessment: dict[str, Any]
    config: dict[str, Any]
    coverage: list[CoverageRow]
    stats: dict[str, int]
    groups: list[GroupDoc]
    exit_code: int
    fail_on: str
    summary: RunTotals
    attestations: NotRequired[dict[str, Any]]
    vendor_documents: NotRequired[list[dict[str, Any]]]
    treatment: NotRequired[dict[str, Any]]
    fail_on_new: NotRequired[FailOnNew]
