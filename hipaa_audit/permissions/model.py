"""What the permission collectors observe: principals, memberships, grants and resources.

Every collector (AWS IAM and S3, file systems, PACS/VNA exports, the identity roster) returns
one :class:`Facts`; :mod:`hipaa_audit.permissions.graph` merges them into a networkx access graph.
Collectors do I/O only and never judge; a thing they could not read becomes a :class:`Problem`
(errors are data), which the scan reports as an ``unverifiable`` finding.

Identifiers are plain strings, stable between runs so that two runs can be compared:

- principals: ``aws:user/NAME``, ``aws:group/NAME``, ``aws:role/NAME``, ``aws:account/ID``
  (another account, or ``aws:account/*`` for any authenticated AWS user), ``fs:user/NAME``,
  ``fs:group/NAME``, ``pacs:SYSTEM:user/NAME``, ``pacs:SYSTEM:role/NAME`` and the single
  :data:`ANYONE` (anonymous or world access);
- resources: ``s3://BUCKET`` (``s3://BUCKET/PREFIX`` for a prefix), ``fs:/ABS/PATH``,
  ``pacs:SYSTEM``.

Actions are normalised to :data:`ACTIONS`: ``list`` < ``read`` < ``write`` < ``delete`` <
``admin`` (changing who may access, or the resource's protection). A grant with a condition
keeps it as text in ``conditions``: the analysis shows it, it does not evaluate it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

PrincipalKind = Literal["user", "group", "role", "service", "account", "anyone"]
ResourceKind = Literal["bucket", "prefix", "folder", "pacs"]
EdgeKind = Literal["member-of", "can-assume"]

#: Normalised actions, weakest first.
ACTIONS: tuple[str, ...] = ("list", "read", "write", "delete", "admin")
#: The principal that stands for anyone at all (anonymous, world-readable, ``Principal: *``).
ANYONE = "anyone"


@dataclass(frozen=True, slots=True)
class Principal:
    """Someone or something that can be granted access."""

    id: str
    kind: PrincipalKind
    #: The name as the source system shows it (a user name, a group or role name, an account id).
    name: str
    #: Which collector saw it: ``aws``, ``fs``, ``pacs:SYSTEM``, ``roster``.
    source: str
    #: A human login (``user``) that should match a roster entry; service accounts are ``False``.
    human: bool = False
    #: Disabled or locked in its source system.
    disabled: bool = False
    #: ISO-8601 date of the last use or login the source reports, when it does.
    last_used: str | None = None


@dataclass(frozen=True, slots=True)
class Membership:
    """``member`` gains what ``target`` may do: group membership or role assumption."""

    member: str
    target: str
    kind: EdgeKind
    #: Where the edge comes from (``iam:group-membership``, ``iam:trust-policy``, ``pacs:export``).
    source: str
    conditions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Grant:
    """``principal`` may do ``actions`` on ``resource`` (allow only; denies are applied first)."""

    principal: str
    resource: str
    actions: frozenset[str]
    #: What grants it, as evidence: ``iam:policy/NAME``, ``iam:inline/USER/NAME``,
    #: ``s3:bucket-policy``, ``s3:acl``, ``fs:mode``, ``fs:acl``, ``pacs:export``.
    source: str
    conditions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Resource:
    """Something that may hold PHI."""

    id: str
    kind: ResourceKind
    #: ``True`` when this run found PHI there or the config says so; ``None`` when unknown.
    phi: bool | None = None
    #: The system it belongs to (``aws:ACCOUNT``, ``fs:HOST``, ``pacs:SYSTEM``).
    system: str = ""


@dataclass(frozen=True, slots=True)
class Problem:
    """Something a collector could not read (the scan reports it as ``unverifiable``)."""

    source: str
    asset: str
    message: str


@dataclass(frozen=True, slots=True)
class Person:
    """One roster entry: an active or departed member of the workforce."""

    id: str
    #: Keyed fingerprint of the case-folded full name (never the name): kept so that people can
    #: be matched with names seen elsewhere later; the rules do not read it.
    name_fp: str
    #: Account names this person holds in other systems (lower-cased), the roster's own id first.
    accounts: tuple[str, ...]
    roles: tuple[str, ...]
    active: bool
    #: ISO-8601 end date when the roster gives one.
    ended: str | None = None


@dataclass(slots=True)
class Facts:
    """Everything one or more collectors observed."""

    principals: dict[str, Principal] = field(default_factory=dict)
    memberships: list[Membership] = field(default_factory=list)
    grants: list[Grant] = field(default_factory=list)
    resources: dict[str, Resource] = field(default_factory=dict)
    people: list[Person] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    #: Which sources were read (``aws``, ``fs:/srv/archive``, ``pacs:main``, ``roster``).
    sources: list[str] = field(default_factory=list)
    #: The AWS account ids known to be the audited organisation's own (``aws`` collector).
    own_accounts: list[str] = field(default_factory=list)

    def add_principal(self, principal: Principal) -> None:
        """Keep the first sighting of each principal id."""
        self.principals.setdefault(principal.id, principal)

    def add_resource(self, resource: Resource) -> None:
        """Keep one resource per id; a later ``phi=True`` wins over unknown or ``False``."""
        known = self.resources.get(resource.id)
        if known is None or (resource.phi and not known.phi):
            self.resources[resource.id] = resource

    def merge(self, other: Facts) -> None:
        """Add everything ``other`` observed."""
        for principal in other.principals.values():
            self.add_principal(principal)
        for resource in other.resources.values():
            self.add_resource(resource)
        self.memberships.extend(other.memberships)
        self.grants.extend(other.grants)
        self.people.extend(other.people)
        self.problems.extend(other.problems)
        self.sources.extend(s for s in other.sources if s not in self.sources)
        self.own_accounts.extend(a for a in dict.fromkeys(other.own_accounts)
                                 if a not in self.own_accounts)


def widen(actions: frozenset[str] | set[str]) -> frozenset[str]:
    """Return ``actions`` with the weaker actions each one implies (write implies read and list)."""
    out: set[str] = set(actions)
    for action in actions:
        if action in ACTIONS:
            out.update(ACTIONS[: ACTIONS.index(action) + 1])
    return frozenset(out)


__all__ = ["ACTIONS", "ANYONE", "EdgeKind", "Facts", "Grant", "Membership", "Person",
           "Principal", "PrincipalKind", "Problem", "Resource", "ResourceKind", "widen"]
