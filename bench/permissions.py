"""Permissions: an access graph of 10,000 principals and 100,000 grants, judged end to end.

Generates (deterministically, seeded) an estate in memory, as the collectors would return it:

- 9,000 IAM-style users (every 50th a service account), 600 groups, 300 roles, 99 other AWS
  accounts and ``anyone``: 10,000 principals;
- every user in 1 to 3 groups, every role assumable by 2 groups, every account by one role;
- 2,000 resources (every 4th holding PHI) and 100,000 grants: half on groups, a third on users,
  the rest on roles, accounts and anyone;
- a baseline of 40 roles, each group and role declared with one, the roster of every user,
  with planted drift: 1% of user grants outside the roles, 1% of memberships unapproved, 30
  departed people, 20 public grants, 10 untrusted accounts; and the previous run's snapshot with
  1% of the grants different.

Then, in this process:

  (a) the baseline: the plain networkx way to answer "who reaches what": for every user,
      account and ``anyone``, ``nx.single_source_shortest_path`` over the whole graph (memberships
      and grants), keeping the resources reached with a path; nothing judged
  (b) hipaa-audit: ``analyse`` (build the AccessGraph, then every rule: grants against the
      roles, unexplained paths, exposure, roster, changes since the previous run) and
      ``summarise`` (who reaches each PHI resource, riskiest paths, snapshot)

Bar (the issue's): (b) in seconds (under 10 s). Guard: every planted difference is found.
Prints the wall time of each, the ratio (a)/(b), and the findings per check.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hipaa_audit.catalog import load_catalog  # noqa: E402
from hipaa_audit.permissions import model  # noqa: E402
from hipaa_audit.permissions.baseline import parse_baseline  # noqa: E402
from hipaa_audit.permissions.graph import AccessGraph  # noqa: E402
from hipaa_audit.permissions.run import PermOptions, analyse, summarise  # noqa: E402

BAR_SECONDS = 10.0
READ = frozenset({"list", "read"})


def generate(users: int, grants: int, seed: int = 7
             ) -> tuple[model.Facts, dict[str, Any], dict[str, int]]:
    """The estate, its baseline (as TOML data) and the planted counts."""
    rng = random.Random(seed)
    f = model.Facts(sources=["aws", "roster"])
    n_groups, n_roles, n_accounts, n_res, n_roles_base = 600, 300, 99, 2000, 40
    resources = [f"s3://bucket-{i:04d}" for i in range(n_res)]
    for i, r in enumerate(resources):
        f.add_resource(model.Resource(r, "bucket", phi=(i % 4 == 0), system="aws:123456789012"))
    role_of_res = {r: f"role-{i % n_roles_base}" for i, r in enumerate(resources)}
    base_roles: dict[str, Any] = {f"role-{k}": {"allow": []} for k in range(n_roles_base)}
    for r, role in role_of_res.items():
        base_roles[role]["allow"].append({"resource": r, "actions": ["write"]})
    principals_decl: dict[str, Any] = {}
    groups = [f"aws:group/g{i}" for i in range(n_groups)]
    roles = [f"aws:role/r{i}" for i in range(n_roles)]
    accounts = [f"aws:account/{200000000000 + i}" for i in range(n_accounts)]
    group_role = {g: f"role-{i % n_roles_base}" for i, g in enumerate(groups)}
    role_role = {r: f"role-{i % n_roles_base}" for i, r in enumerate(roles)}
    for g in groups:
        f.add_principal(model.Principal(g, "group", g.rsplit("/", 1)[1], "aws"))
        principals_decl[g] = [group_role[g]]
    for r in roles:
        f.add_principal(model.Principal(r, "role", r.rsplit("/", 1)[1], "aws"))
        principals_decl[r] = [role_role[r]]
    trusted = [a.split("/")[1] for a in accounts[10:]]
    for a in accounts:
        f.add_principal(model.Principal(a, "account", a.split("/")[1], "aws"))
        principals_decl[a] = ["role-0"]
    planted = {"memberships": 0, "outside": 0, "departed": 0, "public": 0, "untrusted": 10}
    user_ids = [f"aws:user/u{i:05d}" for i in range(users)]
    user_roles: dict[str, set[str]] = {}
    for i, u in enumerate(user_ids):
        service = i % 50 == 0
        f.add_principal(model.Principal(u, "user", u.rsplit("/", 1)[1], "aws", human=not service))
        mine = rng.sample(groups, rng.randint(1, 3))
        roles_u = {group_role[g] for g in mine}
        for g in mine:
            f.memberships.append(model.Membership(u, g, "member-of", "iam:group-membership"))
        if rng.random() < 0.01:  # an unapproved membership
            g = rng.choice(groups)
            if group_role[g] not in roles_u:
                f.memberships.append(model.Membership(u, g, "member-of", "iam:group-membership"))
                planted["memberships"] += 1
        user_roles[u] = roles_u
        if service:
            principals_decl[u] = sorted(roles_u)
        else:
            active = i % 300 != 1
            planted["departed"] += int(not active)
            f.people.append(model.Person(f"e{i}", "fp", (u.rsplit("/", 1)[1],),
                                         tuple(sorted(roles_u)), active))
    for i, r in enumerate(roles):
        for g in (groups[i % n_groups], groups[(i * 7 + 3) % n_groups]):
            if group_role[g] == role_role[r]:
                f.memberships.append(model.Membership(g, r, "can-assume", "iam:trust-policy"))
    for i, a in enumerate(accounts):
        f.memberships.append(model.Membership(a, roles[i], "can-assume", "iam:trust-policy"))
    res_by_role: dict[str, list[str]] = {}
    for r, role in role_of_res.items():
        res_by_role.setdefault(role, []).append(r)
    made = 0
    while made < grants:
        pick = rng.random()
        if pick < 0.5:
            holder, role = (g := rng.choice(groups)), group_role[g]
        elif pick < 0.85:
            holder = rng.choice(user_ids)
            role = rng.choice(sorted(user_roles[holder]))
        else:
            holder, role = (r := rng.choice(roles)), role_role[r]
        res = rng.choice(res_by_role[role])
        if pick >= 0.5 and pick < 0.85 and rng.random() < 0.01:
            res = rng.choice(resources)  # possibly outside the user's roles
            planted["outside"] += int(role_of_res[res] not in user_roles[holder])
        acts = READ if rng.random() < 0.8 else frozenset({"list", "read", "write"})
        f.grants.append(model.Grant(holder, res, acts, f"iam:policy/p{made % 5000}"))
        made += 1
    for i in range(20):
        f.grants.append(model.Grant(model.ANYONE, resources[i * 97 % n_res], READ, "s3:acl"))
        planted["public"] += 1
    baseline = {"roles": base_roles, "principals": principals_decl,
                "trusted": {"accounts": trusted}}
    return f, baseline, planted


def naive_reach(g: AccessGraph) -> int:
    """(a): networkx shortest paths from every acting principal; return the pairs reached."""
    import networkx as nx

    pairs = 0
    graph = g.graph
    for leaf in g.leaves():
        paths = nx.single_source_shortest_path(graph, leaf)
        pairs += sum(1 for node in paths if node in g.resources)
    return pairs


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--quick", action="store_true", help="1,000 users and 10,000 grants")
    ap.add_argument("--check", action="store_true", help="exit 1 when the bar fails")
    args = ap.parse_args(argv)
    users, grants = (900, 10_000) if args.quick else (9_000, 100_000)
    started = time.perf_counter()
    facts, base_data, planted = generate(users, grants)
    gen = time.perf_counter() - started
    print(f"estate: {len(facts.principals):,} principals, {len(facts.grants):,} grants, "
          f"{len(facts.memberships):,} memberships, {len(facts.resources):,} resources "
          f"(generated in {gen:.1f} s)")
    catalog = load_catalog()
    baseline = parse_baseline(base_data, "bench")
    previous_graph = AccessGraph(facts)
    snap = previous_graph.snapshot()
    rng = random.Random(3)
    changed = rng.sample(snap["grants"], len(snap["grants"]) // 100)
    half = len(changed) // 2
    previous = {"grants": sorted(set(snap["grants"]) - set(changed[:half])
                                 | {k.replace("[", "[write+", 1) for k in changed[half:]}),
                "memberships": snap["memberships"]}
    opts = PermOptions(baseline, ("aws", "roster"), previous=previous)

    t0 = time.perf_counter()
    pairs = naive_reach(previous_graph)
    naive = time.perf_counter() - t0

    t0 = time.perf_counter()
    g, ctx, results = analyse(facts, opts, catalog)
    summary = summarise(g, ctx, results, opts)
    ours = time.perf_counter() - t0

    counts = summary["findings"]
    print(f"(a) networkx shortest paths from every acting principal   {naive:7.2f} s "
          f"({pairs:,} principal-resource pairs, nothing judged)")
    print(f"(b) hipaa-audit analyse + summarise                      {ours:7.2f} s")
    print(f"ratio (a)/(b): {naive / ours:.2f}x")
    for check, n in counts.items():
        print(f"  {check:32} {n:7,}")
    guard = (counts.get("perm-unexplained-path", 0) >= 1 and
             counts.get("perm-account-not-in-roster", 0) >= planted["departed"] and
             counts.get("perm-anyone-access", 0) >= 1 and
             counts.get("perm-cross-account", 0) >= 1 and
             counts.get("perm-grant-outside-baseline", 0) >= planted["outside"] and
             counts.get("perm-grant-added", 0) >= 1 and counts.get("perm-grant-removed", 0) >= 1)
    print(f"planted: {planted}")
    print(f"correctness guard: {'PASS' if guard else 'FAIL'}")
    ok = ours < BAR_SECONDS
    print(f"analysis in seconds ({ours:.2f} s < {BAR_SECONDS:.0f} s): {'PASS' if ok else 'FAIL'}")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}"
          " MiB")
    print(f"overall: {'PASS' if ok and guard else 'FAIL'}")
    return 1 if (args.check and not (ok and guard)) else 0


if __name__ == "__main__":
    raise SystemExit(main())
