"""Read accounts and roles from a PACS/VNA export, and the workforce roster, from CSV files.

Both readers use the :mod:`csv` module on files decoded as UTF-8 (a byte-order mark is
tolerated). Column names are matched case-insensitively, with spaces and hyphens read as
underscores (``Last Login`` matches ``last_login``); each column left at its default name also
answers to a few aliases (``username``, ``login``, ``account`` for ``user``, and so on). A
:class:`PacsMapping` or :class:`RosterMapping` names other columns and extends the value tables;
both can be built from a TOML table with ``from_toml``.

A file that cannot be used at all (missing, empty, not UTF-8, without its id column, or without
a column the mapping names explicitly) raises :class:`PermissionSourceError`. A row that cannot
be used becomes a :class:`~hipaa_audit.permissions.model.Problem` whose asset is ``FILE:LINE``
and whose message starts ``line N:``. Neither ever carries a cell value (cells may hold PHI, and
the roster holds people's names): messages name lines, columns and positions only. The one
exception is the error for a missing column in a PACS export: it shows the cells of the first
line that are known column names or aliases (any other cell is only counted, as a first line
that is not a header holds data). For the roster it shows no cell at all, only counts.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

from hipaa_audit.errors import HipaaAuditError
from hipaa_audit.mapping import (
    check_columns,
    check_format,
    check_table,
    from_table,
    mapping_hash,
)
from hipaa_audit.permissions.model import (
    ACTIONS,
    Facts,
    Grant,
    Membership,
    Person,
    Principal,
    Problem,
    Resource,
)
from hipaa_audit.redaction import Masker

__all__ = [
    "DEFAULT_PACS_STATUSES",
    "DEFAULT_PACS_TYPES",
    "DEFAULT_PACS_VALUES",
    "DEFAULT_ROSTER_STATUSES",
    "FIELD_LIMIT",
    "MAX_ROW_PROBLEMS",
    "PacsMapping",
    "PermissionSourceError",
    "RosterMapping",
    "collect_pacs",
    "collect_roster",
]

#: Largest CSV field read (characters); a larger one makes its row a Problem.
FIELD_LIMIT = 1 << 20
#: Row problems kept per file; the rest are counted in one last Problem.
MAX_ROW_PROBLEMS = 200

#: Permission words (normalised: case-folded, spaces and underscores as ``-``) to actions.
#: ``ignore`` drops a word without a Problem.
DEFAULT_PACS_VALUES: Mapping[str, str] = {
    **{action: action for action in ACTIONS},
    "view": "read", "query": "read", "retrieve": "read",
    "search": "list",
    "export": "read", "download": "read", "burn": "read",
    "edit": "write", "store": "write", "import": "write", "upload": "write", "modify": "write",
    "purge": "delete",
    "manage": "admin", "configure": "admin", "assign-roles": "admin",
}
#: Account status values to ``active`` or ``disabled``; an empty status is active.
DEFAULT_PACS_STATUSES: Mapping[str, str] = {
    **dict.fromkeys(("active", "enabled", "ok", "normal", "valid", "yes", "true", "1"), "active"),
    **dict.fromkeys(("disabled", "locked", "inactive", "suspended", "expired", "deleted",
                     "terminated", "closed", "revoked", "blocked", "no", "false", "0"),
                    "disabled"),
}
#: Account type values to ``user`` or ``service``; any other value (or none) is a user.
DEFAULT_PACS_TYPES: Mapping[str, str] = {
    **dict.fromkeys(("user", "human", "person", "staff", "regular", "named"), "user"),
    **dict.fromkeys(("service", "service-account", "system", "application", "app", "svc",
                     "machine", "api", "integration", "device", "technical"), "service"),
}
#: Roster status values to ``active`` or ``inactive``; an empty status is active.
DEFAULT_ROSTER_STATUSES: Mapping[str, str] = {
    **dict.fromkeys(("active", "leave", "on-leave", "loa", "current", "employed", "yes", "true"),
                    "active"),
    **dict.fromkeys(("terminated", "inactive", "ended", "separated", "left", "retired",
                     "resigned", "deceased", "former", "disabled", "no", "false"), "inactive"),
}

_PACS_ALIASES: Mapping[str, tuple[str, ...]] = {
    "user": ("user", "username", "user_name", "login", "login_name", "account", "account_name",
             "userid", "user_id"),
    "role": ("role", "roles", "group", "groups"),
    "permissions": ("permissions", "permission", "rights", "privileges"),
    "status": ("status", "state", "account_status"),
    "last_login": ("last_login", "lastlogin", "last_logon", "last_used", "last_access"),
    "type": ("type", "account_type", "user_type"),
}
_ROSTER_ALIASES: Mapping[str, tuple[str, ...]] = {
    "id": ("id", "username", "user_name", "login", "employee_id", "employee", "user_id",
           "user"),
    "name": ("name", "full_name", "fullname", "display_name"),
    "role": ("role", "roles", "job_role"),
    "status": ("status", "employment_status", "state", "active"),
    "end_date": ("end_date", "termination_date", "separation_date", "ended", "end"),
    "accounts": ("accounts", "other_accounts", "aliases"),
}
_NO_DATE = frozenset({"", "-", "never", "none", "null", "n/a", "na", "0"})


class PermissionSourceError(HipaaAuditError):
    """A whole permission source is unusable (missing, empty, not UTF-8, no id column...).

    The message names the file and what is wrong, never a cell value; the CLI prints it and
    exits 2.
    """


# ---------------------------------------------------------------------------------------------
# mappings


def _norm_column(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().casefold())


def _norm_word(word: str) -> str:
    return re.sub(r"[\s_]+", "-", word.strip().casefold())


class _ExportMapping:
    """What :class:`PacsMapping` and :class:`RosterMapping` share: their checks and ``from_toml``.

    Each is a frozen dataclass naming in class variables how messages call it, its required
    id column, its optional columns and its value tables (with the values each may map to).
    """

    __dataclass_fields__: ClassVar[dict[str, Any]]
    _WHAT: ClassVar[str]
    _REQUIRED: ClassVar[str]
    _OPTIONAL: ClassVar[tuple[str, ...]]
    _TABLES: ClassVar[tuple[tuple[str, tuple[str, ...]], ...]]
    delimiter: str
    date_format: str | None

    def __post_init__(self) -> None:
        """Check the column names, the delimiter, the date format and the value tables."""
        what = self._WHAT
        check_columns(what, self, (self._REQUIRED,), self._OPTIONAL)
        delimiter: object = self.delimiter
        if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\"\r\n":
            raise ValueError(f"{what} mapping: delimiter must be one character (not a quote)")
        check_format(what, "date_format", self.date_format)
        for name, allowed in self._TABLES:
            check_table(what, name, getattr(self, name), allowed)

    @classmethod
    def from_toml(cls, data: Mapping[str, Any]) -> Self:
        """Build a mapping from a TOML table; raises ``ValueError`` naming a bad or unknown key."""
        return from_table(cls, cls._WHAT, data, tables=[name for name, _ in cls._TABLES],
                          nullable=(*cls._OPTIONAL, "date_format"))


def _table(defaults: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    out = dict(defaults)
    out.update({_norm_word(k): v.strip().casefold() for k, v in extra.items()})
    return out


@dataclass(frozen=True)
class PacsMapping(_ExportMapping):
    """Where the fields of a PACS/VNA account export are, and how to read their values.

    Columns (``None``, or ``""``/``false`` in TOML, means the export has no such column):
    ``user`` (required; default ``user``, also ``username``, ``login``, ``account``...),
    ``role`` (default ``role``/``roles``/``group(s)``; several separated by ``;`` or ``|``),
    ``permissions`` (default ``permissions``/``rights``/``privileges``; separated by ``;``,
    ``|`` or ``,``), ``status``, ``last_login`` and ``type``. A column given a non-default name
    must exist in the file; default columns other than ``user`` may be absent.

    Value tables, keys case-insensitive, merged over the defaults: ``values`` maps permission
    words to an action of :data:`~hipaa_audit.permissions.model.ACTIONS` or ``ignore``
    (:data:`DEFAULT_PACS_VALUES`); ``statuses`` maps status values to ``active``/``disabled``
    (:data:`DEFAULT_PACS_STATUSES`); ``types`` maps account types to ``user``/``service``
    (:data:`DEFAULT_PACS_TYPES`). ``delimiter`` is the CSV field separator; ``date_format``
    is a ``strptime`` format for ``last_login`` (default: ISO 8601 or ``YYYY/MM/DD``).
    """

    user: str = "user"
    role: str | None = "role"
    permissions: str | None = "permissions"
    status: str | None = "status"
    last_login: str | None = "last_login"
    type: str | None = "type"
    values: dict[str, str] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    delimiter: str = ","
    date_format: str | None = None

    _WHAT = "PACS"
    _REQUIRED = "user"
    _OPTIONAL = ("role", "permissions", "status", "last_login", "type")
    _TABLES = (("values", (*ACTIONS, "ignore")), ("statuses", ("active", "disabled")),
               ("types", ("user", "service")))

    def __hash__(self) -> int:
        return mapping_hash(self)


@dataclass(frozen=True)
class RosterMapping(_ExportMapping):
    """Where the fields of the workforce roster are, and how to read their values.

    Columns (``None``, or ``""``/``false`` in TOML, means the roster has no such column):
    ``id`` (required; default ``id``, also ``username``, ``login``, ``employee_id``...),
    ``name`` (full name, only ever kept as a fingerprint, ``Person.name_fp``), ``role``
    (several separated by ``;`` or ``|``), ``status``, ``end_date`` and ``accounts`` (other
    account names, separated by ``;``, ``|`` or ``,``). A column given a non-default name must
    exist in the file.

    ``statuses`` maps status values (case-insensitive) to ``active``/``inactive``, merged over
    :data:`DEFAULT_ROSTER_STATUSES`. ``delimiter`` is the CSV field separator; ``date_format``
    is a ``strptime`` format for ``end_date`` (default: ISO 8601 or ``YYYY/MM/DD``).
    """

    id: str = "id"
    name: str | None = "name"
    role: str | None = "role"
    status: str | None = "status"
    end_date: str | None = "end_date"
    accounts: str | None = "accounts"
    statuses: dict[str, str] = field(default_factory=dict)
    delimiter: str = ","
    date_format: str | None = None

    _WHAT = "roster"
    _REQUIRED = "id"
    _OPTIONAL = ("name", "role", "status", "end_date", "accounts")
    _TABLES = (("statuses", ("active", "inactive")),)

    def __hash__(self) -> int:
        return mapping_hash(self)


# ---------------------------------------------------------------------------------------------
# reading CSV


class _Rows:
    """One CSV file read row by row: the located columns, and row problems (capped)."""

    def __init__(self, path: Path, source: str, problems: list[Problem], *,
                 hide_header: bool = False) -> None:
        self.path = path
        self.source = source
        self.problems = problems
        #: Never show a header cell, known or not (the roster: its first line may be a person).
        self.hide_header = hide_header
        self.columns: dict[str, int] = {}
        self.header: list[str] = []
        self._kept = 0
        self._skipped = 0

    def problem(self, line: int, message: str) -> None:
        if self._kept >= MAX_ROW_PROBLEMS:
            self._skipped += 1
            return
        self._kept += 1
        self.problems.append(Problem(self.source, f"{self.path}:{line}", f"line {line}: {message}"))

    def finish(self) -> None:
        if self._skipped:
            self.problems.append(Problem(self.source, str(self.path),
                                         f"{self._skipped} more row problems not listed"))

    def column_name(self, name: str) -> str:
        """The header text of a located column (a column name, never a cell value)."""
        return self.header[self.columns[name]]

    def state(self, line: int, cells: Mapping[str, str], statuses: Mapping[str, str]) -> str | None:
        """What the row's status means by ``statuses`` (``active`` without one).

        ``None``, and a Problem, for a status not in the table.
        """
        status = _norm_word(cells.get("status", ""))
        state = statuses.get(status) if status else "active"
        if state is None:
            self.problem(line, f"the value in column {self.column_name('status')!r} is not a "
                               "known status (add it to the mapping's statuses); treated as "
                               "active")
        return state

    def date(self, line: int, cells: Mapping[str, str], name: str,
             date_format: str | None) -> dt.date | None:
        """The date in the row's column ``name`` (:func:`_parse_date`).

        ``None`` without one, and ``None`` with a Problem when it is not a date.
        """
        if not cells.get(name):
            return None
        try:
            return _parse_date(cells[name], date_format)
        except ValueError:
            self.problem(line, f"the value in column {self.column_name(name)!r} is not a date "
                               "(set the mapping's date_format); ignored")
            return None

    def read(self, mapping: PacsMapping | RosterMapping, required: str,
             aliases: Mapping[str, tuple[str, ...]]) -> Iterator[tuple[int, dict[str, str]]]:
        """Yield ``(line, {field: cell})`` for each usable data row (fields found only)."""
        path = self.path
        try:
            handle = path.open(encoding="utf-8-sig", newline="")
        except FileNotFoundError:
            raise PermissionSourceError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise PermissionSourceError(f"{path} is a directory, not a CSV file") from None
        except OSError as exc:
            raise PermissionSourceError(f"{path}: cannot read: {exc.strerror}") from None
        old_limit = csv.field_size_limit(FIELD_LIMIT)
        try:
            with handle:
                reader = csv.reader(handle, delimiter=mapping.delimiter)
                rows = self._records(reader)
                for _line, row in rows:
                    if any(cell.strip() for cell in row):
                        self.header = row
                        break
                else:
                    raise PermissionSourceError(
                        f"{path} is empty: expected a header line naming the columns")
                self._locate(mapping, required, aliases)
                width = len(self.header)
                for line, row in rows:
                    if not any(cell.strip() for cell in row):
                        continue
                    if len(row) > width and not any(c.strip() for c in row[width:]):
                        row = row[:width]
                    if len(row) != width:
                        self.problem(line, f"has {len(row)} fields, the header has {width}; "
                                           "row skipped")
                        continue
                    yield line, {name: row[index] for name, index in self.columns.items()}
        finally:
            csv.field_size_limit(old_limit)
        self.finish()

    def _records(self, reader: Any) -> Iterator[tuple[int, list[str]]]:
        while True:
            try:
                row: list[str] = next(reader)
            except StopIteration:
                return
            except UnicodeDecodeError:
                raise PermissionSourceError(
                    f"{self.path} is not UTF-8 text; export or convert it as UTF-8") from None
            except csv.Error as exc:
                text = str(exc)
                if "field larger than field limit" in text:
                    reason = f"a field is longer than {FIELD_LIMIT} characters"
                elif "NUL" in text:
                    reason = "contains a NUL character"
                else:
                    reason = "is not valid CSV"
                line = reader.line_num
                if not self.header:
                    raise PermissionSourceError(
                        f"{self.path}: the header line {reason}") from None
                self.problem(line, f"{reason}; row skipped")
                continue
            yield reader.line_num, row

    def _locate(self, mapping: PacsMapping | RosterMapping, required: str,
                aliases: Mapping[str, tuple[str, ...]]) -> None:
        normalised = [_norm_column(h) for h in self.header]
        known: set[str] = {a for names in aliases.values() for a in names}
        missing: list[tuple[str, str]] = []
        for name, defaults in aliases.items():
            wanted: str | None = getattr(mapping, name)
            if wanted is None:
                continue
            is_default = wanted == defaults[0]
            candidates = [_norm_column(wanted), *(defaults if is_default else ())]
            known.add(candidates[0])
            index = next((normalised.index(c) for c in candidates if c in normalised), None)
            if index is not None:
                self.columns[name] = index
            elif name == required or not is_default:
                missing.append((name, wanted))
        if missing:
            what = "; ".join(f"no {col!r} column (for {name})" for name, col in missing)
            raise PermissionSourceError(f"{self.path}: {what}; {self._found(normalised, known)}")

    def _found(self, normalised: list[str], known: set[str]) -> str:
        """What the first line holds, for the missing-column error, without a cell value.

        Only cells that are known column names or aliases are shown (never for the roster); a
        first line that is data, not a header, may hold one by chance (a status ``ended``), so
        the other cells are counted, not shown.
        """
        total = len(self.header)
        matched = [h for h, n in zip(self.header, normalised, strict=True) if n in known]
        if not matched:
            return (f"found {total} columns, none of them a known column name "
                    "(is the first line a header?)")
        if self.hide_header:
            names = "a known column name" if len(matched) == 1 else "known column names"
            return (f"found {total} columns, {len(matched)} of them {names} (the roster's "
                    "first line is never shown: without a header it would be a person's data)")
        shown = matched[:40]
        others = total - len(shown)
        text = ", ".join(repr(h.strip()[:40]) for h in shown)
        if others:
            text += f" and {others} other column{'s' if others != 1 else ''}"
        return f"found columns: {text}"


def _split(text: str | None, separators: str) -> list[str]:
    if not text:
        return []
    return [part.strip() for part in re.split(f"[{re.escape(separators)}]", text) if part.strip()]


def _parse_date(text: str, date_format: str | None) -> dt.date | None:
    """Return the date in ``text`` (``None`` when empty or ``never``); ``ValueError`` if bad."""
    value = text.strip()
    if value.casefold() in _NO_DATE:
        return None
    if date_format:
        return dt.datetime.strptime(value, date_format).date()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        pass
    try:
        return dt.datetime.fromisoformat(value).date()
    except ValueError:
        pass
    return dt.datetime.strptime(value, "%Y/%m/%d").date()


# ---------------------------------------------------------------------------------------------
# PACS / VNA export


@dataclass
class _Account:
    service: bool = False
    enabled_rows: int = 0
    last_used: dt.date | None = None


def _check_system(system: str) -> None:
    if not isinstance(system, str) or not system.strip() or re.search(r"[:/\s]", system):
        raise PermissionSourceError(f"PACS system name {system!r}: give a name without ':', "
                                    "'/' or spaces")


def collect_pacs(path: Path, *, system: str = "pacs", mapping: PacsMapping | None = None) -> Facts:
    """Read a PACS/VNA account export (one row per account, or per account-role assignment).

    Produces the resource ``pacs:SYSTEM`` (kind ``pacs``), user principals
    ``pacs:SYSTEM:user/NAME`` (human unless the type column says service; disabled when every
    row of the account has a disabled status; ``last_used`` the latest ``last_login`` date),
    role principals ``pacs:SYSTEM:role/NAME``, ``member-of`` memberships user → role and grants
    to ``pacs:SYSTEM`` (source ``pacs:export``): a row's permissions go to each of its roles, or
    to the user when the row has no role; one grant per principal, the union of its rows.
    Names are kept as the export spells them. An unknown permission word, an unknown status or
    an unreadable date is a Problem with the line (the rest of the row still counts); a row with
    the wrong number of fields or no user is a Problem and skipped.

    Raises :class:`PermissionSourceError` when the file is missing, empty, not UTF-8 or lacks
    the user column, or when ``system`` is empty or holds ``:``, ``/`` or white space.
    """
    _check_system(system)
    mapping = mapping or PacsMapping()
    source = f"pacs:{system}"
    resource = f"pacs:{system}"
    facts = Facts(sources=[source])
    facts.add_resource(Resource(resource, "pacs", None, f"pacs:{system}"))
    values = _table(DEFAULT_PACS_VALUES, mapping.values)
    statuses = _table(DEFAULT_PACS_STATUSES, mapping.statuses)
    types = _table(DEFAULT_PACS_TYPES, mapping.types)

    accounts: dict[str, _Account] = {}
    roles: dict[str, None] = {}
    members: dict[tuple[str, str], None] = {}
    role_actions: dict[str, set[str]] = {}
    user_actions: dict[str, set[str]] = {}
    rows = _Rows(path, source, facts.problems)
    for line, cells in rows.read(mapping, "user", _PACS_ALIASES):
        user = cells["user"].strip()
        if not user:
            rows.problem(line, f"no user name in column {rows.column_name('user')!r}; "
                               "row skipped")
            continue
        account = accounts.setdefault(user, _Account())

        actions: set[str] = set()
        words = _split(cells.get("permissions"), ";|,")
        for position, word in enumerate(words, 1):
            action = values.get(_norm_word(word))
            if action is None:
                rows.problem(line, f"permission {position} of {len(words)} in column "
                                   f"{rows.column_name('permissions')!r} is not in the value "
                                   "table (add it to the mapping's values); ignored")
            elif action != "ignore":
                actions.add(action)

        if rows.state(line, cells, statuses) != "disabled":
            account.enabled_rows += 1

        used = rows.date(line, cells, "last_login", mapping.date_format)
        if used and (account.last_used is None or used > account.last_used):
            account.last_used = used

        if types.get(_norm_word(cells.get("type", ""))) == "service":
            account.service = True

        row_roles = _split(cells.get("role"), ";|")
        for role in row_roles:
            roles.setdefault(role)
            members.setdefault((user, role))
            role_actions.setdefault(role, set()).update(actions)
        if not row_roles and actions:
            user_actions.setdefault(user, set()).update(actions)

    def user_id(name: str) -> str:
        return f"pacs:{system}:user/{name}"

    def role_id(name: str) -> str:
        return f"pacs:{system}:role/{name}"

    for name, account in accounts.items():
        facts.add_principal(Principal(
            user_id(name), "service" if account.service else "user", name, source,
            human=not account.service, disabled=account.enabled_rows == 0,
            last_used=account.last_used.isoformat() if account.last_used else None))
    for name in roles:
        facts.add_principal(Principal(role_id(name), "role", name, source))
    facts.memberships.extend(Membership(user_id(user), role_id(role), "member-of", "pacs:export")
                             for user, role in members)
    facts.grants.extend(Grant(role_id(role), resource, frozenset(actions), "pacs:export")
                        for role, actions in role_actions.items() if actions)
    facts.grants.extend(Grant(user_id(user), resource, frozenset(actions), "pacs:export")
                        for user, actions in user_actions.items())
    return facts


# ---------------------------------------------------------------------------------------------
# workforce roster


def collect_roster(path: Path, masker: Masker, *, mapping: RosterMapping | None = None,
                   today: dt.date | None = None) -> Facts:
    """Read the workforce roster into :class:`~hipaa_audit.permissions.model.Person` entries.

    ``id`` is the roster's own account name; ``accounts`` is that id and the ``accounts``
    column, lower-cased, without repeats. The full name is kept only as ``name_fp``,
    ``masker.fingerprint(name.casefold().strip())`` (``""`` without a name): a keyed fingerprint
    kept so that the person can later be matched with names seen in the logs (the permission
    rules do not read it); no raw name is kept anywhere, Problems included. A person is active
    unless the status says inactive (``terminated``, ``inactive``, ``ended``, ``separated``...)
    or ``end_date`` is before ``today`` (default: the local date), whatever the status says;
    ``ended`` is the end date in ISO form when given. An unknown status is a Problem and counts
    as active; a row without an id, with the wrong number of fields or repeating an earlier id
    is a Problem and skipped.

    Raises :class:`PermissionSourceError` when the file is missing, empty, not UTF-8 or lacks
    the id column.
    """
    mapping = mapping or RosterMapping()
    today = today or dt.date.today()
    facts = Facts(sources=["roster"])
    statuses = _table(DEFAULT_ROSTER_STATUSES, mapping.statuses)
    seen: dict[str, int] = {}
    rows = _Rows(path, "roster", facts.problems, hide_header=True)
    for line, cells in rows.read(mapping, "id", _ROSTER_ALIASES):
        person_id = cells["id"].strip()
        if not person_id:
            rows.problem(line, f"no id in column {rows.column_name('id')!r}; row skipped")
            continue
        key = person_id.casefold()
        if key in seen:
            rows.problem(line, f"repeats the id on line {seen[key]}; row skipped")
            continue
        seen[key] = line

        name = cells.get("name", "").casefold().strip()
        active = rows.state(line, cells, statuses) != "inactive"
        ended = rows.date(line, cells, "end_date", mapping.date_format)
        if ended is not None and ended < today:
            active = False
        accounts = dict.fromkeys([person_id.lower(),
                                  *(a.lower() for a in _split(cells.get("accounts"), ";|,"))])
        facts.people.append(Person(
            id=person_id,
            name_fp=masker.fingerprint(name) if name else "",
            accounts=tuple(accounts),
            roles=tuple(_split(cells.get("role"), ";|")),
            active=active,
            ended=ended.isoformat() if ended else None,
        ))
    return facts
