"""The one coverage recorder: its semantics, and that every scanner counts through it.

``Coverage.record`` is the only way into a result's own outcomes (``Coverage.own``); a scanner
whose result carries its counts there, and nothing merged from elsewhere, counted through it.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from helpers import NOW, observation, ok, perm_run, tls
from helpers import perm_estate as estate

from hipaa_audit.archive.scanner import ArchiveRules, judge
from hipaa_audit.aws.client import Answer
from hipaa_audit.catalog import load_catalog
from hipaa_audit.logs.run import LogOptions, analyze_logs
from hipaa_audit.model import AssetResult, Coverage, Status, outcome_of
from hipaa_audit.network.collect import ProbeOptions
from hipaa_audit.network.observation import Observation
from hipaa_audit.network.policy import load_policies
from hipaa_audit.network.rules import judge as judge_endpoint
from hipaa_audit.network.targets import Target
from hipaa_audit.redaction import Masker
from hipaa_audit.s3.rules import BucketContext, S3Rules, Scope, judge_bucket

sys.path.insert(0, str(ROOT / "fixtures"))
import logchain

MASKER = Masker(b"k" * 32)
DENIED = Answer("denied", code="AccessDenied", http=403)


@pytest.fixture(scope="module")
def catalog() -> Any:
    return load_catalog()


# -- the recorder --------------------------------------------------------------------------------

def test_each_outcome_adds_to_its_counters() -> None:
    cov = Coverage()
    cov.record("a", "pass")
    cov.record("b", "fail")
    cov.record("c", "error")
    assert cov.counts == {"a": [1, 0, 0], "b": [1, 1, 0], "c": [1, 0, 1]}
    assert cov.as_list() == [
        {"check_id": "a", "evaluated": 1, "failed": 0, "errors": 0},
        {"check_id": "b", "evaluated": 1, "failed": 1, "errors": 0},
        {"check_id": "c", "evaluated": 1, "failed": 0, "errors": 1}]


@pytest.mark.parametrize("first, then, stands", [
    ("pass", "fail", "fail"), ("fail", "pass", "fail"),
    ("pass", "error", "error"), ("error", "pass", "error"),
    ("error", "fail", "fail"), ("fail", "error", "fail"),
])
def test_a_check_counts_once_per_asset_and_the_strongest_outcome_stands(
        first: Any, then: Any, stands: str) -> None:
    cov = Coverage()
    cov.record("x", first)
    cov.record("x", then)
    assert cov.own == {"x": stands}
    evaluated, failed, errors = cov.counts["x"]
    assert evaluated == 1 and failed == (stands == "fail") and errors == (stands == "error")


def test_outcome_of() -> None:
    assert outcome_of(failed=True, error=True) == "fail"
    assert outcome_of(failed=False, error=True) == "error"
    assert outcome_of(failed=False) == "pass"


def test_merging_assets_adds_them_up() -> None:
    run = Coverage()
    for outcome in ("pass", "pass", "fail", "error", "fail"):
        asset = Coverage()
        asset.record("x", outcome)
        run.merge(asset)
    asset = Coverage()
    asset.record("y", "pass")
    run.merge(asset)
    assert run.counts == {"x": [5, 2, 1], "y": [1, 0, 0]}
    total = Coverage()
    total.merge(run)
    total.merge(run)
    assert total.counts == {"x": [10, 4, 2], "y": [2, 0, 0]}
    # evaluated is always passes + failures + errors
    for evaluated, failed, errors in total.counts.values():
        assert evaluated >= failed + errors


def test_two_halves_of_one_asset_count_it_once() -> None:
    settings, sample = Coverage(), Coverage()
    settings.record("x", "pass")
    sample.record("x", "error")
    sample.record("y", "fail")
    settings.merge(sample, same_asset=True)
    assert settings.counts == {"x": [1, 0, 1], "y": [1, 1, 0]}
    apart = Coverage()
    apart.record("x", "pass")
    apart.merge(sample)
    assert apart.counts["x"] == [2, 0, 1]


def test_the_recorder_crosses_process_boundaries() -> None:
    cov = Coverage()
    cov.record("x", "fail")
    cov.merge(cov)
    again = pickle.loads(pickle.dumps(cov))
    assert again.counts == cov.counts == {"x": [2, 2, 0]}


def test_the_stored_rows_read_back() -> None:
    # a stored run's coverage (SARIF export) is rebuilt from its rows
    rows = {"x": [3, 1, 1]}
    assert Coverage(rows).as_list() == [
        {"check_id": "x", "evaluated": 3, "failed": 1, "errors": 1}]


# -- every scanner counts through it -------------------------------------------------------------

def recorded(result: AssetResult) -> dict[str, str]:
    """The result's outcomes, after checking that they all came from ``record``."""
    assert result.coverage.totals == {}, "counted outside the recorder"
    for f in result.findings:
        if f.status is Status.FAIL:
            assert result.coverage.own.get(f.check_id) == "fail", f.check_id
    return dict(result.coverage.own)


def test_network_counts_through_the_recorder(catalog: Any) -> None:
    t = tls(robot=None, errors={"robot": "client certificate needed"}, compression=True)
    obs = Observation(Target("tls", "h", 443), "tls", reachable="open", speaks="tls", tls=t)
    result = judge_endpoint(obs, load_policies()["nist-800-52r2"], catalog, ProbeOptions(),
                            now=NOW).result
    own = recorded(result)
    assert own["tls-compression"] == "fail"
    assert own["tls-robot"] == "error"
    assert own["network-target-unverifiable"] == "error"
    assert own["tls-heartbleed"] == "pass"


def test_s3_counts_through_the_recorder(catalog: Any) -> None:
    rules = S3Rules.build(catalog, MASKER)
    obs = observation(versioning=ok(Status="Enabled"),
                      policy=DENIED, encryption=ok(ServerSideEncryptionConfiguration={
                          "Rules": [{"ApplyServerSideEncryptionByDefault": {
                              "SSEAlgorithm": "AES256"}}]}))
    result = judge_bucket(obs, BucketContext(aws=True, phi="tagged phi"), Scope(), rules)
    own = recorded(result)
    assert own["s3-kms-for-phi"] == "fail"
    assert own["s3-public-policy"] == "error"
    assert own["s3-default-encryption"] == "pass"


def test_permissions_count_each_asset_once(catalog: Any) -> None:
    _g, _ctx, results = perm_run(catalog, estate())
    by_asset = {r.asset: recorded(r) for r in results}
    # a principal with an unexplained path was judged once for it, not once per path
    path_failed = [a for a, own in by_asset.items() if own.get("perm-unexplained-path") == "fail"]
    assert path_failed
    total = Coverage()
    for r in results:
        total.merge(r.coverage)
    evaluated, failed, _ = total.counts["perm-unexplained-path"]
    assert failed == len(path_failed) <= evaluated
    assert evaluated == sum("perm-unexplained-path" in own for own in by_asset.values())


def test_archive_counts_through_the_recorder(catalog: Any) -> None:
    rules = ArchiveRules.build(catalog, MASKER)
    text = b"MSH|^~\\&|RIS|HOSP|PACS|HOSP|202601011200||ORU^R01|1|P|2.5\r" \
           b"PID|1||123456^^^HOSP^MR||Doe^Jane||19700101|F\r"
    result = judge(None, "export.hl7", rules, named_dicom=False, head=text)
    own = recorded(result)
    assert own["archive-unverifiable"] == "pass"
    assert own["archive-unencrypted-phi"] == "fail"
    broken = judge(None, "IM0001.dcm", rules, named_dicom=True, head=b"not dicom at all")
    assert recorded(broken)["archive-unverifiable"] == "error"
    assert recorded(rules.unchecked("gone.dcm", "it vanished")) == {
        "archive-unverifiable": "error"}


def test_logs_count_through_the_recorder(catalog: Any, tmp_path: Path) -> None:
    chain = tmp_path / "audit-chain.jsonl"
    logchain.write_chain(chain, logchain.sample_records(40))
    results = list(analyze_logs(LogOptions((str(chain), str(tmp_path / "none-*.log")),
                                           cache=False), catalog, MASKER))
    by_asset: dict[str, dict[str, str]] = {}
    for r in results:
        for check_id, outcome in recorded(r).items():
            assert by_asset.setdefault(r.asset, {}).setdefault(check_id, outcome) == outcome
    assert by_asset[str(tmp_path / "none-*.log")] == {"log-unverifiable": "error"}
    own = by_asset[str(chain)]
    assert own["log-unverifiable"] == "pass" and own["log-integrity"] == "pass"
    assert {k for k in own if k.startswith("log-")} >= {"log-bulk-export", "log-off-hours"}
