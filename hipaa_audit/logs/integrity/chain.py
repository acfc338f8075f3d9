"""Tamper evidence for audit logs: hash-chained JSONL files.

Hash-chained JSONL format
=========================

An append-only text file (optionally gzip-compressed), one JSON object per line (UTF-8). Every
record carries at least:

``seq``
    integer sequence number, ``1`` for the first record, ``+1`` for each following record;
``ts``
    ISO 8601 timestamp in UTC (``2024-05-01T02:13:07Z``; a timestamp without a zone is read
    as UTC);
``prev``
    lowercase hex SHA-256 of the canonical form of the previous record; the first record's
    ``prev`` is 64 zeros (``"0" * 64``);

plus any payload fields. The **canonical form** of a record is::

    json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

of the record *as read* (all of its fields, its own ``prev`` and ``mac`` included), so a
record's hash does not depend on how the line was spaced or its keys ordered. Writers in other
languages must produce the same bytes: keep payload values to strings, integers, booleans,
``null``, arrays and objects (avoid floats), and never repeat a key. The hash of the last record
is the chain's **head**.

Optional ``mac``: lowercase hex HMAC-SHA256 of the canonical form of the record *without* its
``mac`` field, keyed with a secret that the verifier is given (``mac_key``). A chain alone only
proves that nothing changed *unless the whole tail was recomputed*: whoever can rewrite the file
can re-hash every following record. A MAC whose key never lives on the writing host, or an
anchor kept elsewhere, closes that hole.

Optional **anchor**: a JSON file kept away from the log (WORM bucket, ticket, signed report)
holding ``{"count": N, "head": "<hex SHA-256 of record N>"}``. The verifier checks that the
file still holds at least ``N`` records and that the ``N``-th record still hashes to ``head``.
Records appended after the anchor was taken are checked by the chain only.

What :func:`verify_chain` reports (``IntegrityIssue.position`` is the 1-based *line* number,
which equals ``seq`` in an untouched file):

==================== ============================================================================
kind                 meaning
==================== ============================================================================
BROKEN_LINK          ``prev`` is not the hash of the record on the previous line (or the first
                     record's ``prev`` is not 64 zeros): that previous record was changed, or
                     records were inserted, removed or reordered between the two
BAD_MAC              ``mac`` missing or wrong (only with ``mac_key``); consecutive failures are
                     reported as one issue covering the run of lines
SEQ_GAP              sequence numbers never seen (reported at the line after which they are
                     missing); numbers that turn up later, out of order, are not gaps
SEQ_DUP_OR_BACKWARD  ``seq`` not above the previous line's: reordering, duplicate or replay
TS_BACKWARD          ``ts`` earlier than the previous line's
TIME_GAP             ``ts`` more than ``max_gap`` after the latest earlier timestamp (silence)
HEAD_MISMATCH        the anchored ``N``-th record no longer hashes to the anchored head (rewrite)
TRUNCATED            fewer records than the anchor's ``count`` (tail removed)
MALFORMED            a line that is not a JSON object with a valid ``seq``/``ts``/``prev`` (or
                     an unreadable compressed stream); consecutive bad lines are one issue. The
                     chain resumes at the next good record, which is then compared with the last
                     good record before the bad lines (usually a BROKEN_LINK there too)
==================== ============================================================================

What each tampering yields (``k`` is the seq/line concerned, file of ``n`` records):

- changing record ``k`` (``k < n``): BROKEN_LINK at ``k + 1`` (the changed record itself still
  carries a correct ``prev``); with ``mac_key`` also BAD_MAC at ``k``. Changing the *last* record
  is invisible to the chain: only an anchor (HEAD_MISMATCH) or a MAC catches it;
- deleting record ``k`` (``k < n``): SEQ_GAP and BROKEN_LINK at line ``k`` (which now holds
  seq ``k + 1``); deleting the last record is a truncation;
- swapping ``a < b``: BROKEN_LINK at lines ``a``, ``a + 1``, ``b``, ``b + 1`` (the set collapses to
  ``a``, ``a + 1``, ``a + 2`` when ``b = a + 1``; no line ``b + 1`` when ``b = n``), and
  SEQ_DUP_OR_BACKWARD plus TS_BACKWARD (when the timestamps differ) at line ``a + 1`` and
  (non-adjacent swaps) line ``b``; no SEQ_GAP, since every number is still present;
- inserting a record after ``k`` that links correctly to ``k`` and reuses seq ``k + 1``:
  BROKEN_LINK and SEQ_DUP_OR_BACKWARD at line ``k + 2``; appending after the last record is, by
  design, indistinguishable from a genuine append unless a MAC is required;
- truncating to ``m`` records: **nothing without an anchor** (a shorter valid chain is still a
  valid chain); with an anchor of ``count > m``: TRUNCATED;
- rewriting a record and recomputing every following ``prev`` (no key): nothing without an
  anchor or MAC; HEAD_MISMATCH with an anchor; BAD_MAC (one run, from ``k`` to the end) with the
  off-host MAC key.

No issue's ``detail`` ever quotes record content: only line and sequence numbers, field names,
counts, hashes, file names and times.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import re
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, cast

from hipaa_audit.logs.integrity.common import IntegrityIssue, _iso, _json_object, _parse_time

#: ``prev`` of the first record of a chain.
GENESIS = "0" * 64
#: Longest line read as a record; longer lines are MALFORMED (memory stays flat).
MAX_LINE = 8 * 1024 * 1024
#: Gaps in the sequence remembered while waiting for out-of-order records (bounded).
MAX_OPEN_GAPS = 10_000


_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


#: Issue kinds that make the record at ``position`` invalid.
_RECORD_KINDS = frozenset(
    {"BROKEN_LINK", "BAD_MAC", "SEQ_GAP", "SEQ_DUP_OR_BACKWARD", "TS_BACKWARD", "MALFORMED"}
)


@dataclass
class ChainReport:
    """The result of :func:`verify_chain` for one file.

    ``records`` counts the non-blank lines, ``valid`` those with no record-level issue (every
    kind but TIME_GAP, HEAD_MISMATCH and TRUNCATED), ``head`` is the hash of the last good
    record, ``first_time``/``last_time`` the earliest and latest record timestamps.
    """

    stream: str
    records: int
    valid: int
    issues: list[IntegrityIssue]
    head: str | None
    first_time: str | None
    last_time: str | None

    @property
    def ok(self) -> bool:
        """True when no issue was found."""
        return not self.issues


def canonical_bytes(record: Mapping[str, Any]) -> bytes:
    """Return the canonical form of a chain record (see the module docstring)."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def record_hash(record: Mapping[str, Any]) -> str:
    """Return the hex SHA-256 of a record's canonical form (the next record's ``prev``)."""
    return hashlib.sha256(canonical_bytes(record)).hexdigest()


def record_mac(record: Mapping[str, Any], key: bytes) -> str:
    """Return the hex HMAC-SHA256 of a record's canonical form without its ``mac`` field."""
    body = {k: v for k, v in record.items() if k != "mac"}
    return hmac.new(key, canonical_bytes(body), hashlib.sha256).hexdigest()


def _open_binary(path: Path) -> BinaryIO:
    """Open ``path`` for reading, transparently decompressing gzip (by magic bytes)."""
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return cast(BinaryIO, gzip.open(path, "rb"))
    return path.open("rb")


def _lines(stream: BinaryIO) -> Iterator[tuple[int, bytes | None]]:
    """Yield ``(line number, bytes)``; ``None`` for a line longer than :data:`MAX_LINE`."""
    number = 0
    while True:
        chunk = stream.readline(MAX_LINE + 1)
        if not chunk:
            return
        number += 1
        if len(chunk) > MAX_LINE and not chunk.endswith(b"\n"):
            while True:
                rest = stream.readline(MAX_LINE)
                if not rest or rest.endswith(b"\n"):
                    break
            yield number, None
            continue
        yield number, chunk


def _parse_record(raw: bytes) -> tuple[dict[str, Any] | None, datetime, str]:
    """Return ``(record, ts, "")`` or ``(None, _, reason)``; the reason never quotes content."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, _EPOCH, "is not valid UTF-8"
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None, _EPOCH, "is not valid JSON"
    if not isinstance(value, dict):
        return None, _EPOCH, "is not a JSON object"
    bad = []
    seq = value.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        bad.append("seq")
    ts = _parse_time(value.get("ts"))
    if ts is None:
        bad.append("ts")
    prev = value.get("prev")
    if not isinstance(prev, str) or not _HEX64.fullmatch(prev):
        bad.append("prev")
    if bad or ts is None:
        return None, _EPOCH, "has a missing or invalid " + ", ".join(bad)
    return value, ts, ""


@dataclass
class _Prev:
    line: int
    seq: int
    hash: str
    ts: datetime


@dataclass
class _Gap:
    lo: int
    hi: int
    line: int
    first_time: str | None
    last_time: str | None
    after_seq: int | None
    line_bad: bool = False


@dataclass
class _Run:
    kind: str
    start: int
    end: int
    count: int
    first_time: str | None
    last_time: str | None
    reason: str


#: How an issue for a run of bad lines of each kind reads: for one line, for several.
_RUN_DETAIL = {
    "BAD_MAC": ("line {start}: {reason}",
                "lines {start}-{end}: {count} consecutive records fail MAC verification "
                "(changed, or written without the key)"),
    "MALFORMED": ("line {start} {reason}; it is not a chain record",
                  "lines {start}-{end}: {count} consecutive lines are not chain records (not "
                  "JSON objects, or missing/invalid seq, ts or prev)"),
}


@dataclass
class _ChainState:
    stream: str
    mac_key: bytes | None
    max_gap: timedelta | None
    anchor_count: int | None
    issues: list[IntegrityIssue] = field(default_factory=list)
    records: int = 0
    bad: int = 0
    prev: _Prev | None = None
    max_seq: int = 0
    max_ts: datetime | None = None
    min_ts: datetime | None = None
    gaps: list[_Gap] = field(default_factory=list)
    malformed_since_prev: int = 0
    mac_run: _Run | None = None
    bad_run: _Run | None = None
    parsed: int = 0
    anchored_hash: str | None = None
    anchored_line: int | None = None

    def add(
        self,
        kind: str,
        position: int | None,
        detail: str,
        first_time: str | None = None,
        last_time: str | None = None,
    ) -> None:
        first, last = _parse_time(first_time), _parse_time(last_time)
        if first is not None and last is not None and last < first:
            first_time, last_time = last_time, first_time
        self.issues.append(
            IntegrityIssue(kind, self.stream, position, first_time, last_time, detail)
        )

    # runs of consecutive MALFORMED lines / BAD_MAC records are one issue each
    def flush_mac(self) -> None:
        run, self.mac_run = self.mac_run, None
        self.add_run(run)

    def flush_malformed(self) -> None:
        run, self.bad_run = self.bad_run, None
        self.add_run(run)

    def add_run(self, run: _Run | None) -> None:
        """One issue for a run of bad lines (none for no run), told as :data:`_RUN_DETAIL`."""
        if run is None:
            return
        one, several = _RUN_DETAIL[run.kind]
        detail = (one if run.count == 1 else several).format(
            start=run.start, end=run.end, count=run.count, reason=run.reason)
        self.add(run.kind, run.start, detail, run.first_time, run.last_time)

    def malformed(self, line: int, reason: str) -> None:
        self.records += 1
        self.bad += 1
        self.malformed_since_prev += 1
        after = _iso(self.prev.ts) if self.prev else None
        run = self.bad_run
        if run is not None:
            run.end = line
            run.count += 1
        else:
            self.bad_run = _Run("MALFORMED", line, line, 1, after, None, reason)

    def record(self, line: int, rec: dict[str, Any], ts: datetime) -> None:
        self.records += 1
        self.parsed += 1
        seq: int = rec["seq"]
        prev_field = str(rec["prev"]).lower()
        digest = record_hash(rec)
        issues_before = len(self.issues)
        prev = self.prev

        def ts_iso() -> str:  # formatted only when an issue needs it (hot loop)
            return _iso(ts)

        def prev_iso() -> str | None:
            return _iso(prev.ts) if prev else None

        if self.bad_run is not None:
            self.bad_run.last_time = ts_iso()
            self.flush_malformed()
        record_bad = False

        # MAC
        if self.mac_key is not None:
            mac = rec.get("mac")
            if not isinstance(mac, str):
                reason = f"record (seq {seq}) has no mac field"
                mac_ok = False
            else:
                mac_ok = hmac.compare_digest(mac.lower(), record_mac(rec, self.mac_key))
                reason = f"record (seq {seq}) fails MAC verification (changed, or written " \
                    "without the key)"
            if mac_ok:
                self.flush_mac()
            else:
                record_bad = True
                if self.mac_run is not None:
                    self.mac_run.end = line
                    self.mac_run.count += 1
                    self.mac_run.last_time = ts_iso()
                else:
                    self.mac_run = _Run("BAD_MAC", line, line, 1, ts_iso(), ts_iso(), reason)

        # link
        if prev is None:
            if prev_field != GENESIS:
                self.add(
                    "BROKEN_LINK",
                    line,
                    f"line {line} (seq {seq}) is the first record but its prev is not 64 zeros: "
                    "earlier records were removed or malformed, or the file starts mid-chain",
                    None,
                    ts_iso(),
                )
        elif prev_field != prev.hash:
            if self.malformed_since_prev:
                why = (
                    f"{self.malformed_since_prev} malformed line(s) lie between them, so the "
                    "chain resumes here"
                )
            else:
                why = "that record was changed, or records were inserted, removed or reordered"
            self.add(
                "BROKEN_LINK",
                line,
                f"line {line} (seq {seq}): prev {prev_field[:12]}... is not the SHA-256 of the "
                f"last good record (line {prev.line}, seq {prev.seq}, {prev.hash[:12]}...): {why}",
                prev_iso(),
                ts_iso(),
            )

        # sequence
        if prev is not None and seq <= prev.seq:
            filled = self._fill(seq)
            if filled:
                what = f"arrives out of order, after seq {prev.seq}"
            elif seq == prev.seq:
                what = "repeats the previous seq (duplicate or replayed record)"
            else:
                what = f"goes backward after seq {prev.seq} (duplicate or replayed record)"
            self.add("SEQ_DUP_OR_BACKWARD", line, f"line {line}: seq {seq} {what}",
                     prev_iso(), ts_iso())
        elif seq <= self.max_seq:
            self._fill(seq)
        elif seq > self.max_seq + 1:
            missing = seq - self.max_seq - 1
            if missing > self.malformed_since_prev:
                self._open_gap(self.max_seq + 1, seq - 1, line, prev_iso(), ts_iso(),
                               prev.seq if prev else None)
        self.max_seq = max(self.max_seq, seq)

        # time
        if prev is not None and ts < prev.ts:
            self.add(
                "TS_BACKWARD",
                line,
                f"line {line} (seq {seq}): ts is earlier than the previous record's "
                f"(line {prev.line}, seq {prev.seq})",
                ts_iso(),
                prev_iso(),
            )
        if self.max_gap is not None and self.max_ts is not None and ts - self.max_ts > self.max_gap:
            self.add(
                "TIME_GAP",
                line,
                f"line {line} (seq {seq}): no record for {_span(ts - self.max_ts)}, more than "
                f"the allowed {_span(self.max_gap)}",
                _iso(self.max_ts),
                ts_iso(),
            )
        self.max_ts = ts if self.max_ts is None else max(self.max_ts, ts)
        self.min_ts = ts if self.min_ts is None else min(self.min_ts, ts)

        if any(i.kind in _RECORD_KINDS for i in self.issues[issues_before:]):
            record_bad = True
        if record_bad:
            self.bad += 1
        for gap in self.gaps:
            if gap.line == line:
                gap.line_bad = record_bad
        if self.anchor_count is not None and self.parsed == self.anchor_count:
            self.anchored_hash = digest
            self.anchored_line = line
        self.prev = _Prev(line, seq, digest, ts)
        self.malformed_since_prev = 0

    def _open_gap(self, lo: int, hi: int, line: int, first: str | None, last: str | None,
                  after_seq: int | None) -> None:
        if len(self.gaps) >= MAX_OPEN_GAPS:
            self._report_gap(self.gaps.pop(0))
        self.gaps.append(_Gap(lo, hi, line, first, last, after_seq))

    def _fill(self, seq: int) -> bool:
        """Remove ``seq`` from the open gaps; True when it was missing."""
        for index, gap in enumerate(self.gaps):
            if gap.lo <= seq <= gap.hi:
                pieces = []
                if gap.lo < seq:
                    pieces.append(_Gap(gap.lo, seq - 1, gap.line, gap.first_time,
                                       gap.last_time, gap.after_seq, gap.line_bad))
                if seq < gap.hi:
                    pieces.append(_Gap(seq + 1, gap.hi, gap.line, gap.first_time,
                                       gap.last_time, gap.after_seq, gap.line_bad))
                self.gaps[index:index + 1] = pieces
                return True
        return False

    def _report_gap(self, gap: _Gap) -> None:
        count = gap.hi - gap.lo + 1
        numbers = f"seq {gap.lo}" if count == 1 else f"seq {gap.lo}-{gap.hi}"
        after = f"after seq {gap.after_seq}" if gap.after_seq is not None else "at the start"
        self.add(
            "SEQ_GAP",
            gap.line,
            f"line {gap.line}: {numbers} missing ({count} record{'s' if count != 1 else ''} "
            f"{after}): records were deleted",
            gap.first_time,
            gap.last_time,
        )

    def finish(self) -> None:
        self.flush_mac()
        self.flush_malformed()
        counted: set[int] = set()
        for gap in self.gaps:
            self._report_gap(gap)
            if not gap.line_bad and gap.line not in counted:
                counted.add(gap.line)
                self.bad += 1
        self.gaps = []


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{delta.total_seconds():.0f} s"


def _read_anchor(anchor: Path) -> tuple[int, str] | None:
    value = _json_object(anchor)
    if value is None:
        return None
    count, head = value.get("count"), value.get("head")
    if (not isinstance(count, int) or isinstance(count, bool) or count < 0
            or not isinstance(head, str) or not _HEX64.fullmatch(head)):
        return None
    return count, head.lower()


def verify_chain(
    path: Path,
    *,
    mac_key: bytes | None = None,
    anchor: Path | None = None,
    max_gap: timedelta | None = None,
) -> ChainReport:
    """Verify a hash-chained JSONL file (plain or gzip), streaming it line by line.

    ``mac_key`` checks every record's ``mac`` (HMAC-SHA256); ``anchor`` is a JSON file
    ``{"count": N, "head": "<sha256>"}`` kept elsewhere (truncation, rewrite); ``max_gap``
    reports silences longer than it. See the module docstring for the format and for what each
    kind of tampering yields. Memory stays flat whatever the file's size. A file that cannot be
    opened raises ``OSError``; one that cannot be read to its end (corrupt gzip) is reported.
    """
    path = Path(path)
    stream = str(path)
    anchored = _read_anchor(anchor) if anchor is not None else None
    state = _ChainState(stream, mac_key, max_gap, anchored[0] if anchored else None)
    if anchor is not None and anchored is None:
        state.issues.append(IntegrityIssue(
            "MALFORMED", str(anchor), None, None, None,
            "the anchor file is not JSON of the form {\"count\": N, \"head\": \"<64 hex>\"}; "
            "truncation and rewrites cannot be checked",
        ))
    last_line = 0
    handle = _open_binary(path)  # a missing or unreadable file raises OSError to the caller
    try:
        with handle:
            for line, raw in _lines(handle):
                last_line = line
                if raw is None:
                    state.malformed(line, f"is longer than {MAX_LINE} bytes")
                    continue
                if not raw.strip():
                    continue
                rec, ts, reason = _parse_record(raw)
                if rec is None:
                    state.malformed(line, reason)
                else:
                    state.record(line, rec, ts)
    except (OSError, EOFError, zlib.error) as exc:
        state.flush_malformed()
        state.add(
            "MALFORMED",
            last_line + 1,
            f"the file cannot be read past line {last_line} ({type(exc).__name__}: corrupt or "
            "truncated compressed stream, or I/O error)",
            _iso(state.prev.ts) if state.prev else None,
            None,
        )
    state.finish()

    if anchored is not None:
        count, head = anchored
        last_iso = _iso(state.prev.ts) if state.prev else None
        if state.parsed < count:
            state.add(
                "TRUNCATED",
                state.records + 1,
                f"the anchor records {count} records (head {head[:12]}...) but only "
                f"{state.parsed} remain: records after line {state.records} were removed",
                last_iso,
                None,
            )
        elif count > 0 and state.anchored_hash != head:
            state.add(
                "HEAD_MISMATCH",
                state.anchored_line,
                f"record {count} (line {state.anchored_line}) hashes to "
                f"{(state.anchored_hash or '')[:12]}... but the anchor says {head[:12]}...: "
                "the chain was rewritten up to the anchored head",
                None,
                last_iso,
            )

    order = {id(issue): n for n, issue in enumerate(state.issues)}
    issues = sorted(
        state.issues,
        key=lambda i: (i.position if i.position is not None else -1, order[id(i)]),
    )
    return ChainReport(
        stream=stream,
        records=state.records,
        valid=max(0, state.records - state.bad),
        issues=issues,
        head=state.prev.hash if state.prev else None,
        first_time=_iso(state.min_ts) if state.min_ts else None,
        last_time=_iso(state.max_ts) if state.max_ts else None,
    )


def looks_chained(path: Path) -> bool:
    """True when the first non-blank line of ``path`` looks like a chain record.

    That is a JSON object with an integer ``seq``, an ISO ``ts`` and a 64-hex ``prev`` (plain
    or gzip file).
    """
    try:
        with _open_binary(Path(path)) as handle:
            for _line, raw in _lines(handle):
                if raw is None:
                    return False
                if not raw.strip():
                    continue
                return _parse_record(raw)[0] is not None
    except (OSError, EOFError, zlib.error):
        return False
    return False
