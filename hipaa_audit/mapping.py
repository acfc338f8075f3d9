"""Shared checks for the column mappings that config files give (which column holds what).

A column mapping is a frozen dataclass whose fields name source columns (a string, or ``None``
for "the source has no such column"), value tables (``dict[str, str]``, translating source
values to a fixed vocabulary) and a few plain settings.
:class:`~hipaa_audit.logs.parsers.ColumnMapping` (audit logs),
:class:`~hipaa_audit.permissions.exports.PacsMapping` and
:class:`~hipaa_audit.permissions.exports.RosterMapping` use these helpers.

Every ``ValueError`` message starts ``"WHAT mapping"`` (``"PACS mapping: role must be a
string"``) and names the key at fault. The values shown are the config's own (a table value
that is not in the allowed list), never data read from a source file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    _M = TypeVar("_M", bound=DataclassInstance)
else:
    _M = TypeVar("_M")

__all__ = ["check_columns", "check_format", "check_table", "from_table", "mapping_hash"]


def mapping_hash(mapping: DataclassInstance) -> int:
    """Hash a mapping dataclass field by field, a ``dict`` field as its sorted items.

    For a ``frozen`` dataclass with table fields, whose generated ``__hash__`` would fail on
    the unhashable dicts; equal mappings hash equal whatever the order of their tables.
    """
    return hash(tuple(
        tuple(sorted(value.items())) if isinstance(value, dict) else value
        for value in (getattr(mapping, f.name) for f in fields(mapping))))


def check_columns(what: str, mapping: object, required: Iterable[str],
                  optional: Iterable[str]) -> None:
    """Check that each ``required`` field names a column, each ``optional`` one or is ``None``.

    A name must be a string that is not blank.
    """
    for name in required:
        value = getattr(mapping, name)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{what} mapping: {name} must name a column")
    for name in optional:
        value = getattr(mapping, name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ValueError(f"{what} mapping: {name} must name a column or be empty")


def check_table(what: str, name: str, table: object, allowed: Iterable[str]) -> None:
    """Check a value table: a dict from non-blank text to one of ``allowed``.

    The value is compared stripped and case-folded (``allowed`` is given in that form).
    """
    choices = tuple(allowed)
    if not isinstance(table, dict):
        raise ValueError(f"{what} mapping: {name} must be a table")
    for key, value in table.items():
        if not isinstance(key, str) or not isinstance(value, str) or not key.strip():
            raise ValueError(f"{what} mapping: {name}.{key}: must map text to text")
        if value.strip().casefold() not in choices:
            raise ValueError(f"{what} mapping: {name}.{key}: {value!r} is not one of "
                             f"{', '.join(choices)}")


def check_format(what: str, name: str, value: object) -> None:
    """Check an optional ``strptime`` format setting: ``None`` or a non-empty string."""
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"{what} mapping: {name} must be a strptime format")


def from_table(cls: type[_M], what: str, data: Mapping[str, Any], *, tables: Iterable[str],
               nullable: Iterable[str]) -> _M:
    """Build the mapping ``cls`` from a config table (parsed TOML).

    Every key must be a field of ``cls``. A key in ``tables`` takes a table (its keys made
    strings; :func:`check_table`-style checks are the dataclass's own); a key in ``nullable``
    given as ``""``, ``false`` or nothing becomes ``None``; any other key takes a string.
    Fields not given keep their defaults. Raises ``ValueError`` naming the bad or unknown key
    (the message lists the known keys), or whatever the dataclass's own checks raise.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"{what} mapping must be a table of settings")
    known = [f.name for f in fields(cls)]
    table_keys = frozenset(tables)
    nullable_keys = frozenset(nullable)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise ValueError(f"{what} mapping: unknown key {key!r} (known keys: "
                             f"{', '.join(known)})")
        if key in table_keys:
            if not isinstance(value, Mapping):
                raise ValueError(f"{what} mapping: {key} must be a table")
            kwargs[key] = {str(k): v for k, v in value.items()}
        elif key in nullable_keys and value in ("", False, None):
            kwargs[key] = None
        elif not isinstance(value, str):
            raise ValueError(f"{what} mapping: {key} must be a string")
        else:
            kwargs[key] = value
    return cls(**kwargs)
