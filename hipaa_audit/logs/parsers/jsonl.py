"""JSON Lines logs read through a :class:`~hipaa_audit.logs.parsers.mapped.ColumnMapping`."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from hipaa_audit.logs.parsers.common import _TOO_DEEP, _Collector, _Fingerprints, _Lines, _open_text
from hipaa_audit.logs.parsers.mapped import (
    ColumnMapping,
    _action_function,
    _lookup,
    _mapped_frame,
    _outcome_function,
    _scalar,
)
from hipaa_audit.logs.schema import Chunk, valid_text

#: A float this large read by orjson may be an integer beyond 64 bits (which it reads as a float,
#: where the standard decoder keeps the integer): such records are read again by the latter.
_HUGE = float(2**63)


def _flat_cells(stripped: str, get: itemgetter[Any] | None) -> tuple[Any, ...] | None:
    """The raw mapped values of a flat record (no nested value) read fast, or None.

    None sends the line to the standard decoder (:func:`json.loads`), which decides: anything
    nested, anything orjson rejects (``NaN``, a lone surrogate, a bad value...), a key missing,
    a value orjson reads differently. Otherwise the values are what that decoder would give.
    """
    if get is None or stripped.count("{") != 1 or "[" in stripped:
        return None
    try:
        record = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(record, dict):
        return None
    try:
        cells: tuple[Any, ...] = get(record)
    except KeyError:
        return None
    if float in map(type, cells) and any(
            isinstance(c, float) and abs(c) >= _HUGE for c in cells):
        return None
    return cells


def _text_column(values: Sequence[Any]) -> pd.Series:
    """One column's raw values as text (see :func:`_scalar`)."""
    try:  # usually all texts (or None) already
        return pd.Series(pd.arrays.ArrowStringArray(pa.array(values, type=pa.large_string())))
    except (pa.ArrowException, UnicodeError):
        texts = list(map(_scalar, values))
    try:
        return pd.Series(pd.arrays.ArrowStringArray(pa.array(texts, type=pa.large_string())))
    except UnicodeError:  # half a surrogate pair, from a JSON escape: made valid
        valid = [valid_text(t) for t in texts]
        return pd.Series(pd.arrays.ArrowStringArray(pa.array(valid, type=pa.large_string())))


def _parse_jsonl(path: Path, mapping: ColumnMapping, fp: _Fingerprints,
                 col: _Collector) -> Iterator[Chunk]:
    keys = mapping.columns()
    action_fn = _action_function(mapping)
    outcome_fn = _outcome_function(mapping)
    names = list(keys)
    wanted = list(keys.values())
    get = itemgetter(*wanted) if len(wanted) > 1 else None
    rows: list[tuple[Any, ...]] = []
    lines: list[int] = []

    def flush() -> Chunk:
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
        raw = {k: _text_column(v) for k, v in zip(names, columns, strict=True)}
        frame = _mapped_frame(raw, np.asarray(lines, dtype=np.int64), mapping, fp, col,
                              path.name, action_fn, outcome_fn)
        rows.clear()
        lines.clear()
        return col.chunk(frame)

    with _open_text(path) as handle:
        reader = _Lines(handle)
        long_line = 0
        for lineno, piece, complete in reader:
            if not complete:
                if long_line != lineno:
                    col.bad(lineno, "line too long")
                    long_line = lineno
                continue
            if long_line == lineno:
                continue
            stripped = piece.strip()
            if not stripped:
                continue
            cells = _flat_cells(stripped, get)
            if cells is None:
                try:
                    record = json.loads(stripped)
                except ValueError:
                    col.bad(lineno, "bad JSON")
                    continue
                except RecursionError:
                    col.bad(lineno, _TOO_DEEP)
                    continue
                if not isinstance(record, dict):
                    col.bad(lineno, "not a JSON object")
                    continue
                try:
                    cells = tuple([_scalar(_lookup(record, key)) for key in wanted])
                except RecursionError:  # a mapped value nested too deep to write back as text
                    col.bad(lineno, _TOO_DEEP)
                    continue
            rows.append(cells)
            lines.append(lineno)
            if len(lines) >= col.chunk_rows:
                yield flush()
        if reader.error is not None:
            col.bad(reader.line, reader.error)
    if lines or col.malformed or not col.emitted:
        yield flush()
