"""The scanner contract: every registered scanner has the same shape, and the configuration
composes their options models without importing any scanner code."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest

import hipaa_audit
from hipaa_audit.config import Assessment
from hipaa_audit.errors import HipaaAuditError
from hipaa_audit.redaction import Masker
from hipaa_audit.scanner import (
    Scanner,
    ScannerOptions,
    ScannerSetupError,
    Setup,
    scanner_for,
    scanner_names,
)

MISSING = "/nonexistent/hipaa-audit-contract"
#: Per scanner: command-line options the plan step must refuse, and the message it gives.
BAD: dict[str, tuple[dict[str, Any], str]] = {
    "archive": ({"paths": [MISSING]}, "no such file or directory"),
    "network": ({"targets": ["ftp://x:21"]}, "unknown scheme"),
    "s3": ({"trusted_accounts": ["123"]}, "an AWS account id is 12 digits"),
    "logs": ({"paths": ["x.log"], "roster": Path(MISSING)}, "cannot read the roster"),
    "permissions": ({"baseline": Path(MISSING), "sources": ["ftp:x"]}, "unknown source"),
}
SCANNER_PACKAGES = ("archive", "network", "s3", "logs", "permissions")


def _setup() -> Setup:
    return Setup(masker_=Masker(b"k" * 32))


def test_the_registry_names_every_scanner_once_in_assessment_order() -> None:
    assert scanner_names() == SCANNER_PACKAGES
    assert set(BAD) == set(scanner_names())


@pytest.mark.parametrize("name", scanner_names())
def test_each_scanner_has_the_contract_shape(name: str) -> None:
    scanner = scanner_for(name)
    assert scanner.name == name
    assert scanner.command.endswith(f" {name}")
    assert issubclass(scanner.options_model, ScannerOptions)
    # the [[section]] of assessment.toml is the same options model plus name and criticality
    annotation = typing.get_type_hints(Assessment)[name]
    section = next(a for a in (*typing.get_args(annotation), annotation)
                   if inspect.isclass(a) and issubclass(a, ScannerOptions))
    assert issubclass(section, scanner.options_model)
    assert set(section.model_fields) - set(scanner.options_model.model_fields) == {
        "name", "criticality"}
    # the summary is typed (a TypedDict), not a free dict
    hints = typing.get_type_hints(type(scanner).summary)
    assert typing.is_typeddict(hints["return"])


def test_a_scanner_names_its_options_model_as_its_first_type_argument() -> None:
    with pytest.raises(TypeError, match="ScannerOptions model"):
        class NoModel(Scanner[Any, Any, Any], name="none", command="scan none"):
            """Not a scanner: its first type argument is no options model."""


@pytest.mark.parametrize("name", scanner_names())
def test_a_bad_target_is_one_setup_error(name: str) -> None:
    scanner = scanner_for(name)
    values, message = BAD[name]
    options = scanner.options_model.from_command_line(**values)
    with pytest.raises(ScannerSetupError, match=message):
        scanner.plan(options, _setup())


def test_an_assessment_reports_a_missing_path_instead_of_stopping() -> None:
    scanner = scanner_for("archive")
    options = scanner.options_model.from_command_line(paths=[MISSING, "."])
    plan = scanner.plan(options, Setup(strict=False, masker_=Masker(b"k" * 32)))
    assert plan.missing == [MISSING] and plan.present == ["."]


def test_command_line_only_options_are_refused_in_the_assessment_file() -> None:
    section = typing.get_args(typing.get_type_hints(Assessment)["archive"])[0]
    assert section.command_line_only() == {"scheduler", "mask_paths"}
    with pytest.raises(ValueError, match="scheduler: a command-line option"):
        section.model_validate({"paths": ["x"], "scheduler": "tcp://h:8786"})


def test_config_imports_no_scanner_code() -> None:
    code = ("import json, sys; import hipaa_audit.config; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('hipaa_audit.'))))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], check=True,
                                       capture_output=True, text=True).stdout)
    scanner_code = [m for m in loaded if m.split(".")[1] in SCANNER_PACKAGES
                    and m.count(".") > 1 and not m.endswith(".options")]
    assert scanner_code == []
    assert "hipaa_audit.archive.options" in loaded  # it does compose the options models


def test_every_project_exception_shares_one_base() -> None:
    for info in pkgutil.walk_packages(hipaa_audit.__path__, "hipaa_audit."):
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if inspect.isclass(obj) and issubclass(obj, BaseException) \
                    and obj.__module__ == info.name:
                assert issubclass(obj, HipaaAuditError), f"{info.name}.{obj.__name__}"
