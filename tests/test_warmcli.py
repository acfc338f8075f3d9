"""``run_cli``'s warm runs (``tests/warmcli.py``) behave as runs of a new interpreter: the same
output and exit code, their own working folder, environment and streams, a timeout that stops
them, and a new interpreter where the environment changes how Python starts."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, CliResult, _warm, finish_cli, run_cli, start_cli
from warmcli import needs_new_interpreter

pytestmark = pytest.mark.fixtures


def cold(*args: str, cwd: Path | None = None) -> CliResult:
    return finish_cli(start_cli(*args, cwd=cwd))


def test_a_warm_run_answers_as_a_new_interpreter(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("MRN 12345678 seen today\n", encoding="utf-8")
    for args in (("checks", "list", "--format", "json"),
                 ("scan", "archive", "notes.txt", "--format", "json", "--fail-on", "low"),
                 ("scan", "archive", "missing"), ("no-such-command",)):
        warm, new = run_cli(*args, cwd=tmp_path), cold(*args, cwd=tmp_path)
        assert warm.code == new.code, (args, warm.stderr, new.stderr)
        if "--format" in args:
            a, b = json.loads(warm.stdout), json.loads(new.stdout)
            for doc in (a, b):  # what differs from run to run
                for key in ("started_at", "finished_at", "id"):
                    doc.get("run", {}).pop(key, None)
            assert a == b
        else:
            assert (warm.stdout, warm.stderr) == (new.stdout, new.stderr)
    assert run_cli("scan", "archive", "notes.txt", "--fail-on", "low", cwd=tmp_path).code == 3


def test_each_run_has_its_own_environment_folder_and_streams(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (tmp_path / "a.txt").write_text("nothing here\n", encoding="utf-8")
    result = run_cli("scan", "archive", "a.txt", cwd=tmp_path,
                     env={"HIPAA_AUDIT_DATA_DIR": str(data)})
    assert result.code == 0, result.stderr
    assert (data / "fingerprint.key").is_file()  # the key went where this run's environment said
    assert os.environ.get("HIPAA_AUDIT_DATA_DIR") != str(data)  # and only this run's
    elsewhere = run_cli("scan", "archive", "a.txt", cwd=ROOT)  # no a.txt there
    assert elsewhere.code == 2 and not elsewhere.stdout and "a.txt" in elsewhere.stderr


def test_a_run_past_its_timeout_is_stopped(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("nothing here\n", encoding="utf-8")
    # an address where no Dask scheduler listens: the run waits its 10 s connect timeout
    with pytest.raises(subprocess.TimeoutExpired):
        run_cli("scan", "archive", "a.txt", "--scheduler", "tcp://127.0.0.1:9", cwd=tmp_path,
                timeout=0.5)


def test_startup_variables_need_a_new_interpreter() -> None:
    base = {"PATH": "/usr/bin", "LANG": "C.UTF-8"}
    assert not needs_new_interpreter({**base, "AWS_PROFILE": "x"}, base)
    assert needs_new_interpreter({**base, "PYTHONIOENCODING": "latin-1"}, base)
    assert needs_new_interpreter({**base, "LC_ALL": "C"}, base)
    assert needs_new_interpreter({"PATH": "/usr/bin"}, base)  # LANG taken away
    zygote = _warm()
    assert not needs_new_interpreter(dict(zygote.env), zygote.env)
