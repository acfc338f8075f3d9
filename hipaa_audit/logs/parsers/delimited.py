"""Delimited text logs (CSV, TSV, ``;`` or ``|``) read through a column mapping."""

from __future__ import annotations

import csv
import itertools
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hipaa_audit.logs.parsers.common import (
    _READ_ERRORS,
    LogFormatError,
    _Collector,
    _Fingerprints,
    _Lines,
    _open_text,
    _read_error,
)
from hipaa_audit.logs.parsers.mapped import (
    _REQUIRED,
    ColumnMapping,
    _action_function,
    _mapped_frame,
    _outcome_function,
)
from hipaa_audit.logs.parsers.sniff import _sniff_csv
from hipaa_audit.logs.schema import (
    Chunk,
    empty,
)

_SKIPPED = re.compile(r"Skipping line (\d+)")
#: A quoted CSV field spanning more lines than this is taken for a quote left open.
MAX_FIELD_LINES = 10
_OPEN_QUOTE = "unbalanced quote (a field swallows the lines after it)"
_OPEN_QUOTE_AT_END = "unbalanced quote (open to the end of the file)"


def _row_lines(frame: pd.DataFrame) -> np.ndarray[Any, np.dtype[np.int64]]:
    """How many physical lines each row of ``frame`` spans (line breaks in quoted fields)."""
    spans = np.ones(len(frame), dtype=np.int64)
    for i in range(frame.shape[1]):
        column = frame.iloc[:, i]
        has = column.str.contains("\n", regex=False).fillna(False).to_numpy(dtype=bool)
        if has.any():
            spans[has] += column[has].str.count("\n").to_numpy(dtype=np.int64)
    return spans


def _swallowing(frame: pd.DataFrame, spans: np.ndarray[Any, Any],
                delim: str) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Rows whose quoted field looks like a quote left open (see :func:`_read_csv_chunks`)."""
    out = spans > MAX_FIELD_LINES
    needed = max(1, frame.shape[1] - 1)
    for pos in np.flatnonzero((spans > 1) & ~out).tolist():
        for value in frame.iloc[pos].tolist():
            if isinstance(value, str) and "\n" in value and any(
                    inner.count(delim) >= needed for inner in value.split("\n")[1:]):
                out[pos] = True
                break
    return out


def _header_cells(path: Path, header_line: int, delim: str) -> list[str]:
    """The cells of the header line (line ``header_line``) of the CSV file at ``path``."""
    with _open_text(path) as handle:
        for lineno, piece, _ in _Lines(handle):
            if lineno == header_line:
                return next(csv.reader([piece], delimiter=delim), [])
    return []


def _reread_lines(path: Path, first: int, last: int | None, delim: str, width: int,
                  col: _Collector) -> Iterator[tuple[int, list[str]]]:
    """Rows of the physical lines ``first``..``last`` (None: to the end), quotes checked.

    Used where the fast reader lost a stretch to a quote left open. A row whose quote is still
    open after :data:`MAX_FIELD_LINES` lines (or at the end) is malformed, and reading resumes
    at the line after its first: only the line with the stray quote is lost. Rows with another
    number of fields than ``width`` are malformed too. Yields each row's line and cells.
    """
    rows: list[tuple[int, list[str]]] = []  # closed since the last yield
    pending: list[tuple[int, str]] = []  # the lines of a record whose quote is open

    def close(lines: list[tuple[int, str]]) -> None:
        cells = next(csv.reader(["".join(text for _, text in lines)], delimiter=delim,
                                strict=False), [])
        if not cells or cells == [""]:
            return
        if len(cells) != width:
            col.bad(lines[0][0], "wrong number of fields")
            return
        rows.append((lines[0][0], cells))

    def settle(queue: list[tuple[int, str]]) -> list[tuple[int, str]]:
        """Close the complete records at the front of ``queue``; what remains is open."""
        while queue:
            quotes = 0
            for k, (_, text) in enumerate(queue):
                quotes += text.count('"')
                if quotes % 2 == 0:
                    if k and any(t.count(delim) >= width - 1 for _, t in queue[1:k + 1]):
                        # the lines inside the quote are rows of their own: a stray quote
                        col.bad(queue[0][0], _OPEN_QUOTE)
                        queue = queue[1:]
                        break
                    close(queue[:k + 1])
                    queue = queue[k + 1:]
                    break
            else:
                if len(queue) <= MAX_FIELD_LINES:
                    return queue
                col.bad(queue[0][0], _OPEN_QUOTE)
                queue = queue[1:]
        return queue

    with _open_text(path) as handle:
        reader = _Lines(handle)
        for lineno, piece, complete in reader:
            if lineno < first:
                continue
            if last is not None and lineno > last:
                break
            if not complete:
                continue  # a line this long was reported by the fast reader's pass
            pending.append((lineno, piece))
            pending = settle(pending)
            yield from rows
            rows.clear()
        while pending:  # the end: a quote still open loses its first line only
            col.bad(pending[0][0], _OPEN_QUOTE_AT_END if last is None else _OPEN_QUOTE)
            pending = settle(pending[1:])
        yield from rows


def _parse_csv(path: Path, head: str, whole: bool, mapping: ColumnMapping, fp: _Fingerprints,
               col: _Collector) -> Iterator[Chunk]:
    sniffed = _sniff_csv(head, whole)
    if sniffed is None:
        raise LogFormatError(f"{path}: no CSV header line")
    header_line, delim, header = sniffed
    cells = [c.strip() for c in header]
    lower = [c.lower() for c in cells]
    chosen: dict[str, int] = {}
    for key, column in mapping.columns().items():
        if column in cells:
            chosen[key] = cells.index(column)
        elif column.lower() in lower:
            chosen[key] = lower.index(column.lower())
        elif key in _REQUIRED:
            raise LogFormatError(f"{path}: no column {column!r} (mapping {key})")
    return _read_csv_chunks(path, header_line, delim, chosen, mapping, fp, col)


def _read_csv_chunks(path: Path, header_line: int, delim: str, chosen: dict[str, int],
                     mapping: ColumnMapping, fp: _Fingerprints,
                     col: _Collector) -> Iterator[Chunk]:
    """Read a CSV file chunk by chunk, accounting for every physical line.

    Each row's lines are counted (one, plus the line breaks inside its quoted fields), so a row's
    line number is where it starts and the lines read always add up to the file's. A row holding
    a field that spans more than :data:`MAX_FIELD_LINES` lines, or whose inner lines look like
    rows of their own (as many delimiters as the header), is a quote left open that swallowed
    the rows after it: that row is malformed and the lines it holds are read again one by one
    (:func:`_reread_lines`). When the fast reader fails on a quote open at the end of the file,
    the rest of the file is read the same way.
    """
    action_fn = _action_function(mapping)
    outcome_fn = _outcome_function(mapping)
    skipped: list[int] = []
    lines_read = 0  # physical lines held by the rows read so far
    width = len(_header_cells(path, header_line, delim))

    def mapped(frame: pd.DataFrame, lines: np.ndarray[Any, Any]) -> Chunk:
        raw = {key: frame.iloc[:, i] for key, i in chosen.items() if i < frame.shape[1]}
        return col.chunk(_mapped_frame(raw, lines, mapping, fp, col, path.name,
                                       action_fn, outcome_fn))
    with _open_text(path) as handle:
        # every column is read (not usecols) so that rows with too many fields are reported
        reader = pd.read_csv(
            handle, sep=delim, header=0, skiprows=header_line - 1, dtype=str,
            keep_default_na=False, na_values=[""], skip_blank_lines=False,
            on_bad_lines="warn", chunksize=col.chunk_rows, engine="c", index_col=False,
        )
        with reader:
            while True:
                failed = False
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    try:
                        frame = next(reader)
                    except StopIteration:
                        frame = None
                    except (pd.errors.ParserError, *_READ_ERRORS):
                        frame, failed = None, True
                for warning in caught:
                    found = _SKIPPED.search(str(warning.message))
                    if found:
                        skipped.append(int(found.group(1)))
                        col.bad(skipped[-1], "wrong number of fields")
                if frame is None:
                    first = header_line + lines_read + len(skipped) + 1
                    error = _read_error(handle)
                    if error is not None:
                        col.bad(first, error)
                    elif failed:  # a quote open to the end: the rest, line by line
                        tail = _reread_lines(path, first, None, delim, width, col)
                        while batch := list(itertools.islice(tail, col.chunk_rows)):
                            yield mapped(pd.DataFrame([cells for _, cells in batch],
                                                      dtype=object),
                                         np.asarray([n for n, _ in batch], dtype=np.int64))
                    break
                n = len(frame)
                spans = _row_lines(frame)
                # the file line of each row: after the header and the lines of the rows before
                # it, shifted past the lines pandas skipped (too many fields)
                ends = np.cumsum(spans)
                plain = header_line + 1 + lines_read + ends - spans
                if skipped:
                    marks = np.sort(np.asarray(skipped, dtype=np.int64))
                    shifted = marks - np.arange(len(marks), dtype=np.int64)
                    plain = plain + np.searchsorted(shifted, plain, side="right")
                lines_read += int(ends[-1]) if n else 0
                swallowed = _swallowing(frame, spans, delim)
                if swallowed.any():
                    # the row with the stray quote is lost; the lines it swallowed are read
                    # again one by one
                    extra: list[tuple[int, list[str]]] = []
                    for line, count in zip(plain[swallowed].tolist(), spans[swallowed].tolist(),
                                           strict=True):
                        col.bad(int(line), _OPEN_QUOTE)
                        extra.extend(_reread_lines(path, int(line) + 1, int(line + count - 1),
                                                   delim, width, col))
                    frame, plain = frame[~swallowed], plain[~swallowed]
                    if extra:
                        again = pd.DataFrame([cells for _, cells in extra], dtype=object)
                        again.columns = frame.columns
                        frame = pd.concat([frame, again], ignore_index=True)
                        plain = np.concatenate([plain, np.asarray([n for n, _ in extra],
                                                                  dtype=np.int64)])
                        order = np.argsort(plain, kind="stable")
                        frame, plain = frame.iloc[order].reset_index(drop=True), plain[order]
                for at in range(0, max(len(frame), 1), col.chunk_rows):
                    yield mapped(frame.iloc[at:at + col.chunk_rows],
                                 plain[at:at + col.chunk_rows])
    if col.malformed or not col.emitted:
        yield col.chunk(empty())
