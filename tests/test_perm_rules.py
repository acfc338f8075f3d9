"""The permission rules on hand-made facts: each planted difference found, matching access quiet."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import ARCHIVE, BASELINE, READ
from helpers import perm_estate as estate
from helpers import perm_run as run

from hipaa_audit.catalog import load_catalog
from hipaa_audit.model import Severity, Status
from hipaa_audit.permissions.baseline import BaselineError, parse_baseline
from hipaa_audit.permissions.graph import AccessGraph
from hipaa_audit.permissions.model import (
    ANYONE,
    Facts,
    Grant,
    Membership,
    Problem,
)
from hipaa_audit.permissions.rules import Context, judge
from hipaa_audit.permissions.run import PermOptions, analyse

pytestmark = pytest.mark.unit

def by_check(results: list[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for r in results:
        for f in r.findings:
            out.setdefault(f.check_id, []).append(f)
    return out


@pytest.fixture(scope="module")
def catalog() -> Any:
    return load_catalog()


def test_each_planted_difference_and_nothing_else(catalog: Any) -> None:
    _g, _ctx, results = run(catalog, estate())
    found = by_check(results)
    assert sorted(found) == ["perm-account-not-in-roster", "perm-anyone-access",
                             "perm-beyond-role",
                             "perm-cross-account", "perm-grant-outside-baseline",
                             "perm-unexplained-path"]
    # mallory is in admins, which declares only dave: the path is the evidence; carol has
    # left, so her roster role no longer explains her membership of radiologists
    paths = {f.message.split(" ", 1)[0]: f for f in found["perm-unexplained-path"]}
    assert sorted(paths) == ["aws:user/carol", "aws:user/mallory"]
    path = paths["aws:user/mallory"]
    assert path.asset == "aws:user/mallory" and path.locations[0].get("resource") == ARCHIVE
    assert path.locations[0].get("path") == (
        "aws:user/mallory -member-of-> aws:group/admins "
        "-iam:inline/admins/all [list+read+write+delete+admin]-> s3://imaging-archive")
    # erin (roster: Radiologist) holds s3:* where the role reads
    (beyond,) = found["perm-beyond-role"]
    assert "aws:user/erin" in beyond.message and "write+delete+admin" in beyond.message
    # frank has no role at all; the bucket policy grants him PHI
    (outside,) = found["perm-grant-outside-baseline"]
    assert "aws:user/frank" in outside.message and outside.severity is Severity.HIGH
    # the untrusted account assumes archive-reader; the trusted one is quiet
    (cross,) = found["perm-cross-account"]
    assert "999999999999" in cross.message and cross.severity is Severity.HIGH
    assert "aws:role/archive-reader" in cross.locations[0].get("path")
    # carol has left; frank and svc-ingest: frank matches no one, the service is not a person
    roster = {f.asset: f for f in found["perm-account-not-in-roster"]}
    assert set(roster) == {"aws:user/carol", "aws:user/frank"}
    assert roster["aws:user/carol"].severity is Severity.HIGH
    assert "2026-06-30" in roster["aws:user/carol"].message
    assert roster["aws:user/frank"].severity is Severity.MEDIUM
    # public-share is public but holds no PHI: still reported, one level lower; research-deid
    # is public as the baseline says
    (public,) = found["perm-anyone-access"]
    assert public.asset == "s3://public-share" and public.severity is Severity.HIGH


def test_public_access_is_exposure_and_baseline_allows_it(catalog: Any) -> None:
    facts = estate()
    facts.grants.append(Grant(ANYONE, ARCHIVE, frozenset({"read"}), "s3:bucket-policy"))
    facts.grants.append(Grant(ANYONE, "s3://public-share", frozenset({"read"}), "s3:acl"))
    _g, _ctx, results = run(catalog, facts)
    exposed = {f.asset: f for f in by_check(results)["perm-anyone-access"]}
    assert exposed[ARCHIVE].severity is Severity.CRITICAL
    assert "s3://research-deid" not in exposed  # the baseline makes it public on purpose


def test_conditional_public_grant_is_one_level_lower(catalog: Any) -> None:
    facts = estate()
    facts.grants.append(Grant(ANYONE, ARCHIVE, frozenset({"read"}), "s3:bucket-policy",
                              ("StringEquals aws:SourceVpce=vpce-1",)))
    _g, _ctx, results = run(catalog, facts)
    exposed = {f.asset: f for f in by_check(results)["perm-anyone-access"]}
    f = exposed[ARCHIVE]
    assert f.severity is Severity.HIGH and "condition" in f.message


def test_matching_estate_is_quiet(catalog: Any) -> None:
    facts = estate()
    facts.memberships = [m for m in facts.memberships
                         if "mallory" not in m.member and "999999999999" not in m.member]
    facts.grants = [g for g in facts.grants if g.principal not in
                    ("aws:user/erin", "aws:user/frank")
                    and g.resource != "s3://public-share"]
    facts.people = [p for p in facts.people if p.id != "carol"]
    facts.principals = {k: v for k, v in facts.principals.items()
                        if k not in ("aws:user/carol", "aws:user/frank")}
    facts.memberships = [m for m in facts.memberships if "carol" not in m.member]
    _g, _ctx, results = run(catalog, facts)
    assert by_check(results) == {}
    checked = {c for r in results for c in r.coverage.counts}
    assert {"perm-grant-outside-baseline", "perm-anyone-access", "perm-unexplained-path",
            "perm-account-not-in-roster"} <= checked


def test_changes_since_previous_run(catalog: Any) -> None:
    g0, _ctx, _r = run(catalog, estate())
    before = g0.snapshot()
    facts = estate()
    facts.grants = [g for g in facts.grants if g.principal != "aws:user/frank"]
    facts.grants.append(Grant("aws:user/alice", "s3://public-share", READ, "iam:inline/alice/x"))
    facts.memberships.append(Membership("aws:user/erin", "aws:group/admins", "member-of", "iam"))
    _g, _ctx, results = run(catalog, facts, previous=before)
    found = by_check(results)
    added = sorted(f.message for f in found["perm-grant-added"])
    removed = [f.message for f in found["perm-grant-removed"]]
    assert len(added) == 2 and any("aws:user/alice -> s3://public-share" in m for m in added)
    assert any("aws:user/erin member-of aws:group/admins" in m for m in added)
    assert len(removed) == 1 and "aws:user/frank -> s3://imaging-archive" in removed[0]
    assert all(f.severity is Severity.INFO for f in found["perm-grant-removed"])
    # without a previous run there is no change check at all
    _g, _ctx, results = run(catalog, facts)
    assert "perm-grant-added" not in by_check(results)


def test_problems_are_unverifiable(catalog: Any) -> None:
    facts = estate()
    facts.problems.append(Problem("aws", "iam", "access denied (iam:ListUsers)"))
    _g, _ctx, results = run(catalog, facts)
    (f,) = by_check(results)["perm-unverifiable"]
    assert f.status is Status.ERROR and f.asset == "iam"


def test_graph_exports(tmp_path: Any, catalog: Any) -> None:
    import json

    import networkx as nx

    g, _ctx, _r = run(catalog, estate())
    g.write_graphml(tmp_path / "g.graphml")
    back = nx.read_graphml(tmp_path / "g.graphml")
    assert back.has_edge("aws:user/mallory", "aws:group/admins")
    assert back.nodes[ARCHIVE]["phi"] is True
    g.write_json(tmp_path / "g.json")
    data = json.loads((tmp_path / "g.json").read_text())
    assert data["snapshot"] == g.snapshot() and len(data["edges"]) == len(g.graph.edges)


def test_path_goes_through_role_assumption_and_prefix_inherits_phi(catalog: Any) -> None:
    facts = estate()
    facts.grants.append(Grant("aws:role/archive-reader", "s3://imaging-archive/incoming",
                              frozenset({"write"}), "iam:policy/Ingest"))
    facts.memberships.append(Membership("aws:user/alice", "aws:role/archive-reader",
                                        "can-assume", "iam:trust-policy:archive-reader"))
    g, _ctx, results = run(catalog, facts)
    assert "s3://imaging-archive/incoming" in g.phi
    paths = [f for f in by_check(results)["perm-unexplained-path"]
             if "aws:user/alice" in f.message]
    assert paths and paths[0].locations[0].get("resource") == "s3://imaging-archive/incoming"
    assert "-can-assume-> aws:role/archive-reader" in paths[0].locations[0].get("path")


@pytest.mark.parametrize("bad, message", [
    ({"roles": {"r": {"allow": [{"resource": "x", "actions": ["fly"]}]}}}, "unknown action"),
    ({"principals": {"aws:user/a": ["nope"]}}, "no role 'nope'"),
    ({"trusted": {"accounts": ["12"]}}, "12-digit"),
    ({"extra": {}}, "unknown key 'extra'"),
    ({"roles": "x"}, r"\[roles\]: expected a table"),
    ({"principals": ["a"]}, r"\[principals\]: expected a table"),
    ({"roles": {"r": {"allow": []}}, "principals": {"aws:user/x": 0}}, "a list of strings"),
    ({"roles": {"r": {"allow": []}}, "principals": {"aws:user/x": {"roles": False}}},
     "a list of strings"),
    ({"roles": {"r": {"allow": [{"resource": "x", "actions": []}]}}}, "no actions"),
    ({"roles": {"r": {"allow": "x"}}}, "expected a list"),
    ({"roles": {"r": {"description": 5}}}, "expected a string"),
    ({"phi": {"resources": "s3://b", "extra": 1}}, "unknown key 'extra'"),
])
def test_bad_baseline_is_a_clear_error(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(BaselineError, match=message):
        parse_baseline(bad, "b.toml")


def test_context_reuse_is_consistent(catalog: Any) -> None:
    # the lookups cached in the context and the baseline give the same findings a second time
    facts = estate()
    base = parse_baseline(BASELINE)
    g = AccessGraph(facts, phi=base.holds_phi)
    ctx = Context(base, people=list(facts.people))
    first = judge(g, ctx, catalog)
    second = judge(g, ctx, catalog)
    ids = [f.id for r in first for f in r.findings]
    assert ids == [f.id for r in second for f in r.findings]
    _g, _ctx, fresh = run(catalog, estate())
    assert sorted(ids) == sorted(f.id for r in fresh for f in r.findings) and len(ids) == 8


def test_folder_pattern_covers_the_folder_itself() -> None:
    from hipaa_audit.permissions.baseline import covers

    assert covers("fs:/srv/pacs/*", "fs:/srv/pacs")
    assert covers("fs:/srv/pacs/*", "fs:/srv/pacs/2024/a.dcm")
    assert not covers("fs:/srv/pacs/*", "fs:/srv/pacs-old")
    assert covers("s3://b", "s3://b/prefix/deeper") and not covers("s3://b", "s3://bb")


def test_riskiest_paths_for_the_picture(catalog: Any) -> None:
    from hipaa_audit.permissions.rules import riskiest
    from hipaa_audit.report.charts import access_paths, path_steps

    _g, _ctx, results = run(catalog, estate())
    rows = riskiest(results)
    keys = [(r["principal"], r["resource"]) for r in rows]
    assert len(keys) == len(set(keys))  # one row per principal and resource
    assert not any(r["check"] == "perm-account-not-in-roster" for r in rows)
    ranks = [Severity(r["severity"]).rank for r in rows]
    assert ranks == sorted(ranks, reverse=True)
    # within a severity the multi-step paths come first
    highs = [r for r in rows if r["severity"] == "high"]
    assert highs[0]["path"].count("->") >= 2
    nodes, edges = path_steps(highs[0]["path"])
    assert nodes[0] == highs[0]["principal"] and nodes[-1] == highs[0]["resource"]
    assert len(edges) == len(nodes) - 1
    svg = access_paths(rows)
    assert svg.startswith("<svg") and "</svg>" in svg


def test_change_lines_with_odd_names_and_a_partly_read_source(catalog: Any) -> None:
    facts = estate()
    odd = "fs:/srv/share [old] -> x"
    facts.grants.append(Grant("fs:user/bob", odd, READ, "fs:mode"))
    g0, _ctx, _r = run(catalog, facts)
    before = g0.snapshot()
    # the fs grant is gone and the IAM read failed in part: only the fs removal is reported
    later = estate()
    later.grants = [g for g in later.grants if g.principal != "aws:group/radiologists"]
    later.problems.append(Problem("aws", "iam", "an IAM answer had an unexpected shape"))
    _g, _ctx, results = run(catalog, later, previous=before)
    removed = [f for f in by_check(results).get("perm-grant-removed", [])]
    assert [f.asset for f in removed] == [odd]
    assert removed[0].locations[0].get("principal") == "fs:user/bob"


def test_a_source_that_breaks_is_unverifiable_and_the_rest_goes_on(
        catalog: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import hipaa_audit.permissions.fs as fs
    from hipaa_audit.permissions.run import collect
    from hipaa_audit.redaction import Masker

    def broken(*_a: Any, **_k: Any) -> Facts:
        raise RuntimeError("a value that must not be shown")

    monkeypatch.setattr(fs, "collect_fs", broken)
    (tmp_path / "pacs.csv").write_text("user,role,permissions\nalice,Radiologist,view\n")
    opts = PermOptions(parse_baseline(BASELINE), (f"fs:{tmp_path}",
                                                  f"pacs:main={tmp_path / 'pacs.csv'}"))
    facts, _timings = collect(opts, Masker(b"k" * 32))
    assert [p.message for p in facts.problems] == ["the source could not be read (RuntimeError)"]
    assert "pacs:main:user/alice" in facts.principals
    _g, _ctx, results = analyse(facts, opts, catalog)
    assert by_check(results)["perm-unverifiable"][0].asset == f"fs:{tmp_path}"


def test_an_unusable_source_stops_the_cli_but_not_an_assessment(tmp_path: Any) -> None:
    import dataclasses

    from hipaa_audit.permissions.run import PermissionSetupError, collect
    from hipaa_audit.redaction import Masker

    (tmp_path / "pacs.csv").write_text("user,role,permissions\nalice,Radiologist,view\n")
    sources = (f"roster:{tmp_path / 'missing.csv'}", f"pacs:main={tmp_path / 'pacs.csv'}")
    opts = PermOptions(parse_baseline(BASELINE), sources)
    with pytest.raises(PermissionSetupError, match=r"missing\.csv: no such file"):
        collect(opts, Masker(b"k" * 32))
    facts, _t = collect(dataclasses.replace(opts, strict=False), Masker(b"k" * 32))
    assert [(p.asset, "no such file" in p.message) for p in facts.problems] == [
        (sources[0], True)]
    assert "pacs:main:user/alice" in facts.principals
