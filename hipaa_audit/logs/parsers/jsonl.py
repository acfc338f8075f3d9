"""JSON Lines logs read through a :class:`~hipaa_audit.logs.parsers.mapped.ColumnMapping`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from hipaa_audit.logs.parsers.common import _TOO_DEEP, _Collector, _Fingerprints, _Lines, _open_text
from hipaa_audit.logs.parsers.mapped import (
    ColumnMapping,
    _action_function,
    _lookup,
    _mapped_frame,
    _outcome_function,
    _scalar,
)
from hipaa_audit.logs.schema import Chunk


def _parse_jsonl(path: Path, mapping: ColumnMapping, fp: _Fingerprints,
                 col: _Collector) -> Iterator[Chunk]:
    keys = mapping.columns()
    action_fn = _action_function(mapping)
    outcome_fn = _outcome_function(mapping)
    values: dict[str, list[str | None]] = {k: [] for k in keys}
    lines: list[int] = []

    def flush() -> Chunk:
        raw = {k: pd.Series(v, dtype=object) for k, v in values.items()}
        frame = _mapped_frame(raw, np.asarray(lines, dtype=np.int64), mapping, fp, col,
                              path.name, action_fn, outcome_fn)
        for v in values.values():
            v.clear()
        lines.clear()
        return col.chunk(frame)

    getters = [(values[k].append, key) for k, key in keys.items()]
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
                cells = [_scalar(_lookup(record, key)) for _, key in getters]
            except RecursionError:  # a mapped value nested too deep to write back as text
                col.bad(lineno, _TOO_DEEP)
                continue
            for (append, _), cell in zip(getters, cells, strict=True):
                append(cell)
            lines.append(lineno)
            if len(lines) >= col.chunk_rows:
                yield flush()
        if reader.error is not None:
            col.bad(reader.line, reader.error)
    if lines or col.malformed or not col.emitted:
        yield flush()
