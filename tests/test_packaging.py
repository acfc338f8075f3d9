"""The wheel carries the catalog, the E.1-1 table and the HIPAA data: no ../shared needed."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(ROOT)],
        check=True, cwd=build, capture_output=True,
    )
    (path,) = out.glob("hipaa_audit-*.whl")
    return path


def test_wheel_ships_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "hipaa_audit/checks/archive.toml",
        "hipaa_audit/checks/dicom_confidentiality_e1_1.json",
        "hipaa_audit/data/hipaa_security_rule.json",
        "hipaa_audit/data/hipaa_privacy_deidentification.json",
        "hipaa_audit/py.typed",
    ):
        assert needed in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "hipaa-audit = hipaa_audit.cli:main" in text


def test_installed_tool_runs_away_from_the_source_tree(wheel: Path, tmp_path: Path) -> None:
    """Unpack the wheel elsewhere and run it with the source tree out of sys.path."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    code = (
        "import hipaa_audit, hipaa_audit.catalog as c, hipaa_audit.archive.dicom.profile as p;"
        f"assert hipaa_audit.__file__.startswith({str(site)!r}), hipaa_audit.__file__;"
        "assert len(p.load_profile().rows) > 600;"
        "print(len(c.load_catalog()))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) >= 10
