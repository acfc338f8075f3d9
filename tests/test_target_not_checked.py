"""``assess`` reports a configured target it could not examine (``assessment-target-not-checked``)
as an error finding of its own, beside what the rest of the configuration found, and still writes
its reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli
from helpers import pdftext

pytestmark = pytest.mark.e2e


def test_a_configured_path_that_does_not_exist(tmp_path: Path) -> None:
    (tmp_path / "estate").mkdir()
    (tmp_path / "estate" / "readme.txt").write_text("Scratch space, no patient data.\n")
    (tmp_path / "assessment.toml").write_text(
        '[assessment]\norganization = "Org"\nname = "Q"\nassessor = "A"\n'
        '[store]\npath = "history.db"\n'
        '[[archive]]\nname = "share"\npaths = ["estate", "gone"]\n'
        '[report]\noutput_dir = "reports"\n', encoding="utf-8")
    result = run_cli("assess", "--config", str(tmp_path / "assessment.toml"))
    assert result.code == 4, result.stderr  # nothing failed, one target not checked
    doc = json.loads((tmp_path / "reports" / "findings.json").read_text(encoding="utf-8"))
    (finding,) = doc["findings"]
    assert finding["check_id"] == "assessment-target-not-checked"
    assert finding["status"] == "error" and finding["asset"] == str(tmp_path / "gone")
    assert "does not exist" in finding["message"]
    cov = {c["check_id"]: c for c in doc["coverage"]}
    assert (cov["assessment-target-not-checked"]["evaluated"],
            cov["assessment-target-not-checked"]["errors"]) == (1, 1)
    assert cov["archive-unverifiable"]["evaluated"] == 1  # the folder that exists was scanned
    # reported, not skipped: the reports are written all the same
    assert "Business Associate Evidence" in pdftext(tmp_path / "reports" / "baa-evidence.pdf")
