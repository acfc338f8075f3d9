"""Sigma rules over the normalised event table (hipaa_audit.logs.sigma)."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hipaa_audit.logs import schema
from hipaa_audit.logs.sigma import RuleSet, SigmaError, SigmaMatch, evaluate, load_rules

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "checks" / "sigma"

T0 = pd.Timestamp("2025-03-01T08:00:00Z")


def at(minutes: float) -> str:
    return (T0 + pd.Timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def events(**columns: Sequence[object]) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    columns.setdefault("time", [at(i) for i in range(n)])
    columns.setdefault("event_id", [f"e{i}" for i in range(n)])
    return schema.normalise(pd.DataFrame(columns))


RULE_ID = "0b5f2f43-1b0e-4a53-9a8e-0f6a4d7c9b11"


def write_rule(tmp_path: Path, detection: str, name: str = "rule.yml", *,
               title: str = "Test rule", rule_id: str = RULE_ID) -> Path:
    path = tmp_path / name
    body = textwrap.indent(textwrap.dedent(detection).strip(), "  ")
    path.write_text(f"title: {title}\nid: {rule_id}\nlevel: high\n"
                    f"logsource:\n  product: hipaa-audit\ndetection:\n{body}\n")
    return path


def rules_from(tmp_path: Path, detection: str) -> RuleSet:
    return load_rules([write_rule(tmp_path, detection)])


def hits(tmp_path: Path, detection: str, frame: pd.DataFrame,
         field_map: dict[str, str] | None = None) -> set[str]:
    matches = evaluate(rules_from(tmp_path, detection), frame, field_map)
    assert len(matches) <= 1
    if not matches:
        return set()
    match = matches[0]
    assert match.kind == "match"
    assert match.count == len(match.event_ids)
    return set(match.event_ids)


# --------------------------------------------------------------------------- values


def test_equality_is_case_insensitive(tmp_path: Path) -> None:
    frame = events(user=["JDoe", "jdoe", "jdoe2", None], action=["export"] * 4)
    assert hits(tmp_path, """
        sel:
          user: jdoe
          action: EXPORT
        condition: sel
    """, frame) == {"e0", "e1"}


def test_cased_modifier(tmp_path: Path) -> None:
    frame = events(user=["JDoe", "jdoe"])
    assert hits(tmp_path, """
        sel:
          user|cased: JDoe
        condition: sel
    """, frame) == {"e0"}


def test_list_is_or(tmp_path: Path) -> None:
    frame = events(action=["view", "export", "delete", "login"])
    assert hits(tmp_path, """
        sel:
          action: [export, DELETE]
        condition: sel
    """, frame) == {"e1", "e2"}


def test_wildcards(tmp_path: Path) -> None:
    frame = events(user=["JaneDoe", "jdoe", "jd", "j.doe", "x*y", "xzy"])
    assert hits(tmp_path, """
        sel:
          user: 'j*doe'
        condition: sel
    """, frame) == {"e0", "e1", "e3"}
    assert hits(tmp_path, """
        sel:
          user: 'J?'
        condition: sel
    """, frame) == {"e2"}
    # regex metacharacters are literal, an escaped wildcard is a plain character
    assert hits(tmp_path, """
        sel:
          user: 'j.do?'
        condition: sel
    """, frame) == {"e3"}
    assert hits(tmp_path, r"""
        sel:
          user: 'x\*y'
        condition: sel
    """, frame) == {"e4"}


def test_contains_startswith_endswith(tmp_path: Path) -> None:
    frame = events(user=["svc-backup", "SVC-pacs", "alice", "bob-svc", None])
    assert hits(tmp_path, "sel:\n  user|startswith: 'svc-'\ncondition: sel", frame) == {"e0", "e1"}
    assert hits(tmp_path, "sel:\n  user|endswith: '-SVC'\ncondition: sel", frame) == {"e3"}
    assert hits(tmp_path, "sel:\n  user|contains: 'LIC'\ncondition: sel", frame) == {"e2"}
    assert hits(tmp_path, "sel:\n  user|contains|all: [svc, back]\ncondition: sel",
                frame) == {"e0"}
    assert hits(tmp_path, "sel:\n  user|contains: [back, pacs]\ncondition: sel",
                frame) == {"e0", "e1"}


def test_regular_expressions(tmp_path: Path) -> None:
    frame = events(code=["GetObject", "getobject", "PutObject", "DeleteObjects"])
    assert hits(tmp_path, "sel:\n  code|re: '^Get'\ncondition: sel", frame) == {"e0"}
    assert hits(tmp_path, "sel:\n  code|re|i: '^get'\ncondition: sel", frame) == {"e0", "e1"}
    # unanchored search
    assert hits(tmp_path, "sel:\n  code|re: 'Objects?$'\ncondition: sel",
                frame) == {"e0", "e2", "e3"}


def test_cidr(tmp_path: Path) -> None:
    frame = events(source_ip=["10.1.2.3", "192.168.0.9", "10.255.255.255", "11.0.0.1",
                              "not-an-ip", None, "2001:db8::1", "AWS Internal"])
    assert hits(tmp_path, "sel:\n  source_ip|cidr: 10.0.0.0/8\ncondition: sel",
                frame) == {"e0", "e2"}
    assert hits(tmp_path, "sel:\n  source_ip|cidr: [192.168.0.0/16, '2001:db8::/32']\n"
                          "condition: sel", frame) == {"e1", "e6"}
    assert hits(tmp_path, "sel:\n  source_ip|cidr: 10.0.0.0/8\ncondition: not sel",
                frame) == {"e1", "e3", "e4", "e5", "e6", "e7"}


def test_numeric_comparisons(tmp_path: Path) -> None:
    frame = events(bytes=[10, 1_000_000, 2_000_000, None], objects=[1, 2, 3, 4])
    assert hits(tmp_path, "sel:\n  bytes|gte: 1000000\ncondition: sel", frame) == {"e1", "e2"}
    assert hits(tmp_path, "sel:\n  bytes|gt: 1000000\ncondition: sel", frame) == {"e2"}
    assert hits(tmp_path, "sel:\n  bytes|lt: 1000000\ncondition: sel", frame) == {"e0"}
    assert hits(tmp_path, "sel:\n  bytes|lte: 1000000\ncondition: sel", frame) == {"e0", "e1"}
    assert hits(tmp_path, "sel:\n  objects|neq: 2\ncondition: sel", frame) == {"e0", "e2", "e3"}
    assert hits(tmp_path, "sel:\n  objects: 3\ncondition: sel", frame) == {"e2"}
    # numbers held in a string column compare numerically too
    frame = events(code=["110106", "110112", "x"])
    assert hits(tmp_path, "sel:\n  code|gt: 110110\ncondition: sel", frame) == {"e1"}
    assert hits(tmp_path, "sel:\n  code: 110106\ncondition: sel", frame) == {"e0"}


def test_null_and_exists(tmp_path: Path) -> None:
    frame = events(patient=["p1", None, "p3"], purpose=[None, None, "BTG"])
    assert hits(tmp_path, "sel:\n  patient: null\ncondition: sel", frame) == {"e1"}
    assert hits(tmp_path, "sel:\n  purpose|exists: true\ncondition: sel", frame) == {"e2"}
    assert hits(tmp_path, "sel:\n  purpose|exists: false\ncondition: sel",
                frame) == {"e0", "e1"}
    assert hits(tmp_path, "sel:\n  patient: '*'\ncondition: sel", frame) == {"e0", "e2"}


def test_fieldref_and_time_parts(tmp_path: Path) -> None:
    frame = events(user=["alice", "bob", "carol"], target=["ALICE", "x", None],
                   time=["2025-03-01T02:10:00Z", "2025-03-01T14:10:00Z",
                         "2025-03-01T03:00:00Z"])
    assert hits(tmp_path, "sel:\n  user|fieldref: target\ncondition: sel", frame) == {"e0"}
    assert hits(tmp_path, "sel:\n  time|hour: 14\ncondition: sel", frame) == {"e1"}
    assert hits(tmp_path, "sel:\n  time|minute: 10\ncondition: sel", frame) == {"e0", "e1"}


# --------------------------------------------------------------------------- conditions


def test_boolean_conditions(tmp_path: Path) -> None:
    frame = events(action=["export", "export", "view", "delete"],
                   user=["svc-a", "alice", "svc-b", "bob"],
                   outcome=["success", "failure", "success", "success"])
    detections = {
        "selection_export": "action: export",
        "selection_delete": "action: delete",
        "service": "user|startswith: svc-",
        "failed": "outcome: failure",
    }

    def cond(condition: str) -> set[str]:
        # only the detections the condition names (an unused detection is a rule error)
        used = [name for name in detections
                if name in condition or (name.startswith("selection_")
                                         and "selection_*" in condition)]
        body = "".join(f"{name}:\n  {detections[name]}\n" for name in used)
        return hits(tmp_path, body + f"condition: {condition}\n", frame)

    assert cond("selection_export and service") == {"e0"}
    assert cond("selection_export and not failed") == {"e0"}
    assert cond("selection_delete or service") == {"e0", "e2", "e3"}
    assert cond("1 of selection_*") == {"e0", "e1", "e3"}
    assert cond("all of selection_*") == set()
    assert cond("1 of selection_* and not (service or failed)") == {"e3"}
    assert cond("not 1 of selection_*") == {"e2"}
    assert cond("not selection_export and not service") == {"e3"}


def test_all_of_them_and_mapping_is_and(tmp_path: Path) -> None:
    frame = events(action=["export", "export", "view"], outcome=["success", "failure",
                                                                  "success"])
    assert hits(tmp_path, """
        a:
          action: export
        b:
          outcome: success
        condition: all of them
    """, frame) == {"e0"}
    # a list of mappings is OR, keys within a mapping are AND
    assert hits(tmp_path, """
        sel:
          - action: view
          - action: export
            outcome: failure
        condition: sel
    """, frame) == {"e1", "e2"}


def test_missing_field_matches_nothing(tmp_path: Path) -> None:
    frame = events(action=["export", "view"])
    assert hits(tmp_path, "sel:\n  errorCode: AccessDenied\ncondition: sel", frame) == set()
    assert hits(tmp_path, "sel:\n  noSuchField|contains: x\n  action: export\ncondition: sel",
                frame) == set()
    assert hits(tmp_path, "sel:\n  noSuchField|cidr: 10.0.0.0/8\ncondition: sel", frame) == set()
    assert hits(tmp_path, "sel:\n  noSuchField|gte: 3\ncondition: sel", frame) == set()
    # an absent field is absent: null holds
    assert hits(tmp_path, "sel:\n  noSuchField: null\ncondition: sel", frame) == {"e0", "e1"}


def test_field_aliases(tmp_path: Path) -> None:
    frame = events(code=["GetObject", "PutBucketPolicy"], system=["s3.amazonaws.com"] * 2,
                   source_ip=["10.0.0.1", "8.8.8.8"], user=["alice", "bob"])
    assert hits(tmp_path, """
        sel:
          eventSource: s3.amazonaws.com
          eventName: PutBucketPolicy
          sourceIPAddress: 8.8.8.8
          userIdentity.userName: bob
        condition: sel
    """, frame) == {"e1"}
    assert hits(tmp_path, "sel:\n  Account: ALICE\ncondition: sel", frame,
                field_map={"Account": "user"}) == {"e0"}
    # column names are matched case-insensitively as a last resort
    assert hits(tmp_path, "sel:\n  User: bob\ncondition: sel", frame) == {"e1"}


def test_keyword_search(tmp_path: Path) -> None:
    frame = events(code=["PutBucketPolicy", "GetObject", "x"],
                   target=["phi-bucket", "phi-bucket", "reports"],
                   patient=["putbucket", None, None], device=["a", "b", "PACS-putbucket"])
    assert hits(tmp_path, "keywords:\n  - putbucket\ncondition: keywords",
                frame) == {"e0", "e2"}
    assert hits(tmp_path, "keywords:\n  - 'report*'\n  - getobj\ncondition: keywords",
                frame) == {"e1", "e2"}


def test_match_carries_rule_metadata_and_times(tmp_path: Path) -> None:
    frame = events(action=["export", "view", "export"],
                   time=["2025-03-01T10:00:00Z", "2025-03-01T09:00:00Z",
                         "2025-03-01T08:00:00+01:00"])
    [match] = evaluate(rules_from(tmp_path, "sel:\n  action: export\ncondition: sel"), frame)
    assert match == SigmaMatch(RULE_ID, "Test rule", "high", "match", 2, {},
                               "2025-03-01T07:00:00Z", "2025-03-01T10:00:00Z", ("e0", "e2"))
    assert evaluate(rules_from(tmp_path, "sel:\n  action: export\ncondition: sel"),
                    schema.empty()) == []


def test_event_ids_are_capped(tmp_path: Path) -> None:
    frame = events(action=["export"] * 50)
    [match] = evaluate(rules_from(tmp_path, "sel:\n  action: export\ncondition: sel"), frame)
    assert match.count == 50
    assert match.event_ids == tuple(f"e{i}" for i in range(20))


# --------------------------------------------------------------------------- correlations

BASE_LOGIN = """\
title: Failed login
id: 6f0c7f7e-3f55-4b6f-9d1e-2a9a4e6f1c01
name: failed_login
logsource:
  product: hipaa-audit
detection:
  sel:
    action: login
    outcome: failure
  condition: sel
level: low
"""

BASE_EXPORT = """\
title: Export
id: 6f0c7f7e-3f55-4b6f-9d1e-2a9a4e6f1c03
name: export
logsource:
  product: hipaa-audit
detection:
  sel:
    action: export
  condition: sel
"""


def correlation(tmp_path: Path, body: str, *, base: str = BASE_LOGIN,
                title: str = "Correlated") -> RuleSet:
    path = tmp_path / "corr.yml"
    path.write_text(base + "---\n" + f"title: {title}\n"
                    "id: 6f0c7f7e-3f55-4b6f-9d1e-2a9a4e6f1c02\nlevel: high\n"
                    + textwrap.dedent(body))
    return load_rules([path])


def test_event_count_by_user_in_timespan(tmp_path: Path) -> None:
    rs = correlation(tmp_path, """
        correlation:
          type: event_count
          rules: failed_login
          group-by: [user]
          timespan: 5m
          condition:
            gte: 3
    """)
    # alice: 4 failures within 3 minutes; bob: 3 failures spread over 20 minutes;
    # carol: successes only
    frame = events(
        user=["alice", "alice", "bob", "alice", "bob", "alice", "bob", "carol", "carol", "carol"],
        action=["login"] * 10,
        outcome=["failure"] * 7 + ["success"] * 3,
        time=[at(0), at(1), at(0), at(2), at(10), at(3), at(20), at(0), at(0.1), at(0.2)],
    )
    matches = evaluate(rs, frame)
    assert [m.kind for m in matches] == ["event_count"]
    [match] = matches
    assert match.group == {"user": "alice"}
    assert match.count == 4
    assert match.first_time == at(0) and match.last_time == at(3)
    assert match.event_ids == ("e0", "e1", "e3", "e5")
    assert match.level == "high" and match.title == "Correlated"


def test_event_count_reports_the_worst_window(tmp_path: Path) -> None:
    rs = correlation(tmp_path, """
        correlation:
          type: event_count
          rules: failed_login
          group-by: user
          timespan: 10m
          condition:
            gt: 2
    """)
    times = [0, 1, 2, 30, 31, 32, 33, 34]
    frame = events(user=["alice"] * 8, action=["login"] * 8, outcome=["failure"] * 8,
                   time=[at(m) for m in times])
    [match] = evaluate(rs, frame)
    assert match.count == 5
    assert (match.first_time, match.last_time) == (at(30), at(34))


def test_value_count_distinct_users_per_address(tmp_path: Path) -> None:
    rs = correlation(tmp_path, """
        correlation:
          type: value_count
          rules: [failed_login]
          group-by: [source_ip]
          timespan: 10m
          condition:
            gte: 3
            field: user
    """)
    frame = events(
        # 10.0.0.1: 3 users in 4 minutes (plus a repeat); 10.0.0.2: 5 attempts, 2 users;
        # 10.0.0.3: 3 users but 30 minutes apart
        source_ip=["10.0.0.1"] * 4 + ["10.0.0.2"] * 5 + ["10.0.0.3"] * 3,
        user=["a", "b", "b", "c", "a", "b", "a", "b", "a", "a", "b", "c"],
        action=["login"] * 12, outcome=["failure"] * 12,
        time=[at(0), at(1), at(2), at(4), at(0), at(1), at(2), at(3), at(4),
              at(0), at(30), at(60)],
    )
    [match] = evaluate(rs, frame)
    assert match.kind == "value_count"
    assert match.group == {"source_ip": "10.0.0.1"}
    assert match.count == 3
    assert (match.first_time, match.last_time) == (at(0), at(4))
    assert match.event_ids == ("e0", "e1", "e2", "e3")


def test_correlation_without_group_by_and_generate(tmp_path: Path) -> None:
    rs = correlation(tmp_path, """
        correlation:
          type: event_count
          rules: failed_login
          timespan: 1h
          generate: true
          condition:
            gte: 2
    """)
    frame = events(user=["a", "b", "c"], action=["login"] * 3,
                   outcome=["failure", "failure", "success"])
    kinds = {m.kind: m for m in evaluate(rs, frame)}
    assert set(kinds) == {"match", "event_count"}  # generate: true keeps the base rule's match
    assert kinds["event_count"].group == {} and kinds["event_count"].count == 2
    assert kinds["match"].title == "Failed login" and kinds["match"].level == "low"


@pytest.mark.parametrize("body, base, columns, expected", [
    pytest.param("""
        correlation:
          type: temporal
          rules: [failed_login, export]
          group-by: [user]
          timespan: 15m
    """, BASE_LOGIN + "---\n" + BASE_EXPORT, {
        "user": ["a", "a", "b", "b", "c"],
        "action": ["login", "export", "login", "export", "export"],
        "outcome": ["failure", "success", "failure", "success", "success"],
        "time": [at(0), at(10), at(0), at(40), at(0)],
    }, [("temporal", {"user": "a"}, 2)], id="temporal"),
    pytest.param("""
        correlation:
          type: value_sum
          rules: [export]
          group-by: [account]
          aliases:
            account:
              export: user
          timespan: 1h
          condition:
            gte: 1000
            field: bytes
    """, BASE_EXPORT, {
        "user": ["a", "a", "b", "b"], "action": ["export"] * 4, "bytes": [600, 600, 600, None],
    }, [("value_sum", {"account": "a"}, 1200)], id="value_sum-and-aliases"),
    pytest.param("""
        correlation:
          type: event_count
          rules: failed_login
          group-by: [noSuchField]
          timespan: 5m
          condition:
            gte: 1
    """, BASE_LOGIN, {"user": ["a"], "action": ["login"], "outcome": ["failure"]}, [],
        id="group-by-missing-field-matches-nothing"),
])
def test_correlation_matches(tmp_path: Path, body: str, base: str,
                             columns: dict[str, list[object]],
                             expected: list[tuple[str, dict[str, str], int]]) -> None:
    rs = correlation(tmp_path, body, base=base)
    found = [(m.kind, m.group, m.count) for m in evaluate(rs, events(**columns))]
    assert found == expected


# --------------------------------------------------------------------------- load errors


def test_bad_rule_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken_rule.yml"
    bad.write_text("title: Broken\nid: 1d7e0c34-9a3c-4d8e-8d71-5f2b0a1e6c11\n"
                   "logsource:\n  product: x\ndetection:\n  sel:\n    action|nosuchmod: x\n"
                   "  condition: sel\n")
    with pytest.raises(SigmaError) as info:
        load_rules([tmp_path])
    assert "broken_rule.yml" in str(info.value) and "Broken" in str(info.value)
    assert "nosuchmod" in str(info.value)


@pytest.mark.parametrize("text, needle", [
    ("title: [unclosed\n", "not a valid"),
    ("title: No condition\nid: 1d7e0c34-9a3c-4d8e-8d71-5f2b0a1e6c12\nlogsource:\n  product: x\n"
     "detection:\n  sel:\n    action: x\n", "condition"),
    ("title: Dangling\nid: 1d7e0c34-9a3c-4d8e-8d71-5f2b0a1e6c13\nlogsource:\n  product: x\n"
     "detection:\n  sel:\n    action: x\n  condition: other\n", "other"),
    ("title: Unused\nid: 1d7e0c34-9a3c-4d8e-8d71-5f2b0a1e6c14\nlogsource:\n  product: x\n"
     "detection:\n  sel:\n    action: x\n  unused:\n    user: y\n  condition: sel\n",
     "not referenced"),
    ("title: Bad cidr\nid: 1d7e0c34-9a3c-4d8e-8d71-5f2b0a1e6c15\nlogsource:\n  product: x\n"
     "detection:\n  sel:\n    source_ip|cidr: 10.0.0.0/33\n  condition: sel\n", "CIDR"),
    ("title: Expand\nid: 1d7e0c34-9a3c-4d8e-8d71-5f2b0a1e6c16\nlogsource:\n  product: x\n"
     "detection:\n  sel:\n    user|expand: '%admins%'\n  condition: sel\n", "placeholder"),
    ("", "no Sigma rule"),
])
def test_invalid_rules_raise(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(text)
    with pytest.raises(SigmaError, match=r"bad\.yml") as info:
        load_rules([path])
    assert needle in str(info.value)


def test_missing_path_and_duplicate_ids(tmp_path: Path) -> None:
    with pytest.raises(SigmaError, match="nowhere"):
        load_rules([tmp_path / "nowhere"])
    write_rule(tmp_path, "sel:\n  action: x\ncondition: sel", "one.yml", title="One")
    write_rule(tmp_path, "sel:\n  action: y\ncondition: sel", "two.yml", title="Two")
    with pytest.raises(SigmaError, match="identifier"):
        load_rules([tmp_path])


@pytest.mark.parametrize("kind", ["temporal_ordered", "value_median", "value_percentile"])
def test_unsupported_correlation_type(tmp_path: Path, kind: str) -> None:
    condition = "    gte: 2\n" if kind == "temporal_ordered" else "    gte: 2\n    field: bytes\n"
    with pytest.raises(SigmaError, match=f"correlation type {kind} is not supported") as info:
        correlation(tmp_path, f"correlation:\n  type: {kind}\n  rules: [failed_login]\n"
                              f"  timespan: 5m\n  condition:\n{condition}")
    assert "corr.yml" in str(info.value)


def test_unknown_rule_reference(tmp_path: Path) -> None:
    with pytest.raises(SigmaError, match="not found"):
        correlation(tmp_path, "correlation:\n  type: event_count\n  rules: [nope]\n"
                              "  timespan: 5m\n  condition:\n    gte: 2\n")


def test_correlation_refers_to_rule_in_other_file(tmp_path: Path) -> None:
    (tmp_path / "a_base.yml").write_text(BASE_LOGIN)
    (tmp_path / "b_corr.yml").write_text(
        "title: Many failures\nid: 6f0c7f7e-3f55-4b6f-9d1e-2a9a4e6f1c09\n"
        "correlation:\n  type: event_count\n  rules: [failed_login]\n  timespan: 5m\n"
        "  condition:\n    gte: 2\n")
    rs = load_rules([tmp_path])
    assert len(rs.rules) == 1 and len(rs.correlations) == 1 and len(rs.sources) == 2
    frame = events(user=["a", "b"], action=["login"] * 2, outcome=["failure"] * 2)
    assert [m.kind for m in evaluate(rs, frame)] == ["event_count"]


# --------------------------------------------------------------------------- shipped rules


def test_shipped_rules_load_and_fire() -> None:
    rs = load_rules([SHIPPED])
    assert len(rs.sources) >= 4
    assert len(rs.rules) >= 4 and len(rs.correlations) >= 1
    for rule in (*rs.rules, *rs.correlations):
        assert rule.level in {"informational", "low", "medium", "high", "critical"}
        assert rule.sigma.description and rule.sigma.id is not None

    spray = {"source_ip": ["203.0.113.7"] * 6, "user": [f"user{i}" for i in range(6)],
             "action": ["login"] * 6, "outcome": ["failure"] * 6,
             "time": [at(i) for i in range(6)]}
    other = {"source_ip": ["10.0.0.5"] * 5, "user": ["svc-gateway", "jdoe", "jdoe", "ops",
                                                     "ops"],
             "action": ["export", "export", "update", "audit-stop", "config-change"],
             "outcome": ["success"] * 5,
             "device": ["gw01", "WS12 USB mass storage", "ws12", "pacs01", "console"],
             "code": ["", "", "", "", "PutBucketPolicy"],
             "system": ["pacs", "pacs", "pacs", "pacs", "s3.amazonaws.com"],
             "time": [at(100 + i) for i in range(5)]}
    frame = events(**{k: spray.get(k, [None] * 6) + other.get(k, [None] * 5)
                      for k in sorted({*spray, *other})})
    found = {m.title: m for m in evaluate(rs, frame)}
    assert set(found) == {
        "PHI export to removable media or by a service account",
        "Audit logging stopped or disabled",
        "S3 bucket policy, ACL or public access block changed",
        "Password spraying from one address",
    }  # "Failed login" only feeds the correlation
    assert found["PHI export to removable media or by a service account"].count == 2
    assert found["Password spraying from one address"].group == {"source_ip": "203.0.113.7"}
    assert found["Password spraying from one address"].count == 6


# --------------------------------------------------------------------------- scale


def test_one_rule_over_a_million_rows(tmp_path: Path) -> None:
    n = 1_000_000
    rng = np.random.default_rng(7)
    users = np.array([f"user{i}" for i in range(5000)] + [f"svc-{i}" for i in range(50)])
    frame = schema.normalise(pd.DataFrame({
        "time": pd.Timestamp("2025-01-01", tz="UTC")
        + pd.to_timedelta(np.sort(rng.integers(0, 30 * 86400, n)), unit="s"),
        "user": rng.choice(users, n),
        "action": rng.choice(np.array(["view", "query", "export", "login", "update"]), n),
        "outcome": rng.choice(np.array(["success", "failure"]), n, p=[0.95, 0.05]),
        "source_ip": np.array([f"10.{a}.{b}.{c}" for a, b, c in
                               rng.integers(0, 256, (20_000, 3))])[rng.integers(0, 20_000, n)],
        "bytes": rng.integers(0, 5_000_000, n),
        "event_id": [f"ev{i}" for i in range(n)],
    }))
    rs = rules_from(tmp_path, """
        selection:
          action: EXPORT
          outcome: success
          bytes|gte: 1000000
        service:
          user|startswith: [svc-, admin]
        internal:
          source_ip|cidr: 10.128.0.0/9
        condition: selection and (service or not internal)
    """)
    start = time.perf_counter()
    [match] = evaluate(rs, frame)
    elapsed = time.perf_counter() - start
    print(f"\nsigma: 1 rule over {n:,} rows in {elapsed:.2f} s ({match.count:,} matches)")
    expected = ((frame["action"] == "export") & (frame["outcome"] == "success")
                & (frame["bytes"] >= 1_000_000)
                & (frame["user"].str.startswith("svc-")
                   | ~frame["source_ip"].str.split(".").str[1].astype(int).ge(128)))
    assert match.count == int(expected.sum())


@pytest.mark.parametrize("style", ["flow", "block"])
def test_rule_nested_thousands_deep_is_refused(tmp_path: Path, style: str) -> None:
    """YAML nested thousands deep is refused with the file named, not a RecursionError."""
    head = f"title: Deep\nid: {RULE_ID}\nlogsource:\n  product: x\ndetection:\n"
    if style == "flow":
        body = "  sel: " + "[" * 5000 + "]" * 5000 + "\n"
    else:
        body = "  sel:\n" + "".join(" " * (i + 4) + f"k{i}:\n" for i in range(1500))
        body += " " * 1505 + "x\n"
    path = tmp_path / "deep.yml"
    path.write_text(head + body + "  condition: sel\n")
    with pytest.raises(SigmaError, match=r"deep\.yml: .*nested more than 64 levels"):
        load_rules([path])


def test_rule_file_too_large_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.yml"
    path.write_text("title: Huge\n" + "# filler\n" * 600_000)
    with pytest.raises(SigmaError, match=r"huge\.yml: .*larger than 4 MiB"):
        load_rules([path])


def test_report_names_unknown_fields_and_counts_matches(tmp_path: Path) -> None:
    from hipaa_audit.logs.sigma import report

    known = write_rule(tmp_path, """
        sel:
          eventName: GetObject
        condition: sel
    """, "known.yml", title="Known")
    # requestParameters.* (other than bucketName) and the credentials a role assumption returns
    # are CloudTrail fields the table does not keep
    unknown = write_rule(tmp_path, """
        sel:
          eventName: ConsoleLogin
          requestParameters.userName: admin
          userName|fieldref: responseElements.credentials.accessKeyId
        condition: sel
    """, "unknown.yml", title="Unknown", rule_id="5d8b8a2e-7c1f-4a1e-9d3b-2f7e6c5a4b33")
    rules = load_rules([known, unknown])
    frame = events(code=["GetObject", "GetObject", "ConsoleLogin"], user=["a", "b", "c"])
    matches = evaluate(rules, frame)
    reports = {r.title: r for r in report(rules, frame, matches)}
    assert reports["Known"].matches == 2 and reports["Known"].unknown_fields == ()
    assert reports["Unknown"].matches == 0
    assert reports["Unknown"].unknown_fields == ("requestParameters.userName",
                                                 "responseElements.credentials.accessKeyId")
    assert reports["Unknown"].as_dict()["unknown_fields"] == [
        "requestParameters.userName", "responseElements.credentials.accessKeyId"]


def test_cloudtrail_error_code_and_identity_type_rules_fire(tmp_path: Path) -> None:
    import json

    from hipaa_audit.logs.parsers import parse_file
    from hipaa_audit.redaction import Masker

    trail = tmp_path / "ct.json"
    trail.write_text(json.dumps({"Records": [
        {"eventTime": "2025-03-01T08:00:00Z", "eventName": "GetObject", "eventID": "a",
         "eventSource": "s3.amazonaws.com", "errorCode": "AccessDenied",
         "userIdentity": {"type": "Root", "arn": "arn:aws:iam::111122223333:root"}},
        {"eventTime": "2025-03-01T08:01:00Z", "eventName": "GetObject", "eventID": "b",
         "eventSource": "s3.amazonaws.com",
         "userIdentity": {"type": "IAMUser", "userName": "jdoe"}}]}))
    frame = pd.concat([c.events for c in parse_file(trail, "cloudtrail", Masker(b"k" * 32))])
    # as SigmaHQ's AWS rules write them
    assert hits(tmp_path, """
        sel:
          errorCode: AccessDenied
          userIdentity.type: Root
        condition: sel
    """, frame) == {"a"}
    assert hits(tmp_path, """
        sel:
          userIdentity.type: IAMUser
        condition: sel
    """, frame) == {"b"}


def _console_trail(tmp_path: Path) -> pd.DataFrame:
    """Console sign-ins and a role assumption, parsed as ``analyze logs`` parses a trail."""
    import json

    from hipaa_audit.logs.parsers import parse_file
    from hipaa_audit.redaction import Masker

    def login(event_id: str, minute: int, result: str, mfa: str, **extra: object) -> dict:
        return {"eventTime": f"2025-03-01T08:{minute:02d}:00Z", "eventName": "ConsoleLogin",
                "eventID": event_id, "eventSource": "signin.amazonaws.com",
                "userIdentity": {"type": "IAMUser", "userName": "jdoe"},
                "responseElements": {"ConsoleLogin": result},
                "additionalEventData": {"MFAUsed": mfa, "MobileVersion": "No",
                                        "LoginTo": "https://console.aws.amazon.com/"},
                **extra}

    trail = tmp_path / "ct.json"
    trail.write_text(json.dumps({"Records": [
        login("ok-mfa", 0, "Success", "Yes"),
        login("ok-nomfa", 1, "Success", "No"),
        login("bad", 2, "Failure", "No", errorMessage="Failed authentication"),
        {"eventTime": "2025-03-01T08:03:00Z", "eventName": "AssumeRole", "eventID": "assume",
         "eventSource": "sts.amazonaws.com",
         "userIdentity": {"type": "IAMUser", "userName": "ci"},
         "responseElements": {
             "credentials": {"accessKeyId": "ASIAEXAMPLEKEYID", "sessionToken": "TOKENSECRET",
                             "secretAccessKey": "SECRETKEYVALUE", "expiration": "soon"},
             "assumedRoleUser": {"arn": "arn:aws:sts::123456789012:assumed-role/r/s"},
             "packedPolicySize": 6}}]}))
    return pd.concat([c.events for c in parse_file(trail, "cloudtrail", Masker(b"k" * 32))])


def test_cloudtrail_error_message_and_event_data_rules_fire(tmp_path: Path) -> None:
    from hipaa_audit.logs.sigma import report

    frame = _console_trail(tmp_path)
    # after SigmaHQ's "AWS Successful Console Login Without MFA" (aws_console_login_without_mfa)
    assert hits(tmp_path, """
        selection:
          eventName: ConsoleLogin
          additionalEventData.MFAUsed: 'No'
        filter:
          responseElements.ConsoleLogin: Failure
        condition: selection and not filter
    """, frame) == {"ok-nomfa"}
    # after the SigmaHQ-style console sign-in failure rules
    assert hits(tmp_path, """
        selection:
          eventSource: signin.amazonaws.com
          eventName: ConsoleLogin
          errorMessage: 'Failed authentication'
        condition: selection
    """, frame) == {"bad"}
    assert hits(tmp_path, """
        selection:
          responseElements.ConsoleLogin: Failure
        condition: selection
    """, frame) == {"bad"}
    assert hits(tmp_path, """
        selection:
          responseElements.packedPolicySize|gte: 5
        condition: selection
    """, frame) == {"assume"}
    # none of those fields is reported unknown; a credential field never is kept
    rule = write_rule(tmp_path, """
        sel:
          eventName: AssumeRole
          responseElements.credentials.accessKeyId|startswith: ASIA
          additionalEventData.MFAUsed: 'No'
        condition: sel
    """, "creds.yml", title="Creds")
    rules = load_rules([rule])
    reports = report(rules, frame, evaluate(rules, frame))
    assert reports[0].matches == 0
    assert reports[0].unknown_fields == ("responseElements.credentials.accessKeyId",)
    # in a table without CloudTrail records they are unknown: the rule cannot fire there
    others = events(code=["AssumeRole"], user=["a"])
    assert report(rules, others, evaluate(rules, others))[0].unknown_fields == (
        "additionalEventData.MFAUsed", "responseElements.credentials.accessKeyId")


def test_cloudtrail_detail_is_screened(tmp_path: Path) -> None:
    frame = _console_trail(tmp_path)
    detail = " ".join(str(v) for v in frame["detail"].dropna())
    assert "Failed authentication" in detail and "MFAUsed" in detail
    for secret in ("ASIAEXAMPLEKEYID", "TOKENSECRET", "SECRETKEYVALUE", "credentials"):
        assert secret not in detail
    assert "123456789012" not in detail and "hmac:" in detail  # an account id is an identifier
    assert frame["detail"].notna().all()


def test_correlation_grouped_by_detail_does_not_show_it(tmp_path: Path) -> None:
    frame = _console_trail(tmp_path)
    base = write_rule(tmp_path, """
        sel:
          eventName: ConsoleLogin
        condition: sel
    """, "base.yml", title="Logins", rule_id="2a0c7d4e-0b4e-4c6c-9a51-6e3f1b2d7c10")
    corr = tmp_path / "corr.yml"
    corr.write_text(textwrap.dedent("""\
        title: Many logins per MFA use
        id: 6c1e9f2a-3d4b-4e5f-8a9b-0c1d2e3f4a5b
        level: high
        correlation:
          type: event_count
          rules:
            - 2a0c7d4e-0b4e-4c6c-9a51-6e3f1b2d7c10
          group-by:
            - additionalEventData.MFAUsed
          timespan: 1h
          condition:
            gte: 2
        """))
    matches = [m for m in evaluate(load_rules([base, corr]), frame) if m.kind == "event_count"]
    assert len(matches) == 1 and matches[0].count == 2
    assert "No" not in matches[0].group.values()
    assert matches[0].group["additionalEventData.MFAUsed"].startswith("(withheld")
