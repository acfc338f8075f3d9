"""The access graph: principals, memberships, grants and resources in one networkx graph.

Nodes are principal and resource ids (see :mod:`hipaa_audit.permissions.model`) with a ``node``
attribute (``principal`` or ``resource``) and their properties. Edges go from a member to the
group or role it joins (``edge = "member-of"`` or ``"can-assume"``) and from a principal to a
resource it is granted (``edge = "grant"``, with the actions, the source and the conditions).
The graph is a :class:`networkx.MultiDiGraph`: two sources may grant the same pair.

:meth:`AccessGraph.reach` walks from a principal through its memberships (breadth first, so the
path kept is a shortest one) to every grant it inherits: the *path* is the evidence of how a
principal reaches a resource. The graph is written as GraphML or node-link JSON for other tools,
and reduced to a :meth:`AccessGraph.snapshot` that the next run compares with.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx

from hipaa_audit.outfiles import open_binary_output, write_text
from hipaa_audit.permissions.baseline import ancestors
from hipaa_audit.permissions.model import ACTIONS, ANYONE, Facts, Grant, Principal, Resource

#: Principal kinds that act on their own (the start of a path), as opposed to groups and roles.
LEAF_KINDS = frozenset({"user", "service", "account", "anyone"})


@dataclass(frozen=True, slots=True)
class Reach:
    """``principal`` may do ``actions`` on ``resource`` through ``path`` and ``grant``."""

    principal: str
    resource: str
    actions: frozenset[str]
    #: Principal ids from ``principal`` to the one holding the grant (``(principal,)`` if direct).
    path: tuple[str, ...]
    grant: Grant


def action_text(actions: frozenset[str] | set[str]) -> str:
    """The actions in their fixed order, joined by ``+`` (``read+write``)."""
    return "+".join(a for a in ACTIONS if a in actions) or "none"


def grant_key(grant: Grant) -> str:
    """A stable text naming one grant (compared between runs)."""
    cond = f" if {'; '.join(grant.conditions)}" if grant.conditions else ""
    return (f"{grant.principal} -> {grant.resource} [{action_text(grant.actions)}] "
            f"via {grant.source}{cond}")


class AccessGraph:
    """The merged facts of every collector as a graph, with the lookups the rules need."""

    def __init__(self, facts: Facts, phi: Callable[[str], bool] | None = None) -> None:
        """Build the graph; ``phi(resource)`` adds resources known to hold PHI from elsewhere."""
        self.facts = facts
        self._snapshot: dict[str, list[str]] | None = None
        self._closures: dict[str, dict[str, tuple[str, ...]]] = {}
        self.graph: nx.MultiDiGraph[str] = nx.MultiDiGraph()
        self.principals: dict[str, Principal] = dict(facts.principals)
        self.resources: dict[str, Resource] = dict(facts.resources)
        self.grants_of: dict[str, list[Grant]] = {}
        self.joins: dict[str, list[tuple[str, str]]] = {}
        for grant in facts.grants:
            self._principal(grant.principal)
            if grant.resource not in self.resources:
                kind = "prefix" if grant.resource.startswith("s3://") and \
                    "/" in grant.resource[5:] else "folder"
                self.resources[grant.resource] = Resource(grant.resource, kind)  # type: ignore[arg-type]
            self.grants_of.setdefault(grant.principal, []).append(grant)
        for m in facts.memberships:
            self._principal(m.member)
            self._principal(m.target)
            self.joins.setdefault(m.member, []).append((m.target, m.kind))
        marked = {r for r, res in self.resources.items() if res.phi}
        extra = phi or (lambda _r: False)
        self.phi: set[str] = {r for r in self.resources
                              if r in marked or extra(r) or any(a in marked for a in ancestors(r))}
        g = self.graph
        for pid, p in self.principals.items():
            g.add_node(pid, node="principal", kind=p.kind, name=p.name, source=p.source,
                       human=p.human, disabled=p.disabled)
        for rid, r in self.resources.items():
            g.add_node(rid, node="resource", kind=r.kind, system=r.system, phi=rid in self.phi)
        for m in facts.memberships:
            g.add_edge(m.member, m.target, edge=m.kind, source=m.source,
                       conditions="; ".join(m.conditions))
        for grant in facts.grants:
            g.add_edge(grant.principal, grant.resource, edge="grant",
                       actions=action_text(grant.actions), source=grant.source,
                       conditions="; ".join(grant.conditions))

    def _principal(self, pid: str) -> None:
        if pid in self.principals:
            return
        if pid == ANYONE:
            self.principals[pid] = Principal(pid, "anyone", "anyone", "graph")
            return
        kind = pid.rsplit(":", 1)[-1].split("/", 1)[0]
        known = {"user", "group", "role", "service", "account"}
        self.principals[pid] = Principal(pid, kind if kind in known else "user",  # type: ignore[arg-type]
                                         pid.rsplit("/", 1)[-1], "graph")

    def leaves(self) -> list[str]:
        """Principals that act on their own: users, services, accounts and anyone."""
        return sorted(p for p, info in self.principals.items() if info.kind in LEAF_KINDS)

    def closure(self, principal: str) -> dict[str, tuple[str, ...]]:
        """Every principal ``principal`` acts as (itself included), with a shortest path.

        Computed once per principal (the rules and the summary both walk it); do not modify.
        """
        known = self._closures.get(principal)
        if known is not None:
            return known
        paths: dict[str, tuple[str, ...]] = {principal: (principal,)}
        queue = deque([principal])
        while queue:
            node = queue.popleft()
            for target, _kind in self.joins.get(node, ()):
                if target not in paths:
                    paths[target] = (*paths[node], target)
                    queue.append(target)
        self._closures[principal] = paths
        return paths

    def reach(self, principal: str) -> Iterator[Reach]:
        """Every grant ``principal`` holds directly or through its groups and roles."""
        for node, path in self.closure(principal).items():
            for grant in self.grants_of.get(node, ()):
                yield Reach(principal, grant.resource, grant.actions, path, grant)

    def reach_table(self, principal: str, only: set[str] | None = None
                    ) -> dict[str, set[str]]:
        """Resource → actions ``principal`` may do, directly or inherited (``only``: those)."""
        table: dict[str, set[str]] = {}
        for node in self.closure(principal):
            for grant in self.grants_of.get(node, ()):
                if only is None or grant.resource in only:
                    acts = table.get(grant.resource)
                    if acts is None:
                        table[grant.resource] = set(grant.actions)
                    else:
                        acts |= grant.actions
        return table

    def edge_kind(self, member: str, target: str) -> str:
        """``member-of`` or ``can-assume`` for a membership edge of the graph."""
        for t, kind in self.joins.get(member, ()):
            if t == target:
                return kind
        return "member-of"

    def snapshot(self) -> dict[str, list[str]]:
        """The grants and memberships as sorted texts, kept with the run for the next diff."""
        if self._snapshot is not None:
            return self._snapshot
        grants = sorted({grant_key(g) for g in self.facts.grants})
        members = sorted({f"{m.member} {m.kind} {m.target}" for m in self.facts.memberships})
        self._snapshot = {"grants": grants, "memberships": members}
        return self._snapshot

    def write_graphml(self, path: Path) -> None:
        """Write the graph as GraphML (node and edge attributes kept), safely (``outfiles``)."""
        with open_binary_output(path) as out:
            nx.write_graphml(self.graph, out)

    def as_json(self) -> dict[str, Any]:
        """The graph as node-link JSON, with the snapshot for a later ``--previous``."""
        data: dict[str, Any] = nx.node_link_data(self.graph, edges="edges")
        data["snapshot"] = self.snapshot()
        return data

    def write_json(self, path: Path) -> None:
        """Write :meth:`as_json` to ``path``, safely (``outfiles``)."""
        write_text(path, json.dumps(self.as_json(), indent=1, sort_keys=True))


__all__ = ["LEAF_KINDS", "AccessGraph", "Reach", "action_text", "grant_key"]
