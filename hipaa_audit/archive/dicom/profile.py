"""DICOM PS3.15 Table E.1-1 as a lookup: the action each attribute expects, given the options.

The table (all 656 rows, group patterns included) ships in ``checks/`` as
``dicom_confidentiality_e1_1.json``. A file that declares options (CID 7050 codes in
DeidentificationMethodCodeSequence) gets each option column's action where that cell is not
null, the most permissive one winning when several options speak.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache

from hipaa_audit.catalog import read_check_data

TABLE_FILE = "dicom_confidentiality_e1_1.json"

#: CID 7050 code value -> option column of Table E.1-1 (None: option acts on pixels only).
OPTION_CODES: dict[str, str | None] = {
    "113100": None,  # Basic Application Confidentiality Profile
    "113101": "clean_pixel_data",
    "113102": "clean_recognizable_visual_features",
    "113103": "clean_graphics",
    "113104": "clean_structured_content",
    "113105": "clean_descriptors",
    "113106": "retain_long_full_dates",
    "113107": "retain_long_modified_dates",
    "113108": "retain_patient_characteristics",
    "113109": "retain_device_identity",
    "113110": "retain_uids",
    "113111": "retain_safe_private",
    "113112": "retain_institution_identity",
}

#: Option names as tools write them in DeidentificationMethod free text.
OPTION_NAMES: dict[str, str] = {
    "clean pixel": "clean_pixel_data",
    "clean recognizable visual": "clean_recognizable_visual_features",
    "clean graphics": "clean_graphics",
    "clean structured content": "clean_structured_content",
    "clean descriptors": "clean_descriptors",
    "full dates": "retain_long_full_dates",
    "modified dates": "retain_long_modified_dates",
    "retain patient characteristics": "retain_patient_characteristics",
    "retain device identity": "retain_device_identity",
    "retain uids": "retain_uids",
    "retain safe private": "retain_safe_private",
    "retain institution identity": "retain_institution_identity",
}

#: Actions that leave a value in place and so are never a presence finding.
KEEP_ACTIONS = frozenset({"K", "C", "U", "X/Z/U*"})
#: Actions under which a remaining value must be absent, empty or a dummy.
REMOVE_ACTIONS = frozenset({"X", "Z", "D", "Z/D", "X/Z", "X/D", "X/Z/D"})

_ACTION_ORDER = {"K": 0, "C": 1}


@dataclass(frozen=True, slots=True)
class Row:
    """One row of Table E.1-1."""

    tag: str
    keyword: str
    name: str
    basic: str
    options: tuple[tuple[str, str], ...]

    def action(self, declared: frozenset[str]) -> str:
        """Return the action for a file declaring the option columns in ``declared``."""
        best = self.basic
        for column, cell in self.options:
            if column in declared and _ACTION_ORDER.get(cell, 9) < _ACTION_ORDER.get(best, 9):
                best = cell
        return best


@dataclass(slots=True)
class Profile:
    """The table indexed for the walker: exact tags, and the repeating-group patterns."""

    rows: dict[int, Row]
    curve: Row
    overlay_data: Row
    overlay_comments: Row
    private: Row
    _actions: dict[frozenset[str], dict[int, str]] = field(default_factory=dict)

    def row_for(self, tag: int) -> Row | None:
        """Return the row governing ``tag`` (exact tag first, then 50xx / 60xx patterns)."""
        row = self.rows.get(tag)
        if row is not None:
            return row
        group = tag >> 16
        if group & 0xFF00 == 0x5000 and not group & 1:
            return self.curve
        if group & 0xFF00 == 0x6000 and not group & 1:
            elem = tag & 0xFFFF
            if elem == 0x3000:
                return self.overlay_data
            if elem == 0x4000:
                return self.overlay_comments
        return None

    def actions(self, declared: frozenset[str]) -> dict[int, str]:
        """Return tag -> effective action for every exact-tag row, for one option set."""
        table = self._actions.get(declared)
        if table is None:
            table = {tag: row.action(declared) for tag, row in self.rows.items()}
            self._actions[declared] = table
        return table


def _row(raw: dict[str, object], columns: Iterable[str]) -> Row:
    options = tuple(
        (c, str(raw[c])) for c in columns if raw.get(c) is not None
    )
    return Row(
        tag=str(raw["tag"]),
        keyword=str(raw.get("keyword") or ""),
        name=str(raw.get("name") or ""),
        basic=str(raw["basic_profile"]),
        options=options,
    )


@cache
def load_profile() -> Profile:
    """Load Table E.1-1 from the catalog folder and index it by tag."""
    doc = json.loads(read_check_data(TABLE_FILE))
    columns = list(doc["note"]["option_columns"])
    rows: dict[int, Row] = {}
    patterns: dict[str, Row] = {}
    for raw in doc["attributes"]:
        row = _row(raw, columns)
        if raw["is_pattern"]:
            patterns[row.tag] = row
        else:
            group, elem = row.tag.strip("()").split(",")
            rows[(int(group, 16) << 16) | int(elem, 16)] = row
    return Profile(
        rows=rows,
        curve=patterns["(50XX,XXXX)"],
        overlay_data=patterns["(60XX,3000)"],
        overlay_comments=patterns["(60XX,4000)"],
        private=patterns["(gggg,eeee)"],
    )
