"""Shared test helpers: an isolated data folder, and running the real CLI as a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def open_tree() -> Iterator[Path]:
    """A folder every account can enter (pytest's own tmp folders are private, mode 0700), so
    that exposure is judged on real modes."""
    root = Path(tempfile.mkdtemp(prefix="hipaa-audit-open-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(autouse=True)
def evidence_fits_its_type(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Check every finding a test builds in this process against its check's evidence types.

    ``Check.finding`` is wrapped (it still builds the real finding); at the end of the test,
    any location that fits none of the types ``hipaa_audit.evidence.CHECK_EVIDENCE`` declares
    for its check fails the test. Tests of the checker itself take the list and empty it.
    """
    from hipaa_audit.catalog import Check
    from hipaa_audit.evidence import evidence_problems

    problems: list[str] = []
    build = Check.finding

    def checked(self: Check, *args: Any, **kwargs: Any) -> Any:
        finding = build(self, *args, **kwargs)
        problems.extend(evidence_problems(finding.check_id,
                                          [dict(loc.fields) for loc in finding.locations]))
        return finding

    monkeypatch.setattr(Check, "finding", checked)
    yield problems
    assert not problems, "evidence that fits no declared type:\n" + "\n".join(problems[:20])


@pytest.fixture(scope="session", autouse=True)
def isolated_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keep the fingerprint key (and later the history store) out of the user's home."""
    path = tmp_path_factory.mktemp("data")
    old = os.environ.get("HIPAA_AUDIT_DATA_DIR")
    os.environ["HIPAA_AUDIT_DATA_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("HIPAA_AUDIT_DATA_DIR", None)
    else:
        os.environ["HIPAA_AUDIT_DATA_DIR"] = old


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 300) -> CliResult:
    """Run ``python -m hipaa_audit ARGS`` as a user would; never raises on a non-zero exit."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "hipaa_audit", *args],
        capture_output=True, text=True, cwd=cwd, env=full_env, timeout=timeout,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def by_asset(doc: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Group a findings document's findings by asset."""
    out: dict[str, list[dict[str, Any]]] = {}
    for f in doc["findings"]:
        out.setdefault(f["asset"], []).append(f)
    return out


def run_bench(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``bench/SCRIPT ARGS`` from the project root; never raises on a non-zero exit."""
    return subprocess.run([sys.executable, str(ROOT / "bench" / script), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=timeout)


@pytest.fixture
def cli() -> Any:
    return run_cli
