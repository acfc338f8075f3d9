"""The scanner contract: every scanner has the same shape, and one registry names them all.

A scanner is four things (see ``hipaa_audit/archive/entry.py`` for the simplest example):

- an **options model** (a pydantic model in its package's ``options.py``, importing nothing
  but pydantic): the fields and defaults of its command-line flags and of its ``[[section]]`` of
  ``assessment.toml``, one model for both (:class:`ScannerOptions`);
- a **plan** step, ``plan(options, setup) -> Plan``: parses the targets, loads policies,
  certificates, baselines, credentials... and raises :class:`ScannerSetupError` with a clear
  message when the scan cannot start (the CLI exits 2; an assessment stops or reports the
  group's targets as unverifiable, see :attr:`Scanner.setup_stops_assessment`);
- a **scan**, ``scan(plan, context) -> Iterator[AssetResult]``: streams one result per asset
  and records the run evidence the reports use;
- a **summary**, ``summary(options) -> Summary``: a TypedDict of the options the reports
  mention for its asset group.

:func:`scanner_for` finds a scanner by name; ``assess`` and the CLI drive scanners only through
this contract. The registry imports a scanner's code only when it is asked for, so that
``hipaa_audit.config`` (which composes the options models) stays free of scanner code.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Generic,
    Literal,
    Self,
    TypeVar,
    cast,
    get_args,
    get_origin,
    overload,
)

from pydantic import BaseModel, ConfigDict, Field

from hipaa_audit.errors import ScannerSetupError
from hipaa_audit.model import AssetResult, RunInfo, Status

if TYPE_CHECKING:
    from hipaa_audit.catalog import Catalog
    from hipaa_audit.evidence import (
        BucketSummary,
        EndpointSummary,
        LogSummary,
        StorageEncryption,
    )
    from hipaa_audit.redaction import Masker

__all__ = ["AnyScanner", "AssessmentFacts", "ScanContext", "Scanner", "ScannerOptions",
           "ScannerSetupError", "Setup", "command_line_only", "scanner_for", "scanner_names",
           "unverified"]

#: The check of a configured target that could not be examined at all.
NOT_CHECKED = "assessment-target-not-checked"
#: The marker of options that only the command line sets (not accepted in assessment.toml).
COMMAND_LINE_ONLY = "command_line_only"

#: Every scanner, in the order an assessment runs them: each is ``SCANNER`` of its package's
#: ``entry`` module (``hipaa_audit.archive.entry.SCANNER``).
_REGISTRY: tuple[str, ...] = ("archive", "network", "s3", "logs", "permissions")


class ScannerOptions(BaseModel):
    """Base of every scanner's options model: unknown keys refused, values frozen.

    The CLI builds the model from flags Typer already typed and bounded
    (:meth:`from_command_line`); ``assessment.toml`` validates it (see ``config.py``). Checks
    that need parsing or files belong to the scanner's plan step, which gives both the same
    message.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def from_command_line(cls, **values: Any) -> Self:
        """The options from command-line values, without the file-level validation.

        Typer has typed and bounded each flag; the plan step checks the rest with the messages
        the command has always given (``--trusted-account ...``, ``no targets: ...``).
        """
        return cls.model_construct(**values)

    @classmethod
    def command_line_only(cls) -> frozenset[str]:
        """The fields only the command line sets: refused in ``assessment.toml``."""
        return frozenset(name for name, f in cls.model_fields.items()
                         if isinstance(f.json_schema_extra, dict)
                         and f.json_schema_extra.get(COMMAND_LINE_ONLY))


def command_line_only(default: Any) -> Any:
    """A field only the command line sets: not in assessment.toml, not in the stored config."""
    return Field(default=default, exclude=True, json_schema_extra={COMMAND_LINE_ONLY: True})


@dataclass(slots=True)
class Setup:
    """What a plan step may use besides its options.

    ``strict``: a single scan (the CLI) refuses what an assessment reports as unverifiable and
    checks now what an assessment checks when the group runs (credentials, a missing path).
    ``group``: the asset group being planned in an assessment (None for a single scan).
    The masker (the installation key) is made on first use: a scanner that never fingerprints
    does not create the key.
    """

    strict: bool = True
    reveal_phi: bool = False
    group: str | None = None
    masker_: Masker | None = None

    @property
    def masker(self) -> Masker:
        """The masker of the run: the installation key, values shown only with ``reveal_phi``."""
        if self.masker_ is None:
            from hipaa_audit.redaction import Masker, installation_key

            self.masker_ = Masker(installation_key(), reveal=self.reveal_phi)
        return self.masker_


@dataclass(frozen=True, slots=True)
class AssessmentFacts:
    """What an assessment knows that a single scan does not (the permission scan uses it).

    ``previous_evidence(key)``: the evidence ``key`` of earlier finished runs, newest first, each
    with the run's label; ``phi_found()``: resources this run's earlier groups found PHI in;
    ``watch``: principal patterns of the vendors.
    """

    previous_evidence: Callable[[str], Iterator[tuple[str, Any]]]
    phi_found: Callable[[], tuple[str, ...]]
    watch: tuple[str, ...] = ()


#: A row of run evidence that names its asset group in an assessment.
RowT = TypeVar("RowT", "EndpointSummary", "BucketSummary", "LogSummary")


@dataclass(slots=True)
class ScanContext:
    """What a scan needs besides its plan: the catalog, the masker and the run it records into."""

    catalog: Catalog
    run: RunInfo
    setup: Setup = field(default_factory=Setup)
    #: Set in an assessment only.
    assessment: AssessmentFacts | None = None

    @property
    def masker(self) -> Masker:
        """The masker of the run (see :class:`Setup`)."""
        return self.setup.masker

    @property
    def group(self) -> str | None:
        """The asset group this scan is (in an assessment), else None."""
        return self.setup.group

    @overload
    def evidence(self, key: Literal["storage"]) -> list[StorageEncryption]: ...
    @overload
    def evidence(self, key: Literal["endpoints"]) -> list[EndpointSummary]: ...
    @overload
    def evidence(self, key: Literal["buckets"]) -> list[BucketSummary]: ...
    @overload
    def evidence(self, key: Literal["logs"]) -> list[LogSummary]: ...

    def evidence(self, key: Literal["storage", "endpoints", "buckets", "logs"]) -> list[Any]:
        """The list of run evidence ``key`` (created empty on first use), of its row type."""
        value: list[Any] = self.run.evidence.setdefault(key, [])
        return value

    def grouped(self, item: RowT) -> RowT:
        """``item`` with the asset group it belongs to, when this scan is one of an assessment."""
        if self.group is None:
            return item.copy()
        return {**item, "group": self.group}


OptionsT = TypeVar("OptionsT", bound=ScannerOptions)
PlanT = TypeVar("PlanT")
SummaryT = TypeVar("SummaryT", bound=Mapping[str, Any])


class Scanner(ABC, Generic[OptionsT, PlanT, SummaryT]):
    """One scanner: its options model, plan, scan and summary (see the module docstring).

    A scanner names what differs in its class statement, and the options model is its first
    type argument::

        class ArchiveScanner(Scanner[ArchiveOptions, ArchivePlan, ArchiveSummary],
                             name="archive", command="scan archive", unit="files"):
    """

    #: The name of the scanner: its ``[[section]]`` of assessment.toml and its checks' scanner.
    name: ClassVar[str]
    #: The command as the run records it (``scan archive``, ``analyze logs``).
    command: ClassVar[str]
    #: What the progress display counts (a key of the results' stats).
    unit: ClassVar[str] = "files"
    #: The options model (its package's ``options.py``): the first type argument.
    options_model: type[OptionsT]
    #: In an assessment, a plan error stops it before anything is scanned (exit 2) when True
    #: (the section itself is wrong); when False the group's targets become unverifiable
    #: findings and the other groups run.
    setup_stops_assessment: ClassVar[bool] = False

    def __init_subclass__(cls, *, name: str, command: str, unit: str = "files",
                          setup_stops_assessment: bool = False, **kwargs: Any) -> None:
        """Record the scanner's name, command, unit and options model on its class."""
        super().__init_subclass__(**kwargs)
        cls.name, cls.command, cls.unit = name, command, unit
        cls.setup_stops_assessment = setup_stops_assessment
        cls.options_model = cast("type[OptionsT]", _options_model(cls))

    @abstractmethod
    def plan(self, options: OptionsT, setup: Setup) -> PlanT:
        """Check every input and prepare the scan; raise :class:`ScannerSetupError`."""

    @abstractmethod
    def targets(self, options: OptionsT, plan: PlanT | None, setup: Setup) -> list[str]:
        """The targets as the findings name their assets (``plan`` is None if it failed)."""

    @abstractmethod
    def describe(self, plan: PlanT) -> dict[str, object]:
        """The options as a single scan records them in its run (no secrets)."""

    @abstractmethod
    def summary(self, options: OptionsT) -> SummaryT:
        """The options the reports mention for an asset group of this scanner."""

    @abstractmethod
    def scan(self, plan: PlanT, context: ScanContext) -> Iterator[AssetResult]:
        """Scan; yield one result per asset; record the run evidence in ``context.run``."""

    def total(self, plan: PlanT) -> Callable[[], int] | None:
        """How many units the scan will count, for a progress bar (None: unknown)."""
        return None


AnyScanner = Scanner[Any, Any, Any]


def _options_model(cls: type) -> type[ScannerOptions]:
    """The options model a scanner class names as its first type argument of :class:`Scanner`."""
    for base in getattr(cls, "__orig_bases__", ()):
        if get_origin(base) is Scanner:
            model = get_args(base)[0]
            if isinstance(model, type) and issubclass(model, ScannerOptions):
                return model
    raise TypeError(f"{cls.__name__}: subclass Scanner[Options, Plan, Summary] with a "
                    "ScannerOptions model")


def scanner_names() -> tuple[str, ...]:
    """Every registered scanner, in the order an assessment runs them."""
    return _REGISTRY


def scanner_for(name: str) -> AnyScanner:
    """The scanner called ``name`` (its code is imported now); KeyError if there is none."""
    if name not in _REGISTRY:
        raise KeyError(name)
    found: AnyScanner = importlib.import_module(f"hipaa_audit.{name}.entry").SCANNER
    return found


def unverified(catalog: Catalog, targets: Iterable[str], why: str) -> Iterator[AssetResult]:
    """One result per target that could not be examined, with an ``unverifiable`` finding."""
    check = catalog[NOT_CHECKED]
    for target in targets:
        result = AssetResult(target)
        result.findings.append(check.finding(target, why, status=Status.ERROR))
        result.coverage.record(NOT_CHECKED, "error")
        yield result
