"""Judge the access graph against the baseline, the roster and the previous run (pure rules).

Roles. A principal's own roles are the baseline's (``[principals]``) plus, for a human account,
the roles the identity roster gives the active person who holds it. A membership edge (member
joins a group, or may assume a role) is *approved* when the group declares the member in
``members``, or declares no members and the member's own roles include every role of the group.
A principal's *effective* roles add the roles of every group or role it reaches through approved
edges.

The checks (``checks/permissions.toml``):

- ``perm-grant-outside-baseline`` / ``perm-beyond-role``: each grant against its holder's
  effective roles: a resource none of them allows, or more actions than they allow;
- ``perm-unexplained-path``: a user, service or trusted account reaching a PHI resource through
  a membership or role assumption that is not approved, and that its effective roles do not
  explain (one finding per principal and path, listing the resources it opens);
- ``perm-anyone-access`` / ``perm-cross-account``: anyone, any AWS user, or an account that is
  neither scanned nor trusted, reaching a resource (directly or by assuming a role) beyond what
  the baseline grants it; one step less severe when the grant carries a condition;
- ``perm-account-not-in-roster``: enabled human accounts of departed people or of no one;
- ``perm-grant-added`` / ``perm-grant-removed``: the snapshot compared with the previous run's;
- ``perm-unverifiable``: what a collector could not read.
"""

from __future__ import annotations

import fnmatch
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from hipaa_audit.catalog import Catalog
from hipaa_audit.evidence import (
    AccountUse,
    PermissionChange,
    PermissionGrant,
    PermissionPath,
    RiskyPath,
)
from hipaa_audit.model import AssetResult, Finding, Location, Severity, Status
from hipaa_audit.permissions.baseline import Baseline
from hipaa_audit.permissions.graph import AccessGraph, Reach, action_text, grant_key
from hipaa_audit.permissions.model import ANYONE, Grant, Person

OUTSIDE = "perm-grant-outside-baseline"
BEYOND = "perm-beyond-role"
PATH = "perm-unexplained-path"
ANYONE_CHECK = "perm-anyone-access"
CROSS = "perm-cross-account"
ROSTER = "perm-account-not-in-roster"
ADDED = "perm-grant-added"
REMOVED = "perm-grant-removed"
UNVERIFIABLE = "perm-unverifiable"
#: Paths shown per finding.
SHOWN = 5


@dataclass(slots=True)
class Context:
    """What the rules need besides the graph."""

    baseline: Baseline
    #: The roster's people, or ``None`` when no roster was given (no roster check then).
    people: list[Person] | None = None
    #: The previous run's snapshot, or ``None`` (no change check then).
    previous: dict[str, list[str]] | None = None
    #: AWS accounts that were scanned (their root is not "another account").
    own_accounts: frozenset[str] = frozenset()
    _roles: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _effective: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _roster: dict[str, Person] | None = None


def _account_of(principal: str) -> str | None:
    return principal.split("/", 1)[1] if principal.startswith("aws:account/") else None


def is_external(principal: str, ctx: Context) -> bool:
    """True for anyone, any AWS user, and accounts neither scanned nor trusted."""
    if principal == ANYONE:
        return True
    account = _account_of(principal)
    if account is None:
        return False
    return account not in ctx.own_accounts and account not in ctx.baseline.trusted_accounts


def _roster_index(ctx: Context) -> dict[str, Person]:
    if ctx._roster is None:
        index: dict[str, Person] = {}
        for person in ctx.people or ():
            for account in person.accounts:
                # an active holder wins over a departed one with the same account name
                if account not in index or (person.active and not index[account].active):
                    index[account] = person
        ctx._roster = index
    return ctx._roster


def own_roles(g: AccessGraph, ctx: Context, principal: str) -> tuple[str, ...]:
    """The baseline's roles of ``principal`` plus its active roster person's roles."""
    cached = ctx._roles.get(principal)
    if cached is None:
        found = set(ctx.baseline.roles_of(principal))
        info = g.principals.get(principal)
        if ctx.people is not None and info is not None and info.kind == "user":
            person = _roster_index(ctx).get(info.name.lower())
            if person is not None and person.active:
                known = {r.lower(): r for r in ctx.baseline.roles}
                found.update(known[r.lower()] for r in person.roles if r.lower() in known)
        cached = tuple(sorted(found))
        ctx._roles[principal] = cached
    return cached


def approved(g: AccessGraph, ctx: Context, member: str, target: str) -> bool:
    """True when the baseline explains ``member`` joining (or assuming) ``target``."""
    declared = ctx.baseline.members_of(target)
    if declared is not None:
        return any(fnmatch.fnmatchcase(member, p) for p in declared)
    need = own_roles(g, ctx, target)
    return bool(need) and set(need) <= set(own_roles(g, ctx, member))


def effective_roles(g: AccessGraph, ctx: Context, principal: str) -> tuple[str, ...]:
    """Own roles plus those of every group or role reached through approved edges."""
    cached = ctx._effective.get(principal)
    if cached is None:
        found = set(own_roles(g, ctx, principal))
        seen = {principal}
        stack = [principal]
        while stack:
            node = stack.pop()
            for target, _kind in g.joins.get(node, ()):
                if target not in seen and approved(g, ctx, node, target):
                    seen.add(target)
                    found.update(own_roles(g, ctx, target))
                    stack.append(target)
        cached = tuple(sorted(found))
        ctx._effective[principal] = cached
    return cached


def _path_text(g: AccessGraph, path: tuple[str, ...], grant: Grant) -> str:
    steps = [path[0]]
    for a, b in itertools.pairwise(path):
        steps.append(f"-{g.edge_kind(a, b)}-> {b}")
    cond = f" (if {'; '.join(grant.conditions)})" if grant.conditions else ""
    steps.append(f"-{grant.source} [{action_text(grant.actions)}]{cond}-> {grant.resource}")
    return " ".join(steps)


class _Out:
    """Findings per asset, and coverage: one outcome per check and asset."""

    def __init__(self) -> None:
        self.results: dict[str, AssetResult] = {}

    def result(self, asset: str) -> AssetResult:
        found = self.results.get(asset)
        if found is None:
            found = self.results[asset] = AssetResult(asset)
        return found

    def add(self, finding: Finding) -> None:
        result = self.result(finding.asset)
        result.findings.append(finding)
        result.coverage.record(finding.check_id,
                               "fail" if finding.status is Status.FAIL else "error")

    def passed(self, asset: str, check_id: str) -> None:
        self.result(asset).coverage.record(check_id, "pass")


def _severity(base: Severity, phi: bool, conditional: bool) -> Severity:
    sev = base if phi else base.lowered()
    return sev.lowered() if conditional else sev


def _grant_checks(g: AccessGraph, ctx: Context, catalog: Catalog, out: _Out) -> None:
    members: dict[str, list[str]] = {}
    for member, targets in g.joins.items():
        for target, _kind in targets:
            members.setdefault(target, []).append(member)
    for grant in g.facts.grants:
        p = grant.principal
        if is_external(p, ctx):
            continue
        roles = effective_roles(g, ctx, p)
        allowed = ctx.baseline.allowed(roles, grant.resource) if roles else frozenset()
        phi = grant.resource in g.phi
        if grant.actions <= allowed:
            out.passed(grant.resource, OUTSIDE)
            continue
        who = sorted(members.get(p, []))
        inherited = (f" {len(who)} member(s) inherit it: {', '.join(who[:SHOWN])}"
                     f"{' …' if len(who) > SHOWN else ''}." if who else "")
        loc = Location.of_evidence(PermissionGrant(
            principal=p, resource=grant.resource, actions=action_text(grant.actions),
            grant=grant.source, conditions="; ".join(grant.conditions) or None,
            roles=", ".join(roles) or "none"))
        where = "a resource holding PHI" if phi else "the resource"
        if not allowed:
            why = ("the baseline gives it no role" if not roles else
                   f"its roles ({', '.join(roles)}) do not allow this resource")
            out.add(catalog[OUTSIDE].finding(
                grant.resource,
                f"{p} may {action_text(grant.actions)} {where} through {grant.source}, but "
                f"{why}.{inherited}",
                severity=_severity(catalog[OUTSIDE].severity, phi, False), locations=(loc,),
                key=grant_key(grant)))
        else:
            extra = action_text(grant.actions - allowed)
            out.add(catalog[BEYOND].finding(
                grant.resource,
                f"{p} may {action_text(grant.actions)} {where} through {grant.source}; its roles "
                f"({', '.join(roles)}) need only {action_text(allowed)} (beyond: {extra})."
                f"{inherited}",
                severity=catalog[BEYOND].severity if phi else catalog[BEYOND].severity.lowered(),
                locations=(loc,), key=grant_key(grant)))


def _path_checks(g: AccessGraph, ctx: Context, catalog: Catalog, out: _Out) -> None:
    """One finding per principal and unapproved path, listing the PHI resources it opens."""
    check = catalog[PATH]
    for leaf in g.leaves():
        info = g.principals[leaf]
        if info.kind not in ("user", "service", "account") or is_external(leaf, ctx):
            continue
        closure = g.closure(leaf)
        if len(closure) == 1:
            continue
        out.passed(leaf, PATH)
        roles: tuple[str, ...] | None = None
        found: dict[tuple[str, ...], list[Reach]] = {}
        for node, path in closure.items():
            if node == leaf or not g.grants_of.get(node):
                continue
            if all(approved(g, ctx, a, b) for a, b in itertools.pairwise(path)):
                continue
            if roles is None:
                roles = effective_roles(g, ctx, leaf)
            for grant in g.grants_of[node]:
                if grant.resource not in g.phi:
                    continue
                allowed = ctx.baseline.allowed(roles, grant.resource) if roles else frozenset()
                if not grant.actions <= allowed:
                    found.setdefault(path, []).append(
                        Reach(leaf, grant.resource, grant.actions, path, grant))
        for path, reaches in sorted(found.items()):
            reaches.sort(key=lambda r: r.resource)
            resources = sorted({r.resource for r in reaches})
            acts = frozenset().union(*(r.actions for r in reaches))
            locs = tuple(Location.of_evidence(PermissionPath(
                principal=leaf, resource=r.resource, path=_path_text(g, r.path, r.grant),
                actions=action_text(r.actions)))
                         for r in reaches[:SHOWN])
            listed = ", ".join(resources[:SHOWN]) + (" …" if len(resources) > SHOWN else "")
            out.add(check.finding(
                leaf,
                f"{leaf} can {action_text(acts)} {len(resources)} PHI resource(s) ({listed}) "
                f"through {' -> '.join(path[1:])}, a path the baseline does not explain (its "
                f"roles: {', '.join(roles or ()) or 'none'}).",
                locations=locs, key=" ".join(path)))


def _exposure_checks(g: AccessGraph, ctx: Context, catalog: Catalog, out: _Out) -> None:
    externals = [p for p in g.principals if is_external(p, ctx)]
    for p in sorted(externals):
        roles = ctx.baseline.roles_of(p)
        found: dict[str, list[Reach]] = {}
        for reach in g.reach(p):
            allowed = ctx.baseline.allowed(roles, reach.resource) if roles else frozenset()
            if reach.actions <= allowed:
                continue
            found.setdefault(reach.resource, []).append(reach)
        cid = ANYONE_CHECK if p == ANYONE else CROSS
        check = catalog[cid]
        for resource, reaches in sorted(found.items()):
            reaches.sort(key=lambda r: (bool(r.grant.conditions), len(r.path)))
            phi = resource in g.phi
            conditional = all(r.grant.conditions for r in reaches)
            acts = frozenset().union(*(r.actions for r in reaches))
            locs = tuple(Location.of_evidence(PermissionPath(
                principal=p, resource=resource, path=_path_text(g, r.path, r.grant),
                actions=action_text(r.actions)))
                         for r in reaches[:SHOWN])
            who = {ANYONE: "Anyone", "aws:account/*": "Any authenticated AWS user"}.get(
                p, f"The account {p.split('/', 1)[-1]}")
            via = reaches[0].grant.source
            note = (f" only under a condition ({'; '.join(reaches[0].grant.conditions)})"
                    if conditional else "")
            out.add(check.finding(
                resource,
                f"{who} can {action_text(acts)} {'this PHI resource' if phi else 'this resource'}"
                f"{note} (through {via}).",
                severity=_severity(check.severity, phi, conditional), locations=locs,
                key=f"{p}|{resource}"))
    for rid in g.resources:
        out.passed(rid, ANYONE_CHECK)


def _roster_checks(g: AccessGraph, ctx: Context, catalog: Catalog, out: _Out) -> None:
    check = catalog[ROSTER]
    index = _roster_index(ctx)
    for pid, info in sorted(g.principals.items()):
        if info.kind != "user" or not info.human or info.source == "graph":
            continue
        if info.disabled:
            out.passed(pid, ROSTER)
            continue
        person = index.get(info.name.lower())
        loc = Location.of_evidence(AccountUse(principal=pid, last_used=info.last_used))
        if person is None:
            out.add(check.finding(
                pid, f"The enabled account {info.name} ({info.source}) matches no one in the "
                     "identity roster.",
                severity=check.severity.lowered(), locations=(loc,), key=pid))
        elif not person.active:
            ended = f" (ended {person.ended})" if person.ended else ""
            out.add(check.finding(
                pid, f"The enabled account {info.name} ({info.source}) belongs to roster entry "
                     f"{person.id}, who has left{ended}.",
                locations=(loc,), key=pid))
        else:
            out.passed(pid, ROSTER)


_GRANT_KEY = re.compile(r"^(?P<principal>.+?) -> (?P<resource>.+) \[(?:none|[a-z+]+)\] via ")


def _resource_of(key: str) -> tuple[str, str]:
    """(asset, principal) of a snapshot line: a grant's resource, a membership's target."""
    match = _GRANT_KEY.match(key)
    if match:
        return match["resource"], match["principal"]
    for kind in (" member-of ", " can-assume "):
        if kind in key:
            member, target = key.split(kind, 1)
            return target, member
    return key, ""


#: Which grant and membership sources each collector's problems make unreliable.
_SOURCE_PREFIXES = {"aws": ("iam:", "s3:", "aws:"), "fs": ("fs:",), "pacs": ("pacs:",)}


def _unreliable(g: AccessGraph) -> tuple[str, ...]:
    """Source prefixes of grants a partly failed collector may have missed this run."""
    out: list[str] = []
    for problem in g.facts.problems:
        out.extend(_SOURCE_PREFIXES.get(problem.source.split(":", 1)[0], ()))
    return tuple(out)


def _via(key: str) -> str:
    """The source of a snapshot line (``iam:policy/X``), or the membership's member kind."""
    if " via " in key:
        return key.rsplit(" via ", 1)[1]
    return key.split(":", 1)[0] + ":"


def _change_checks(g: AccessGraph, ctx: Context, catalog: Catalog, out: _Out) -> None:
    if ctx.previous is None:
        return
    now = g.snapshot()
    unreliable = _unreliable(g)
    for kind in ("grants", "memberships"):
        before, after = set(ctx.previous.get(kind, [])), set(now[kind])
        for key in sorted(after - before):
            asset, principal = _resource_of(key)
            check = catalog[ADDED]
            sev = Severity.HIGH if asset in g.phi and kind == "grants" else check.severity
            out.add(check.finding(asset, f"Added since the previous run: {key}.", severity=sev,
                                  locations=(Location.of_evidence(
                                      PermissionChange(principal=principal, change=key)),),
                                  key=f"+{key}"))
        for key in sorted(before - after):
            asset, principal = _resource_of(key)
            if unreliable and _via(key).startswith(unreliable):
                continue  # not read in full this run: absent is not removed
            out.add(catalog[REMOVED].finding(
                asset, f"Removed since the previous run: {key}.",
                locations=(Location.of_evidence(
                    PermissionChange(principal=principal, change=key)),), key=f"-{key}"))
        out.passed("permissions", ADDED)


def judge(g: AccessGraph, ctx: Context, catalog: Catalog) -> list[AssetResult]:
    """Every finding of the graph, grouped per asset (resource or principal)."""
    out = _Out()
    for problem in g.facts.problems:
        out.add(catalog[UNVERIFIABLE].finding(
            problem.asset, f"Not read ({problem.source}): {problem.message}.",
            status=Status.ERROR, key=problem.message))
    _grant_checks(g, ctx, catalog, out)
    _path_checks(g, ctx, catalog, out)
    _exposure_checks(g, ctx, catalog, out)
    if ctx.people is not None:
        _roster_checks(g, ctx, catalog, out)
    _change_checks(g, ctx, catalog, out)
    return list(out.results.values())


def riskiest(results: Iterable[AssetResult], limit: int = 8) -> list[RiskyPath]:
    """The most severe access paths found, for the report's picture.

    One per principal and resource, the longest paths first within a severity; roster and
    change findings have no path and are left out.
    """
    rows: list[tuple[int, int, str, str, RiskyPath]] = []
    for result in results:
        for f in result.findings:
            if f.status is not Status.FAIL or f.check_id in (ROSTER, ADDED, REMOVED):
                continue
            for loc in f.locations[:1]:
                principal, resource = loc.text("principal"), loc.text("resource") or f.asset
                if not principal:
                    continue
                path = loc.text("path") or (f"{principal} -{loc.text('grant') or 'grant'} "
                                            f"[{loc.text('actions')}]-> {resource}")
                rows.append((-f.severity.rank, -str(path).count("->"), f.check_id, str(path),
                             {"severity": f.severity.value, "check": f.check_id,
                              "principal": str(principal), "resource": str(resource),
                              "path": str(path)}))
    rows.sort(key=lambda r: r[:4])
    out: list[RiskyPath] = []
    seen: set[tuple[str, str]] = set()
    for row in rows:
        key = (row[4]["principal"], row[4]["resource"])
        if key not in seen:
            seen.add(key)
            out.append(row[4])
        if len(out) >= limit:
            break
    return out


__all__ = ["Context", "approved", "effective_roles", "is_external", "judge", "own_roles",
           "riskiest"]
