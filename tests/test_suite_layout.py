"""The test suite's own layout: how pytest-xdist spreads the files (tests/conftest.py)."""

from __future__ import annotations

import conftest
import pytest
from conftest import HEAVY_FIRST, ROOT, SERIAL_FILES

pytestmark = pytest.mark.unit


def test_files_named_in_the_layout_exist() -> None:
    for path in (*SERIAL_FILES, *HEAVY_FIRST):
        assert (ROOT / path).is_file(), path


def test_every_serial_test_lives_in_a_serial_file() -> None:
    needle = "pytest.mark." + "serial"  # (not spelled out, so that this file does not match)
    marked = {str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py")
              if needle in p.read_text()}
    assert "tests/test_assess.py" in marked
    assert marked <= set(SERIAL_FILES), marked - set(SERIAL_FILES)


def test_loadfile_keeps_a_file_on_one_worker_and_the_serial_files_together(
        pytestconfig: pytest.Config, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("dist", "loadfile"), ("numprocesses", 2), ("tx", ["2*popen"]),
                        ("loadscopereorder", True)):
        monkeypatch.setattr(pytestconfig.option, name, value, raising=False)
    scheduler = conftest.pytest_xdist_make_scheduler(pytestconfig, None)
    assert scheduler is not None
    scope = scheduler._split_scope
    assert {scope(f"{path}::test_x") for path in SERIAL_FILES} == {"serial"}
    assert scope("tests/test_catalog.py::test_a[1]") == scope("tests/test_catalog.py::test_b")
    assert scope("tests/test_catalog.py::test_a") == "tests/test_catalog.py"
    assert scope("tests/test_catalog.py::test_a") != scope("tests/test_outputs.py::test_a")
    # the HEAVY_FIRST order the items were put in is kept, not re-sorted by test count
    assert pytestconfig.option.loadscopereorder is False


def test_other_distribution_modes_keep_xdist_s_own_scheduler(
        pytestconfig: pytest.Config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pytestconfig.option, "dist", "load", raising=False)
    assert conftest.pytest_xdist_make_scheduler(pytestconfig, None) is None


class _Item:
    """Just what the collection hook reads of a test item."""

    def __init__(self, nodeid: str, *marks: str) -> None:
        self.nodeid = nodeid
        self.marks = set(marks)

    def get_closest_marker(self, name: str) -> object:
        return name if name in self.marks else None

    def add_marker(self, mark: pytest.MarkDecorator) -> None:
        self.marks.add(mark.name)


def test_heavy_files_come_first_and_each_test_gets_a_kind(pytestconfig: pytest.Config) -> None:
    items = [_Item("tests/test_catalog.py::a"), _Item(f"{HEAVY_FIRST[1]}::b", "e2e"),
             _Item("tests/test_catalog.py::c"), _Item(f"{HEAVY_FIRST[0]}::d", "e2e")]
    conftest.pytest_collection_modifyitems(pytestconfig, items)  # type: ignore[arg-type]
    assert [i.nodeid for i in items] == [f"{HEAVY_FIRST[0]}::d", f"{HEAVY_FIRST[1]}::b",
                                         "tests/test_catalog.py::a", "tests/test_catalog.py::c"]
    assert [i.marks for i in items] == [{"e2e"}, {"e2e"}, {"unit"}, {"unit"}]


def test_a_serial_test_outside_the_serial_files_is_refused(pytestconfig: pytest.Config) -> None:
    with pytest.raises(pytest.UsageError, match="SERIAL_FILES"):
        conftest.pytest_collection_modifyitems(
            pytestconfig, [_Item("tests/test_catalog.py::a", "serial")])  # type: ignore[list-item]
    conftest.pytest_collection_modifyitems(
        pytestconfig, [_Item(f"{SERIAL_FILES[0]}::a", "serial")])  # type: ignore[list-item]
