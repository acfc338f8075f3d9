"""Sigma rules over the normalised event table.

Rules are parsed and checked with pySigma; there is no usable pandas backend, so each rule's
condition tree is compiled here into a small tree of boolean operators over *leaves* (one field
test each) and evaluated with vectorised pandas/pyarrow/numpy operations: every string column is
factorised once, each leaf is tested on the distinct values only and broadcast back to the rows.

Field names in rules are the schema columns (:mod:`hipaa_audit.logs.schema`) or aliases
(:data:`DEFAULT_FIELD_MAP`, extended or overridden by ``field_map``). A field that resolves to no
column matches nothing and never raises (``null`` and ``exists: false`` hold for it, as for any
absent field). CloudTrail's ``errorMessage``, ``additionalEventData.*`` and
``responseElements.*`` resolve to their leaves in the ``detail`` column (JSON text, screened when
parsed); they select events, and a correlation grouped by one does not show its values.

Matching follows Sigma: strings compare case-insensitively unless ``|cased``; ``*`` and ``?``
are wildcards over the whole value; ``|re`` is an unanchored RE2 search (case-sensitive unless
``|re|i``); ``|cidr`` matches IPv4/IPv6 addresses; ``|gt``/``|gte``/``|lt``/``|lte``/``|neq``
compare numbers (``time`` compares as Unix seconds); ``null`` is a missing value; ``|exists``;
``|fieldref`` compares two fields; ``|minute``... ``|year`` test parts of ``time``; keyword
(field-less) values are searched for, as substrings, in :data:`KEYWORD_COLUMNS`.

Correlation rules (Sigma v2) of the types in :data:`SUPPORTED_CORRELATIONS` are evaluated per
``group-by`` group over sliding windows of ``timespan`` (a window ends at each event and spans
the events at most ``timespan`` older); a group is reported once, with its most extreme window.
"""

from __future__ import annotations

import ipaddress
import json
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import yaml
from sigma import exceptions as sigma_exceptions
from sigma.collection import SigmaCollection
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.correlations import (
    SigmaCorrelationCondition,
    SigmaCorrelationRule,
)
from sigma.exceptions import SigmaRuleLocation
from sigma.filters import SigmaFilter
from sigma.rule import SigmaRule, SigmaRuleBase
from sigma.types import (
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
)
from sigma.validation import SigmaValidator
from sigma.validators.base import SigmaValidationIssueSeverity
from sigma.validators.core.condition import DanglingConditionValidator, DanglingDetectionValidator
from sigma.validators.core.metadata import IdentifierUniquenessValidator
from sigma.validators.core.modifiers import InvalidModifierCombinationsValidator

from hipaa_audit.errors import HipaaAuditError
from hipaa_audit.logs.schema import STRING_DTYPE, detail_field

if TYPE_CHECKING:
    from hipaa_audit.evidence import SigmaRuleReport

#: The column holding CloudTrail's screened detail, and how a field of it is named when resolved.
DETAIL_COLUMN = "detail"
DETAIL_PREFIX = "detail:"

#: Columns searched by keyword (field-less) detections.
KEYWORD_COLUMNS = ("user", "action", "code", "target", "system", "device")

#: Common Sigma / CloudTrail / Windows field names and the schema column they mean.
DEFAULT_FIELD_MAP: Mapping[str, str] = {
    "eventName": "code",
    "eventSource": "system",
    "sourceIPAddress": "source_ip",
    "userIdentity.userName": "user",
    "userIdentity.arn": "user",
    "userIdentity.principalId": "user",
    "userAgent": "device",
    "errorCode": "error_code",
    "userIdentity.type": "identity_type",
    "requestParameters.bucketName": "target",
    "EventID": "code",
    "src_ip": "source_ip",
    "SourceIp": "source_ip",
    "IpAddress": "source_ip",
    "ClientIP": "source_ip",
    "SubjectUserName": "user",
    "TargetUserName": "user",
    "UserName": "user",
    "Computer": "system",
    "Hostname": "device",
    "timestamp": "time",
    "@timestamp": "time",
}

#: Correlation types this evaluator implements (others are refused at load time).
SUPPORTED_CORRELATIONS = ("event_count", "value_count", "temporal", "value_sum", "value_avg")

#: At most this many event ids are reported per match.
MAX_EVENT_IDS = 20
#: A rule file nested deeper than this (mappings and lists within each other) is refused before
#: it is composed: YAML and pySigma recurse once per level.
MAX_RULE_DEPTH = 64
#: A rule file larger than this is refused unread (rules are a few KiB).
MAX_RULE_BYTES = 4 * 1024 * 1024

_RULE_SUFFIXES = (".yml", ".yaml")
_VALIDATORS = (DanglingDetectionValidator, DanglingConditionValidator,
               IdentifierUniquenessValidator, InvalidModifierCombinationsValidator)
_NAT = np.iinfo(np.int64).min

Mask = npt.NDArray[np.bool_]


class SigmaError(HipaaAuditError):
    """A Sigma rule file that cannot be loaded; the message names the file, the rule and why."""


@dataclass(frozen=True)
class SigmaMatch:
    """One rule that matched: the matching events, or one correlation group over its threshold."""

    rule_id: str
    title: str
    level: str
    kind: str
    count: int
    group: dict[str, str]
    first_time: str
    last_time: str
    event_ids: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready evidence."""
        return {"rule_id": self.rule_id, "title": self.title, "level": self.level,
                "kind": self.kind, "count": self.count, "group": dict(self.group),
                "first_time": self.first_time, "last_time": self.last_time,
                "event_ids": list(self.event_ids)}


@dataclass(frozen=True)
class RuleSet:
    """Loaded and compiled rules: plain rules, correlation rules and the files they came from."""

    rules: tuple[Any, ...]
    correlations: tuple[Any, ...]
    sources: tuple[str, ...]


# --------------------------------------------------------------------------------------------
# Compiled condition trees


@dataclass(frozen=True)
class _Leaf:
    """One test of one field (``field`` None: a keyword search)."""

    field: str | None
    kind: str
    arg: Any = None
    cased: bool = False


@dataclass(frozen=True)
class _And:
    args: tuple[_Node, ...]


@dataclass(frozen=True)
class _Or:
    args: tuple[_Node, ...]


@dataclass(frozen=True)
class _Not:
    arg: _Node


_Node = _Leaf | _And | _Or | _Not


@dataclass(frozen=True)
class _Rule:
    rule_id: str
    title: str
    level: str
    source: str
    tree: _Node
    sigma: SigmaRule = field(compare=False, repr=False)


@dataclass(frozen=True)
class _Correlation:
    rule_id: str
    title: str
    level: str
    source: str
    kind: str
    refs: tuple[int, ...]
    group_by: tuple[str, ...]
    aliases: tuple[tuple[str, tuple[str, ...]], ...]
    value_field: str | None
    span_ms: int
    op: str
    threshold: float
    sigma: SigmaCorrelationRule = field(compare=False, repr=False)

    def field_for(self, name: str, ref: int) -> str:
        """The event field behind group-by ``name`` for the ``ref``-th referenced rule."""
        for alias, fields in self.aliases:
            if alias == name:
                return fields[ref]
        return name


class _Unsupported(HipaaAuditError):
    """A construct the evaluator does not implement."""


def _and(args: list[_Node]) -> _Node:
    flat: list[_Node] = []
    for arg in args:
        flat.extend(arg.args if isinstance(arg, _And) else (arg,))
    return flat[0] if len(flat) == 1 else _And(tuple(flat))


def _or(args: list[_Node]) -> _Node:
    flat: list[_Node] = []
    for arg in args:
        flat.extend(arg.args if isinstance(arg, _Or) else (arg,))
    # merge plain equalities on one field into a single set-membership leaf
    merged: list[_Node] = []
    sets: dict[tuple[str | None, bool], int] = {}
    for arg in flat:
        if isinstance(arg, _Leaf) and arg.kind == "eq" and arg.field is not None:
            key = (arg.field, arg.cased)
            if key in sets:
                prev = cast(_Leaf, merged[sets[key]])
                merged[sets[key]] = _Leaf(arg.field, "eq", prev.arg + arg.arg, arg.cased)
                continue
            sets[key] = len(merged)
        merged.append(arg)
    return merged[0] if len(merged) == 1 else _Or(tuple(merged))


def _compile(node: object) -> _Node:
    """Compile a pySigma condition tree (after postprocessing) into a :data:`_Node`."""
    if isinstance(node, ConditionAND):
        return _and([_compile(a) for a in node.args if a is not None])
    if isinstance(node, ConditionOR):
        return _or([_compile(a) for a in node.args if a is not None])
    if isinstance(node, ConditionNOT):
        return _Not(_compile(node.args[0]))
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _field_leaf(node.field, node.value)
    if isinstance(node, ConditionValueExpression):
        return _keyword_leaf(node.value)
    raise _Unsupported(f"condition element {type(node).__name__} is not supported")


def _parts(value: SigmaString) -> list[str | SpecialChars]:
    parts: list[str | SpecialChars] = []
    for part in value.iter_parts():
        if isinstance(part, Placeholder):
            raise _Unsupported(f"placeholder %{part.name}% (expand modifier) is not supported")
        parts.append(part)
    return parts


def _string_leaf(name: str | None, value: SigmaString, cased: bool) -> _Leaf:
    parts = _parts(value)
    multi = SpecialChars.WILDCARD_MULTI

    def text(s: str) -> str:
        return s if cased else s.lower()

    if not any(isinstance(p, SpecialChars) for p in parts):
        return _Leaf(name, "eq", (text("".join(cast(list[str], parts))),), cased)
    if parts == [multi] or parts == [multi, multi]:
        return _Leaf(name, "exists", True)
    if SpecialChars.WILDCARD_SINGLE not in parts and len(parts) <= 3:
        inner = [p for p in parts if isinstance(p, str)]
        if len(inner) == 1:
            if parts == [multi, inner[0], multi]:
                return _Leaf(name, "substr", text(inner[0]), cased)
            if parts == [inner[0], multi]:
                return _Leaf(name, "prefix", text(inner[0]), cased)
            if parts == [multi, inner[0]]:
                return _Leaf(name, "suffix", text(inner[0]), cased)
    pattern = value.convert(escape_char="\\", wildcard_multi=".*", wildcard_single=".",
                            add_escaped=".*+?^$[](){}\\|")
    return _Leaf(name, "wild", f"(?s)^(?:{pattern})$", cased)


def _regex_leaf(name: str | None, value: SigmaRegularExpression) -> _Leaf:
    inline = "".join(flag for flag, sigma_flag in (("m", SigmaRegularExpressionFlag.MULTILINE),
                                                   ("s", SigmaRegularExpressionFlag.DOTALL))
                     if sigma_flag in value.flags)
    pattern = (f"(?{inline})" if inline else "") + str(value.regexp)
    return _Leaf(name, "regex", pattern, SigmaRegularExpressionFlag.IGNORECASE not in value.flags)


def _field_leaf(name: str, value: object) -> _Node:
    if isinstance(value, SigmaExpansion):
        return _or([_field_leaf(name, v) for v in value.values])
    if isinstance(value, SigmaNull):
        return _Leaf(name, "null")
    if isinstance(value, SigmaExists):
        return _Leaf(name, "exists", bool(value.exists))
    if isinstance(value, SigmaCIDRExpression):
        return _Leaf(name, "cidr", value.network)
    if isinstance(value, SigmaCompareExpression):
        return _Leaf(name, "cmp", (value.op.name.lower(), value.number.number))
    if isinstance(value, SigmaRegularExpression):
        return _regex_leaf(name, value)
    if isinstance(value, SigmaCasedString):
        return _string_leaf(name, value, cased=True)
    if isinstance(value, SigmaString):
        return _string_leaf(name, value, cased=False)
    if isinstance(value, SigmaBool):
        return _Leaf(name, "eq", ("true" if value.boolean else "false",))
    if isinstance(value, SigmaTimestampPart):
        return _Leaf(name, "tspart", (value.timestamp_part.name.lower(), value.number))
    if isinstance(value, SigmaNumber):
        return _Leaf(name, "num", value.number)
    if isinstance(value, SigmaFieldReference):
        return _Leaf(name, "fieldref", (value.field, value.starts_with, value.ends_with))
    raise _Unsupported(f"value type {type(value).__name__} of field {name!r} is not supported")


def _keyword_leaf(value: object) -> _Node:
    if isinstance(value, SigmaExpansion):
        return _or([_keyword_leaf(v) for v in value.values])
    if isinstance(value, SigmaRegularExpression):
        return _regex_leaf(None, value)
    if isinstance(value, SigmaNumber | SigmaBool):
        value = SigmaString(str(value.number if isinstance(value, SigmaNumber)
                                else value.boolean).lower())
    if isinstance(value, SigmaString):
        # a keyword is searched for inside the values (implicit wildcards on both sides)
        multi = SpecialChars.WILDCARD_MULTI
        parts = _parts(value)
        searched = SigmaString()
        searched.s = [*([] if parts[:1] == [multi] else [multi]), *parts,
                      *([] if parts[-1:] == [multi] else [multi])]
        return _string_leaf(None, searched, cased=isinstance(value, SigmaCasedString))
    raise _Unsupported(f"keyword value type {type(value).__name__} is not supported")


# --------------------------------------------------------------------------------------------
# Loading


def _rule_files(paths: Sequence[Path]) -> list[Path]:
    files: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in _RULE_SUFFIXES
                           and p.is_file())
            files.update(dict.fromkeys(p.resolve() for p in found))
        elif path.is_file():
            files[path.resolve()] = None
        else:
            raise SigmaError(f"{path}: no such rule file or folder")
    return list(files)


def _source_of(rule: SigmaRuleBase, fallback: str = "?") -> str:
    return str(rule.source.path) if rule.source is not None else fallback


def _rule_id(rule: SigmaRuleBase) -> str:
    if rule.id is not None:
        return str(rule.id)
    return rule.name or rule.title


def _level(rule: SigmaRuleBase) -> str:
    return rule.level.name.lower() if rule.level is not None else "medium"


def _describe(rule: SigmaRuleBase, problem: object, path: str | None = None) -> str:
    ident = str(rule.id) if rule.id is not None else (rule.name or "no id")
    return f"{path or _source_of(rule)}: rule {rule.title!r} ({ident}): {problem}"


_OPENS = (yaml.BlockMappingStartToken, yaml.BlockSequenceStartToken,
          yaml.FlowMappingStartToken, yaml.FlowSequenceStartToken)
_CLOSES = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


def _check_depth(text: str, path: Path) -> None:
    """Refuse YAML nested deeper than :data:`MAX_RULE_DEPTH` (the token scanner does not recurse).

    A block sequence written as ``- a`` under a key has no start token but ends with a block end,
    so the depth is only ever over-counted by missing starts, never under-counted.
    """
    depth = 0
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, _OPENS):
                depth += 1
                if depth > MAX_RULE_DEPTH:
                    raise SigmaError(f"{path}: not a valid Sigma rule file: nested more than "
                                     f"{MAX_RULE_DEPTH} levels deep")
            elif isinstance(token, _CLOSES):
                depth = max(0, depth - 1)
    except yaml.YAMLError as exc:
        raise SigmaError(f"{path}: not a valid Sigma rule file: {exc}") from exc


def _parse_file(path: Path) -> list[SigmaRule | SigmaCorrelationRule | SigmaFilter]:
    try:
        if path.stat().st_size > MAX_RULE_BYTES:
            raise SigmaError(f"{path}: not a valid Sigma rule file: larger than "
                             f"{MAX_RULE_BYTES // (1024 * 1024)} MiB")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SigmaError(f"{path}: cannot read: {exc}") from exc
    _check_depth(text, path)
    try:
        collection = SigmaCollection.from_yaml(
            text, collect_errors=True, source=SigmaRuleLocation(path), collect_filters=True,
            resolve_references=False)
    except (yaml.YAMLError, sigma_exceptions.SigmaError, TypeError, AttributeError) as exc:
        raise SigmaError(f"{path}: not a valid Sigma rule file: {exc}") from exc
    except RecursionError:
        raise SigmaError(f"{path}: not a valid Sigma rule file: nested too deep") from None
    for rule in collection.rules:
        if rule.errors:
            raise SigmaError(_describe(rule, rule.errors[0], str(path)))
    for sigma_filter in collection.filters:
        if sigma_filter.errors:
            raise SigmaError(_describe(sigma_filter, sigma_filter.errors[0], str(path)))
    if collection.errors:
        raise SigmaError(f"{path}: {collection.errors[0]}")
    if not collection.rules and not collection.filters:
        raise SigmaError(f"{path}: no Sigma rule in the file")
    return [*collection.rules, *collection.filters]


def _validate(rules: list[SigmaRule | SigmaCorrelationRule]) -> None:
    validator = SigmaValidator(_VALIDATORS)
    try:
        issues = validator.validate_rules(iter(cast(list[SigmaRule], rules)))
    except sigma_exceptions.SigmaError:
        return  # the rule itself is reported with its own error when compiled
    for issue in issues:
        if issue.severity == SigmaValidationIssueSeverity.HIGH and issue.rules:
            raise SigmaError(_describe(issue.rules[0], f"{issue.description} ({issue})"))


def _compile_rule(rule: SigmaRule) -> _Rule:
    try:
        trees = [_compile(condition.parsed) for condition in rule.detection.parsed_condition]
    except (sigma_exceptions.SigmaError, _Unsupported) as exc:
        raise SigmaError(_describe(rule, exc)) from exc
    return _Rule(_rule_id(rule), rule.title, _level(rule), _source_of(rule), _or(trees), rule)


def _compile_correlation(rule: SigmaCorrelationRule,
                         lookup: Mapping[str, int],
                         kinds: Mapping[str, str]) -> _Correlation:
    kind = rule.type.name.lower() if rule.type is not None else "?"
    if kind not in SUPPORTED_CORRELATIONS:
        raise SigmaError(_describe(rule, f"correlation type {kind} is not supported"))
    condition = rule.condition
    if not isinstance(condition, SigmaCorrelationCondition):
        raise SigmaError(_describe(rule, "extended correlation conditions are not supported"))
    refs: list[int] = []
    for ref in rule.rules or []:
        if kinds.get(ref.reference) == "correlation":
            raise SigmaError(_describe(rule, f"correlation of correlation {ref.reference!r} is "
                                             "not supported"))
        if ref.reference not in lookup:
            raise SigmaError(_describe(rule, f"referenced rule {ref.reference!r} not found"))
        refs.append(lookup[ref.reference])
    aliases: list[tuple[str, tuple[str, ...]]] = []
    for alias in rule.aliases:
        mapping = {ref.reference: name for ref, name in alias.mapping.items()}
        missing = [ref.reference for ref in rule.rules or [] if ref.reference not in mapping]
        if missing:
            raise SigmaError(_describe(rule, f"alias {alias.alias!r} has no field for "
                                             f"{', '.join(missing)}"))
        aliases.append((alias.alias, tuple(mapping[ref.reference] for ref in rule.rules or [])))
    fieldref = condition.fieldref
    if isinstance(fieldref, list):
        if len(fieldref) != 1:
            raise SigmaError(_describe(rule, "a condition over several fields is not supported"))
        fieldref = fieldref[0]
    if kind == "temporal":
        fieldref = None
    return _Correlation(
        _rule_id(rule), rule.title, _level(rule), _source_of(rule), kind, tuple(refs),
        tuple(rule.group_by or ()), tuple(aliases), fieldref, rule.timespan.seconds * 1000,
        condition.op.name.lower(), float(condition.count), rule)


def load_rules(paths: Sequence[Path]) -> RuleSet:
    """Load, validate and compile the Sigma rules in ``paths`` (files or folders of YAML).

    Correlation rules may refer to rules in any of the files. Raises :class:`SigmaError` naming
    the file and rule for anything pySigma rejects, a failed validation (dangling detections or
    conditions, duplicate ids, invalid modifier combinations) or a construct not implemented here
    (e.g. an unsupported correlation type).
    """
    files = _rule_files(paths)
    parsed: list[SigmaRule | SigmaCorrelationRule | SigmaFilter] = []
    for path in files:
        parsed.extend(_parse_file(path))
    try:
        collection = SigmaCollection(init_rules=parsed, resolve_references=False)
    except sigma_exceptions.SigmaError as exc:
        raise SigmaError(f"{', '.join(map(str, files))}: {exc}") from exc

    plain = [r for r in collection.rules if isinstance(r, SigmaRule)]
    lookup: dict[str, int] = {}
    kinds: dict[str, str] = {}
    for index, rule in enumerate(plain):
        for key in (str(rule.id) if rule.id else None, rule.name):
            if key:
                lookup[key] = index
                kinds[key] = "rule"
    for corr in collection.rules:
        if isinstance(corr, SigmaCorrelationRule):
            for key in (str(corr.id) if corr.id else None, corr.name):
                if key:
                    kinds[key] = "correlation"

    compiled = [_compile_rule(rule) for rule in plain]
    correlations = [_compile_correlation(r, lookup, kinds) for r in collection.rules
                    if isinstance(r, SigmaCorrelationRule)]
    _validate(collection.rules)
    return RuleSet(tuple(compiled), tuple(correlations), tuple(str(p) for p in files))


def _silenced(rules: RuleSet) -> set[int]:
    """Rules referenced by a correlation that does not ``generate`` their own matches."""
    silent: set[int] = set()
    for corr in rules.correlations:
        if not corr.sigma.generate:
            silent.update(corr.refs)
    return silent


# --------------------------------------------------------------------------------------------
# Evaluation


def _narrow(codes: npt.NDArray[Any], n: int) -> npt.NDArray[np.signedinteger[Any]]:
    """Codes (-1 for missing) of ``n`` distinct values in the narrowest signed integer type."""
    for kind in (np.int8, np.int16, np.int32):
        if n < np.iinfo(kind).max:
            return np.asarray(codes, dtype=kind)
    return np.asarray(codes, dtype=np.int64)


class _Column:
    """A column factorised: row codes (-1 for missing) into its distinct values.

    A categorical column (the compact table) is taken as it is: its codes and categories, no
    copy. Codes are held in the narrowest integer type (a 5-million-row column of a few
    thousand values: 10 MB, not 40).
    """

    def __init__(self, series: pd.Series[Any]) -> None:
        if isinstance(series.dtype, pd.CategoricalDtype):
            self.codes = _narrow(series.cat.codes.to_numpy(), len(series.cat.categories))
            self.uniques: Any = pd.Index(series.cat.categories)
        else:
            codes, uniques = pd.factorize(series, use_na_sentinel=True)
            self.codes = _narrow(codes, len(uniques))
            self.uniques = uniques
        self._strings: Any = None
        self._lower: Any = None
        self._numbers: npt.NDArray[np.float64] | None = None
        self._ips: tuple[npt.NDArray[np.int64], list[tuple[int, int]]] | None = None

    def gather(self, umask: Mask, missing: bool = False) -> Mask:
        """Broadcast a mask over the distinct values to the rows."""
        out: Mask = np.append(umask, missing)[self.codes]
        return out

    @property
    def strings(self) -> Any:
        """The distinct values as a pyarrow string array."""
        if self._strings is None:
            values = self.uniques
            if isinstance(values.dtype, pd.StringDtype):
                self._strings = pc.cast(pa.array(values.array), pa.large_string())
            elif values.dtype == object:
                self._strings = pa.array([str(v) for v in values], type=pa.large_string())
            elif isinstance(values, pd.DatetimeIndex):
                self._strings = pa.array([_iso(v) for v in values], type=pa.large_string())
            else:
                self._strings = pa.array([str(v) for v in values], type=pa.large_string())
        return self._strings

    @property
    def lower(self) -> Any:
        """The distinct values lower-cased."""
        if self._lower is None:
            self._lower = pc.utf8_lower(self.strings)
        return self._lower

    @property
    def numbers(self) -> npt.NDArray[np.float64]:
        """The distinct values as numbers (NaN when not numeric)."""
        if self._numbers is None:
            self._numbers = pd.to_numeric(pd.Series(np.asarray(self.strings.to_pylist(),
                                                                dtype=object)),
                                          errors="coerce").to_numpy(dtype=np.float64)
        return self._numbers

    @property
    def ips(self) -> tuple[npt.NDArray[np.int64], list[tuple[int, int]]]:
        """The distinct values as IPv4 integers (-1: not IPv4) and the IPv6 ones."""
        if self._ips is None:
            v4 = np.full(len(self.uniques), -1, dtype=np.int64)
            v6: list[tuple[int, int]] = []
            for i, text in enumerate(self.strings.to_pylist()):
                try:
                    address = ipaddress.ip_address(str(text).strip())
                except ValueError:
                    continue
                if isinstance(address, ipaddress.IPv4Address):
                    v4[i] = int(address)
                elif address.ipv4_mapped is not None:
                    v4[i] = int(address.ipv4_mapped)
                else:
                    v6.append((i, int(address)))
            self._ips = (v4, v6)
        return self._ips


def _detail_value(text: object, key: str) -> str | None:
    """The value of ``key`` in one ``detail`` JSON text (None when absent or not readable)."""
    try:
        value = json.loads(str(text)).get(key)
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _to_mask(result: Any) -> Mask:
    return np.asarray(pc.fill_null(result, False).to_numpy(zero_copy_only=False), dtype=bool)


def _string_test(kind: str, values: Any, arg: Any, cased: bool) -> Mask:
    if kind == "eq":
        return _to_mask(pc.is_in(values, value_set=pa.array(list(arg), type=values.type)))
    if kind == "prefix":
        return _to_mask(pc.starts_with(values, pattern=arg))
    if kind == "suffix":
        return _to_mask(pc.ends_with(values, pattern=arg))
    if kind == "substr":
        return _to_mask(pc.match_substring(values, pattern=arg))
    # "wild" and "regex": RE2 via pyarrow (the engine pySigma validated the pattern with)
    return _to_mask(pc.match_substring_regex(values, pattern=arg, ignore_case=not cased))


_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "lt": operator.lt, "lte": operator.le, "gt": operator.gt, "gte": operator.ge,
    "eq": operator.eq, "neq": operator.ne,
}
_STRING_KINDS = frozenset({"eq", "prefix", "suffix", "substr", "wild", "regex"})


class _Frame:
    """An event table being evaluated: field resolution and per-column caches."""

    def __init__(self, events: pd.DataFrame, field_map: Mapping[str, str] | None) -> None:
        self.events = events
        self.n = len(events)
        aliases = {**DEFAULT_FIELD_MAP, **(field_map or {})}
        self._aliases = aliases
        self._folded_aliases = {k.lower(): v for k, v in aliases.items()}
        self._folded_columns = {str(c).lower(): str(c) for c in events.columns}
        self._columns: dict[str, _Column] = {}
        self._numbers: dict[str, npt.NDArray[np.float64]] = {}
        self._leaves: dict[tuple[_Leaf, str], Mask] = {}
        self._time: npt.NDArray[np.int64] | None = None
        self._details: dict[str, pd.Series[Any]] = {}
        self._has_detail: bool | None = None

    # -- fields

    def resolve(self, name: str) -> str | None:
        """The column behind a rule field name, or None when there is none."""
        columns = self.events.columns
        target = self._aliases.get(name)
        if target is None and name not in columns:
            target = self._folded_aliases.get(name.lower())
        if target is not None:
            if target in columns:
                return target
            return self._folded_columns.get(target.lower())
        if name in columns:
            return name
        folded = self._folded_columns.get(name.lower())
        if folded is None and detail_field(name) and self.has_detail:
            return DETAIL_PREFIX + name
        return folded

    @property
    def has_detail(self) -> bool:
        """Whether any event holds CloudTrail detail (else its fields are unknown, not empty)."""
        if self._has_detail is None:
            self._has_detail = DETAIL_COLUMN in self.events.columns and bool(
                self.events[DETAIL_COLUMN].notna().any())
        return self._has_detail

    def series(self, name: str) -> pd.Series[Any]:
        """The values of a resolved field: a column, or a CloudTrail field of ``detail``."""
        if not name.startswith(DETAIL_PREFIX):
            return self.events[name]
        if name not in self._details:
            key = name[len(DETAIL_PREFIX):]
            detail = self.column(DETAIL_COLUMN)
            values = [_detail_value(text, key) for text in detail.strings.to_pylist()]
            codes, uniques = pd.factorize(pd.Series([*values, None], dtype=object),
                                          use_na_sentinel=True)
            rows = np.asarray(codes)[detail.codes]  # a missing detail (-1) takes the None
            self._details[name] = pd.Series(pd.Categorical.from_codes(
                rows, dtype=pd.CategoricalDtype(pd.Index(uniques, dtype=STRING_DTYPE))))
        return self._details[name]

    def column(self, name: str) -> _Column:
        """The factorised column (or ``detail`` field) ``name``."""
        if name not in self._columns:
            self._columns[name] = _Column(self.series(name))
        return self._columns[name]

    def numbers(self, name: str) -> npt.NDArray[np.float64]:
        """The column as floats per row (NaN when missing or not numeric)."""
        if name not in self._numbers:
            series = self.series(name)
            if pd.api.types.is_datetime64_any_dtype(series.dtype):
                ms = self._ms(series).astype(np.float64)
                ms[ms == float(_NAT)] = np.nan
                self._numbers[name] = ms / 1000.0
            elif pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(
                    series.dtype):
                self._numbers[name] = series.to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                column = self.column(name)
                self._numbers[name] = np.append(column.numbers, np.nan)[column.codes]
        return self._numbers[name]

    @staticmethod
    def _ms(series: pd.Series[Any]) -> npt.NDArray[np.int64]:
        values = series
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            values = series.dt.tz_convert("UTC").dt.tz_localize(None)
        return np.asarray(values.to_numpy().astype("datetime64[ms]").astype(np.int64))

    @property
    def time_ms(self) -> npt.NDArray[np.int64]:
        """Event times as Unix milliseconds (``_NAT`` when unknown)."""
        if self._time is None:
            if "time" in self.events.columns and pd.api.types.is_datetime64_any_dtype(
                    self.events["time"].dtype):
                self._time = self._ms(self.events["time"])
            else:
                self._time = np.full(self.n, _NAT, dtype=np.int64)
        return self._time

    def strings_at(self, name: str | None, rows: npt.NDArray[np.intp]) -> npt.NDArray[Any]:
        """The values of column ``name`` at ``rows`` as str (None when missing)."""
        out = np.full(len(rows), None, dtype=object)
        if name is None or not len(rows):
            return out
        values = self.series(name).iloc[rows]
        present = np.asarray(values.notna().to_numpy(), dtype=bool)
        out[present] = [v if isinstance(v, str) else str(v) for v in values[present].tolist()]
        return out

    # -- evaluation

    def node(self, node: _Node) -> Mask:
        """The rows matching a compiled condition."""
        if isinstance(node, _Leaf):
            return self.leaf(node)
        if isinstance(node, _Not):
            return ~self.node(node.arg)
        if isinstance(node, _And):
            mask = self.node(node.args[0]).copy()
            for arg in node.args[1:]:
                if not mask.any():
                    break
                mask &= self.node(arg)
            return mask
        mask = self.node(node.args[0]).copy()
        for arg in node.args[1:]:
            if mask.all():
                break
            mask |= self.node(arg)
        return mask

    def leaf(self, leaf: _Leaf) -> Mask:
        """The rows matching one field test (cached)."""
        if leaf.field is None:
            mask = np.zeros(self.n, dtype=bool)
            for keyword_column in KEYWORD_COLUMNS:
                if keyword_column in self.events.columns:
                    mask |= self._cached(leaf, keyword_column)
            return mask
        name = self.resolve(leaf.field)
        if name is None:  # no such column: only "absent" tests hold
            absent = (leaf.kind == "null") or (leaf.kind == "exists" and not leaf.arg)
            return np.full(self.n, absent, dtype=bool)
        return self._cached(leaf, name)

    def _cached(self, leaf: _Leaf, name: str) -> Mask:
        key = (leaf, name)
        if key not in self._leaves:
            self._leaves[key] = self._test(leaf, name)
        return self._leaves[key]

    def _test(self, leaf: _Leaf, name: str) -> Mask:
        kind = leaf.kind
        series = self.series(name)
        if kind == "null":
            return np.asarray(series.isna().to_numpy(), dtype=bool)
        if kind == "exists":
            present = np.asarray(series.notna().to_numpy(), dtype=bool)
            return present if leaf.arg else ~present
        if kind == "cmp":
            op, number = leaf.arg
            values = self.numbers(name)
            with np.errstate(invalid="ignore"):
                return np.asarray(_COMPARE[op](values, number), dtype=bool) & ~np.isnan(values)
        if kind == "num":
            if pd.api.types.is_numeric_dtype(series.dtype) or \
                    pd.api.types.is_datetime64_any_dtype(series.dtype):
                return np.asarray(self.numbers(name) == leaf.arg, dtype=bool)
            return self._test(_Leaf(leaf.field, "eq", (str(leaf.arg),)), name)
        if kind == "cidr":
            return self._cidr(name, leaf.arg)
        if kind == "tspart":
            return self._timestamp_part(series, *leaf.arg)
        if kind == "fieldref":
            return self._fieldref(name, *leaf.arg)
        if kind in _STRING_KINDS:
            column = self.column(name)
            values = column.strings if (leaf.cased or kind in ("wild", "regex")) else column.lower
            return column.gather(_string_test(kind, values, leaf.arg, leaf.cased))
        raise AssertionError(f"unknown leaf kind {kind}")  # pragma: no cover

    def _cidr(self, name: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Mask:
        column = self.column(name)
        v4, v6 = column.ips
        if isinstance(network, ipaddress.IPv4Network):
            low, high = int(network.network_address), int(network.broadcast_address)
            umask = (v4 >= low) & (v4 <= high)
        else:
            umask = np.zeros(len(v4), dtype=bool)
            low, high = int(network.network_address), int(network.broadcast_address)
            for index, value in v6:
                umask[index] = low <= value <= high
        return column.gather(umask)

    def _timestamp_part(self, series: pd.Series[Any], part: str, number: object) -> Mask:
        if not pd.api.types.is_datetime64_any_dtype(series.dtype):
            return np.zeros(self.n, dtype=bool)
        accessor = series.dt
        values = accessor.isocalendar().week if part == "week" else getattr(accessor, part)
        return np.asarray((values == number).fillna(False).to_numpy(dtype=bool), dtype=bool)

    def _fieldref(self, name: str, other: str, starts: bool, ends: bool) -> Mask:
        other_name = self.resolve(other)
        if other_name is None:
            return np.zeros(self.n, dtype=bool)
        left, right = self.column(name), self.column(other_name)
        both = (left.codes >= 0) & (right.codes >= 0)
        rows = np.flatnonzero(both)
        lhs = np.asarray(left.lower.to_pylist() or [""], dtype=object)[left.codes[rows]]
        rhs = np.asarray(right.lower.to_pylist() or [""], dtype=object)[right.codes[rows]]
        if starts or ends:
            test = str.startswith if starts else str.endswith
            hits = np.fromiter((test(a, b) for a, b in zip(lhs, rhs, strict=True)), dtype=bool,
                               count=len(rows))
        else:
            hits = np.asarray(lhs == rhs, dtype=bool)
        mask = np.zeros(self.n, dtype=bool)
        mask[rows[hits]] = True
        return mask


def _iso(value: object) -> str:
    if value is None or pd.isna(cast(Any, value)):
        return ""
    stamp = pd.Timestamp(cast(Any, value))
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso_ms(ms: int) -> str:
    return "" if ms == _NAT else _iso(pd.Timestamp(ms, unit="ms", tz="UTC"))


def _event_ids(frame: _Frame, rows: npt.NDArray[np.intp]) -> tuple[str, ...]:
    ids: dict[str, None] = {}
    for value in frame.strings_at("event_id" if "event_id" in frame.events.columns else None,
                                  rows):
        if value is not None:
            ids[str(value)] = None
            if len(ids) >= MAX_EVENT_IDS:
                break
    return tuple(ids)


def _plain_match(rule: _Rule, frame: _Frame, mask: Mask) -> SigmaMatch | None:
    rows = np.flatnonzero(mask)
    if not len(rows):
        return None
    times = frame.time_ms[rows]
    known = times[times != _NAT]
    first = int(known.min()) if len(known) else _NAT
    last = int(known.max()) if len(known) else _NAT
    return SigmaMatch(rule.rule_id, rule.title, rule.level, "match", len(rows), {},
                      _iso_ms(first), _iso_ms(last), _event_ids(frame, rows[:MAX_EVENT_IDS * 4]))


def _window_starts(gid: npt.NDArray[np.int64], t: npt.NDArray[np.int64],
                   span: int) -> npt.NDArray[np.int64]:
    """For rows sorted by (group, time): the first row of each row's window."""
    n = len(t)
    if not n:
        return np.zeros(0, dtype=np.int64)
    rel = t - t.min()
    width = int(rel.max()) + span + 1
    if (int(gid.max()) + 1) * width < 2 ** 62:
        key = gid * width + rel
        found: npt.NDArray[np.int64] = np.searchsorted(key, key - span, side="left").astype(
            np.int64)
        return found
    starts = np.empty(n, dtype=np.int64)  # pragma: no cover - enormous time ranges only
    bounds = np.flatnonzero(np.diff(gid)) + 1
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, n], strict=True):
        starts[lo:hi] = lo + np.searchsorted(t[lo:hi], t[lo:hi] - span, side="left")
    return starts


def _distinct_counts(codes: npt.NDArray[np.int64],
                     starts: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Distinct non-negative codes in each window ``[starts[i], i]``."""
    counts: dict[int, int] = {}
    out = np.empty(len(codes), dtype=np.float64)
    left = 0
    distinct = 0
    code_list = codes.tolist()
    for i, (code, start) in enumerate(zip(code_list, starts.tolist(), strict=True)):
        if code >= 0:
            seen = counts.get(code, 0)
            distinct += seen == 0
            counts[code] = seen + 1
        while left < start:
            gone = code_list[left]
            if gone >= 0:
                counts[gone] -= 1
                distinct -= counts[gone] == 0
            left += 1
        out[i] = distinct
    return out


def _correlate(corr: _Correlation, frame: _Frame, masks: Mapping[int, Mask]) -> list[SigmaMatch]:
    group_cols = [f"g{j}" for j in range(len(corr.group_by))]
    parts: list[pd.DataFrame] = []
    for k, ref in enumerate(corr.refs):
        rows = np.flatnonzero(masks[ref])
        if not len(rows):
            continue
        data: dict[str, Any] = {"row": rows, "rule": np.full(len(rows), k, dtype=np.int64),
                                "t": frame.time_ms[rows]}
        for col, name in zip(group_cols, corr.group_by, strict=True):
            data[col] = frame.strings_at(frame.resolve(corr.field_for(name, k)), rows)
        if corr.value_field is not None:
            source = frame.resolve(corr.field_for(corr.value_field, k))
            if corr.kind == "value_count":
                data["v"] = frame.strings_at(source, rows)
            else:
                data["v"] = (frame.numbers(source)[rows] if source is not None
                             else np.full(len(rows), np.nan))
        parts.append(pd.DataFrame(data))
    if not parts:
        return []
    hits = pd.concat(parts, ignore_index=True)
    if corr.kind != "temporal":
        hits = hits.drop_duplicates("row")
    hits = hits[hits["t"] != _NAT]
    if group_cols:
        hits = hits.dropna(subset=group_cols)
    if hits.empty:
        return []
    hits = hits.sort_values([*group_cols, "t"], kind="stable").reset_index(drop=True)
    gid = np.asarray(
        hits.groupby(group_cols, sort=False).ngroup().to_numpy() if group_cols
        else np.zeros(len(hits)), dtype=np.int64)
    t = hits["t"].to_numpy(dtype=np.int64)
    starts = _window_starts(gid, t, corr.span_ms)
    index = np.arange(len(hits), dtype=np.int64)
    values: npt.NDArray[np.float64]
    if corr.kind == "event_count":
        values = (index - starts + 1).astype(np.float64)
    elif corr.kind == "temporal":
        values = _distinct_counts(hits["rule"].to_numpy(dtype=np.int64), starts)
    elif corr.kind == "value_count":
        codes, _ = pd.factorize(hits["v"], use_na_sentinel=True)
        values = _distinct_counts(np.asarray(codes, dtype=np.int64), starts)
    else:
        numbers = hits["v"].to_numpy(dtype=np.float64)
        present = ~np.isnan(numbers)
        sums = np.r_[0.0, np.cumsum(np.where(present, numbers, 0.0))]
        window_sums = sums[index + 1] - sums[starts]
        if corr.kind == "value_sum":
            values = window_sums
        else:
            seen = np.r_[0, np.cumsum(present)]
            window_counts = seen[index + 1] - seen[starts]
            with np.errstate(invalid="ignore", divide="ignore"):
                values = np.where(window_counts > 0, window_sums / window_counts, np.nan)
    with np.errstate(invalid="ignore"):
        holds = np.asarray(_COMPARE[corr.op](values, corr.threshold), dtype=bool) & ~np.isnan(
            values)
    if not holds.any():
        return []
    candidates = pd.DataFrame({"gid": gid[holds], "value": values[holds]},
                              index=index[holds])
    if corr.op in ("gt", "gte"):
        chosen = candidates.groupby("gid", sort=True)["value"].idxmax().to_numpy()
    elif corr.op in ("lt", "lte"):
        chosen = candidates.groupby("gid", sort=True)["value"].idxmin().to_numpy()
    else:
        chosen = candidates.index[~candidates["gid"].duplicated()].to_numpy()
    out: list[SigmaMatch] = []
    all_rows = hits["row"].to_numpy(dtype=np.intp)
    # CloudTrail detail is free text from the asset: it selects events, it is never shown
    withheld = {name for name in corr.group_by
                if any((frame.resolve(corr.field_for(name, k)) or "").startswith(DETAIL_PREFIX)
                       for k in range(len(corr.refs)))}
    for end in chosen.tolist():
        start = int(starts[end])
        group = {name: str(hits.at[end, col]) if name not in withheld
                 else f"(withheld, group {int(gid[end]) + 1})"
                 for name, col in zip(corr.group_by, group_cols, strict=True)}
        value = float(values[end])
        out.append(SigmaMatch(
            corr.rule_id, corr.title, corr.level, corr.kind, round(value), group,
            _iso_ms(int(t[start])), _iso_ms(int(t[end])),
            _event_ids(frame, all_rows[start:end + 1])))
    return out


def _fields(node: _Node) -> set[str]:
    """The field names a compiled condition tree tests (a ``fieldref``'s other field too)."""
    if isinstance(node, _Leaf):
        names = {node.field} if node.field is not None else set()
        if node.kind == "fieldref":
            names.add(str(node.arg[0]))
        return names
    if isinstance(node, _Not):
        return _fields(node.arg)
    return set().union(*(_fields(a) for a in node.args))


@dataclass(frozen=True)
class RuleReport:
    """One loaded rule: what it matched, and the fields it names that the table lacks.

    A rule testing a field no column holds can match nothing through it: listing those fields
    (``unknown_fields``) tells an analyst the rule was loaded but cannot fire as written.
    """

    rule_id: str
    title: str
    kind: str
    source: str
    matches: int
    unknown_fields: tuple[str, ...]

    def as_dict(self) -> SigmaRuleReport:
        """JSON-ready evidence."""
        return {"rule_id": self.rule_id, "title": self.title, "kind": self.kind,
                "source": self.source, "matches": self.matches,
                "unknown_fields": list(self.unknown_fields)}


def report(rules: RuleSet, events: pd.DataFrame, matches: Sequence[SigmaMatch],
           field_map: Mapping[str, str] | None = None) -> list[RuleReport]:
    """Every loaded rule (plain, then correlations) with its matches and unknown fields.

    ``matches`` counts the events a plain rule matched, or the groups of a correlation over its
    threshold. A correlation's unknown fields are its group-by and value fields the table lacks.
    """
    frame = _Frame(events, field_map)
    per_rule: dict[str, int] = {}
    for m in matches:
        per_rule[m.rule_id] = per_rule.get(m.rule_id, 0) + (m.count if m.kind == "match" else 1)
    out = []
    for rule in rules.rules:
        unknown = sorted(f for f in _fields(rule.tree) if frame.resolve(f) is None)
        out.append(RuleReport(rule.rule_id, rule.title, "rule", rule.source,
                              per_rule.get(rule.rule_id, 0), tuple(unknown)))
    for corr in rules.correlations:
        names = {corr.field_for(g, k) for g in corr.group_by for k in range(len(corr.refs))}
        if corr.value_field:
            names.add(corr.value_field)
        unknown = sorted(f for f in names if frame.resolve(f) is None)
        out.append(RuleReport(corr.rule_id, corr.title, corr.kind, corr.source,
                              per_rule.get(corr.rule_id, 0), tuple(unknown)))
    return out


def evaluate(rules: RuleSet, events: pd.DataFrame,
             field_map: Mapping[str, str] | None = None) -> list[SigmaMatch]:
    """Run ``rules`` over an event table and return what matched.

    One :class:`SigmaMatch` per plain rule with matching events (``kind`` ``"match"``, unless the
    rule only feeds a correlation that does not ``generate`` it), then one per correlation group
    whose condition holds in at least one window (``kind`` the correlation type). ``field_map``
    maps extra rule field names to columns, on top of :data:`DEFAULT_FIELD_MAP`.
    """
    frame = _Frame(events, field_map)
    silent = _silenced(rules)
    masks: dict[int, Mask] = {}
    out: list[SigmaMatch] = []
    for index, rule in enumerate(rules.rules):
        masks[index] = frame.node(rule.tree)
        if index not in silent:
            match = _plain_match(rule, frame, masks[index])
            if match is not None:
                out.append(match)
    for corr in rules.correlations:
        out.extend(_correlate(corr, frame, masks))
    return out

