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
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hipaa_audit.config import parse_toml
from hipaa_audit.errors import HipaaAuditError
from hipaa_audit.permissions.model import ACTIONS, widen


class BaselineError(HipaaAuditError):
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
    """True when the resource pattern matches ``resource`` or one of the resources above it.

    ``P/*`` also covers ``P`` itself: "the folder and everything in it".
    """
    if pattern.endswith("/*") and resource == pattern[:-2]:
        return True
    return any(fnmatch.fnmatchcase(r, pattern) for r in (resource, *ancestors(resource)))


@dataclass(slots=True)
class Baseline:
    """The loaded baseline, with cached lookups."""

    roles: dict[str, Role] = field(default_factory=dict)
    declared: list[Declared] = field(default_factory=list)
    phi_patterns: tuple[str, ...] = ()
    trusted_accounts: frozenset[str] = frozenset()
    source: str = ""
    _exact: dict[str, list[Declared]] = field(default_factory=dict)
    _patterns: list[Declared] = field(default_factory=list)
    _role_exact: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    _role_patterns: dict[str, list[Allow]] = field(default_factory=dict)
    _roles_cache: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _allowed_cache: dict[tuple[tuple[str, ...], str], frozenset[str]] = field(
        default_factory=dict)

    def __post_init__(self) -> None:
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
        return any(covers(p, resource) for p in self.phi_patterns)

    def describe(self) -> dict[str, object]:
        """A summary for the run record."""
        return {"baseline": self.source, "roles": len(self.roles),
                "principals": len(self.declared), "phi_patterns": len(self.phi_patterns)}


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str) and value:
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BaselineError(f"{where}: expected a list of strings")
    return tuple(value)


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BaselineError(f"{where}: expected a table")
    return value


def _keys(body: dict[str, Any], known: set[str], where: str) -> None:
    extra = sorted(set(body) - known)
    if extra:
        raise BaselineError(f"{where}: unknown key {extra[0]!r} "
                            f"(known: {', '.join(sorted(known))})")


def _actions(value: Any, where: str) -> frozenset[str]:
    acts = _strings(value, where)
    if not acts:
        raise BaselineError(f"{where}: no actions (use {', '.join(ACTIONS)} or *)")
    bad = [a for a in acts if a not in ACTIONS and a != "*"]
    if bad:
        raise BaselineError(f"{where}: unknown action {bad[0]!r} (use {', '.join(ACTIONS)} or *)")
    return frozenset(ACTIONS) if "*" in acts else frozenset(acts)


def _role(name: str, body: Any, where: str) -> Role:
    body = _table(body, where)
    _keys(body, {"allow", "description"}, where)
    items = body.get("allow", [])
    if not isinstance(items, list):
        raise BaselineError(f"{where}.allow: expected a list of "
                            "{resource = ..., actions = [...]}")
    allows: list[Allow] = []
    for i, item in enumerate(items, 1):
        at = f"{where}.allow[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("resource"), str) \
                or not item["resource"]:
            raise BaselineError(f"{at}: expected {{resource = ..., actions = [...]}}")
        _keys(item, {"resource", "actions"}, at)
        allows.append(Allow(item["resource"], _actions(item.get("actions", ["read"]), at)))
    description = body.get("description", "")
    if not isinstance(description, str):
        raise BaselineError(f"{where}.description: expected a string")
    return Role(name, tuple(allows), description)


def _declared(pattern: str, body: Any, roles: dict[str, Role], where: str) -> Declared:
    members: tuple[str, ...] | None = None
    if isinstance(body, dict):
        _keys(body, {"roles", "members"}, where)
        names = _strings(body.get("roles", []), f"{where}.roles")
        if "members" in body:
            members = _strings(body["members"], f"{where}.members")
    else:
        names = _strings(body, where)
    missing = [n for n in names if n not in roles]
    if missing:
        raise BaselineError(f"{where}: no role {missing[0]!r} in [roles]")
    return Declared(pattern, names, members)


def parse_baseline(data: Mapping[str, Any], source: str = "baseline") -> Baseline:
    """Build a :class:`Baseline` from parsed TOML; raise :class:`BaselineError` on a bad key."""
    _keys(dict(data), {"roles", "principals", "phi", "trusted"}, source)
    roles = {name: _role(name, body, f"{source}: roles.{name}")
             for name, body in _table(data.get("roles", {}), f"{source}: [roles]").items()}
    declared = [_declared(pattern, body, roles, f"{source}: principals.{pattern!r}")
                for pattern, body in
                _table(data.get("principals", {}), f"{source}: [principals]").items()]
    phi = _table(data.get("phi", {}), f"{source}: [phi]")
    trusted = _table(data.get("trusted", {}), f"{source}: [trusted]")
    _keys(phi, {"resources"}, f"{source}: [phi]")
    _keys(trusted, {"accounts"}, f"{source}: [trusted]")
    accounts = _strings(trusted.get("accounts", []), f"{source}: trusted.accounts")
    bad = [a for a in accounts if not (a.isdigit() and len(a) == 12)]
    if bad:
        raise BaselineError(f"{source}: trusted.accounts: not a 12-digit AWS account id: {bad[0]}")
    phi_patterns = _strings(phi.get("resources", []), f"{source}: phi.resources")
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
        data = parse_toml(text)
    except tomllib.TOMLDecodeError as exc:
        raise BaselineError(f"{path}: not valid TOML: {exc}") from None
    return parse_baseline(data, str(path))



__all__ = ["Allow", "Baseline", "BaselineError", "Declared", "Role", "ancestors", "covers",
           "load_baseline", "parse_baseline"]
