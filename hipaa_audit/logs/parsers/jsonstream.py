"""JSON documents (FHIR, CloudTrail) read one record at a time."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from hipaa_audit.logs.parsers.common import (
    _READ_ERRORS,
    _TOO_DEEP,
    _UNREADABLE,
    MAX_RECORD_CHARS,
    _Bad,
    _Collector,
    _Fingerprints,
    _open_text,
    _read_error,
    _Row,
)
from hipaa_audit.logs.schema import Chunk

_BLOCK = 1 << 20
_JSON_WS = re.compile(r"[ \t\r\n\ufeff]*")
_FIRST_KEY = re.compile(r'\{\s*"([^"\\]{1,64})"\s*:')
#: The first key of a record in each container, before one has been read whole.
_RECORD_KEYS = {"Records": ("eventVersion",), "entry": ("fullUrl", "resource")}
#: Distinct first keys remembered to find the next record after a damaged one.
_MAX_RECORD_KEYS = 8
_NEXT_DOC = re.compile(r"\n(?=[\[{])")


class _JsonStream:
    """Decodes JSON values one at a time from a text handle, keeping only a window of it."""

    def __init__(self, handle: TextIO) -> None:
        self._handle = handle
        self._buf = ""
        self._pos = 0
        self._eof = False
        self._decode = json.JSONDecoder().raw_decode
        self.line = 1
        self.error: str | None = None
        self._mark: tuple[int, int] | None = None  # (position, line) to come back to

    def mark(self) -> None:
        """Remember this place (the start of a record) to resynchronise from after an error."""
        self._mark = (self._pos, self.line)

    def unmark(self) -> None:
        """Forget the remembered place (the window may move past it again)."""
        self._mark = None

    def _fill(self) -> bool:
        if self._eof:
            return False
        try:
            data = self._handle.read(_BLOCK)
        except _READ_ERRORS:
            self._eof = True
            self.error = _UNREADABLE
            return False
        if not data:
            self._eof = True
            self.error = _read_error(self._handle)
            return False
        keep = self._pos
        if self._mark is not None:
            if len(self._buf) - self._mark[0] > MAX_RECORD_CHARS:
                self._mark = None
            else:
                keep = self._mark[0]
                self._mark = (0, self._mark[1])
        self._buf = self._buf[keep:] + data
        self._pos -= keep
        return True

    def _move(self, to: int) -> None:
        self.line += self._buf.count("\n", self._pos, to)
        self._pos = to

    def peek(self) -> str | None:
        """Skip white space; return the next character (None at the end)."""
        while True:
            match = _JSON_WS.match(self._buf, self._pos)
            if match is not None and match.end() > self._pos:
                self._move(match.end())
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._fill():
                return None

    def take(self) -> None:
        """Step over one punctuation character."""
        self._pos += 1

    def try_value(self) -> tuple[bool, Any]:
        """Decode the next value if it lies whole in the window: (True, value), else (False, _)."""
        try:
            obj, end = self._decode(self._buf, self._pos)
        except (json.JSONDecodeError, RecursionError):
            return False, None  # read again value by value (and reported there)
        if end >= len(self._buf) and not self._eof and not isinstance(obj, dict | list | str):
            return False, None
        self._move(end)
        return True, obj

    def value(self) -> Any:
        """Decode the next JSON value."""
        if self.peek() is None:
            raise _Bad("truncated JSON")
        while True:
            try:
                obj, end = self._decode(self._buf, self._pos)
            except RecursionError:
                raise _Bad(_TOO_DEEP) from None
            except json.JSONDecodeError as exc:
                cut = exc.pos >= len(self._buf) - 8 or exc.msg.startswith("Unterminated")
                if cut and len(self._buf) - self._pos <= MAX_RECORD_CHARS and self._fill():
                    continue
                if cut and len(self._buf) - self._pos > MAX_RECORD_CHARS:
                    raise _Bad("record too large") from exc
                raise _Bad("truncated JSON" if cut and self._eof else "bad JSON") from exc
            if (end >= len(self._buf) and not self._eof
                    and not isinstance(obj, dict | list | str) and self._fill()):
                continue  # a number may go on in the next block
            self._move(end)
            return obj

    def first_key(self) -> str | None:
        """The first key of the object that starts here, if one does (else None)."""
        found = _FIRST_KEY.match(self._buf, self._pos)
        return found.group(1) if found else None

    def skip_to(self, pattern: re.Pattern[str], *, past_here: bool) -> bool:
        """Move to the next match of ``pattern`` (after this place with ``past_here``).

        Only a bounded window is held while searching. Returns False at the end of the input.
        """
        self._mark = None
        start = self._pos + (1 if past_here else 0)
        while True:
            found = pattern.search(self._buf, min(start, len(self._buf)))
            if found is not None:
                self._move(found.start())
                return True
            self._move(max(self._pos, min(start, len(self._buf)), len(self._buf) - 256))
            if not self._fill():
                self._move(len(self._buf))
                return False
            start = self._pos  # the window starts here after the fill

    def resync(self) -> None:
        """Skip to the next line that starts a JSON value after the marked place."""
        if self._mark is not None:
            self._pos, self.line = self._mark
            self._mark = None
        while True:
            match = _NEXT_DOC.search(self._buf, self._pos)
            if match is not None:
                self._move(match.end())
                return
            self._move(len(self._buf))
            if not self._fill():
                return


class _JsonRecord(NamedTuple):
    number: int
    value: Any


def _json_values(stream: _JsonStream, container: str,
                 col: _Collector) -> Iterator[_JsonRecord]:
    """The records of a JSON file, numbered.

    Elements of ``container`` arrays or of bare lists are numbered by ordinal, other top-level
    values (NDJSON, single documents) by the line where they start. A damaged element of an
    array is counted (its ordinal) and reading resumes at the next record (see
    :func:`_json_array`); a damaged top-level value resumes at the next line that starts one.
    """
    ordinal = 0
    keys: dict[str, None] = dict.fromkeys(_RECORD_KEYS.get(container, ()))
    while True:
        char = stream.peek()
        if char is None:
            return
        start = stream.line
        stream.mark()
        try:
            if char == "[":
                stream.take()
                stream.unmark()
                ordinal = yield from _json_array(stream, col, ordinal, keys)
                continue
            if char == "{":
                done, obj = stream.try_value()  # the usual case: small enough to hold
                if done:
                    if isinstance(obj, dict) and isinstance(obj.get(container), list):
                        for value in obj[container]:
                            ordinal += 1
                            yield _JsonRecord(ordinal, value)
                    else:
                        yield _JsonRecord(start, obj)
                    continue
                # larger than the window (or bad): key by key, streaming the container
                stream.take()
                collected: dict[str, Any] = {}
                seen = False
                first = True
                while True:
                    char = stream.peek()
                    if char == "}":
                        stream.take()
                        break
                    if char is None and seen:
                        break  # cut after the records: a lost one was counted in the array
                    if not first:
                        if char != ",":
                            raise _Bad("bad JSON" if char is not None else "truncated JSON")
                        stream.take()
                    first = False
                    key = stream.value()
                    if not isinstance(key, str) or stream.peek() != ":":
                        raise _Bad("bad JSON")
                    stream.take()
                    if key == container and stream.peek() == "[":
                        stream.take()
                        stream.unmark()  # may be huge: damage inside is skipped record-wise
                        seen = True
                        ordinal = yield from _json_array(stream, col, ordinal, keys)
                    else:
                        collected[key] = stream.value()
                if not seen:
                    yield _JsonRecord(start, collected)
                continue
            yield _JsonRecord(start, stream.value())
        except _Bad as exc:
            col.bad(start, exc.reason)
            stream.resync()


def _record_start(keys: dict[str, None]) -> re.Pattern[str]:
    """Where an object whose first key is one of ``keys`` starts."""
    names = "|".join(re.escape(k) for k in keys) or r'[^"\\]{1,64}'
    return re.compile(r'\{\s*"(?:' + names + r')"\s*:')


def _json_array(stream: _JsonStream, col: _Collector, ordinal: int,
                keys: dict[str, None]) -> Generator[_JsonRecord, None, int]:
    """The elements of an array whose ``[`` has been taken, numbered after ``ordinal``.

    An element that cannot be decoded is reported under its ordinal, and reading resumes at the
    next object starting with a key records of this array start with (``keys``, learnt from the
    records read); each element lost that way is counted, so none is lost silently. Returns the
    last ordinal used.
    """
    if stream.peek() == "]":
        stream.take()
        return ordinal
    while True:
        head = stream.first_key()
        try:
            value = stream.value()
        except _Bad as exc:
            ordinal += 1
            col.bad(ordinal, exc.reason)
            if head is not None and len(keys) < _MAX_RECORD_KEYS:
                keys[head] = None
            if not stream.skip_to(_record_start(keys), past_here=True):
                return ordinal
            continue
        ordinal += 1
        if isinstance(value, dict) and value and len(keys) < _MAX_RECORD_KEYS:
            keys.setdefault(next(iter(value)), None)
        yield _JsonRecord(ordinal, value)
        char = stream.peek()
        if char == ",":
            stream.take()
        elif char == "]":
            stream.take()
            return ordinal
        elif char is None:
            col.bad(ordinal + 1, "truncated JSON")
            return ordinal
        else:  # damage between two elements: counted, then on to the next record
            ordinal += 1
            col.bad(ordinal, "bad JSON between records")
            if not stream.skip_to(_record_start(keys), past_here=False):
                return ordinal


#: Reads one record (with the fingerprinter, its line and an id to fall back on) into a row.
_RowReader = Callable[[dict[str, Any], _Fingerprints, int, str], _Row]
#: What one decoded JSON object stands for: one record (itself or one it wraps), or the list of
#: records it holds whole, each a record or the reason (a string) its line is counted bad.
_Unpack = Callable[[dict[str, Any]], dict[str, Any] | list[dict[str, Any] | str]]


def _json_record_rows(path: Path, fp: _Fingerprints, read: _RowReader,
                      unpack: _Unpack) -> Callable[[int, Any, _Collector], Iterator[_Row]]:
    """The ``to_rows`` of :func:`_parse_json_records` for one format.

    Each decoded value must be an object; ``unpack`` says whether it stands for one record (its
    fallback id ``name:line``) or is a container held whole (the k-th record ``name:line:k``). A
    record ``read`` rejects is counted bad under the value's line.
    """
    name = path.name

    def one(record: dict[str, Any], number: int, fallback_id: str,
            col: _Collector) -> Iterator[_Row]:
        try:
            yield read(record, fp, number, fallback_id)
        except _Bad as exc:
            col.bad(number, exc.reason)

    def to_rows(number: int, value: Any, col: _Collector) -> Iterator[_Row]:
        if not isinstance(value, dict):
            col.bad(number, "not a JSON object")
            return
        held = unpack(value)
        if isinstance(held, dict):
            yield from one(held, number, f"{name}:{number}", col)
            return
        for k, record in enumerate(held, 1):
            if isinstance(record, str):
                col.bad(number, record)
            else:
                yield from one(record, number, f"{name}:{number}:{k}", col)

    return to_rows


def _parse_json_records(path: Path, container: str,
                        to_rows: Callable[[int, Any, _Collector], Iterator[_Row]],
                        col: _Collector) -> Iterator[Chunk]:
    with _open_text(path) as handle:
        stream = _JsonStream(handle)
        for record in _json_values(stream, container, col):
            for row in to_rows(record.number, record.value, col):
                chunk = col.add(row)
                if chunk is not None:
                    yield chunk
        if stream.error is not None:
            col.bad(stream.line, stream.error)
    yield from col.finish()
