"""The file-system permission collector: real modes, real POSIX ACLs, read-only walking."""

from __future__ import annotations

import builtins
import errno
import grp
import io
import os
import pwd
import shutil
import socket
import struct
import subprocess
from pathlib import Path

import pytest

from hipaa_audit.permissions import fs as fs_mod
from hipaa_audit.permissions.exports import PermissionSourceError
from hipaa_audit.permissions.fs import (
    ACL_GROUP,
    ACL_GROUP_OBJ,
    ACL_MASK,
    ACL_OTHER,
    ACL_USER,
    ACL_USER_OBJ,
    collect_fs,
    parse_acl,
)
from hipaa_audit.permissions.model import ANYONE, Facts, Grant

pytestmark = [pytest.mark.unit,
              pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setfacl") is None,
                                 reason="needs root (chown) and setfacl")]

HOST = f"fs:{socket.gethostname()}"
ANY = ("any local account",)
DEFAULT = ("default ACL: inherited by new files",)
BY_NAME = ("by name only: the folder cannot be listed",)
FULL_DIR = frozenset({"list", "read", "write", "delete", "admin"})
NOBODY_GROUP = grp.getgrgid(pwd.getpwnam("nobody").pw_gid).gr_name


def setfacl(*args: str | Path) -> None:
    subprocess.run(["setfacl", *map(str, args)], check=True)


def rid(path: Path) -> str:
    return f"fs:{path}"


def make_file(folder: Path, name: str, mode: int, text: str = "x", acl: str = "") -> Path:
    """Write a small file in folder and give it mode, then the ACL entries acl if any."""
    path = folder / name
    path.write_text(text)
    path.chmod(mode)
    if acl:
        setfacl("-m", acl, path)
    return path


def make_dir(folder: Path, name: str, mode: int, gid: int | None = None, acl: str = "") -> Path:
    """Make a folder in folder, owned by root (and group gid if given), with mode and acl."""
    path = folder / name
    path.mkdir()
    if gid is not None:
        os.chown(path, 0, gid)
    path.chmod(mode)
    if acl:
        setfacl("-m", acl, path)
    return path


def grants_on(facts: Facts, path: Path) -> set[tuple[str, frozenset[str], str, tuple[str, ...]]]:
    return {(g.principal, g.actions, g.source, g.conditions)
            for g in facts.grants if g.resource == rid(path)}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_dir(tmp_path, "archive", 0o750, 0)


def test_modes_become_grants(tree: Path) -> None:
    shared = make_dir(tree, "shared", 0o777)
    private = tree / "private"
    private.mkdir()
    os.chown(private, pwd.getpwnam("daemon").pw_uid, grp.getgrnam("users").gr_gid)
    private.chmod(0o730)  # group: write+x but no read bit
    listing = make_dir(tree, "listing", 0o744)  # others may list names but not reach files
    inner = tree / "report.dcm"
    inner.write_bytes(b"DICM" * 10)
    inner.chmod(0o640)

    facts = collect_fs(tree)

    assert facts.sources == [f"fs:{tree}"]
    assert set(facts.resources) == {rid(p) for p in (tree, shared, private, listing)}
    for resource in facts.resources.values():
        assert (resource.kind, resource.phi, resource.system) == ("folder", None, HOST)
    assert grants_on(facts, tree) == {
        ("fs:user/root", FULL_DIR, "fs:mode", ()),
        ("fs:group/root", frozenset({"list", "read"}), "fs:mode", ()),
    }
    assert grants_on(facts, shared) == {
        ("fs:user/root", FULL_DIR, "fs:mode", ()),
        ("fs:group/root", frozenset({"list", "read", "write", "delete"}), "fs:mode", ()),
        (ANYONE, frozenset({"list", "read", "write", "delete"}), "fs:mode", ANY),
    }
    assert grants_on(facts, private) == {
        ("fs:user/daemon", FULL_DIR, "fs:mode", ()),
        ("fs:group/users", frozenset({"write", "delete"}), "fs:mode", ()),
    }
    assert grants_on(facts, listing) == {
        ("fs:user/root", FULL_DIR, "fs:mode", ()),
        ("fs:group/root", frozenset({"list"}), "fs:mode", ()),
        (ANYONE, frozenset({"list"}), "fs:mode", ANY),
    }
    # a 0640 file inside a 0750 folder is no broader than the folder: not a resource
    assert rid(inner) not in facts.resources
    assert not facts.problems
    daemon = facts.principals["fs:user/daemon"]
    assert (daemon.kind, daemon.human, daemon.source) == ("service", False, "fs")
    assert facts.principals["fs:group/users"].kind == "group"
    assert facts.principals[ANYONE].kind == "anyone"


def test_world_readable_file_in_closed_folder_gives_others_nothing(tree: Path) -> None:
    # other accounts cannot enter the 0o750 folder: the file's own bits open nothing
    leak = make_file(tree, "export.csv", 0o644, "not read by the collector\n")
    facts = collect_fs(tree)
    assert rid(leak) not in facts.resources
    assert not grants_on(facts, leak)


READ = frozenset({"read"})
ROOT_FILE = ("fs:user/root", frozenset({"read", "write", "delete", "admin"}), "fs:mode", ())
ROOT_DIR = ("fs:user/root", FULL_DIR, "fs:mode", ())
GROUP_LISTS = ("fs:group/root", frozenset({"list", "read"}), "fs:mode", ())


@pytest.mark.parametrize(
    ("folder_mode", "file_mode", "narrower_mode", "file_grants", "folder_grants"), [
        # 0o711: other accounts cannot list the folder but reach a file whose name they know
        pytest.param(0o711, 0o644, 0o600, {
            ROOT_FILE,
            # the group root may traverse but not list the folder either
            ("fs:group/root", READ, "fs:mode", BY_NAME),
            (ANYONE, READ, "fs:mode", (*ANY, *BY_NAME)),
        }, {ROOT_DIR},  # the folder itself still grants them nothing: x alone is no action
            id="world-readable-in-traverse-only-folder"),
        # the group may already list and read the folder: a 0o640 file is no broader
        pytest.param(0o751, 0o644, 0o640, {
            ROOT_FILE,
            ("fs:group/root", READ, "fs:mode", ()),  # the group lists the folder
            (ANYONE, READ, "fs:mode", (*ANY, *BY_NAME)),
        }, {ROOT_DIR, GROUP_LISTS}, id="traverse-only-for-others-listable-by-the-group"),
        pytest.param(0o755, 0o646, 0o600, {
            ROOT_FILE,
            ("fs:group/root", READ, "fs:mode", ()),
            (ANYONE, frozenset({"read", "write", "delete"}), "fs:mode", ANY),
        }, {ROOT_DIR, GROUP_LISTS, (ANYONE, frozenset({"list", "read"}), "fs:mode", ANY)},
            id="world-writable-in-readable-folder"),
    ])
def test_file_broader_than_its_folder_is_its_own_resource(
        tree: Path, folder_mode: int, file_mode: int, narrower_mode: int,
        file_grants: set[tuple[str, frozenset[str], str, tuple[str, ...]]],
        folder_grants: set[tuple[str, frozenset[str], str, tuple[str, ...]]]) -> None:
    tree.chmod(folder_mode)
    broad = make_file(tree, "phi.csv", file_mode, "not read by the collector\n")
    narrower = make_file(tree, "closed.csv", narrower_mode)

    facts = collect_fs(tree)

    assert facts.resources[rid(broad)].kind == "folder"
    assert grants_on(facts, broad) == file_grants
    assert rid(narrower) not in facts.resources
    assert not grants_on(facts, narrower)
    assert grants_on(facts, tree) == folder_grants


def test_list_without_traverse_gives_nothing(tree: Path) -> None:
    # r without x on the folder: names can be listed, but no file inside can be reached
    tree.chmod(0o744)
    listed = make_file(tree, "listed.csv", 0o644, "x\n")
    facts = collect_fs(tree)
    assert rid(listed) not in facts.resources
    assert not grants_on(facts, listed)


def test_traverse_through_a_named_acl_entry_within_the_mask(tree: Path) -> None:
    tree.chmod(0o700)
    setfacl("-m", "u:nobody:x", tree)
    report = make_file(tree, "report.txt", 0o600, acl="u:nobody:r")

    facts = collect_fs(tree)

    assert ("fs:user/nobody", frozenset({"read"}), "fs:acl", BY_NAME) in \
        grants_on(facts, report)
    assert not any(g.principal == "fs:user/nobody" for g in facts.grants
                   if g.resource == rid(tree))
    # the same entry outside the mask gives no traversal: the file is no longer broader
    setfacl("-m", "u:nobody:x,m::r", tree)
    assert rid(report) not in collect_fs(tree).resources


def test_traverse_through_a_group(tree: Path) -> None:
    os.chown(tree, 0, grp.getgrnam(NOBODY_GROUP).gr_gid)  # nobody's primary group
    tree.chmod(0o710)
    report = make_file(tree, "report.txt", 0o600, acl="u:nobody:r")

    facts = collect_fs(tree)

    assert ("fs:user/nobody", frozenset({"read"}), "fs:acl", BY_NAME) in \
        grants_on(facts, report)


def test_world_readable_file_in_open_folder_is_not_a_resource(tree: Path) -> None:
    tree.chmod(0o755)
    (tree / "a.txt").write_text("x")
    (tree / "a.txt").chmod(0o644)
    facts = collect_fs(tree)
    assert set(facts.resources) == {rid(tree)}


def test_named_acl_entries_and_mask(tree: Path) -> None:
    shared = make_dir(tree, "team", 0o750, acl="u:nobody:rx,g:users:rwx,m::rx")
    masked = make_file(tree, "notes.txt", 0o640)
    # group:: rw limited by the mask to r; the named user rw limited to r as well
    setfacl("-m", "u:nobody:rw,g::rw,m::r", masked)

    facts = collect_fs(tree)

    assert grants_on(facts, shared) == {
        ("fs:user/root", FULL_DIR, "fs:mode", ()),
        ("fs:group/root", frozenset({"list", "read"}), "fs:mode", ()),
        ("fs:user/nobody", frozenset({"list", "read"}), "fs:acl", ()),
        # rwx limited by the mask r-x
        ("fs:group/users", frozenset({"list", "read"}), "fs:acl", ()),
    }
    # the named entry gives nobody read on the file, but nobody cannot enter the closed root
    # folder: the file is not a resource of its own
    assert rid(masked) not in facts.resources
    # once nobody may enter the folder, a file entry that adds write makes it one
    setfacl("-m", "u:nobody:rx", tree)
    setfacl("-m", "u:nobody:rw,m::rw", masked)
    facts = collect_fs(tree)
    assert ("fs:user/nobody", frozenset({"read", "write", "delete"}), "fs:acl", ()) in \
        grants_on(facts, masked)


def test_acl_group_entry_narrower_than_mask(tree: Path) -> None:
    box = make_dir(tree, "box", 0o750)
    # the mask (shown as the mode's group bits) is r-x, but group:: itself has nothing
    setfacl("-m", "g::---,u:nobody:rx", box)
    assert (box.stat().st_mode >> 3) & 7 == 5
    facts = collect_fs(tree)
    assert grants_on(facts, box) == {
        ("fs:user/root", FULL_DIR, "fs:mode", ()),
        ("fs:user/nobody", frozenset({"list", "read"}), "fs:acl", ()),
    }


def test_file_owned_by_another_account_is_not_broader(tree: Path) -> None:
    daemon = pwd.getpwnam("daemon")
    owned = tree / "owned.dcm"
    owned.write_text("x")
    os.chown(owned, daemon.pw_uid, 0)
    owned.chmod(0o640)  # the owner may write, the folder's grants do not say so
    facts = collect_fs(tree)
    assert rid(owned) not in facts.resources
    owned.chmod(0o660)  # but the group root may now write as well: broader than the folder
    facts = collect_fs(tree)
    assert grants_on(facts, owned) == {
        ("fs:user/daemon", frozenset({"read", "write", "delete", "admin"}), "fs:mode", ()),
        ("fs:group/root", frozenset({"read", "write", "delete"}), "fs:mode", ()),
    }


def test_file_acl_covered_by_folder_is_not_a_resource(tree: Path) -> None:
    team = make_dir(tree, "team", 0o750, acl="u:nobody:rx")
    report = make_file(team, "report.txt", 0o640, acl="u:nobody:r")
    facts = collect_fs(tree)
    assert rid(report) not in facts.resources


def test_access_through_a_group_covers_a_named_file_entry(tree: Path) -> None:
    # nobody's primary group
    team = make_dir(tree, "team", 0o750, grp.getgrnam(NOBODY_GROUP).gr_gid)
    report = make_file(team, "report.txt", 0o600, acl="u:nobody:r")
    facts = collect_fs(tree)
    assert rid(report) not in facts.resources
    setfacl("-m", "u:nobody:rw", report)  # write is more than the group gives on the folder
    assert rid(report) in collect_fs(tree).resources


def test_default_acl_is_recorded_as_conditioned_grants(tree: Path) -> None:
    inbox = make_dir(tree, "inbox", 0o750)
    setfacl("-d", "-m", "g:users:rx,o::r", inbox)

    facts = collect_fs(tree)

    grants = grants_on(facts, inbox)
    assert ("fs:group/users", frozenset({"read"}), "fs:acl", DEFAULT) in grants
    assert (ANYONE, frozenset({"read"}), "fs:acl", (*ANY, *DEFAULT)) in grants
    # the default ACL does not widen today's access
    assert {g for g in grants if not g[3] or g[3] == ANY} == {
        ("fs:user/root", FULL_DIR, "fs:mode", ()),
        ("fs:group/root", frozenset({"list", "read"}), "fs:mode", ()),
    }


def test_unknown_uid_and_gid(tree: Path) -> None:
    orphan = tree / "orphan"
    orphan.mkdir()
    os.chown(orphan, 54321, 54322)
    orphan.chmod(0o770)
    with pytest.raises(KeyError):
        pwd.getpwuid(54321)

    facts = collect_fs(tree)

    assert grants_on(facts, orphan) == {
        ("fs:user/uid:54321", FULL_DIR, "fs:mode", ()),
        ("fs:group/gid:54322", frozenset({"list", "read", "write", "delete"}), "fs:mode", ()),
    }
    user = facts.principals["fs:user/uid:54321"]
    assert (user.kind, user.name, user.human) == ("user", "uid:54321", False)
    assert facts.principals["fs:group/gid:54322"].kind == "group"
    assert not any(m.target == "fs:group/gid:54322" for m in facts.memberships)


def test_memberships_from_primary_group_and_member_list(
        tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the group database is read through grp: give "users" a member list without touching
    # /etc/group, so the test does not depend on this machine's groups
    users = grp.getgrnam("users")
    listed = grp.struct_group((users.gr_name, users.gr_passwd, users.gr_gid, ["daemon", "nobody"]))
    real_getgrgid, real_getgrall = grp.getgrgid, grp.getgrall
    monkeypatch.setattr(grp, "getgrgid",
                        lambda gid: listed if gid == users.gr_gid else real_getgrgid(gid))
    monkeypatch.setattr(grp, "getgrall", lambda: [listed if g.gr_gid == users.gr_gid else g
                                                  for g in real_getgrall()])
    make_dir(tree, "inbox", 0o750, grp.getgrnam(NOBODY_GROUP).gr_gid)
    make_dir(tree, "team", 0o750, users.gr_gid)

    facts = collect_fs(tree)

    edges = {(m.member, m.target, m.kind, m.source) for m in facts.memberships}
    # nobody's primary group
    assert ("fs:user/nobody", f"fs:group/{NOBODY_GROUP}", "member-of",
            "fs:group-file") in edges
    assert facts.principals["fs:user/nobody"].human is False  # nologin shell, system uid
    # the member list, plus the accounts whose primary group it is
    primary = {f"fs:user/{p.pw_name}" for p in pwd.getpwall() if p.pw_gid == users.gr_gid}
    assert {m.member for m in facts.memberships if m.target == "fs:group/users"} == \
        {"fs:user/daemon", "fs:user/nobody"} | primary
    assert all(m.kind == "member-of" and m.source == "fs:group-file"
               for m in facts.memberships)
    assert facts.principals["fs:user/daemon"].kind == "service"
    # only groups that appear in a grant get memberships
    granted = {g.principal for g in facts.grants}
    assert {m.target for m in facts.memberships} <= granted


def test_memberships_from_a_real_member_list(tree: Path) -> None:
    listed = next((g for g in grp.getgrall() if g.gr_mem and g.gr_gid != 0), None)
    if listed is None:
        pytest.skip("no group other than root lists members in this machine's group database")
    make_dir(tree, "other", 0o750, listed.gr_gid)
    edges = {(m.member, m.target) for m in collect_fs(tree).memberships}
    for name in listed.gr_mem:
        assert (f"fs:user/{name}", f"fs:group/{listed.gr_name}") in edges


def test_human_user_principal(tree: Path) -> None:
    human = next((p for p in pwd.getpwall() if p.pw_uid >= 1000 and p.pw_uid != 65534
                  and os.path.basename(p.pw_shell) not in ("nologin", "false")), None)
    if human is None:
        pytest.skip("no login account with uid >= 1000 on this machine")
    home = tree / "home"
    home.mkdir()
    os.chown(home, human.pw_uid, human.pw_gid)
    facts = collect_fs(tree)
    principal = facts.principals[f"fs:user/{human.pw_name}"]
    assert (principal.kind, principal.human) == ("user", True)
    assert facts.principals["fs:user/root"].human is False  # uid 0


def test_unlistable_folder_is_a_problem(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tree / "locked"
    locked.mkdir()
    (locked / "deeper").mkdir()
    fine = tree / "fine"
    fine.mkdir()
    real = os.scandir

    def scandir(path: str) -> object:
        if str(path) == str(locked):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    facts = collect_fs(tree)

    assert [(p.source, p.asset, p.message) for p in facts.problems] == [
        ("fs", str(locked), "cannot list: PermissionError (EACCES)")]
    assert rid(locked) in facts.resources  # its own mode was still read
    assert rid(locked / "deeper") not in facts.resources
    assert rid(fine) in facts.resources


def test_entry_vanishing_before_stat_is_a_problem(tree: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    gone = tree / "gone"
    gone.mkdir()
    kept = tree / "kept"
    kept.mkdir()
    real = os.stat

    def stat(path: str | Path, *, follow_symlinks: bool = True) -> os.stat_result:
        assert follow_symlinks is False
        if str(path) == str(gone):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(path))
        return real(path, follow_symlinks=follow_symlinks)

    monkeypatch.setattr(os, "stat", stat)
    facts = collect_fs(tree)
    assert [(p.asset, p.message) for p in facts.problems] == [
        (str(gone), "cannot stat: FileNotFoundError (ENOENT)")]
    assert rid(kept) in facts.resources and rid(gone) not in facts.resources


def test_max_entries_stops_with_a_problem(tree: Path) -> None:
    for i in range(10):
        (tree / f"f{i:02d}").write_text("x")
    (tree / "sub").mkdir()  # sorts after the files: never reached

    facts = collect_fs(tree, max_entries=5)
    assert len(facts.problems) == 1
    problem = facts.problems[0]
    assert problem.asset == str(tree)
    assert "stopped after 5 entries" in problem.message
    assert rid(tree / "sub") not in facts.resources

    # exactly at the limit: nothing was left out, no Problem
    exact = collect_fs(tree, max_entries=11)
    assert not exact.problems
    assert rid(tree / "sub") in exact.resources


def test_max_entries_counts_across_folders(tree: Path) -> None:
    for name in ("a", "b"):
        (tree / name).mkdir()
        for i in range(3):
            (tree / name / f"{i}").write_text("x")
    facts = collect_fs(tree, max_entries=6)  # 2 folders + 3 files of a + 1 of b
    assert [(p.asset, "stopped after 6 entries" in p.message) for p in facts.problems] == [
        (str(tree / "b"), True)]


def test_max_depth(tree: Path) -> None:
    deep = tree / "l1" / "l2" / "l3"
    deep.mkdir(parents=True)
    facts = collect_fs(tree, max_depth=2)
    assert set(facts.resources) == {rid(tree), rid(tree / "l1"), rid(tree / "l1" / "l2")}
    assert set(collect_fs(tree, max_depth=0).resources) == {rid(tree)}


def test_symlinks_are_not_followed(tree: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    outside.chmod(0o777)
    exposed = make_file(outside, "world.txt", 0o666)
    inside = tree / "inside"
    inside.mkdir()
    (tree / "to-outside").symlink_to(outside)
    (tree / "to-file").symlink_to(exposed)
    (tree / "to-inside").symlink_to("inside")
    (tree / "dangling").symlink_to(tree / "missing")

    facts = collect_fs(tree)

    assert {(p.asset, p.message) for p in facts.problems} == {
        (str(tree / "to-outside"), "symbolic link to a path outside the scanned root; "
                                   "not followed"),
        (str(tree / "to-file"), "symbolic link to a path outside the scanned root; "
                                "not followed"),
    }
    assert set(facts.resources) == {rid(tree), rid(inside)}
    assert not any(str(outside) in g.resource for g in facts.grants)
    assert not any(str(outside) in p.message for p in facts.problems)


def test_root_must_be_a_real_directory(tmp_path: Path) -> None:
    with pytest.raises(PermissionSourceError, match="no such directory"):
        collect_fs(tmp_path / "missing")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    with pytest.raises(PermissionSourceError, match="is not a directory"):
        collect_fs(plain)
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    with pytest.raises(PermissionSourceError, match="symbolic link"):
        collect_fs(link)


def test_relative_root_is_made_absolute(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree.parent)
    facts = collect_fs(Path(tree.name))
    assert facts.sources == [f"fs:{tree}"]
    assert rid(tree) in facts.resources


def test_no_file_is_opened(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_dir(tree, "study", 0o755)
    tree.chmod(0o755)
    for i in range(3):
        (data / f"img{i}.dcm").write_bytes(b"\0" * 128 + b"DICM")
    (data / "img0.dcm").chmod(0o646)
    # opening a FIFO for reading blocks: a collector that opened files would hang here
    os.mkfifo(data / "pipe")
    before = {p: os.stat(p).st_atime_ns for p in data.iterdir() if p.is_file()}

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"collect_fs opened {args[0]!r}")

    monkeypatch.setattr(builtins, "open", refuse)
    monkeypatch.setattr(io, "open", refuse)
    monkeypatch.setattr(os, "open", refuse)
    facts = collect_fs(tree)
    monkeypatch.undo()

    assert rid(data / "img0.dcm") in facts.resources  # the metadata was read
    assert rid(data / "pipe") not in facts.resources
    assert {p: os.stat(p).st_atime_ns for p in before} == before


def test_unreadable_acl_is_a_problem(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.getxattr

    def getxattr(path: str, name: str, *, follow_symlinks: bool = True) -> bytes:
        assert follow_symlinks is False
        if str(path) == str(tree) and name == "system.posix_acl_access":
            return b"\x02\x00\x00\x00\x01\x00"  # truncated entry
        return real(path, name, follow_symlinks=follow_symlinks)

    monkeypatch.setattr(os, "getxattr", getxattr)
    facts = collect_fs(tree)
    assert len(facts.problems) == 1
    assert facts.problems[0].asset == str(tree)
    assert facts.problems[0].message.startswith("unreadable ACL system.posix_acl_access")
    # the mode bits still count
    assert ("fs:user/root", FULL_DIR, "fs:mode", ()) in grants_on(facts, tree)


def test_parse_acl_binary_format() -> None:
    entries = [(ACL_USER_OBJ, 6, 0xFFFFFFFF), (ACL_USER, 4, 65534), (ACL_GROUP_OBJ, 4, 0xFFFFFFFF),
               (ACL_GROUP, 7, 100), (ACL_MASK, 5, 0xFFFFFFFF), (ACL_OTHER, 0, 0xFFFFFFFF)]
    blob = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)
    parsed = parse_acl(blob)
    assert [(e.tag, e.perm, e.id) for e in parsed] == entries
    with pytest.raises(ValueError, match="version"):
        parse_acl(struct.pack("<I", 1))
    with pytest.raises(ValueError, match="8-byte"):
        parse_acl(blob[:-1])
    with pytest.raises(ValueError, match="tag"):
        parse_acl(struct.pack("<IHHI", 2, 0x40, 7, 0))


def test_parse_acl_matches_the_kernel(tree: Path) -> None:
    target = tree / "f"
    target.write_text("x")
    setfacl("-m", "u:nobody:r,g:users:rw", target)
    parsed = parse_acl(os.getxattr(target, "system.posix_acl_access"))
    named = {(e.tag, e.perm, e.id) for e in parsed if e.tag in (ACL_USER, ACL_GROUP)}
    assert named == {(ACL_USER, 4, pwd.getpwnam("nobody").pw_uid),
                     (ACL_GROUP, 6, grp.getgrnam("users").gr_gid)}
    assert any(e.tag == ACL_MASK and e.perm == 6 for e in parsed)


def test_grants_are_plain_model_objects(tree: Path) -> None:
    facts = collect_fs(tree)
    assert all(isinstance(g, Grant) and g.actions for g in facts.grants)
    assert fs_mod.collect_fs is collect_fs
