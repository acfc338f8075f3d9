"""``scan permissions`` end to end: moto (IAM + S3) on 127.0.0.1, real folders with modes and
POSIX ACLs, a PACS export and a roster, against a baseline that matches and one that drifted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, run_cli
from helpers import render_every_format, scan_json

sys.path.insert(0, str(ROOT / "fixtures"))

import permestate
import s3peers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

PACS = """\
user,role,permissions,status,last_login,type
alice,Radiologist,view,active,2026-11-20,user
bob,Radiologist,view;export,active,2026-11-21,user
carol,Radiologist,view,active,2026-05-01,user
kiosk,Viewer,view,active,2026-11-21,service
"""
ROSTER = """\
id,name,role,status,end_date,accounts
alice,Zenobia Quartermaine,reader,active,,
bob,Barnaby Wolstenholme,reader,active,,
carol,Carolina Fitzwilliam,reader,terminated,2026-06-30,
dave,Dagobert Featherstonehaugh,admin,active,,
erin,Erinna Marchbanks,reader,active,,
"""
NAMES = ("Zenobia", "Quartermaine", "Wolstenholme", "Fitzwilliam", "Featherstonehaugh",
         "Marchbanks")

#: The roles of the baselines: name → its ``allow`` list (TOML).
ROLES = {
    "reader": '[{ resource = "s3://imaging-archive", actions = ["read"] },\n'
              '         { resource = "pacs:main", actions = ["read"] }]',
    "full": '[{ resource = "s3://imaging-archive", actions = ["*"] }]',
    "admin": '[{ resource = "*", actions = ["admin"] }]',
    "ingest": '[{ resource = "s3://imaging-archive/incoming", actions = ["write"] }]',
    "public": '[{ resource = "s3://public-share", actions = ["read"] },\n'
              '         { resource = "s3://research-deid", actions = ["read"] }]',
    "kiosk": '[{ resource = "pacs:main", actions = ["read"] }]',
}
#: Who holds which roles when everything in the estate is explained: principal → TOML value.
HOLDERS = {name.strip('"'): held for name, held in (line.split(" = ", 1) for line in """\
"aws:group/radiologists" = ["reader"]
"aws:group/admins" = ["admin"]
"aws:user/dave" = ["admin"]
"aws:user/erin" = ["full"]
"aws:user/frank" = ["reader"]
"aws:user/svc-archiver" = ["ingest"]
"aws:role/archive-reader" = ["reader"]
"aws:account/999999999999" = ["reader"]
"aws:role/ec2-ingest" = ["ingest"]
"aws:service/ec2.amazonaws.com" = ["ingest"]
"anyone" = ["public"]
"fs:user/root" = ["admin"]
"fs:group/root" = ["admin"]
"pacs:main:role/Radiologist" = ["reader"]
"pacs:main:role/Viewer" = ["kiosk"]
"pacs:main:user/kiosk" = ["kiosk"]
"*:user/carol" = ["reader"]
"*:user/alice" = ["reader"]
"*:user/bob" = ["reader"]
""".splitlines())}

def baseline(roles: dict[str, str], holders: dict[str, str], trusted: str | None = None) -> str:
    """An access baseline (TOML) with these roles and holders, PHI resources, trusted account."""
    text = "".join(f"[roles.{name}]\nallow = {allow}\n" for name, allow in roles.items())
    text += "\n[principals]\n" + "".join(f'"{p}" = {held}\n' for p, held in holders.items())
    text += '\n[phi]\nresources = ["s3://imaging-archive", "pacs:main", "fs:*/share"]\n'
    return text + (f'\n[trusted]\naccounts = ["{trusted}"]\n' if trusted else "")


# Everything in the estate explained: the roles, who holds them, the public buckets on purpose.
MATCHING = baseline(ROLES, HOLDERS, trusted="999999999999")

# The same organisation's baseline as it was approved: no public buckets, erin reads only,
# frank has no access, no one outside, the kiosk role does not exist.
DRIFTED = baseline(
    {name: ROLES[name] for name in ("reader", "admin", "ingest")},
    {p: HOLDERS[p] for p in ("aws:group/radiologists", "aws:group/admins", "aws:user/dave",
                             "aws:user/svc-archiver", "aws:role/archive-reader",
                             "aws:role/ec2-ingest", "aws:service/ec2.amazonaws.com",
                             "fs:user/root", "fs:group/root", "pacs:main:role/Radiologist")}
    | {"aws:group/admins": '{ roles = ["admin"], members = ["aws:user/dave"] }'})


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("perm")
    server, planted = permestate.start_aws_estate(folder / "moto")
    share = folder / "share"
    (share / "studies").mkdir(parents=True)
    (share / "studies" / "a.dcm").write_bytes(b"\0" * 132 + b"DICM")
    share.chmod(0o750)
    (share / "studies").chmod(0o750)
    (share / "studies" / "a.dcm").chmod(0o640)
    (folder / "pacs.csv").write_text(PACS, encoding="utf-8")
    (folder / "roster.csv").write_text(ROSTER, encoding="utf-8")
    (folder / "matching.toml").write_text(MATCHING, encoding="utf-8")
    (folder / "drifted.toml").write_text(DRIFTED, encoding="utf-8")
    try:
        yield {"folder": folder, "server": server, "planted": planted, "share": share}
    finally:
        server.stop()


def scan(estate: dict[str, Any], baseline: str, *extra: str, fmt: str = "json",
         sources: tuple[str, ...] | None = None) -> Any:
    folder: Path = estate["folder"]
    server: s3peers.S3Server = estate["server"]
    srcs = sources or ("aws", f"fs:{estate['share']}", f"pacs:main={folder / 'pacs.csv'}",
                       f"roster:{folder / 'roster.csv'}")
    result = run_cli("scan", "permissions", *srcs, "--baseline", str(folder / baseline),
                     "--endpoint-url", server.endpoint_url, "--format", fmt, *extra,
                     env=server.env())
    assert "Traceback" not in result.stderr, result.stderr
    return result


def failed(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(f["check_id"], f["asset"]) for f in doc["findings"] if f["status"] == "fail"}


def test_matching_baseline_is_quiet(estate: dict[str, Any]) -> None:
    # the roster is left out: carol has left, which no baseline can make right
    srcs = ("aws", f"fs:{estate['share']}", f"pacs:main={estate['folder'] / 'pacs.csv'}")
    result = scan(estate, "matching.toml", sources=srcs)
    doc = json.loads(result.stdout)
    assert failed(doc) == set(), [f["message"] for f in doc["findings"]]
    assert result.code == 0
    counts = {c["check_id"]: c["evaluated"] for c in doc["coverage"]}
    # coverage counts assets: each of the estate's 8 resources once, however many grants it has
    assert counts["perm-grant-outside-baseline"] == 8 and counts["perm-anyone-access"] == 8


@pytest.fixture(scope="module")
def drifted(estate: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The drifted baseline's scan of every source: its JSON run, with both graph files."""
    graphs = tmp_path_factory.mktemp("graphs")
    result = scan(estate, "drifted.toml", "--graph-json", str(graphs / "g.json"),
                  "--graphml", str(graphs / "g.graphml"))
    return {"result": result, "graphs": [graphs / "g.json", graphs / "g.graphml"]}


def test_drifted_baseline_reports_each_difference_with_its_path(drifted: dict[str, Any]) -> None:
    result = drifted["result"]
    doc = json.loads(result.stdout)
    found = failed(doc)
    expected = {
        ("perm-beyond-role", "s3://imaging-archive"),             # erin: s3:*, reader
        ("perm-grant-outside-baseline", "s3://imaging-archive"),   # frank via the bucket policy
        ("perm-anyone-access", "s3://public-share"),              # public-read ACL
        ("perm-anyone-access", "s3://research-deid"),             # Principal * policy
        ("perm-cross-account", "s3://imaging-archive"),           # 999999999999 assumes a role
        ("perm-unexplained-path", "aws:user/carol"),              # departed, still in the group
        ("perm-unexplained-path", "pacs:main:user/carol"),
        ("perm-unexplained-path", "pacs:main:user/kiosk"),        # a role nobody approved
        ("perm-grant-outside-baseline", "pacs:main"),             # the Viewer role's grant
        ("perm-account-not-in-roster", "aws:user/carol"),
        ("perm-account-not-in-roster", "pacs:main:user/carol"),
        ("perm-account-not-in-roster", "aws:user/frank"),         # no roster entry at all
    }
    assert expected <= found, sorted(expected - found)
    by_key = {(f["check_id"], f["asset"]): f for f in doc["findings"]}
    erin = by_key[("perm-beyond-role", "s3://imaging-archive")]
    assert "aws:user/erin" in erin["message"] and "beyond: write+delete+admin" in erin["message"]
    assert "164.308(a)(4)(ii)(B)" in erin["hipaa"]
    cross = by_key[("perm-cross-account", "s3://imaging-archive")]
    assert cross["severity"] == "high"
    assert "-can-assume-> aws:role/archive-reader" in cross["locations"][0]["path"]
    carol = by_key[("perm-unexplained-path", "aws:user/carol")]
    assert carol["locations"][0]["path"].startswith(
        "aws:user/carol -member-of-> aws:group/radiologists -iam:policy/imaging-read")
    roster = by_key[("perm-account-not-in-roster", "aws:user/carol")]
    assert "2026-06-30" in roster["message"] and roster["severity"] == "high"
    # things the baseline explains stay quiet: alice and bob (roster readers in radiologists),
    # dave (the approved admin), the service account's prefix grant
    quiet = {"aws:user/alice", "aws:user/bob", "aws:user/dave", "aws:user/svc-archiver",
             "pacs:main:user/alice", "pacs:main:user/bob"}
    assert not {a for _c, a in found} & quiet
    assert not any("aws:user/dave" in f["message"] or "svc-archiver" in f["message"]
                   for f in doc["findings"])
    assert result.code == 3


def test_graph_files_hold_the_access_graph(estate: dict[str, Any],
                                           drifted: dict[str, Any]) -> None:
    """``--graph-json`` and ``--graphml`` of the scan of every source; a second scan of every
    source (AWS included) compared with that graph finds no grant added or removed."""
    graph = json.loads(drifted["graphs"][0].read_text())
    assert graph["snapshot"]["grants"] and graph["edges"]
    import networkx as nx

    g = nx.read_graphml(drifted["graphs"][1])
    assert g.has_edge("aws:user/alice", "aws:group/radiologists")
    assert g.nodes["s3://imaging-archive"]["phi"] is True
    # nothing changed: the same grants again (this scan in this process, --previous FILE)
    folder: Path = estate["folder"]
    server: s3peers.S3Server = estate["server"]
    _, again = scan_json("permissions", server.env(),
                         sources=["aws", f"fs:{estate['share']}",
                                  f"pacs:main={folder / 'pacs.csv'}",
                                  f"roster:{folder / 'roster.csv'}"],
                         baseline=folder / "drifted.toml", endpoint_url=server.endpoint_url,
                         previous=str(drifted["graphs"][0]))
    changes = [f["message"] for f in again["findings"]
               if f["check_id"] in ("perm-grant-added", "perm-grant-removed")]
    assert changes == []
    assert "perm-grant-added" in {c["check_id"] for c in again["coverage"]}  # compared


def test_world_readable_share_and_stray_acl(estate: dict[str, Any], tmp_path: Path) -> None:
    share = tmp_path / "share"
    (share / "studies").mkdir(parents=True)
    share.chmod(0o755)
    (share / "studies").chmod(0o750)
    subprocess.run(["setfacl", "-m", "u:nobody:rwx", str(share / "studies")], check=True)
    _, doc = scan_json("permissions", {}, sources=[f"fs:{share}"],
                       baseline=estate["folder"] / "drifted.toml")
    by_key = {(f["check_id"], f["asset"]): f for f in doc["findings"]}
    public = by_key[("perm-anyone-access", f"fs:{share}")]
    assert public["severity"] == "high" and "any local account" in public["message"]
    stray = by_key[("perm-grant-outside-baseline", f"fs:{share}/studies")]
    assert "fs:user/nobody" in stray["message"] and "fs:acl" in stray["message"]
    assert ("perm-anyone-access", f"fs:{share}/studies") not in by_key


def test_changes_since_previous_graph(estate: dict[str, Any], tmp_path: Path) -> None:
    # the PACS export alone: what changes is in it (the graph files of every source are
    # checked on the drifted scan's)
    folder: Path = estate["folder"]
    pacs = tmp_path / "pacs.csv"
    pacs.write_text(PACS, encoding="utf-8")
    srcs = (f"pacs:main={pacs}",)
    first = scan(estate, "matching.toml", "--graph-json", str(tmp_path / "g.json"), sources=srcs)
    assert first.code == 0, first.stdout
    assert json.loads((tmp_path / "g.json").read_text())["snapshot"]["grants"]
    # quiet again when nothing changed (the later scans in this process: --previous FILE)
    compared = {"sources": list(srcs), "baseline": folder / "matching.toml",
                "previous": str(tmp_path / "g.json")}
    _, same = scan_json("permissions", {}, **compared)
    assert failed(same) == set()
    # a new PACS admin, and carol's account removed
    pacs.write_text(PACS.replace("carol,Radiologist,view,active,2026-05-01,user\n", "")
                    + "gpatel,PACS Admin,admin,active,2026-12-01,user\n", encoding="utf-8")
    code, doc = scan_json("permissions", {}, **compared)
    messages = {f["check_id"]: [] for f in doc["findings"]}
    for f in doc["findings"]:
        messages[f["check_id"]].append(f["message"])
    added = " ".join(messages["perm-grant-added"])
    removed = " ".join(messages["perm-grant-removed"])
    assert "pacs:main:role/PACS Admin -> pacs:main" in added
    assert "pacs:main:user/gpatel member-of pacs:main:role/PACS Admin" in added
    assert "pacs:main:user/carol member-of pacs:main:role/Radiologist" in removed
    assert code == 0
    assert folder.exists()


def test_no_roster_name_leaves_in_any_format(estate: dict[str, Any],
                                            drifted: dict[str, Any]) -> None:
    # the command's own output (json), its stderr and both graph files
    result = drifted["result"]
    texts = {"command": result.stdout + result.stderr
             + "".join(p.read_text() for p in drifted["graphs"])}
    # and every format's writer on one in-process scan of the same sources
    folder: Path = estate["folder"]
    server: s3peers.S3Server = estate["server"]
    texts.update(render_every_format(
        "permissions", server.env(), baseline=folder / "drifted.toml",
        sources=["aws", f"fs:{estate['share']}", f"pacs:main={folder / 'pacs.csv'}",
                 f"roster:{folder / 'roster.csv'}"], endpoint_url=server.endpoint_url))
    assert set(texts) == {"command", "json", "jsonl", "sarif", "csv", "table"}
    for fmt, text in texts.items():
        assert "perm-account-not-in-roster" in text, fmt  # the findings are there
        for name in NAMES:
            assert name.lower() not in text.lower(), (fmt, name)


@pytest.mark.parametrize("args, message", [
    (("aws", "--baseline", "missing.toml"), "no such baseline file"),
    (("nfs:/x", "--baseline", "drifted.toml"), "unknown source"),
    (("roster:nowhere.csv", "--baseline", "drifted.toml"), "nowhere.csv"),
    (("aws", "--baseline", "drifted.toml", "--previous", "nothing.json"), "--previous"),
])
def test_bad_input_is_a_clear_message(estate: dict[str, Any], args: tuple[str, ...],
                                      message: str) -> None:
    result = run_cli("scan", "permissions", *args, cwd=estate["folder"],
                     env=estate["server"].env())
    assert result.code == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_unreachable_endpoint_fails_fast(estate: dict[str, Any]) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run_cli("scan", "permissions", "aws", "--baseline", "drifted.toml",
                     "--endpoint-url", f"http://127.0.0.1:{port}", cwd=estate["folder"],
                     env={**estate["server"].env(), "AWS_MAX_ATTEMPTS": "1"})
    assert result.code == 2 and "cannot reach" in result.stderr


def test_malformed_export_row_is_unverifiable(estate: dict[str, Any], tmp_path: Path) -> None:
    pacs = tmp_path / "pacs.csv"
    pacs.write_text(PACS + "mallory,Radiologist,teleport,active,2026-11-21,user\n"
                    + "onlyone\n", encoding="utf-8")
    _, doc = scan_json("permissions", {}, sources=[f"pacs:main={pacs}"],
                       baseline=estate["folder"] / "matching.toml")
    errors = [f for f in doc["findings"] if f["check_id"] == "perm-unverifiable"]
    assert len(errors) == 2 and all(f["status"] == "error" for f in errors)
    assert {f["asset"] for f in errors} == {f"{pacs}:6", f"{pacs}:7"}
    assert "teleport" not in json.dumps(doc)
    assert os.path.exists(pacs)


def test_previous_from_the_history_store(estate: dict[str, Any], tmp_path: Path) -> None:
    from hipaa_audit.store import Store

    srcs = (f"pacs:main={estate['folder'] / 'pacs.csv'}",)  # any source will do
    first = scan(estate, "matching.toml", "--graph-json", str(tmp_path / "g.json"),
                 sources=srcs)
    assert first.code == 0
    snapshot = json.loads((tmp_path / "g.json").read_text())["snapshot"]
    # an assessment run of last quarter, stored with its permission scan, minus one grant
    dropped = next(g for g in snapshot["grants"] if g.startswith("pacs:main:role/Viewer "))
    old = {**snapshot, "grants": [g for g in snapshot["grants"] if g != dropped]}
    with Store(tmp_path / "history.db") as store:
        seq = store.open_run("20260901T000000Z-aaaaaaaa", "assess", "2026-09-01T00:00:00Z",
                             "0.1.0", None)
        store.close_run(seq, "2026-09-01T00:01:00Z",
                        {"run": {"evidence": {"permissions": {"snapshot": old}}}})
        seq = store.open_run("20261001T000000Z-bbbbbbbb", "assess", "2026-10-01T00:00:00Z",
                             "0.1.0", None)
        store.close_run(seq, "2026-10-01T00:01:00Z", {"run": {"evidence": {}}})
    after = scan(estate, "matching.toml", "--previous", "20260901T000000Z-aaaaaaaa",
                 "--store", str(tmp_path / "history.db"), "--fail-on", "none", sources=srcs)
    doc = json.loads(after.stdout)
    added = [f["message"] for f in doc["findings"] if f["check_id"] == "perm-grant-added"]
    assert added == [f"Added since the previous run: {dropped}."]
    assert doc["run"]["options"]["previous"] == "run 20260901T000000Z-aaaaaaaa"
    # the latest run has no permission scan: a clear message, not a silent empty diff
    latest = scan(estate, "matching.toml", "--previous", "latest", "--store",
                  str(tmp_path / "history.db"), sources=srcs)
    assert latest.code == 2 and "has no permissions scan" in latest.stderr


def test_unwritable_graph_path_is_a_clear_message(estate: dict[str, Any], tmp_path: Path) -> None:
    result = scan(estate, "matching.toml", "--graphml", str(tmp_path / "no" / "such" / "g.xml"),
                  sources=(f"pacs:main={estate['folder'] / 'pacs.csv'}",))
    assert result.code == 2 and "cannot write the graph" in result.stderr
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------------------------------
# scan s3 and scan permissions on the same policies (AWS documentation's bucket-policy examples)


def _aws_example_policies() -> dict[str, dict[str, Any]]:
    def arn(bucket: str, objects: bool = True) -> str:
        return f"arn:aws:s3:::{bucket}" + ("/*" if objects else "")

    return {
        # "Restricting access to a specific organization with aws:PrincipalOrgID"
        "org-only": {"Version": "2012-10-17", "Statement": [{
            "Sid": "AllowGetObject", "Principal": {"AWS": "*"}, "Effect": "Allow",
            "Action": "s3:GetObject", "Resource": arn("org-only"),
            "Condition": {"StringEquals": {"aws:PrincipalOrgID": ["o-aa111bb222"]}}}]},
        # "Grant read-only permission to an anonymous user"
        "anonymous-read": {"Version": "2012-10-17", "Statement": [{
            "Sid": "PublicRead", "Effect": "Allow", "Principal": "*",
            "Action": ["s3:GetObject", "s3:GetObjectVersion"],
            "Resource": [arn("anonymous-read")]}]},
        # "Restrict access to a VPC endpoint", with the Allow the Deny protects
        "vpce-only": {"Version": "2012-10-17", "Statement": [
            {"Sid": "Access-to-specific-VPCE-only", "Principal": "*", "Action": "s3:*",
             "Effect": "Deny", "Resource": [arn("vpce-only", False), arn("vpce-only")],
             "Condition": {"StringNotEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}}},
            {"Sid": "Allow-through-VPCE", "Principal": "*", "Action": "s3:GetObject",
             "Effect": "Allow", "Resource": arn("vpce-only"),
             "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}}}]},
        # "Granting permissions to multiple accounts", from a template never filled in, and
        # a role deleted since (IAM then shows its unique id)
        "stale-principals": {"Version": "2012-10-17", "Statement": [{
            "Sid": "AddCannedAcl", "Effect": "Allow",
            "Principal": {"AWS": ["arn:aws:iam::${AccountId}:root", "AROADBQP57FF2AEXAMPLE"]},
            "Action": ["s3:PutObject", "s3:PutObjectAcl"], "Resource": arn("stale-principals")}]},
    }


@pytest.fixture(scope="module")
def example_policies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("examples")
    server = s3peers.start_moto(folder)
    try:
        s3 = server.client()
        iam = server.client("iam")
        for bucket, doc in _aws_example_policies().items():
            s3.create_bucket(Bucket=bucket)
            s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(doc))
        # a compliance auditor reads every bucket's configuration, never an object
        trust = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"Service": "ec2.amazonaws.com"}}]}
        iam.create_role(RoleName="config-auditor", AssumeRolePolicyDocument=json.dumps(trust))
        iam.put_role_policy(RoleName="config-auditor", PolicyName="audit",
                            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
                                "Effect": "Allow", "Resource": "*",
                                "Action": ["s3:GetBucketPolicy", "s3:GetBucketAcl",
                                           "s3:GetEncryptionConfiguration",
                                           "s3:GetBucketPublicAccessBlock",
                                           "s3:GetObjectAcl", "s3:GetObjectTagging"]}]}))
        (folder / "baseline.toml").write_text(
            '[phi]\nresources = ["s3://org-only", "s3://anonymous-read", "s3://vpce-only", '
            '"s3://stale-principals"]\n')
        yield {"server": server, "folder": folder}
    finally:
        server.stop()


def test_scan_s3_and_scan_permissions_read_a_policy_alike(example_policies: dict[str, Any]
                                                         ) -> None:
    # both scans in this process, as the commands make them (--format json --fail-on none)
    server: s3peers.S3Server = example_policies["server"]
    _, s3_doc = scan_json("s3", server.env(), endpoint_url=server.endpoint_url,
                          provider="aws", sample_objects=0)
    _, perm_doc = scan_json("permissions", server.env(), sources=["aws"],
                            baseline=example_policies["folder"] / "baseline.toml",
                            endpoint_url=server.endpoint_url)
    public_s3 = {f["asset"] for f in s3_doc["findings"] if f["check_id"] == "s3-public-policy"}
    public_perm = {f["asset"] for f in perm_doc["findings"]
                   if f["check_id"] == "perm-anyone-access"}
    assert public_s3 == public_perm == {"s3://anonymous-read"}
    # the stale principals are unverifiable in both
    unverified_s3 = {f["asset"] for f in s3_doc["findings"] if f["status"] == "error"}
    unverified_perm = [f for f in perm_doc["findings"] if f["status"] == "error"]
    assert "s3://stale-principals" in unverified_s3
    assert {f["asset"] for f in unverified_perm} == {"s3://stale-principals"}
    assert any("AROADBQP57FF2AEXAMPLE" in f["message"] for f in unverified_perm)
    # the organisation's and the VPC endpoint's readers are not anyone, but are outside the
    # (empty) baseline; reading configuration reads no PHI: the auditor role is not named
    outside = {(f["asset"], f["locations"][0]["principal"]) for f in perm_doc["findings"]
               if f["check_id"] == "perm-grant-outside-baseline"}
    assert ("s3://org-only",
            "aws:confined/StringEquals aws:PrincipalOrgID=o-aa111bb222") in outside
    assert ("s3://vpce-only", "aws:confined/StringEquals aws:SourceVpce=vpce-1a2b3c4d") in outside
    assert not [f for f in perm_doc["findings"] if "config-auditor" in json.dumps(f)]
