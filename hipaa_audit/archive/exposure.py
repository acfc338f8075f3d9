"""Who besides its owner can reach a file: mode bits, POSIX ACLs and the folders above it.

The collector (:func:`file_access`) reads metadata only (``stat``, the ACL extended attribute);
the rule (:func:`exposure_finding`) is pure and fires only for files that hold PHI. "Anyone"
means every local account: the file grants read or write to *other* and every folder above it
lets *other* through; a folder that *other* may write (without the sticky bit) lets anyone
replace or delete the PHI in it.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
import struct
from dataclasses import dataclass
from functools import lru_cache

from hipaa_audit.catalog import Check
from hipaa_audit.evidence import FileAccess
from hipaa_audit.model import Finding, Location, Severity, Status

ACL_XATTR = "system.posix_acl_access"
_ACL_HEADER = struct.Struct("<I")
_ACL_ENTRY = struct.Struct("<HHI")
_ACL_USER, _ACL_GROUP = 0x02, 0x08

#: Checks whose failure means a value that identifies a patient was read from the file: a PHI
#: text export, an identifier inside DICOM text or burned into the pixels, a file that declares
#: de-identification yet keeps the patient's identifiers.
IDENTIFIER_CHECKS = frozenset({"archive-unencrypted-phi", "dicom-identifier-in-text",
                               "dicom-burned-in-text", "dicom-false-deidentification"})
#: The residual-attribute check: it counts only through locations of these kinds (the
#: patient's own identifiers), not for dates, device or study details, UIDs or private bytes.
RESIDUAL_CHECK = "dicom-residual-identifier"
IDENTIFIER_KINDS = frozenset({"patient-name", "patient-id", "patient-birth-date",
                              "patient-address", "patient-phone", "patient-other", "accession"})


@dataclass(frozen=True, slots=True)
class Access:
    """What the file system says about who may reach one file."""

    mode: int
    owner: str
    group: str
    acl_entries: tuple[str, ...]
    blocked_by: str | None  # the first folder above that shuts *other* out
    writable_folder: str | None  # a folder above, writable by anyone without the sticky bit


def parse_acl(data: bytes) -> tuple[str, ...]:
    """Return the named-user and named-group entries of a POSIX ACL xattr (``user:1001:r-``)."""
    if len(data) < _ACL_HEADER.size or _ACL_HEADER.unpack_from(data)[0] != 2:
        return ()
    out = []
    for offset in range(_ACL_HEADER.size, len(data) - _ACL_ENTRY.size + 1, _ACL_ENTRY.size):
        tag, perm, ident = _ACL_ENTRY.unpack_from(data, offset)
        if tag in (_ACL_USER, _ACL_GROUP):
            rights = ("r" if perm & 4 else "-") + ("w" if perm & 2 else "-")
            out.append(f"{'user' if tag == _ACL_USER else 'group'}:{ident}:{rights}")
    return tuple(out)


@lru_cache(maxsize=4096)
def _folder(path: bytes) -> tuple[bool, bool]:
    """(other may pass through, other may write without sticky bit) for one folder."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False, False
    passable = bool(mode & stat.S_IXOTH)
    writable = bool(mode & stat.S_IWOTH) and not mode & stat.S_ISVTX
    return passable, writable


@lru_cache(maxsize=2048)
def _owner(ident: int, *, group: bool) -> str:
    """The name of user (or group) ``ident``; the number itself when the system has none."""
    try:
        return grp.getgrgid(ident).gr_name if group else pwd.getpwuid(ident).pw_name
    except KeyError:
        return str(ident)


def file_access(path: bytes, st: os.stat_result) -> Access:
    """Collect the access facts of ``path`` (already ``stat``-ed as ``st``); metadata only."""
    try:
        acl = parse_acl(os.getxattr(path, ACL_XATTR))
    except OSError:
        acl = ()
    blocked, writable = _folders_above(os.path.dirname(os.path.abspath(path)))
    return Access(st.st_mode, _owner(st.st_uid, group=False), _owner(st.st_gid, group=True),
                  acl, blocked, writable)


@lru_cache(maxsize=4096)
def _folders_above(folder: bytes) -> tuple[str | None, str | None]:
    """(first folder that shuts *other* out, first folder anyone may write) from ``folder`` up."""
    passable, open_to_all = _folder(folder)
    parent = os.path.dirname(folder)
    above = (None, None) if parent == folder else _folders_above(parent)
    blocked = above[0] if above[0] is not None else (None if passable else os.fsdecode(folder))
    writable = os.fsdecode(folder) if open_to_all else above[1]
    return blocked, writable


def names_identifier(finding: Finding) -> bool:
    """True when a failed finding rests on an identifier's value found in the file.

    A missing BurnedInAnnotation, private elements, overlays or a patient's name in the path
    say the file *may* hold PHI; only a found identifier (at medium or above) says it does.
    """
    if finding.status is not Status.FAIL or finding.severity < Severity.MEDIUM:
        return False
    if finding.check_id in IDENTIFIER_CHECKS:
        return True
    if finding.check_id != RESIDUAL_CHECK:
        return False
    return any(
        loc.text("kind") in IDENTIFIER_KINDS
        and Severity(loc.text("severity") or finding.severity.value) >= Severity.MEDIUM
        for loc in finding.locations
    )


def exposure_finding(access: Access, asset: str, check: Check) -> Finding | None:
    """Return the ``exposure`` finding for a PHI file that anyone may read or change."""
    reasons = []
    mode = access.mode
    if mode & stat.S_IROTH and access.blocked_by is None:
        reasons.append("any local account may read it")
    if mode & stat.S_IWOTH and access.blocked_by is None:
        reasons.append("any local account may change it")
    if access.writable_folder is not None:
        reasons.append("a folder above it is writable by anyone, so anyone may replace or "
                       "delete it")
    if not reasons:
        return None
    evidence = FileAccess(
        setting="file-system permissions",
        owner=access.owner,
        group=access.group,
        mode=f"{stat.S_IMODE(mode):04o}",
        permissions=stat.filemode(mode),
        acl=", ".join(access.acl_entries) or None,
        writable_folder=access.writable_folder,
    )
    location = Location.of_evidence(evidence)
    return check.finding(
        asset,
        f"This file holds PHI and {'; '.join(reasons)} (mode {evidence['mode']}, owner "
        f"{access.owner}, group {access.group}).",
        locations=(location,),
    )
