"""The access baseline: the roles, what each may reach, and who holds which role.

A baseline is a TOML file the organisation keeps (it is its access authorisation policy,
164.308(a)(4)(ii)(B)); the scan compares the access that exists with it::

    [roles.radiologist]
    description = "Reads studies for reporting"
    allow = [
      { resource = "s3://imaging-archive", actions = ["read"] },
      { resource = "fs:/srv/pacs/studies/*", actions = ["read"] },
      { resource = "pacs:main", actions = ["read", "write"] },
    ]

    [roles.archive-admin]
    allow = [{ resource = "*", actions = ["admin"] }]

    [principals]
    "aws:group/radiologists" = ["radiologist"]          # a group's role: what it may be granted
    "aws:user/dave" = ["archive-admin"]
    "pacs:main:role/Radiologist" = ["radiologist"]
    "aws:group/admins" = { roles = ["archive-admin"], members = ["aws:user/dave"] }

    [phi]
    resources = ["s3://imaging-archive", "fs:/srv/pacs/*", "pacs:*"]

    [trusted]
    accounts = ["111122223333"]

Resource and principal keys are shell-style patterns (``*``, ``?``, ``[...]``). A resource
pattern also covers what lies below it: ``s3://imaging-archive`` covers the prefix
``s3://imaging-archive/incoming``, ``fs:/srv/pacs`` covers ``fs:/srv/pacs/2024``. An allowed
action implies the weaker ones (``write`` allows ``read`` and ``list``; ``admin`` allows all).

A member may join a group (or assume a role) when the group declares it in ``members``, or,
when the group declares no members, when the member's own roles (from this file or from the
identity roster) include every role of the group.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hipaa_audit.permissions.model import ACTIONS, widen


class BaselineError(Exception):
    """The baseline file cannot be used (a clear message naming the file and the key)."""


@dataclass(frozen=True, slots=True)
class Allow:
    """One thing a role may reach."""

    pattern: str
    actions: frozenset[str]


@dataclass(frozen=True, slots=True)
class Role:
    """A role of the baseline."""

    name: str
    allow: tuple[Allow, ...]
    description: str = ""


@dataclass(frozen=True, slots=True)
class Declared:
    """What the baseline says of one principal pattern."""

    pattern: str
    roles: tuple[str, ...]
    #: Patterns of the principals that may be members (``None``: decided by roles).
    members: tuple[str, ...] | None = None


def _is_pattern(text: str) -> bool:
    return any(c in text for c in "*?[")


def _compile(patterns: Iterable[str]) -> re.Pattern[str] | None:
    parts = [fnmatch.translate(p) for p in patterns]
    return re.compile("|".join(parts)) if parts else None


def ancestors(resource: str) -> list[str]:
    """The resources above ``resource``, nearest first (``s3://b/p/q`` → ``s3://b/p``, ``s3://b``)."""
    if resource.startswith("s3://"):
        head, parts = "s3://", resource[5:].split("/")
        return [head + "/".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]
    if resource.startswith("fs:/"):
        parts = resource[3:].rstrip("/").split("/")
        return ["fs:" + ("/".join(parts[:i]) or "/") for i in range(len(parts) - 1, 0, -1)]
    return []


def covers(pattern: str, resource: str) -> bool:
    """True when the resource pattern matches ``resource`` or one of the resources above it."""
    return any(fnmatch.fnmatchcase(r, pattern) for r in (resource, *ancestors(resource)))


@dataclass(slots=True)
class Baseline:
    """The loaded baseline, with cached lookups."""

    roles: dict[str, Role] = field(default_factory=dict)
    declared: list[Declared] = field(default_factory=list)
    phi_patterns: tuple[str, ...] = ()
    trusted_accounts: frozenset[str] = frozenset()
    source: str = ""
    _phi: re.Pattern[str] | None = None
    _exact: dict[str, list[Declared]] = field(default_factory=dict)
    _patterns: list[Declared] = field(default_factory=list)
    _role_exact: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    _role_patterns: dict[str, list[Allow]] = field(default_factory=dict)
    _roles_cache: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _allowed_cache: dict[tuple[tuple[str, ...], str], frozenset[str]] = field(
        default_factory=dict)

    def __post_init__(self) -> None:
        self._phi = _compile(self.phi_patterns)
        self._exact, self._patterns = {}, []
        for d in self.declared:
            if _is_pattern(d.pattern):
                self._patterns.append(d)
            else:
                self._exact.setdefault(d.pattern, []).append(d)
        self._role_exact, self._role_patterns = {}, {}
        for name, role in self.roles.items():
            exact = self._role_exact.setdefault(name, {})
            for allow in role.allow:
                if _is_pattern(allow.pattern):
                    self._role_patterns.setdefault(name, []).append(allow)
                else:
                    exact.setdefault(allow.pattern, set()).update(allow.actions)

    def _matching(self, principal: str) -> list[Declared]:
        return [*self._exact.get(principal, ()),
                *(d for d in self._patterns if fnmatch.fnmatchcase(principal, d.pattern))]

    def is_declared(self, principal: str) -> bool:
        """True when the baseline names ``principal`` (exactly or by a pattern)."""
        return bool(self._matching(principal))

    def roles_of(self, principal: str) -> tuple[str, ...]:
        """The roles the baseline gives ``principal`` (every matching entry), sorted."""
        cached = self._roles_cache.get(principal)
        if cached is None:
            found: set[str] = set()
            for d in self._matching(principal):
                found.update(d.roles)
            cached = tuple(sorted(found))
            self._roles_cache[principal] = cached
        return cached

    def members_of(self, principal: str) -> tuple[str, ...] | None:
        """The member patterns the baseline declares for a group or role, if any."""
        out: list[str] | None = None
        for d in self._matching(principal):
            if d.members is not None:
                out = [*(out or []), *d.members]
        return tuple(out) if out is not None else None

    def allowed(self, roles: tuple[str, ...], resource: str) -> frozenset[str]:
        """The actions ``roles`` together allow on ``resource`` (weaker actions implied)."""
        key = (roles, resource)
        cached = self._allowed_cache.get(key)
        if cached is None:
            acts: set[str] = set()
            chain = (resource, *ancestors(resource))
            for name in roles:
                exact = self._role_exact.get(name, {})
                for r in chain:
                    acts.update(exact.get(r, ()))
                for allow in self._role_patterns.get(name, ()):
                    if covers(allow.pattern, resource):
                        acts.update(allow.actions)
            cached = widen(acts)
            self._allowed_cache[key] = cached
        return cached

    def holds_phi(self, resource: str) -> bool:
        """True when the baseline's ``[phi]`` patterns cover ``resource``."""
        if self._phi is None:
            return False
        return any(covers(p, resource) for p in self.phi_patterns)

    def describe(self) -> dict[str, object]:
        """A summary for the run record."""
        return {"baseline": self.source, "roles": len(self.roles),
                "principals": len(self.declared), "phi_patterns": len(self.phi_patterns)}


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BaselineError(f"{where}: expected a list of strings")
    return tuple(value)


def _actions(value: Any, where: str) -> frozenset[str]:
    acts = _strings(value, where)
    bad = [a for a in acts if a not in ACTIONS and a != "*"]
    if bad:
        raise BaselineError(f"{where}: unknown action {bad[0]!r} (use {', '.join(ACTIONS)} or *)")
    return frozenset(ACTIONS) if "*" in acts else frozenset(acts)


def parse_baseline(data: Mapping[str, Any], source: str = "baseline") -> Baseline:
    """Build a :class:`Baseline` from parsed TOML; raise :class:`BaselineError` on a bad key."""
    unknown = sorted(set(data) - {"roles", "principals", "phi", "trusted"})
    if unknown:
        raise BaselineError(f"{source}: unknown section [{unknown[0]}] (known: roles, principals, "
                            "phi, trusted)")
    roles: dict[str, Role] = {}
    for name, body in dict(data.get("roles", {})).items():
        where = f"{source}: roles.{name}"
        if not isinstance(body, dict):
            raise BaselineError(f"{where}: expected a table")
        extra = sorted(set(body) - {"allow", "description"})
        if extra:
            raise BaselineError(f"{where}: unknown key {extra[0]!r}")
        allows: list[Allow] = []
        for i, item in enumerate(body.get("allow", []), 1):
            if not isinstance(item, dict) or not isinstance(item.get("resource"), str):
                raise BaselineError(f"{where}.allow[{i}]: expected {{resource = ..., actions = "
                                    "[...]}}")
            allows.append(Allow(item["resource"],
                                _actions(item.get("actions", ["read"]), f"{where}.allow[{i}]")))
        roles[name] = Role(name, tuple(allows), str(body.get("description", "")))
    declared: list[Declared] = []
    for pattern, body in dict(data.get("principals", {})).items():
        where = f"{source}: principals.{pattern!r}"
        members: tuple[str, ...] | None = None
        if isinstance(body, dict):
            extra = sorted(set(body) - {"roles", "members"})
            if extra:
                raise BaselineError(f"{where}: unknown key {extra[0]!r}")
            names = _strings(body.get("roles", []), f"{where}.roles") if body.get("roles") else ()
            if "members" in body:
                members = _strings(body["members"], f"{where}.members") if body["members"] else ()
        else:
            names = _strings(body, where) if body else ()
        missing = [n for n in names if n not in roles]
        if missing:
            raise BaselineError(f"{where}: no role {missing[0]!r} in [roles]")
        declared.append(Declared(pattern, names, members))
    phi = data.get("phi", {})
    trusted = data.get("trusted", {})
    if not isinstance(phi, dict) or not isinstance(trusted, dict):
        raise BaselineError(f"{source}: [phi] and [trusted] must be tables")
    accounts = _strings(trusted.get("accounts", []), f"{source}: trusted.accounts") \
        if trusted.get("accounts") else ()
    bad = [a for a in accounts if not (a.isdigit() and len(a) == 12)]
    if bad:
        raise BaselineError(f"{source}: trusted.accounts: not a 12-digit AWS account id: {bad[0]}")
    phi_patterns = _strings(phi.get("resources", []), f"{source}: phi.resources") \
        if phi.get("resources") else ()
    return Baseline(roles, declared, phi_patterns, frozenset(accounts), source)


def load_baseline(path: Path) -> Baseline:
    """Read and validate the baseline file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BaselineError(f"{path}: no such baseline file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"{path}: cannot read the baseline ({type(exc).__name__})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BaselineError(f"{path}: not valid TOML: {exc}") from None
    return parse_baseline(data, str(path))



__all__ = ["Allow", "Baseline", "BaselineError", "Declared", "Role", "ancestors", "covers",
           "load_baseline", "parse_baseline"]
