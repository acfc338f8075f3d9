"""TOML files from the user nested thousands deep: a clear exit-2 message, never exit 1."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from conftest import ROOT, run_cli
from helpers import pdftext

from hipaa_audit.config import MAX_TOML_DEPTH, ConfigError, load_config, parse_toml

pytestmark = pytest.mark.e2e

DEPTH = 5000
DEEP = {
    "arrays": "x = " + "[" * DEPTH + "]" * DEPTH + "\n",
    "inline-tables": "x = " + "{a = " * DEPTH + "1" + "}" * DEPTH + "\n",
    "dotted-keys": ".".join(["a"] * DEPTH) + " = 1\n",
    "table-headers": "[" + ".".join(["a"] * DEPTH) + "]\nb = 1\n",
}


@pytest.mark.parametrize("kind", sorted(DEEP))
def test_parse_toml_refuses_deep_nesting(kind: str) -> None:
    with pytest.raises(tomllib.TOMLDecodeError, match="nested more than"):
        parse_toml(DEEP[kind])


def test_parse_toml_reads_ordinary_files_and_nesting_up_to_the_limit() -> None:
    limit = "x = " + "[" * (MAX_TOML_DEPTH - 1) + "]" * (MAX_TOML_DEPTH - 1) + "\n"
    assert parse_toml(limit)["x"]
    for path in (ROOT / "checks").glob("*.toml"):
        assert parse_toml(path.read_text(encoding="utf-8")) == tomllib.loads(
            path.read_text(encoding="utf-8"))


def _deep(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"deep-{kind}.toml"
    path.write_text(DEEP[kind], encoding="utf-8")
    return path


def _refused(args: list[str], path: Path) -> None:
    result = run_cli(*args)
    assert result.code == 2, result.stderr
    assert str(path) in result.stderr and "nested more than" in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


@pytest.mark.parametrize("kind", ["arrays", "inline-tables", "dotted-keys"])
def test_deep_assessment_file_is_refused(tmp_path: Path, kind: str) -> None:
    cfg = _deep(tmp_path, kind)
    with pytest.raises(ConfigError, match="nested more than") as caught:
        load_config(cfg)  # what ``assess --config`` reads the file with
    assert str(cfg) in str(caught.value)


def test_deep_assessment_file_exits_2(tmp_path: Path) -> None:
    cfg = _deep(tmp_path, "arrays")
    _refused(["assess", "--config", str(cfg), "--store", str(tmp_path / "h.db")], cfg)


def test_deep_permission_baseline_and_mappings_exit_2(tmp_path: Path) -> None:
    deep = _deep(tmp_path, "arrays")
    share = tmp_path / "share"
    share.mkdir()
    _refused(["scan", "permissions", "--baseline", str(deep), f"fs:{share}"], deep)
    baseline = tmp_path / "baseline.toml"
    baseline.write_text('[roles.admin]\nallow = [{ resource = "fs:*", actions = ["read"] }]\n'
                        '[principals]\n"fs:user/root" = ["admin"]\n')
    for option in ("--pacs-mapping", "--roster-mapping"):
        result = run_cli("scan", "permissions", "--baseline", str(baseline), option, str(deep),
                         f"fs:{share}")
        assert result.code == 2, result.stderr
        assert str(deep) in result.stderr and "Traceback" not in result.stderr


def test_deep_log_mapping_and_settings_exit_2(tmp_path: Path) -> None:
    deep = _deep(tmp_path, "inline-tables")
    log = ROOT / "tests" / "data" / "logs" / "audit.jsonl"
    _refused(["analyze", "logs", str(log), "--mapping", str(deep)], deep)
    _refused(["analyze", "logs", str(log), "--settings", str(deep)], deep)


def test_deep_baseline_named_by_the_assessment_is_not_examined_not_a_crash(
        tmp_path: Path) -> None:
    deep = _deep(tmp_path, "arrays")
    share = tmp_path / "share"
    share.mkdir()
    cfg = tmp_path / "assessment.toml"
    cfg.write_text('[assessment]\norganization = "Clinic"\nname = "Q1"\nassessor = "A. O."\n'
                   f'[permissions]\nbaseline = "{deep}"\nsources = ["fs:{share}"]\n'
                   '[report]\noutput_dir = "reports"\n')
    result = run_cli("assess", "--config", str(cfg), "--store", str(tmp_path / "h.db"),
                     "--fail-on", "none")
    assert result.code == 4, result.stderr  # the permission scan is reported unverifiable
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    # the report names the group among what was not examined, and why
    report = pdftext(tmp_path / "reports" / "risk-analysis.pdf")
    assert "permissions: not examined:" in report
    assert "its targets are listed as not checked" in report
