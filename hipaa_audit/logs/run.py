"""``analyze logs``: parse every log into one table, verify integrity, detect, match Sigma rules.

Each file is parsed in chunks into the normalised table (:mod:`hipaa_audit.logs.schema`), held
in its compact form (text columns as categoricals, :func:`~hipaa_audit.logs.schema.compact`);
the parsed table of a file is cached as Parquet (keyed by the file's path, size, modification
time, format, column mapping and the installation key), so a second analysis of the same logs
skips parsing; a cache is read back column by column
(:func:`~hipaa_audit.logs.schema.read_parquet`). Hash-chained logs are verified as they are
read; a folder holding a CloudTrail trail (``AWSLogs/``) has its digests verified when public keys
are given. Then every detector and every Sigma rule runs once over the whole table. Malformed
records are counted per file with their line numbers, never dropped silently.

**On a Dask cluster** (``LogOptions.scheduler``, the address of a ``distributed`` scheduler):
the parsing of the files, the costly part that grows with the logs, runs on the cluster, one
task per file (format detection, parsing, fingerprinting of patient and study identifiers with
the installation key, and the Parquet cache, which is then the worker's). Each task returns its
file's compact table and malformed records; the tables are joined here in file order, so the
detectors, the Sigma rules, the hash-chain and CloudTrail digest checks and the report run in this
process on exactly the table a local run builds, and give the same anomalies. The workers must
see the log files at the same absolute paths (a shared mount, or a ``LocalCluster``) and receive
the installation key with each task, as the archive scanner's do. A scheduler that cannot be
reached, or a task that fails, raises :class:`~hipaa_audit.cluster.ClusterError`.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from typing_extensions import TypedDict

from hipaa_audit.catalog import Catalog
from hipaa_audit.errors import ScannerSetupError
from hipaa_audit.evidence import (
    IntegrityBreak,
    LogFile,
    LogSummary,
    MalformedRecords,
    RuleMatch,
    SigmaSummary,
)
from hipaa_audit.logs import schema
from hipaa_audit.logs.detect import KINDS, Anomaly, Settings, iso, run_all
from hipaa_audit.model import AssetResult, Location, Severity, Status, outcome_of
from hipaa_audit.outfiles import open_binary_output, private_dirs, write_text
from hipaa_audit.redaction import Masker, data_dir

UNVERIFIABLE = "log-unverifiable"
INTEGRITY = "log-integrity"
SIGMA = "log-sigma"
SHOWN_LINES = 20
#: Events of small files (parsed in one chunk, kept as parsed) joined and made compact together
#: once this many are pending: a trail of thousands of small files is not compacted file by file.
BATCH_EVENTS = 200_000
STAT_FILES = "log_files"
STAT_EVENTS = "events"
STAT_MALFORMED = "malformed_records"
SIGMA_LEVELS = {"informational": Severity.INFO, "low": Severity.LOW, "medium": Severity.MEDIUM,
                "high": Severity.HIGH, "critical": Severity.CRITICAL}


class LogSetupError(ScannerSetupError):
    """The options cannot be used (no such file, a bad mapping, a bad Sigma rule)."""


@dataclass(frozen=True, slots=True)
class LogOptions:
    """What ``analyze logs`` reads and how it judges it."""

    paths: tuple[str, ...]
    fmt: str = "auto"
    mapping: Any = None
    settings: Settings = field(default_factory=Settings)
    sigma: tuple[Path, ...] = ()
    chain_key: bytes | None = None
    anchors: tuple[Path, ...] = ()
    cloudtrail_keys: tuple[Path, ...] = ()
    cache: bool = True
    #: the address of a Dask ``distributed`` scheduler that parses the files (None: here)
    scheduler: str | None = None
    #: no time zone was given: infer it from the records' UTC offsets (:func:`timezone_for`)
    infer_timezone: bool = False

    def describe(self) -> dict[str, object]:
        """The options as recorded in the run (no keys)."""
        return {"log_format": self.fmt, "sigma": [str(p) for p in self.sigma],
                "timezone": ("inferred from the records (see the logs evidence)"
                             if self.infer_timezone else self.settings.timezone),
                "chain_mac": self.chain_key is not None,
                "cloudtrail_keys": len(self.cloudtrail_keys), "scheduler": self.scheduler}


def expand(paths: Sequence[str]) -> tuple[list[Path], list[Path], list[str]]:
    """Files to parse, CloudTrail trail folders, and the patterns or paths that matched nothing."""
    files: list[Path] = []
    trails: list[Path] = []
    missing: list[str] = []
    for pattern in paths:
        matched = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else (
            [pattern] if os.path.lexists(pattern) else [])
        if not matched:
            missing.append(pattern)
        for item in matched:
            path = Path(item)
            if path.is_dir():
                if (path / "AWSLogs").is_dir():
                    trails.append(path)
                    files.extend(sorted(p for p in (path / "AWSLogs").rglob("*.json*")
                                        if "CloudTrail-Digest" not in p.parts
                                        and not p.name.endswith(".sig")))
                else:
                    files.extend(sorted(p for p in path.rglob("*") if p.is_file()))
            else:
                files.append(path)
    return list(dict.fromkeys(files)), trails, missing


@functools.cache
def _parser_version() -> str:
    """A digest of the parser and schema code: a cache written by other code is not reused."""
    from hipaa_audit.logs import parsers

    digest = hashlib.sha256()
    files = sorted(Path(str(parsers.__file__)).parent.glob("*.py"))
    for file in [*files, Path(str(schema.__file__))]:
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def _cache_path(path: Path, fmt: str, mapping: Any, masker: Masker) -> Path:
    st = path.stat()
    key = json.dumps([str(path.resolve()), st.st_size, st.st_mtime_ns, fmt, repr(mapping),
                      masker.fingerprint("log-cache"), _parser_version()])
    return data_dir() / "log-cache" / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.parquet"


@functools.cache
def _no_events() -> pd.DataFrame:
    """The compact empty table a released file keeps, built once and never changed.

    A trail of thousands of small files would otherwise build it once per file.
    """
    return schema.compact(schema.empty())


@dataclass(slots=True)
class _Parsed:
    path: Path
    fmt: str
    events: pd.DataFrame
    malformed: list[schema.Malformed]
    problem: str | None = None
    cached: bool = False
    #: the number of events and their first and last times, kept when ``events`` is released
    count: int = -1
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None

    def release(self) -> None:
        """Keep the counts and times of the events, drop the table (it is in the joined one)."""
        if self.count >= 0:
            return
        ev = self.events
        self.count = len(ev)
        known = ev["time"].notna().any() if len(ev) else False
        self.first = ev["time"].min() if known else None
        self.last = ev["time"].max() if known else None
        self.events = _no_events()

    @property
    def size(self) -> int:
        """How many events the file gave."""
        return self.count if self.count >= 0 else len(self.events)


def timezone_for(files: Sequence[Path], given: str | None) -> tuple[str, str]:
    """The time zone working hours are judged in, and how it was chosen (said in the run).

    ``given`` (``--timezone`` or the settings) is used as it is. Otherwise the zone is inferred
    from the UTC offsets the records carry (ATNA and FHIR times do,
    :func:`~hipaa_audit.logs.parsers.record_offsets`): the zone that fits the most of them
    (:func:`~hipaa_audit.logs.parsers.zone_of_offsets`). When no record carries an offset
    (CloudTrail writes UTC), hours are judged in UTC, and the run says so.
    """
    from hipaa_audit.logs.parsers import record_offsets, zone_of_offsets

    if given:
        return given, "given"
    samples: list[tuple[int, int]] = []
    for path in files:
        try:
            samples.extend(record_offsets(path))
        except OSError:
            continue
    found = zone_of_offsets(samples)
    if found is None or found[1] == 0:
        return "UTC", ("no record carries a UTC offset and no time zone was given (--timezone): "
                       "hours are judged in UTC")
    zone, fit = found
    return zone, (f"inferred from the UTC offsets of the records ({fit} of {len(samples)} "
                  f"sampled times fit {zone}); give --timezone to choose another")


def _parse(path: Path, opts: LogOptions, masker: Masker) -> _Parsed:
    from hipaa_audit.logs.parsers import LogFormatError, detect_format, parse_file

    try:
        fmt = detect_format(path) if opts.fmt == "auto" else opts.fmt
    except (LogFormatError, OSError) as exc:
        return _Parsed(path, "unknown", schema.empty(), [], str(exc))
    mapping = opts.mapping
    if mapping is None and fmt == "jsonl" and _chained(path):
        from hipaa_audit.logs.parsers import ColumnMapping

        mapping = ColumnMapping(time="ts")  # the hash-chain format names its time ts
    cache = _cache_path(path, fmt, mapping, masker) if opts.cache else None
    meta = cache.with_suffix(".json") if cache else None
    if cache is not None and meta is not None and cache.exists() and meta.exists():
        try:
            events = schema.read_parquet(cache)
            bad = [schema.Malformed(**m) for m in json.loads(meta.read_text())]
            return _Parsed(path, fmt, events, bad, cached=True)
        except (OSError, ValueError):
            pass
    frames: list[pd.DataFrame] = []
    malformed: list[schema.Malformed] = []
    try:
        for chunk in parse_file(path, fmt, masker, mapping):
            # a file of one chunk is kept as parsed (made compact with others, _Batches); the
            # chunks of a larger one are made compact as they come (the memory stays bounded)
            frames.append(chunk.events)
            if len(frames) > 1:  # the earlier ones are compact already, but for the first
                frames[-2:] = [schema.compact(f) for f in frames[-2:]]
            malformed.extend(chunk.malformed)
    except (LogFormatError, OSError, ValueError, EOFError) as exc:
        # a library's message may quote the record it choked on: only our own messages (which
        # name the file) and the OS error text are shown
        why = (str(exc) if isinstance(exc, LogFormatError)
               else exc.strerror or type(exc).__name__ if isinstance(exc, OSError)
               else f"{type(exc).__name__} while parsing")
        return _Parsed(path, fmt, _concat(frames), malformed,
                       f"reading stopped: {why}" if frames else why)
    events = _concat(frames)
    if cache is not None and meta is not None:
        try:
            private_dirs(cache.parent)
            with open_binary_output(cache) as out:
                schema.write_parquet(events, out)
            write_text(meta, json.dumps([dataclasses.asdict(m) for m in malformed]))
        except (OSError, ValueError):
            pass
    return _Parsed(path, fmt, events, malformed)


def _chained(path: Path) -> bool:
    from hipaa_audit.logs.integrity import looks_chained

    try:
        return looks_chained(path)
    except OSError:
        return False


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The chunks of one file as one table (a single chunk as it is)."""
    return frames[0] if len(frames) == 1 else schema.concat(frames)


class _Batches:
    """The events of the files, in file order, joined into compact parts as they come.

    Files kept as parsed (:func:`_parse`) wait until :data:`BATCH_EVENTS` events are pending,
    then are joined and made compact at once and released (:meth:`_Parsed.release`); a file
    already compact is a part of its own.
    """

    def __init__(self) -> None:
        self.parts: list[pd.DataFrame] = []
        self.pending: list[_Parsed] = []
        self.rows = 0

    def add(self, parsed: _Parsed) -> None:
        """Add the events of the next file."""
        if not schema.string_form(parsed.events):  # already compact (a cache, chunks): a part
            self.fold()
            self.parts.append(parsed.events)
            parsed.release()
            return
        self.pending.append(parsed)
        self.rows += len(parsed.events)
        if self.rows >= BATCH_EVENTS:
            self.fold()

    def fold(self) -> None:
        """Join the pending files' events into one compact part and release them."""
        if self.pending:
            self.parts.append(schema.concat([p.events for p in self.pending]))
        for p in self.pending:
            p.release()
        self.pending, self.rows = [], 0

    def joined(self) -> pd.DataFrame:
        """All the events, compact (categories unified over the parts)."""
        self.fold()
        return schema.concat(self.parts)


def _parse_task(path: str, opts: LogOptions, key: bytes, reveal: bool) -> _Parsed:
    """One file parsed on a cluster worker (the masker is rebuilt from its key there)."""
    return _parse(Path(path), opts, Masker(key, reveal))


def _parse_on_cluster(files: list[Path], opts: LogOptions, masker: Masker,
                      timeout: float = 10) -> Iterator[_Parsed]:
    """Parse ``files`` on the Dask cluster at ``opts.scheduler``, one task each, in file order.

    Raises :class:`~hipaa_audit.cluster.ClusterError` when the scheduler cannot be reached
    within ``timeout`` seconds or a task fails.
    """
    from hipaa_audit.cluster import ClusterError, connect

    client = connect(str(opts.scheduler), timeout)
    try:
        remote = dataclasses.replace(opts, scheduler=None)
        futures = [client.submit(_parse_task, os.path.abspath(path), remote, masker.key,
                                 masker.reveal, pure=False) for path in files]
        for path, future in zip(files, futures, strict=True):
            try:
                parsed: _Parsed = future.result()
            except Exception as exc:  # the type only: a message could carry a value
                raise ClusterError(f"a task failed on the cluster ({type(exc).__name__})"
                                   ) from None
            parsed.path = path  # as given, as a local run names it
            yield parsed
    finally:
        client.close()


def _file_result(parsed: _Parsed, catalog: Catalog) -> AssetResult:
    asset = str(parsed.path)
    result = AssetResult(asset, stats={STAT_FILES: 1, STAT_EVENTS: parsed.size})
    check = catalog[UNVERIFIABLE]
    result.coverage.record(UNVERIFIABLE, outcome_of(
        failed=False, error=bool(parsed.malformed) or parsed.problem is not None))
    if parsed.problem is not None:
        result.findings.append(check.finding(
            asset, f"The log could not be read: {parsed.problem}.", status=Status.ERROR,
            key="read"))
    if parsed.malformed:
        result.stats[STAT_MALFORMED] = len(parsed.malformed)
        lines = [m.line for m in parsed.malformed[:SHOWN_LINES]]
        reasons = sorted({m.reason for m in parsed.malformed})[:5]
        result.findings.append(check.finding(
            asset, f"{len(parsed.malformed)} record(s) could not be parsed "
            f"({'; '.join(reasons)}); they were not reviewed.", status=Status.ERROR,
            key="malformed", locations=(Location.of_evidence(MalformedRecords(
                lines=lines, reasons=reasons, records=len(parsed.malformed))),)))
    return result


def _integrity(path: Path, opts: LogOptions, catalog: Catalog, result: AssetResult) -> None:
    from hipaa_audit.logs.integrity import verify_chain

    if not _chained(path):
        return
    anchor = next((a for a in opts.anchors if a.name.startswith(path.name)), None)
    report = verify_chain(path, mac_key=opts.chain_key, anchor=anchor)
    _issues(result, catalog, report.issues, f"hash chain of {report.records} record(s)")
    result.stats["chained_records"] = report.records


def _issues(result: AssetResult, catalog: Catalog, issues: Sequence[Any], what: str) -> None:
    check = catalog[INTEGRITY]
    result.coverage.record(INTEGRITY, outcome_of(failed=bool(issues)))
    for i, issue in enumerate(issues):
        window = "/".join(t for t in (issue.first_time, issue.last_time) if t) or None
        result.findings.append(check.finding(
            result.asset, f"{what}: {issue.kind}: {issue.detail}",
            key=f"{issue.kind}:{issue.position}:{i}",
            locations=(Location.of_evidence(IntegrityBreak(
                kind=issue.kind, stream=issue.stream, position=issue.position,
                window=window)),)))


def _trail(root: Path, opts: LogOptions, catalog: Catalog) -> AssetResult:
    from hipaa_audit.logs.integrity import verify_cloudtrail

    result = AssetResult(str(root), stats={"cloudtrail_trails": 1})
    if not opts.cloudtrail_keys:
        result.findings.append(catalog[UNVERIFIABLE].finding(
            result.asset, "The CloudTrail digests were not verified: no public key was given "
            "(--cloudtrail-key).", status=Status.ERROR, key="digests"))
        result.coverage.record(INTEGRITY, "error")
        return result
    report = verify_cloudtrail(root, list(opts.cloudtrail_keys))
    result.stats["cloudtrail_digests"] = report.digests
    _issues(result, catalog, report.issues,
            f"CloudTrail digests ({report.digests} digest(s), {report.logs_checked} log file(s))")
    return result


def _plain(counts: dict[str, Any]) -> dict[str, int | float]:
    """Counts as plain Python numbers (detectors may hand numpy scalars)."""
    return {k: int(v) if float(v).is_integer() else round(float(v), 2) for k, v in counts.items()}


def anomaly_finding(anomaly: Anomaly, catalog: Catalog, asset: str) -> Any:
    """The finding of one anomaly (check ``log-<kind>``)."""
    check = catalog[f"log-{anomaly.kind}"]
    severity = None
    if anomaly.high and check.severity < Severity.HIGH:
        severity = Severity.HIGH
    return check.finding(
        asset, anomaly.message, severity=severity,
        key=f"{anomaly.subject}:{iso(anomaly.start)}"
        + (f":{anomaly.variant}" if anomaly.variant else ""),
        locations=(Location.of(**{anomaly.subject_kind: anomaly.subject}, **dict(anomaly.detail),
                               window=f"{iso(anomaly.start)}/{iso(anomaly.end)}",
                               counts=_plain(anomaly.counts), baseline=anomaly.baseline,
                               event_ids=list(anomaly.event_ids)),))


def _sigma(events: pd.DataFrame, opts: LogOptions, catalog: Catalog,
           asset: str) -> tuple[AssetResult, SigmaSummary]:
    """The findings of the Sigma rules, and the summary of which rules loaded and matched."""
    from hipaa_audit.logs.sigma import evaluate, load_rules, report

    result = AssetResult(asset)
    rules = load_rules(list(opts.sigma))
    check = catalog[SIGMA]
    matches = evaluate(rules, events)
    reports = report(rules, events, matches)
    summary: SigmaSummary = {
        "loaded": len(reports), "matched": sum(1 for r in reports if r.matches),
        "with_unknown_fields": sum(1 for r in reports if r.unknown_fields),
        "rules": [r.as_dict() for r in reports]}
    result.coverage.record(SIGMA, outcome_of(failed=bool(matches)))
    for m in matches:
        group = ", ".join(f"{k}={v}" for k, v in m.group.items())
        result.findings.append(check.finding(
            asset, f"Sigma rule \"{m.title}\" matched {m.count} event(s)"
            + (f" for {group}" if group else "") + f" between {m.first_time} and {m.last_time}.",
            severity=SIGMA_LEVELS.get(m.level.lower(), check.severity),
            key=f"{m.rule_id}:{group}:{m.first_time}",
            locations=(Location.of_evidence(RuleMatch(
                rule=m.rule_id, level=m.level, kind=m.kind, group=m.group,
                window=f"{m.first_time}/{m.last_time}", event_ids=list(m.event_ids))),)))
    return result, summary


class _ZoneAndRules(TypedDict, total=False, closed=True):
    """The parts of a log summary that only some analyses have (and no other key)."""

    timezone: dict[str, str]
    sigma: SigmaSummary


def summarize(events: pd.DataFrame, parsed: list[_Parsed],
              anomalies: list[Anomaly], timezone: tuple[str, str] | None = None,
              sigma: SigmaSummary | None = None) -> LogSummary:
    """What the reports show: coverage per file, anomalies per kind and their timeline."""
    files: list[LogFile] = []
    for p in parsed:
        if p.count < 0:
            p.release()
        files.append({"source": str(p.path), "format": p.fmt, "events": p.size,
                      "malformed": len(p.malformed),
                      "first": iso(p.first) if p.first is not None else None,
                      "last": iso(p.last) if p.last is not None else None})
    counts = {k: 0 for k in KINDS}
    for a in anomalies:
        counts[a.kind] = counts.get(a.kind, 0) + 1
    extra: _ZoneAndRules = {}
    if timezone:
        extra["timezone"] = {"zone": timezone[0], "source": timezone[1]}
    if sigma is not None:
        extra["sigma"] = sigma
    return {"files": files, "events": len(events), "anomalies": counts, **extra,
            "timeline": [{"kind": a.kind, "start": iso(a.start), "end": iso(a.end),
                          "high": a.high} for a in sorted(anomalies, key=lambda a: a.start)]}


def analyze_logs(opts: LogOptions, catalog: Catalog, masker: Masker, *,
                 on_summary: Callable[[LogSummary], None] | None = None
                 ) -> Iterator[AssetResult]:
    """Analyse the logs of ``opts``: one result per file, then the anomalies and rule matches."""
    files, trails, missing = expand(opts.paths)
    for pattern in missing:
        result = AssetResult(pattern)
        result.findings.append(catalog[UNVERIFIABLE].finding(
            pattern, "No log file matches this path.", status=Status.ERROR))
        result.coverage.record(UNVERIFIABLE, "error")
        yield result
    for root in trails:
        yield _trail(root, opts, catalog)
    parsed: list[_Parsed] = []
    batches = _Batches()
    items = (_parse_on_cluster(files, opts, masker) if opts.scheduler is not None and files
             else (_parse(path, opts, masker) for path in files))
    for path, item in zip(files, items, strict=True):
        parsed.append(item)
        batches.add(item)
        result = _file_result(item, catalog)
        _integrity(path, opts, catalog, result)
        yield result
    events = batches.joined()
    for p in parsed:
        p.release()  # the joined table holds the events now
    zone = timezone_for(files, None if opts.infer_timezone else opts.settings.timezone)
    settings = dataclasses.replace(opts.settings, timezone=zone[0])
    anomalies = run_all(events, settings) if len(events) else []
    by_asset: dict[str, AssetResult] = {}
    first = str(files[0]) if files else (opts.paths[0] if opts.paths else "logs")
    for anomaly in anomalies:
        asset = anomaly.sources[0] if anomaly.sources else first
        result = by_asset.setdefault(asset, AssetResult(asset))
        result.findings.append(anomaly_finding(anomaly, catalog, asset))
    kinds_found: dict[str, set[str]] = {}
    for a in anomalies:
        kinds_found.setdefault(a.sources[0] if a.sources else first, set()).add(a.kind)
    for p in parsed:
        asset = str(p.path)
        result = by_asset.setdefault(asset, AssetResult(asset))
        found = kinds_found.get(asset, set())
        for kind in KINDS:
            if p.size > 0 or kind in found:  # a file without events is no evidence either way
                result.coverage.record(f"log-{kind}", outcome_of(failed=kind in found))
    yield from by_asset.values()
    sigma: SigmaSummary | None = None
    if opts.sigma and len(events):
        result, sigma = _sigma(events, opts, catalog, first)
        yield result
    if on_summary is not None:
        on_summary(summarize(events, parsed, anomalies, zone, sigma))
