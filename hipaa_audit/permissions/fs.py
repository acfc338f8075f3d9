"""Read who may reach what in a local directory tree, from file-system metadata only.

:func:`collect_fs` never opens a file and never follows a symbolic link: it calls only
:func:`os.scandir`, :func:`os.stat` with ``follow_symlinks=False``, :func:`os.getxattr` with
``follow_symlinks=False`` (for POSIX ACLs) and :func:`os.readlink` (to tell where a link points),
plus the ``pwd``/``grp`` databases for names and group members.

Resources are ``fs:/ABS/PATH`` of kind ``folder``: the root and every directory down to
``max_depth`` levels below it, and a regular file only when its access is broader than its
directory's (a file readable by name in a folder that others may only traverse included).
Files use the kind ``folder`` too (the model has no file kind). Grants come from
the mode bits (source ``fs:mode``) and from named entries of the access ACL (``fs:acl``);
principals are ``fs:user/NAME``, ``fs:group/NAME`` (``fs:user/uid:N``, ``fs:group/gid:N`` for ids
without a name) and :data:`~hipaa_audit.permissions.model.ANYONE` for "other".
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import socket
import stat
import struct
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from hipaa_audit.permissions.exports import PermissionSourceError
from hipaa_audit.permissions.model import (
    ANYONE,
    Facts,
    Grant,
    Membership,
    Principal,
    PrincipalKind,
    Problem,
    Resource,
    widen,
)

__all__ = ["ACL_ACCESS", "ACL_DEFAULT", "AclEntry", "PermissionSourceError", "collect_fs",
           "parse_acl"]

ACL_ACCESS = "system.posix_acl_access"
ACL_DEFAULT = "system.posix_acl_default"

ACL_USER_OBJ = 0x01
ACL_USER = 0x02
ACL_GROUP_OBJ = 0x04
ACL_GROUP = 0x08
ACL_MASK = 0x10
ACL_OTHER = 0x20
_ACL_TAGS = frozenset({ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_GROUP, ACL_MASK, ACL_OTHER})
_ACL_VERSION = 2
_ACL_ENTRY = struct.Struct("<HHI")

#: ``getxattr`` errors that mean "this inode has no such ACL".
_NO_ACL = frozenset({errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP})
_OTHER_CONDITIONS = ("any local account",)
_DEFAULT_CONDITION = "default ACL: inherited by new files"
#: Added to a file's grant when the principal may traverse its folder (x) but not list it (r).
_BY_NAME_CONDITION = "by name only: the folder cannot be listed"
_NO_LOGIN_SHELLS = frozenset({"nologin", "false"})
_FS_ACTIONS = frozenset({"list", "read", "write", "delete"})


@dataclass(frozen=True, slots=True)
class AclEntry:
    """One entry of a POSIX ACL: a tag (``ACL_USER``...), ``rwx`` bits and a uid or gid."""

    tag: int
    perm: int
    id: int


def parse_acl(blob: bytes) -> list[AclEntry]:
    """Parse the Linux xattr form of a POSIX ACL; ``ValueError`` when it is malformed.

    The format is a little-endian ``u32`` version (2), then 8-byte entries of ``u16`` tag,
    ``u16`` permission bits (r=4, w=2, x=1) and ``u32`` uid/gid.
    """
    if len(blob) < 4 or (len(blob) - 4) % _ACL_ENTRY.size:
        raise ValueError(f"an ACL of {len(blob)} bytes is not a header and 8-byte entries")
    (version,) = struct.unpack_from("<I", blob, 0)
    if version != _ACL_VERSION:
        raise ValueError(f"ACL version {version}, expected {_ACL_VERSION}")
    entries = [AclEntry(*_ACL_ENTRY.unpack_from(blob, offset))
               for offset in range(4, len(blob), _ACL_ENTRY.size)]
    for entry in entries:
        if entry.tag not in _ACL_TAGS:
            raise ValueError(f"unknown ACL entry tag {entry.tag:#x}")
    return entries


def _dir_actions(bits: int) -> set[str]:
    """Directory bits: r lists, r+x reads (reaches the files), w+x writes and deletes.

    x alone (traverse: reach an entry whose name is known) gives no action on the folder; the
    collector tracks it apart (:meth:`_Collector.traversers`) to judge the files inside.
    """
    out: set[str] = set()
    if bits & 4:
        out.add("list")
        if bits & 1:
            out.add("read")
    if bits & 2 and bits & 1:
        out.update(("write", "delete"))
    return out


def _file_actions(bits: int) -> set[str]:
    """File bits: r reads, w writes and deletes (truncates)."""
    out: set[str] = set()
    if bits & 4:
        out.add("read")
    if bits & 2:
        out.update(("write", "delete"))
    return out


def _mask(entries: list[AclEntry]) -> int:
    """The ACL mask (all bits when the ACL has none)."""
    return next((e.perm for e in entries if e.tag == ACL_MASK), 7)


def _group_bits(mode: int, entries: list[AclEntry]) -> int:
    """The owning group's bits: the ``group::`` entry limited by the mask, else the mode's."""
    mask = next((e.perm for e in entries if e.tag == ACL_MASK), None)
    group_obj = next((e.perm for e in entries if e.tag == ACL_GROUP_OBJ), None)
    if mask is not None and group_obj is not None:
        return group_obj & mask
    return (mode >> 3) & 7


@dataclass(frozen=True, slots=True)
class _Folder:
    """Who reaches a folder: actions per principal, and who may traverse it (x bit)."""

    actions: dict[str, set[str]]
    traverse: frozenset[str]


def _errno_text(exc: OSError) -> str:
    code = errno.errorcode.get(exc.errno, "") if exc.errno is not None else ""
    return f"{type(exc).__name__} ({code})" if code else type(exc).__name__


class _Collector:
    def __init__(self, root: Path, max_depth: int, max_entries: int) -> None:
        self.root = root
        self.root_text = str(root)
        self.max_depth = max_depth
        self.max_entries = max_entries
        self.system = f"fs:{socket.gethostname()}"
        self.facts = Facts(sources=[f"fs:{root}"])
        self._users: dict[int, tuple[str, pwd.struct_passwd | None]] = {}
        self._groups: dict[int, str] = {}
        self._group_ids: dict[str, int] = {}
        self._user_groups: dict[str, set[str]] | None = None
        self._passwd: list[pwd.struct_passwd] | None = None

    # --- names -----------------------------------------------------------------------------

    def _principal_for(self, name: str, entry: pwd.struct_passwd | None, uid: int | None) -> str:
        pid = f"fs:user/{name}"
        if pid not in self.facts.principals:
            kind: PrincipalKind
            if entry is not None:
                service = (entry.pw_uid < 1000
                           or os.path.basename(entry.pw_shell) in _NO_LOGIN_SHELLS)
                kind = "service" if service else "user"
                human = not service
            else:
                kind = "service" if uid is not None and uid < 1000 else "user"
                human = False
            self.facts.add_principal(Principal(pid, kind, name, "fs", human=human))
        return pid

    def _user_entry(self, uid: int) -> tuple[str, pwd.struct_passwd | None]:
        known = self._users.get(uid)
        if known is None:
            try:
                entry: pwd.struct_passwd | None = pwd.getpwuid(uid)
            except KeyError:
                entry = None
            name = entry.pw_name if entry is not None else f"uid:{uid}"
            known = self._users[uid] = (name, entry)
        return known

    def user_id(self, uid: int) -> str:
        """The principal id of ``uid``, without recording the principal."""
        return f"fs:user/{self._user_entry(uid)[0]}"

    def user(self, uid: int) -> str:
        """The principal id of ``uid``, recorded as a principal."""
        name, entry = self._user_entry(uid)
        return self._principal_for(name, entry, uid)

    def user_named(self, name: str) -> str:
        try:
            entry: pwd.struct_passwd | None = pwd.getpwnam(name)
        except KeyError:
            entry = None
        return self._principal_for(name, entry, None)

    def group_id(self, gid: int) -> str:
        """The principal id of ``gid``, without recording the principal."""
        pid = self._groups.get(gid)
        if pid is None:
            try:
                name = grp.getgrgid(gid).gr_name
            except KeyError:
                name = f"gid:{gid}"
            else:
                self._group_ids[f"fs:group/{name}"] = gid
            pid = self._groups[gid] = f"fs:group/{name}"
        return pid

    def group(self, gid: int) -> str:
        """The principal id of ``gid``, recorded as a principal."""
        pid = self.group_id(gid)
        if pid not in self.facts.principals:
            self.facts.add_principal(
                Principal(pid, "group", pid.removeprefix("fs:group/"), "fs"))
        return pid

    def anyone(self) -> str:
        self.facts.add_principal(Principal(ANYONE, "anyone", "anyone", "fs"))
        return ANYONE

    def passwd(self) -> list[pwd.struct_passwd]:
        if self._passwd is None:
            self._passwd = pwd.getpwall()
        return self._passwd

    def groups_of(self, principal: str) -> set[str]:
        """The ``fs:group/`` ids a ``fs:user/`` principal belongs to (primary and listed)."""
        if self._user_groups is None:
            table: dict[str, set[str]] = {}
            gids: dict[int, str] = {}
            for entry in grp.getgrall():
                gids[entry.gr_gid] = f"fs:group/{entry.gr_name}"
                for member in entry.gr_mem:
                    table.setdefault(f"fs:user/{member}", set()).add(gids[entry.gr_gid])
            for user in self.passwd():
                table.setdefault(f"fs:user/{user.pw_name}", set()).add(
                    gids.get(user.pw_gid, f"fs:group/gid:{user.pw_gid}"))
            self._user_groups = table
        return self._user_groups.get(principal, set())

    def memberships(self) -> None:
        """Add ``member-of`` edges for every named group that appears in a grant."""
        granted = {g.principal for g in self.facts.grants}
        seen: set[tuple[str, str]] = set()
        for group_id in sorted(granted):
            gid = self._group_ids.get(group_id)
            if gid is None:
                continue
            try:
                listed = list(grp.getgrgid(gid).gr_mem)
            except KeyError:
                listed = []
            members = [self.user_named(name) for name in listed]
            members += [self.user(entry.pw_uid) for entry in self.passwd() if entry.pw_gid == gid]
            for member in members:
                if (member, group_id) not in seen:
                    seen.add((member, group_id))
                    self.facts.memberships.append(
                        Membership(member, group_id, "member-of", "fs:group-file"))

    # --- access ----------------------------------------------------------------------------

    def problem(self, path: str, message: str) -> None:
        self.facts.problems.append(Problem("fs", path, message))

    def acl(self, path: str, name: str) -> list[AclEntry] | None:
        """The ACL ``name`` of ``path``; ``None`` when there is none or it cannot be read."""
        try:
            blob = os.getxattr(path, name, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in _NO_ACL:
                self.problem(path, f"cannot read ACL {name}: {_errno_text(exc)}")
            return None
        try:
            return parse_acl(blob)
        except ValueError as exc:
            self.problem(path, f"unreadable ACL {name}: {exc}")
            return None

    def grants(self, resource: str, st: os.stat_result, acl: list[AclEntry] | None,
               actions: Callable[[int], set[str]]) -> list[Grant]:
        """Grants from the mode bits and the named entries of an access ACL."""
        mode = st.st_mode
        entries = acl or []
        group_bits = _group_bits(mode, entries)
        out = [Grant(self.user(st.st_uid), resource,
                     frozenset(actions((mode >> 6) & 7) | {"admin"}), "fs:mode")]
        if acts := actions(group_bits):
            out.append(Grant(self.group(st.st_gid), resource, frozenset(acts), "fs:mode"))
        if acts := actions(mode & 7):
            out.append(Grant(self.anyone(), resource, frozenset(acts), "fs:mode",
                             _OTHER_CONDITIONS))
        out.extend(self.named(resource, entries, actions, ()))
        return out

    def named(self, resource: str, entries: list[AclEntry], actions: Callable[[int], set[str]],
              conditions: tuple[str, ...]) -> Iterable[Grant]:
        """Grants for the named user and group entries of an ACL, limited by its mask."""
        mask = _mask(entries)
        for entry in entries:
            if entry.tag not in (ACL_USER, ACL_GROUP):
                continue
            acts = actions(entry.perm & mask)
            if acts:
                who = self.user(entry.id) if entry.tag == ACL_USER else self.group(entry.id)
                yield Grant(who, resource, frozenset(acts), "fs:acl", conditions)

    def default_grants(self, resource: str, entries: list[AclEntry]) -> list[Grant]:
        """Grants for a directory's default ACL: its named entries and ``other``, as for files."""
        conditions = (_DEFAULT_CONDITION,)
        out = list(self.named(resource, entries, _file_actions, conditions))
        for entry in entries:
            if entry.tag == ACL_OTHER and (acts := _file_actions(entry.perm)):
                out.append(Grant(self.anyone(), resource, frozenset(acts), "fs:acl",
                                 (*_OTHER_CONDITIONS, _DEFAULT_CONDITION)))
        return out

    def traversers(self, st: os.stat_result, acl: list[AclEntry] | None) -> frozenset[str]:
        """Who has the x (search) bit on a directory, so may reach its entries by name.

        The owner by the owner bits, the owning group by its bits (``group::`` within the
        mask), :data:`ANYONE` by the other bits, named ACL users and groups within the mask.
        Principals are not recorded here: only ids are returned.
        """
        mode = st.st_mode
        entries = acl or []
        out: set[str] = set()
        if mode & 0o100:
            out.add(self.user_id(st.st_uid))
        if _group_bits(mode, entries) & 1:
            out.add(self.group_id(st.st_gid))
        if mode & 0o001:
            out.add(ANYONE)
        mask = _mask(entries)
        for entry in entries:
            if entry.tag in (ACL_USER, ACL_GROUP) and entry.perm & mask & 1:
                out.add(self.user_id(entry.id) if entry.tag == ACL_USER
                        else self.group_id(entry.id))
        return frozenset(out)

    def routes(self, principal: str) -> set[str]:
        """The principal itself, its groups (for a user) and :data:`ANYONE`."""
        out = {principal, ANYONE}
        if principal.startswith("fs:user/"):
            out |= self.groups_of(principal)
        return out

    def reach(self, grants: list[Grant]) -> dict[str, set[str]]:
        """Actions per principal, from grants without conditions other than "any account"."""
        out: dict[str, set[str]] = {}
        for grant in grants:
            if _DEFAULT_CONDITION not in grant.conditions:
                out.setdefault(grant.principal, set()).update(grant.actions)
        return out

    def on_folder(self, principal: str, folder: _Folder) -> tuple[bool, set[str]]:
        """Whether ``principal`` may traverse ``folder``, and its actions there (unwidened).

        Both count what it holds directly, through its groups and through :data:`ANYONE`.
        """
        routes = self.routes(principal)
        known: set[str] = set()
        for route in routes:
            known |= folder.actions.get(route, set())
        return bool(routes & folder.traverse), known

    def broader(self, file_grants: list[Grant], owner: str, folder: _Folder) -> bool:
        """Whether anyone but the file's owner may do more to the file than to its folder.

        Only principals that may traverse the folder (x bit) count: a world-readable file in a
        folder closed to other accounts gives them nothing, while one in a folder they may only
        traverse (``0o711``) is readable by anyone who knows its name, so it is broader than
        the folder, which gives them no read.
        """
        for principal, actions in self.reach(file_grants).items():
            if principal == owner:
                continue
            traverse, known = self.on_folder(principal, folder)
            if not traverse:
                continue  # it cannot enter the folder, so the file's bits give it nothing
            if not (actions & _FS_ACTIONS) <= widen(known):
                return True
        return False

    def by_name(self, grant: Grant, folder: _Folder) -> Grant:
        """Add the "by name only" condition when ``grant``'s principal may not list the folder.

        That is, it may traverse the folder (x) but holds no r there: it reaches the file only
        by knowing its name.
        """
        traverse, known = self.on_folder(grant.principal, folder)
        if traverse and "list" not in known:
            return Grant(grant.principal, grant.resource, grant.actions, grant.source,
                         (*grant.conditions, _BY_NAME_CONDITION))
        return grant

    # --- walk ------------------------------------------------------------------------------

    def folder(self, path: str, st: os.stat_result) -> _Folder:
        """Record a directory as a resource with its grants; return who reaches it."""
        rid = f"fs:{path}"
        self.facts.add_resource(Resource(rid, "folder", None, self.system))
        access = self.acl(path, ACL_ACCESS)
        grants = self.grants(rid, st, access, _dir_actions)
        self.facts.grants.extend(grants)
        default = self.acl(path, ACL_DEFAULT)
        if default:
            self.facts.grants.extend(self.default_grants(rid, default))
        return _Folder(self.reach(grants), self.traversers(st, access))

    def file(self, path: str, st: os.stat_result, folder: _Folder) -> None:
        """Record a regular file as a resource when its access is broader than its folder's."""
        rid = f"fs:{path}"
        grants = self.grants(rid, st, self.acl(path, ACL_ACCESS), _file_actions)
        if self.broader(grants, self.user(st.st_uid), folder):
            self.facts.add_resource(Resource(rid, "folder", None, self.system))
            self.facts.grants.extend(self.by_name(grant, folder) for grant in grants)

    def link(self, path: str) -> None:
        """A symbolic link is not followed; one pointing outside the root is a Problem."""
        try:
            target = os.readlink(path)
        except OSError as exc:
            self.problem(path, f"cannot read symbolic link: {_errno_text(exc)}")
            return
        resolved = os.path.normpath(os.path.join(os.path.dirname(path), target))
        if os.path.commonpath([self.root_text, resolved]) != self.root_text:
            self.problem(path, "symbolic link to a path outside the scanned root; not followed")

    def walk(self, root_stat: os.stat_result) -> None:
        queue: deque[tuple[str, int, os.stat_result]] = deque([(self.root_text, 0, root_stat)])
        seen = 0
        while queue:
            path, depth, st = queue.popleft()
            folder = self.folder(path, st)
            budget = self.max_entries - seen
            names: list[str] = []
            try:
                with os.scandir(path) as listing:
                    for entry in listing:
                        names.append(entry.name)
                        if len(names) > budget:
                            break
            except OSError as exc:
                self.problem(path, f"cannot list: {_errno_text(exc)}")
            names.sort()
            truncated = len(names) > budget
            for name in names[:budget]:
                seen += 1
                child = os.path.join(path, name)
                try:
                    cst = os.stat(child, follow_symlinks=False)
                except OSError as exc:
                    self.problem(child, f"cannot stat: {_errno_text(exc)}")
                    continue
                if stat.S_ISLNK(cst.st_mode):
                    self.link(child)
                elif stat.S_ISDIR(cst.st_mode):
                    if depth < self.max_depth:
                        queue.append((child, depth + 1, cst))
                elif stat.S_ISREG(cst.st_mode):
                    self.file(child, cst, folder)
            if truncated:
                self.problem(path, f"stopped after {self.max_entries} entries (max_entries): "
                                   f"the rest of this folder and {len(queue)} queued folders "
                                   "were not examined")
                return


def collect_fs(root: Path, *, max_depth: int = 4, max_entries: int = 200_000) -> Facts:
    """Collect the access to a directory tree from its modes and POSIX ACLs, read-only.

    The root and every directory down to ``max_depth`` levels below it (the root is level 0) is
    a resource ``fs:/ABS/PATH`` (kind ``folder``, system ``fs:HOSTNAME``); deeper directories
    are not examined. A regular file is its own resource (kind ``folder`` as well: the model has
    no file kind) only when someone other than its owner may do more to it than to its folder,
    counting what they reach through their groups and ``other`` (a world-readable file in a
    folder that is not, a named ACL entry the folder lacks). Only principals that may traverse
    the folder (its x bit, held directly, through a group, through ``other`` or through an ACL
    entry within the mask) count: one without x gets nothing from the file's bits, while one
    with x but no r (a ``0o711`` or ``0o751`` folder) reaches the file by its name. The file's
    grants to such a traverse-only principal carry the extra condition
    ``"by name only: the folder cannot be listed"``. Access through the root's own ancestors
    is not examined: the root is judged as if it could be reached. Other file types are
    ignored.

    Grants (source ``fs:mode``): the owner ``fs:user/NAME`` gets the owner bits plus ``admin``;
    the group ``fs:group/NAME`` the group bits (the ACL's ``group::`` entry limited by its
    mask when the inode has an ACL with a mask); :data:`ANYONE` the other bits, with the
    condition ``"any local account"``. Directory bits: r → list, r+x → list+read,
    w+x → write+delete; file bits: r → read, w → write+delete; setuid, setgid and sticky bits
    are ignored. Named user and group entries of ``system.posix_acl_access`` become grants with
    source ``fs:acl``, limited by the mask. A directory's default ACL
    (``system.posix_acl_default``) adds grants, with file semantics, for its named entries and
    its ``other`` entry, conditioned ``"default ACL: inherited by new files"``.

    Each ``fs:group/`` in a grant gets ``member-of`` memberships (source ``fs:group-file``) from
    its member list and from accounts whose primary group it is. Users below uid 1000 or with a
    ``nologin``/``false`` shell are ``service`` principals; other named users are human. An
    owner uid or gid without a name is ``fs:user/uid:N`` or ``fs:group/gid:N`` (not human).

    Symbolic links are never followed: a link whose target (resolved lexically) lies outside the
    root is a Problem, any other link is ignored. An entry that cannot be listed, stat-ed or
    whose ACL cannot be read is a Problem (source ``fs``, the path as asset, the error name in
    the message); after ``max_entries`` directory entries the walk stops with a Problem naming
    the folder where it stopped. Raises :class:`PermissionSourceError` when ``root`` does not
    exist, cannot be stat-ed or is not a directory (a link to one included).
    """
    if max_depth < 0 or max_entries < 1:
        raise ValueError("max_depth must be 0 or more and max_entries 1 or more")
    root = Path(os.path.abspath(root))
    try:
        st = os.stat(root, follow_symlinks=False)
    except FileNotFoundError:
        raise PermissionSourceError(f"{root}: no such directory") from None
    except OSError as exc:
        raise PermissionSourceError(f"{root}: cannot stat: {_errno_text(exc)}") from None
    if stat.S_ISLNK(st.st_mode):
        raise PermissionSourceError(f"{root} is a symbolic link, which is not followed; "
                                    "give the directory it points to")
    if not stat.S_ISDIR(st.st_mode):
        raise PermissionSourceError(f"{root} is not a directory")
    collector = _Collector(root, max_depth, max_entries)
    collector.walk(st)
    collector.memberships()
    return collector.facts
