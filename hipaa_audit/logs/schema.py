"""The normalised event table every parser produces and every detector reads.

One row per audit event, whatever the source format. Columns (pandas, pyarrow-backed strings):

=============  ===========================  ==================================================
column         dtype                        meaning
=============  ===========================  ==================================================
time           datetime64[ms, UTC]          when the event happened (converted to UTC)
user           string                       the workforce account (user id, IAM user or role
                                            session); ``<NA>`` when none
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
line           Int64                        its line (text formats) or record number (1-based)
=============  ===========================  ==================================================

No column holds PHI: patient and study identifiers are fingerprinted with the installation key as
they are parsed (:class:`hipaa_audit.redaction.Masker`), so the table itself can be cached.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
                  "format", "source")
INT_COLUMNS = ("objects", "bytes", "line")
COLUMNS = ("time", *STRING_COLUMNS[:7], "objects", "bytes", *STRING_COLUMNS[7:], "line")
STRING_DTYPE = pd.StringDtype("pyarrow")


def dtypes() -> dict[str, object]:
    """The dtype of every column."""
    out: dict[str, object] = {"time": "datetime64[ms, UTC]"}
    out.update(dict.fromkeys(STRING_COLUMNS, STRING_DTYPE))
    out.update(dict.fromkeys(INT_COLUMNS, "Int64"))
    return out


def empty() -> pd.DataFrame:
    """An empty event table with every column and dtype."""
    return normalise(pd.DataFrame({c: [] for c in COLUMNS}))


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with exactly the columns of the schema, in order, with their dtypes.

    Missing columns are added empty; ``time`` is parsed and converted to UTC.
    """
    out = pd.DataFrame(index=frame.index)
    types = dtypes()
    for col in COLUMNS:
        if col == "time":
            values = frame[col] if col in frame else pd.Series(pd.NaT, index=frame.index)
            out[col] = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601"
                                      ).astype("datetime64[ms, UTC]")
        elif col in frame:
            out[col] = frame[col].astype(types[col])  # type: ignore[call-overload]
        else:
            out[col] = pd.Series(pd.NA, index=frame.index, dtype=types[col])  # type: ignore[call-overload]
    return out.reset_index(drop=True)


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
