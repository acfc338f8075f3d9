"""The normalised event table every parser produces and every detector reads.

One row per audit event, whatever the source format. Columns (pandas, pyarrow-backed strings):

=============  ===========================  ==================================================
column         dtype                        meaning
=============  ===========================  ==================================================
time           datetime64[ms, UTC]          when the event happened (converted to UTC)
user           string                       the workforce account (user id, IAM user or role
                                            session); a patient acting as the user is
                                            ``patient:`` and the fingerprint; ``<NA>`` when none
role           string                       the user's role, when the log says
action         string (one of ACTIONS)      what was done, normalised
outcome        string                       ``success`` or ``failure``
patient        string                       keyed fingerprint of the patient id (HMAC, never
                                            the raw id); ``<NA>`` when none
patient_name   string                       keyed fingerprint of the patient's family name,
                                            upper-cased (for snooping checks); ``<NA>``
study          string                       keyed fingerprint of the study (Study Instance UID,
                                            accession, or S3 object prefix)
objects        Int64                        number of instances/objects the event touched
bytes          Int64                        bytes transferred
source_ip      string                       client address
device         string                       client device, host, AE title or user agent
purpose        string                       purpose of use (e.g. ``BTG``, ``ETREAT``, ``TREAT``)
event_id       string                       the record's own id (eventID, UUID), else
                                            ``FILE:LINE``
code           string                       the source's event code (``110106``,
                                            ``GetObject``...) for rules and evidence
target         string                       the resource acted on when it is not a patient
                                            (bucket name, policy name); never PHI
system         string                       the system that wrote the record (AuditSourceID,
                                            observer, eventSource)
format         string                       ``atna``, ``fhir``, ``cloudtrail``, ``csv``, ``jsonl``
source         string                       the file the record came from
error_code     string                       CloudTrail ``errorCode`` (``AccessDenied``...)
identity_type  string                       CloudTrail ``userIdentity.type`` (``Root``,
                                            ``IAMUser``, ``AssumedRole``...)
detail         string                       CloudTrail ``errorMessage``, ``additionalEventData``
                                            and ``responseElements``, screened: JSON text of
                                            their scalar leaves by dotted path (see
                                            :func:`detail_field`), for Sigma rules only
line           Int64                        its line (text formats) or record number (1-based)
=============  ===========================  ==================================================

No column holds PHI: patient and study identifiers are fingerprinted with the installation key as
they are parsed (:class:`hipaa_audit.redaction.Masker`), and so are a patient acting as the user
(with their address and device), and device, target, system and code values that may hold an
identifier (``hmac:`` and the fingerprint; an event id that may is replaced by ``FILE:LINE``; see
:func:`hipaa_audit.logs.parsers.may_identify`), so the table itself can be cached.

Parsers produce the dtypes above (:func:`dtypes`). The table that is cached and analysed is the
*compact* form (:func:`compact`, :func:`table_dtypes`): every text column but ``event_id`` and
``study`` (:data:`CATEGORY_COLUMNS`) is a pandas ``category`` whose categories are the column's
distinct values, sorted, as pyarrow-backed strings. A user, role, address or fingerprint
repeated over millions of rows is then held once, with a 1-4 byte code per row: 5 million events
take well under half the memory of the all-string table. Values, missing values and sort order
are those of the string table, and the detectors and Sigma rules give the same results on either
form. The Parquet cache keeps the categories (:func:`write_parquet`, :func:`read_parquet`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

#: The normalised actions.
ACTIONS = (
    "view", "query", "export", "download", "import", "create", "update", "delete", "login",
    "logout", "permission-change", "config-change", "break-glass-start", "break-glass-stop",
    "audit-stop", "audit-start", "log-access", "security-alert", "other",
)
OUTCOMES = ("success", "failure")
STRING_COLUMNS = ("user", "role", "action", "outcome", "patient", "patient_name", "study",
                  "source_ip", "device", "purpose", "event_id", "code", "target", "system",
                  "format", "source", "error_code", "identity_type", "detail")
INT_COLUMNS = ("objects", "bytes", "line")
COLUMNS = ("time", *STRING_COLUMNS[:7], "objects", "bytes", *STRING_COLUMNS[7:], "line")
STRING_DTYPE = pd.StringDtype("pyarrow")
#: Text columns held as categoricals in the compact table: all but the per-event id and the
#: study (nearly one value per export, view or import: a dictionary as large as the column).
CATEGORY_COLUMNS = tuple(c for c in STRING_COLUMNS if c not in ("event_id", "study"))

#: The CloudTrail parts kept in the ``detail`` column: ``errorMessage`` and the leaves of
#: ``additionalEventData`` and ``responseElements``.
DETAIL_ROOTS = ("errorMessage", "additionalEventData", "responseElements")
#: A key naming a secret: its subtree is never kept (``responseElements.credentials`` of
#: AssumeRole and GetSessionToken holds a session's keys and token).
SECRET_KEY = re.compile(r"credential|secret|token|password|passwd|private", re.IGNORECASE)


def detail_field(name: str) -> bool:
    """Whether a CloudTrail field can be held in the ``detail`` column.

    True for ``errorMessage`` and the paths under ``additionalEventData`` and
    ``responseElements`` (``responseElements.ConsoleLogin``) with no key naming a secret
    (:data:`SECRET_KEY`) on them: those are dropped when parsed.
    """
    root, _, rest = name.partition(".")
    if root not in DETAIL_ROOTS or (root == "errorMessage") != (not rest):
        return False
    return not any(SECRET_KEY.search(part) for part in rest.split(".")) if rest else True


def dtypes() -> dict[str, object]:
    """The dtype of every column."""
    out: dict[str, object] = {"time": "datetime64[ms, UTC]"}
    out.update(dict.fromkeys(STRING_COLUMNS, STRING_DTYPE))
    out.update(dict.fromkeys(INT_COLUMNS, "Int64"))
    return out


def table_dtypes() -> dict[str, object]:
    """The dtype names of every column of the compact table (``category`` for the categoricals)."""
    out = {c: str(t) for c, t in dtypes().items()}
    out.update(dict.fromkeys(CATEGORY_COLUMNS, "category"))
    return dict(out)


def empty() -> pd.DataFrame:
    """An empty event table with every column and dtype."""
    return normalise(pd.DataFrame({c: [] for c in COLUMNS}))


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with exactly the columns of the schema, in order, with their dtypes.

    Missing columns are added empty; ``time`` is parsed and converted to UTC. A column that
    already has its dtype is kept as it is.
    """
    out: dict[str, pd.Series] = {}
    types = dtypes()
    given = dict(frame.items())
    for col in COLUMNS:
        kind = types[col]
        values = given.get(col)
        if values is not None and values.dtype == kind:
            out[col] = values
        elif col == "time":
            if values is None:
                values = pd.Series(pd.NaT, index=frame.index)
            out[col] = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601"
                                      ).astype("datetime64[ms, UTC]")
        elif values is not None:
            out[col] = _typed(values, kind)
        else:
            out[col] = pd.Series(pd.NA, index=frame.index, dtype=kind)  # type: ignore[call-overload]
    table = pd.DataFrame(out, index=frame.index, copy=False)
    index = frame.index
    if isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1:
        return table
    return table.reset_index(drop=True)


def valid_text(value: Any) -> Any:
    """``value`` with any half of a surrogate pair replaced by U+FFFD (other values as they are).

    JSON may spell one (a ``u`` escape from D800 to DFFF on its own) and Python's decoder keeps
    it, but no UTF-8 text (nor an Arrow column) can hold it: the record is kept, its text marked
    as damaged, as bytes that are not UTF-8 are when a log is read.
    """
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def _typed(values: pd.Series, dtype: Any) -> pd.Series:
    """``values`` as ``dtype``; text holding half a surrogate pair first made valid."""
    try:
        return values.astype(dtype)
    except UnicodeEncodeError:
        return values.map(valid_text, na_action="ignore").astype(dtype)


def _is_sorted_categorical(values: pd.Series) -> bool:
    categories = values.cat.categories
    return bool(categories.dtype == STRING_DTYPE and categories.is_monotonic_increasing)


def _categorical(values: pd.Series) -> pd.Series:
    """A text column as a categorical with sorted, pyarrow-string categories."""
    if not isinstance(values.dtype, pd.CategoricalDtype):
        return values.astype(STRING_DTYPE).astype("category")
    if _is_sorted_categorical(values):
        return values
    categories = pd.Index(values.cat.categories, dtype=STRING_DTYPE)
    order = np.asarray(categories.argsort(), dtype=np.int64)  # Arrow's sort: code points
    codes = values.cat.codes.to_numpy()
    rank = np.empty(len(order), dtype=codes.dtype)
    rank[order] = np.arange(len(order), dtype=codes.dtype)
    recoded = np.where(codes >= 0, rank[np.maximum(codes, 0)] if len(rank) else codes, -1)
    dtype = pd.CategoricalDtype(categories.take(order))
    return pd.Series(pd.Categorical.from_codes(recoded.astype(codes.dtype), dtype=dtype),
                     index=values.index, name=values.name)


def compact(frame: pd.DataFrame) -> pd.DataFrame:
    """The compact form of a table of the schema: :data:`CATEGORY_COLUMNS` as categoricals.

    A table already compact is returned as it is; any other is normalised first.
    """
    if {c: str(t) for c, t in frame.dtypes.items()} == table_dtypes() and all(
            _is_sorted_categorical(frame[c]) for c in CATEGORY_COLUMNS):
        return frame
    if list(frame.columns) != list(COLUMNS) or any(
            str(frame[c].dtype) != str(t) for c, t in dtypes().items()
            if c not in CATEGORY_COLUMNS):
        frame = normalise(frame)
    return pd.DataFrame({c: _categorical(frame[c]) if c in CATEGORY_COLUMNS else frame[c]
                         for c in COLUMNS}, copy=False)


def concat(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Tables of the schema one after the other, in the compact form (categories unified).

    Consecutive tables of the string form (as parsed, :func:`dtypes`) are joined first and made
    compact once; then each text column's categories are unified once over all the parts (their
    sorted union) and the parts' codes mapped into it, whatever the number of tables.
    """
    parts: list[pd.DataFrame] = []
    run: list[pd.DataFrame] = []  # consecutive tables of the string form: made compact at once
    for frame in frames:
        if not len(frame):
            continue
        if string_form(frame):
            run.append(frame)
            continue
        if run:
            parts.append(_compact_run(run))
            run = []
        parts.append(compact(frame))
    if run:
        parts.append(_compact_run(run))
    if not parts:
        return compact(empty())
    if len(parts) == 1:
        return parts[0]
    columns = {col: _concat_categorical([p[col] for p in parts]) if col in CATEGORY_COLUMNS
               else pd.concat([p[col] for p in parts], ignore_index=True) for col in COLUMNS}
    return pd.DataFrame(columns, copy=False)


def string_form(frame: pd.DataFrame) -> bool:
    """Whether ``frame`` has exactly the columns and dtypes a parser gives (:func:`dtypes`)."""
    types = dtypes()
    return list(frame.columns) == list(COLUMNS) and all(
        kind == types[str(col)] for col, kind in frame.dtypes.items())


def _compact_run(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Tables of the string form one after the other, compact (one categorical per column)."""
    return compact(frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True))


def _concat_categorical(columns: list[pd.Series]) -> pd.Series:
    """Categorical columns one after the other, over the sorted union of their categories."""
    import pyarrow as pa

    first = columns[0].cat.categories
    if all(c.cat.categories.equals(first) for c in columns[1:]):
        union = first
    else:
        values = pa.chunked_array([chunk for c in columns
                                   for chunk in c.cat.categories.array.__arrow_array__().chunks],
                                  type=pa.large_string()).unique()
        union = pd.Index(pd.array(values, dtype=STRING_DTYPE)).sort_values()
    codes = []
    for column in columns:
        indexer = np.append(union.get_indexer(column.cat.categories), -1)  # -1: missing
        codes.append(indexer[column.cat.codes.to_numpy()])
    return pd.Series(pd.Categorical.from_codes(np.concatenate(codes),
                                               dtype=pd.CategoricalDtype(union)),
                     name=columns[0].name, copy=False)


def write_parquet(frame: pd.DataFrame, path: Path | IO[bytes]) -> None:
    """Write a table (made compact) as Parquet: the cache of a parsed log."""
    compact(frame).to_parquet(path, index=False)


def read_parquet(path: Path) -> pd.DataFrame:
    """Read a table written by :func:`write_parquet` (or any Parquet of the schema), compact.

    Column by column and row group by row group: each column's decoding buffers are released
    before the next is read, so the peak stays near the size of the compact table itself
    rather than that of the whole file decoded at once. ``event_id`` and ``study`` keep their
    Arrow buffers (no copy into Python objects). A file with other dtypes is normalised.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    pool = pa.default_memory_pool()
    parquet = pq.ParquetFile(path)
    columns: dict[str, pd.Series] = {}
    for name in parquet.schema_arrow.names:
        if name not in COLUMNS:
            continue
        kind = parquet.schema_arrow.field(name).type
        chunks = []
        for group in range(parquet.metadata.num_row_groups):
            chunks.extend(parquet.read_row_group(group, columns=[name]).column(0).chunks)
        values = pa.chunked_array(chunks, type=kind)
        del chunks
        if pa.types.is_dictionary(kind):
            series = _categorical(pd.Series(values.to_pandas(), copy=False))
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            # one chunk: a take of a few rows of a chunked column concatenates it first
            series = pd.Series(pd.arrays.ArrowStringArray(
                pa.chunked_array([values.combine_chunks()])), copy=False)
            if name in CATEGORY_COLUMNS:
                series = _categorical(series)
        else:
            series = pd.Series(values.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get))
        del values
        columns[name] = series
        pool.release_unused()
    frame = pd.DataFrame(columns, copy=False)
    del columns
    return compact(frame)


@dataclass(frozen=True, slots=True)
class Malformed:
    """A record that could not be parsed: where it is and why (never its content)."""

    source: str
    line: int
    reason: str


@dataclass(slots=True)
class Chunk:
    """A batch of parsed events and the records of that stretch that could not be parsed."""

    events: pd.DataFrame
    malformed: list[Malformed] = field(default_factory=list)
