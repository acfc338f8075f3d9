"""PACS/VNA account exports and the workforce roster, read from CSV."""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path

import pytest

from hipaa_audit.permissions.exports import (
    FIELD_LIMIT,
    MAX_ROW_PROBLEMS,
    PacsMapping,
    PermissionSourceError,
    RosterMapping,
    collect_pacs,
    collect_roster,
)
from hipaa_audit.permissions.model import Facts, Person
from hipaa_audit.redaction import Masker

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data" / "permissions"
MASKER = Masker(b"k" * 32)
TODAY = dt.date(2025, 1, 15)


def grants(facts: Facts) -> set[tuple[str, str, frozenset[str], str]]:
    return {(g.principal, g.resource, g.actions, g.source) for g in facts.grants}


def edges(facts: Facts) -> set[tuple[str, str, str, str]]:
    return {(m.member, m.target, m.kind, m.source) for m in facts.memberships}


def write(tmp_path: Path, text: str, name: str = "export.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def refusal(path: Path, *, roster: bool = False) -> str:
    """The message of the :class:`PermissionSourceError` reading ``path`` raises."""
    with pytest.raises(PermissionSourceError) as info:
        if roster:
            collect_roster(path, MASKER)
        else:
            collect_pacs(path)
    return str(info.value)


# ---------------------------------------------------------------------------------------------
# PACS


def test_pacs_export_with_aliases_roles_and_permissions() -> None:
    facts = collect_pacs(DATA / "pacs_accounts.csv", system="main")

    assert facts.sources == ["pacs:main"]
    resource = facts.resources["pacs:main"]
    assert (resource.kind, resource.system, resource.phi) == ("pacs", "pacs:main", None)
    user = "pacs:main:user/"
    role = "pacs:main:role/"
    assert grants(facts) == {
        # alice's view+export; bob's first row has no permissions, his second row adds
        # store+modify to Technologist only
        (f"{role}Radiologist", "pacs:main", frozenset({"read"}), "pacs:export"),
        (f"{role}Technologist", "pacs:main", frozenset({"write"}), "pacs:export"),
        (f"{role}Admins", "pacs:main", frozenset({"admin", "delete"}), "pacs:export"),
        # rows without a role grant to the user directly
        (f"{user}carol", "pacs:main", frozenset({"read", "admin"}), "pacs:export"),
        (f"{user}pacs-router", "pacs:main", frozenset({"write", "read"}), "pacs:export"),
    }
    assert edges(facts) == {
        (f"{user}alice", f"{role}Radiologist", "member-of", "pacs:export"),
        (f"{user}bob", f"{role}Radiologist", "member-of", "pacs:export"),
        (f"{user}bob", f"{role}Technologist", "member-of", "pacs:export"),
        (f"{user}dave", f"{role}Admins", "member-of", "pacs:export"),
    }
    assert len(facts.memberships) == 4  # bob/Technologist on two rows: one edge
    p = facts.principals
    assert (p[f"{user}alice"].kind, p[f"{user}alice"].human) == ("user", True)
    assert p[f"{user}alice"].last_used == "2024-05-02"
    assert p[f"{user}bob"].last_used == "2024-05-03"  # the latest of its rows
    assert p[f"{user}carol"].disabled and p[f"{user}dave"].disabled
    assert not p[f"{user}alice"].disabled and not p[f"{user}bob"].disabled
    assert p[f"{user}dave"].last_used == "2023-12-31"
    router = p[f"{user}pacs-router"]
    assert (router.kind, router.human, router.last_used) == ("service", False, None)
    assert (p[f"{role}Admins"].kind, p[f"{role}Admins"].name) == ("role", "Admins")
    assert all(x.source == "pacs:main" for x in p.values())
    assert not facts.problems


@pytest.mark.parametrize(("words", "action"), [
    ("view;READ;Query;retrieve;export;download;Burn", "read"),
    ("list|Search", "list"),
    ("edit,write,store,import,upload,Modify", "write"),
    ("delete;PURGE", "delete"),
    ("admin;manage;configure;assign-roles;Assign_Roles", "admin"),
])
def test_default_permission_words(tmp_path: Path, words: str, action: str) -> None:
    facts = collect_pacs(write(tmp_path, f'user,permissions\nu1,"{words}"\n'))
    assert grants(facts) == {("pacs:pacs:user/u1", "pacs:pacs", frozenset({action}),
                              "pacs:export")}
    assert not facts.problems


def test_pacs_mapping_from_toml(tmp_path: Path) -> None:
    config = tomllib.loads("""
        user = "Account ID"
        role = "Profile"
        permissions = "Privs"
        status = ""
        last_login = false
        type = "Kind"
        values = { Viewer = "read", Burner = "ignore", "Study Admin" = "ADMIN" }
        statuses = { Gone = "disabled" }
        types = { Robot = "service" }
        delimiter = ";"
    """)
    mapping = PacsMapping.from_toml(config)
    assert (mapping.status, mapping.last_login, mapping.delimiter) == (None, None, ";")
    path = write(tmp_path, "Account ID;Profile;Privs;Kind;Status\n"
                           "u1;Reading|Export;viewer,burner;Person;Gone\n"
                           "u2;;study_admin;robot;\n")
    facts = collect_pacs(path, system="vna", mapping=mapping)
    assert grants(facts) == {
        ("pacs:vna:role/Reading", "pacs:vna", frozenset({"read"}), "pacs:export"),
        ("pacs:vna:role/Export", "pacs:vna", frozenset({"read"}), "pacs:export"),
        ("pacs:vna:user/u2", "pacs:vna", frozenset({"admin"}), "pacs:export"),
    }
    # status is unmapped: its column is ignored, so u1 is not disabled
    assert not facts.principals["pacs:vna:user/u1"].disabled
    assert facts.principals["pacs:vna:user/u2"].kind == "service"
    assert not facts.problems
    assert hash(mapping) == hash(PacsMapping.from_toml(config))


def test_pacs_mapping_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="unknown key 'usr'"):
        PacsMapping.from_toml({"usr": "Login"})
    with pytest.raises(ValueError, match=r"values\.Viewer: 'look' is not one of"):
        PacsMapping.from_toml({"values": {"Viewer": "look"}})
    with pytest.raises(ValueError, match="user must name a column"):
        PacsMapping.from_toml({"user": ""})
    with pytest.raises(ValueError, match="role must be a string"):
        PacsMapping.from_toml({"role": 3})
    with pytest.raises(ValueError, match="unknown key 'nmae'"):
        RosterMapping.from_toml({"nmae": "Full Name"})
    with pytest.raises(ValueError, match="'gone' is not one of active, inactive"):
        RosterMapping.from_toml({"statuses": {"x": "gone"}})


def test_unknown_permission_word_is_a_problem_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "user,role,permissions\n"
                           "alice,Rad,view\n"
                           "bob,Rad,edit;Frobnicate-Patient-Smith\n")
    facts = collect_pacs(path)
    assert [(p.source, p.asset) for p in facts.problems] == [("pacs:pacs", f"{path}:3")]
    message = facts.problems[0].message
    assert message.startswith("line 3: permission 2 of 2 in column 'permissions'")
    assert "frobnicate" not in message.casefold() and "smith" not in message.casefold()
    # the row still counts: its known word and its membership
    assert grants(facts) == {("pacs:pacs:role/Rad", "pacs:pacs", frozenset({"read", "write"}),
                              "pacs:export")}
    assert ("pacs:pacs:user/bob", "pacs:pacs:role/Rad", "member-of", "pacs:export") in edges(facts)


def test_bad_rows_are_problems_without_cell_values(tmp_path: Path) -> None:
    path = write(tmp_path, "user,role,status,last_login\n"
                           "alice,Rad,active,2024-01-01\n"
                           "PatientDoe,Rad\n"
                           ",Rad,active,\n"
                           "carol,Rad,weird-Status-Doe,yesterday-Doe\n"
                           "dave,Rad,active,2024-01-01,extra-Doe\n"
                           "erin,Rad,active,2024-01-02,,\n"
                           "\n")
    facts = collect_pacs(path)
    assert [(p.asset, p.message.split(":")[0]) for p in facts.problems] == [
        (f"{path}:3", "line 3"), (f"{path}:4", "line 4"), (f"{path}:5", "line 5"),
        (f"{path}:5", "line 5"), (f"{path}:6", "line 6")]
    assert "has 2 fields, the header has 4" in facts.problems[0].message
    assert "no user name" in facts.problems[1].message
    assert "not a known status" in facts.problems[2].message
    assert "not a date" in facts.problems[3].message
    assert "has 5 fields" in facts.problems[4].message
    assert all("doe" not in p.message.casefold() for p in facts.problems)
    # carol counts (unknown status = active), erin's trailing empty fields are tolerated
    users = {p.name for p in facts.principals.values() if p.kind == "user"}
    assert users == {"alice", "carol", "erin"}
    assert not facts.principals["pacs:pacs:user/carol"].disabled


def test_huge_field_is_a_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "user,role\n"
                           f"alice,{'R' * (FIELD_LIMIT + 10)}\n"
                           "bob,Rad\n")
    facts = collect_pacs(path)
    assert [p.asset for p in facts.problems] == [f"{path}:2"]
    assert f"longer than {FIELD_LIMIT} characters" in facts.problems[0].message
    assert set(facts.principals) == {"pacs:pacs:user/bob", "pacs:pacs:role/Rad"}


def test_row_problems_are_capped(tmp_path: Path) -> None:
    rows = "".join(",Rad\n" for _ in range(MAX_ROW_PROBLEMS + 50))
    facts = collect_pacs(write(tmp_path, "user,role\n" + rows))
    assert len(facts.problems) == MAX_ROW_PROBLEMS + 1
    assert facts.problems[-1].message == "50 more row problems not listed"


def test_pacs_file_errors_name_the_file_and_not_the_values(tmp_path: Path) -> None:
    with pytest.raises(PermissionSourceError, match="no such file"):
        collect_pacs(tmp_path / "missing.csv")

    latin = tmp_path / "latin.csv"
    latin.write_bytes("user,role\nJosé Müller,Rad\n".encode("latin-1"))
    text = refusal(latin)
    assert text.startswith(f"{latin} is not UTF-8 text")
    assert "Jos" not in text

    empty = write(tmp_path, "", "empty.csv")
    with pytest.raises(PermissionSourceError, match=r"empty\.csv is empty"):
        collect_pacs(empty)
    blank = write(tmp_path, "\n\n", "blank.csv")
    with pytest.raises(PermissionSourceError, match="is empty"):
        collect_pacs(blank)

    no_user = write(tmp_path, "Name,Role,Status\nSecretPatient,Rad,active\n", "nouser.csv")
    text = refusal(no_user)
    assert str(no_user) in text
    assert "no 'user' column (for user)" in text
    # only cells that are known column names are shown; "Name" is not one for PACS
    assert "found columns: 'Role', 'Status' and 1 other column" in text
    assert "SecretPatient" not in text and "active" not in text and "Name" not in text

    # a first line that is data, not a header: its values are not echoed
    headless = write(tmp_path, "jdoe,Jane Q Patient,Rad\n", "headless.csv")
    text = refusal(headless)
    assert "none of them a known column name" in text
    assert "jdoe" not in text and "Jane" not in text

    # ... even when one of its cells happens to be a known column name
    headless = write(tmp_path, "jdoe,Jane Doe,Roles,2024-01-01\n", "headless2.csv")
    text = refusal(headless)
    assert text.endswith("found columns: 'Roles' and 3 other columns")
    for value in ("jdoe", "Jane", "Doe", "2024"):
        assert value not in text

    # a column the mapping names explicitly must exist
    no_groups = write(tmp_path, "login,role\nalice,Rad\n", "nogroups.csv")
    with pytest.raises(PermissionSourceError, match="no 'Groups' column"):
        collect_pacs(no_groups, mapping=PacsMapping(role="Groups"))

    with pytest.raises(PermissionSourceError, match="system name"):
        collect_pacs(no_groups, system="a:b")


def test_header_only_export_is_empty_but_valid(tmp_path: Path) -> None:
    facts = collect_pacs(write(tmp_path, "user,role\n"))
    assert list(facts.resources) == ["pacs:pacs"]
    assert not facts.principals and not facts.grants and not facts.problems


# ---------------------------------------------------------------------------------------------
# roster


def test_roster_without_header_never_shows_its_first_row(tmp_path: Path) -> None:
    # "ended" is an alias of end_date: the line looks like a header, but it is a person
    path = write(tmp_path, "e123,Jane Doe,Nurse,ended,2024-01-01\n", "roster.csv")
    text = refusal(path, roster=True)
    assert "no 'id' column (for id)" in text
    assert "found 5 columns, 1 of them a known column name" in text
    for value in ("Jane", "Doe", "e123", "Nurse", "ended", "2024"):
        assert value not in text


def test_roster_states_and_accounts() -> None:
    facts = collect_roster(DATA / "roster.csv", MASKER, today=TODAY)
    assert facts.sources == ["roster"]
    assert not facts.problems
    people = {p.id: p for p in facts.people}
    assert people["asmith"] == Person(
        id="asmith", name_fp=MASKER.fingerprint("alice smith"),
        accounts=("asmith", "alice", "a.smith"), roles=("Radiologist", "Reader"),
        active=True, ended=None)
    # on leave with a future end date: active
    assert (people["bjones"].active, people["bjones"].ended) == (True, "2099-01-01")
    # terminated by status
    assert people["cwhite"].active is False
    assert people["cwhite"].accounts == ("cwhite", "carol")
    # empty status, past end date: not active
    assert (people["dgreen"].active, people["dgreen"].ended) == (False, "2020-06-30")
    # no name: empty fingerprint
    assert (people["eblack"].name_fp, people["eblack"].active) == ("", True)


def test_roster_past_end_date_wins_over_active_status(tmp_path: Path) -> None:
    path = write(tmp_path, "Employee ID,Status,Termination Date\n"
                           "x1,Active,2025-01-14\n"
                           "x2,Active,2025-01-15\n", "roster.csv")
    people = {p.id: p for p in collect_roster(path, MASKER, today=TODAY).people}
    assert people["x1"].active is False
    assert people["x2"].active is True  # ends today: still active today


def test_roster_never_keeps_raw_names(tmp_path: Path) -> None:
    planted = "Zebulon Quagmire-Featherstonehaugh"
    path = write(tmp_path,
                 "login,full name,status,end_date\n"
                 f"zq1,\"  {planted.upper()} \",active,\n"
                 f"zq2,{planted},on leave,not-a-date {planted}\n"
                 f"zq1,{planted},Retired-{planted},\n"
                 f"zq3,{planted},Vanished {planted},\n"
                 f"zq4,{planted}\n"
                 f",{planted},active,\n", "roster.csv")
    facts = collect_roster(path, MASKER, today=TODAY)
    everything = repr(facts)
    for piece in ("zebulon", "quagmire", "featherstonehaugh"):
        assert piece not in everything.casefold()
    fingerprint = MASKER.fingerprint(planted.casefold())
    assert fingerprint in everything
    people = {p.id: p for p in facts.people}
    assert set(people) == {"zq1", "zq2", "zq3"}
    assert people["zq1"].name_fp == people["zq2"].name_fp == fingerprint
    assert [p.message.split(":")[0] for p in facts.problems] == [
        "line 3", "line 4", "line 5", "line 6", "line 7"]
    assert "not a date" in facts.problems[0].message
    assert "repeats the id on line 2" in facts.problems[1].message
    assert "not a known status" in facts.problems[2].message
    assert people["zq3"].active is True  # unknown status: a Problem, treated as active


def test_roster_mapping_from_toml(tmp_path: Path) -> None:
    mapping = RosterMapping.from_toml({"id": "Staff No", "name": "Display", "accounts": "",
                                       "statuses": {"Gone Fishing": "inactive"},
                                       "date_format": "%d.%m.%Y"})
    path = write(tmp_path, "Staff No,Display,Status,End Date,Accounts\n"
                           "S1,Ann Lee,gone fishing,,ignored\n"
                           "S2,Ben Ito,active,31.12.2024,ignored\n"
                           "S3,Cy Roe,active,01.02.2030,\n", "roster.csv")
    people = {p.id: p for p in collect_roster(path, MASKER, mapping=mapping, today=TODAY).people}
    assert people["S1"].active is False
    assert (people["S2"].active, people["S2"].ended) == (False, "2024-12-31")
    assert (people["S3"].active, people["S3"].ended) == (True, "2030-02-01")
    assert people["S1"].accounts == ("s1",)  # the accounts column is unmapped


def test_mappings_hash_by_value_and_read_empty_settings_as_none() -> None:
    one = PacsMapping.from_toml({"values": {"a": "read", "b": "write"}, "date_format": ""})
    two = PacsMapping(values={"b": "write", "a": "read"})
    assert one == two and hash(one) == hash(two) and len({one, two}) == 1
    assert one.date_format is None
    assert RosterMapping.from_toml({"name": False, "date_format": ""}).name is None
    with pytest.raises(ValueError, match="roster mapping: delimiter must be one character"):
        RosterMapping.from_toml({"delimiter": ";;"})
    with pytest.raises(ValueError, match="roster mapping: date_format must be a strptime"):
        RosterMapping(date_format="")
    with pytest.raises(ValueError, match=r"known keys: user, role, permissions"):
        PacsMapping.from_toml({"usr": "x"})
    with pytest.raises(ValueError, match="PACS mapping must be a table of settings"):
        PacsMapping.from_toml(["user"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"PACS mapping: types\. : must map text to text"):
        PacsMapping(types={" ": "user"})


def test_roster_file_errors(tmp_path: Path) -> None:
    names = write(tmp_path, "name,status\nHeloise Abelard,active\n", "roster.csv")
    text = refusal(names, roster=True)
    assert "no 'id' column (for id)" in text
    assert "found 2 columns, 2 of them known column names" in text
    # the roster's first line is never shown, not even cells that are known column names
    assert "'name'" not in text and "'status'" not in text
    assert "Heloise" not in text
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffid,name\nh1,Heloise\n".encode())
    assert [p.id for p in collect_roster(bom, MASKER).people] == ["h1"]
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"id,name\nh1,H\xe9lo\xefse\n")
    with pytest.raises(PermissionSourceError, match="is not UTF-8 text"):
        collect_roster(bad, MASKER)


def test_the_log_analysers_roster_serves_the_permission_scan(tmp_path: Path) -> None:
    # one HR roster for both: user,given,family,role,active (the audit-log roster's columns)
    roster = tmp_path / "hr.csv"
    roster.write_text("user,given,family,role,active\nasmith,Alice,Smith,radiologist,true\n"
                      "cdavis,Carol,Davis,radiologist,false\n", encoding="utf-8")
    facts = collect_roster(roster, Masker(b"k" * 32))
    people = {p.id: p for p in facts.people}
    assert people["asmith"].active and not people["cdavis"].active
    assert people["asmith"].roles == ("radiologist",) and not facts.problems
    assert "Smith" not in repr(facts) and "Davis" not in repr(facts)


def test_the_permission_roster_serves_the_log_analyser(tmp_path: Path) -> None:
    from hipaa_audit.logs.setup import roster_families

    masker = Masker(b"k" * 32)
    roster = tmp_path / "staff.csv"
    roster.write_text("id,name,role,status,end_date,accounts\n"
                      "asmith,Alice van Smith,radiologist,active,,\n", encoding="utf-8")
    families, roles = roster_families(roster, masker)
    assert families == {"asmith": masker.fingerprint("SMITH")}
    assert roles == {"asmith": "radiologist"}
