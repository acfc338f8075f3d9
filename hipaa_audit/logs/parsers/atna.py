"""DICOM audit messages (PS3.15 A.5 / RFC 3881 XML, bare or in syslog lines) into event rows."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

from hipaa_audit.logs.parsers.common import (
    MAX_RECORD_CHARS,
    _Bad,
    _Collector,
    _family_name,
    _Fingerprints,
    _int,
    _is_patient_role,
    _Lines,
    _open_text,
    _patient_id,
    _pick_purpose,
    _Row,
    _str,
)
from hipaa_audit.logs.parsers.sniff import _ATNA_END, _ATNA_START
from hipaa_audit.logs.schema import Chunk

_DTD = re.compile(r"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")
_SYSLOG_PRI = re.compile(r"^\s*(?:\d+\s+)?<\d{1,3}>")
_CRUDE = {"C": "create", "R": "view", "U": "update", "D": "delete", "E": "other"}
_SECURITY_TYPES = {
    "110127": "break-glass-start", "110138": "break-glass-stop",
    "110135": "permission-change", "110136": "permission-change",
    "110137": "permission-change",
    "110128": "config-change", "110129": "config-change", "110130": "config-change",
    "110131": "config-change",
    "110133": "audit-stop", "110134": "audit-start",
}


def _dicom_action(event_id: str, types: list[str], action_code: str,
                  media_export: bool) -> str:
    """The normalised action of a DICOM audit event (CID 400 event id, CID 401 type codes)."""
    if event_id == "110106":
        return "export"
    if event_id in ("110104", "110102"):
        if media_export:
            return "export"
        # 110102 only announces a transfer that 110104 reports: not counted twice
        return "download" if event_id == "110104" else "other"
    if event_id in ("110103", "110110", "110109", "110111"):
        return _CRUDE.get(action_code, "other")
    if event_id == "110105":
        return "delete"
    if event_id == "110112":
        return "query"
    if event_id == "110114":
        if "110122" in types:
            return "login"
        if "110123" in types:
            return "logout"
        return "other"
    if event_id == "110113":
        for code in types:
            if code in _SECURITY_TYPES:
                return _SECURITY_TYPES[code]
        return "security-alert"
    if event_id == "110100":
        if "110133" in types:
            return "audit-stop"
        if "110134" in types:
            return "audit-start"
        return "other"
    if event_id == "110101":
        return "log-access"
    if event_id == "110107":
        return "import"
    return "other"


def _xml_code(element: ET.Element) -> str | None:
    """The code of a coded value in either spelling (``csd-code`` or ``code``)."""
    value = element.get("csd-code") or element.get("code")
    return value.strip() if value else None


def _xml_text(element: ET.Element) -> str | None:
    """The text of a coded value in either spelling (``originalText`` or ``displayName``)."""
    value = element.get("originalText") or element.get("displayName")
    return value.strip() if value else None


def _strip_namespaces(root: ET.Element) -> None:
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.startswith("{"):
            element.tag = element.tag.split("}", 1)[1]


def _is_reporter(part: ET.Element, system: str | None) -> bool:
    """Whether an active participant is the system that wrote the audit record.

    Its user id, alternative user id or network access point equals the record's
    ``AuditSourceID`` (case aside).
    """
    if not system:
        return False
    me = system.strip().lower()
    return any((part.get(attr) or "").strip().lower() == me
               for attr in ("UserID", "AlternativeUserID", "NetworkAccessPointID"))


def _atna_row(root: ET.Element, fp: _Fingerprints, line: int, event_key: str) -> _Row:
    if root.tag.startswith("{"):
        _strip_namespaces(root)
    ident: ET.Element | None = None
    participants: list[ET.Element] = []
    objects: list[ET.Element] = []
    system: str | None = None
    for child in root:
        tag = child.tag
        if tag == "EventIdentification":
            ident = child
        elif tag == "ActiveParticipant":
            participants.append(child)
        elif tag == "ParticipantObjectIdentification":
            objects.append(child)
        elif tag == "AuditSourceIdentification" and system is None:
            system = _str(child.get("AuditSourceID"))
    if ident is None:
        raise _Bad("no EventIdentification")
    time = _str(ident.get("EventDateTime"))
    if time is None:
        raise _Bad("no EventDateTime")
    outcome_code = _str(ident.get("EventOutcomeIndicator"))
    outcome = None if outcome_code is None else ("success" if outcome_code == "0" else "failure")
    action_code = (ident.get("EventActionCode") or "").strip().upper()
    event_id: str | None = None
    types: list[str] = []
    purposes: list[str] = []
    for sub in ident:
        code = sub.get("csd-code") or sub.get("code")  # as _xml_code
        if not code:
            continue
        code = code.strip()
        if not code:
            continue
        if sub.tag == "EventID":
            event_id = code
        elif sub.tag == "EventTypeCode":
            types.append(code)
        elif sub.tag == "PurposeOfUse":
            purposes.append(code)
    if event_id is None:
        raise _Bad("no EventID")

    requestor: ET.Element | None = None
    first_user: ET.Element | None = None
    media_type: str | None = None
    destination: str | None = None
    local_destination = requestor_is_source = False
    for part in participants:
        uid = _str(part.get("UserID"))
        roles: list[str] = []
        media: ET.Element | None = None
        for sub in part:
            tag = sub.tag
            if tag == "RoleIDCode":
                roles.append(_xml_code(sub) or "")
            elif tag == "MediaIdentifier":
                media = sub
        if media is not None:
            if "110155" not in roles and media_type is None:  # not source media
                kind = next((_xml_code(m) for m in media if m.tag == "MediaType"), None)
                media_type = kind or "unknown"
        elif "110152" in roles:
            local_destination = local_destination or _is_reporter(part, system)
            if destination is None and uid:
                destination = uid
        if uid is None:
            continue
        if requestor is None and (part.get("UserIsRequestor") or "").strip().lower() in (
                "true", "1"):
            requestor = part
            requestor_is_source = "110153" in roles and not _is_reporter(part, system)
        is_destination = media is not None or "110152" in roles or "110154" in roles
        if first_user is None and not is_destination:
            first_user = part
    actor = requestor if requestor is not None else first_user
    user = role = source_ip = device = None
    actor_is_patient = False
    if actor is not None:
        actor_roles = [sub for sub in actor if sub.tag == "RoleIDCode"]
        actor_is_patient = _is_patient_role(
            [(_xml_code(sub) or "") for sub in actor_roles]
            + [_xml_text(sub) or "" for sub in actor_roles])
        user = _str(actor.get("UserID"))
        address = _str(actor.get("NetworkAccessPointID"))
        kind = (actor.get("NetworkAccessPointTypeCode") or "").strip()
        if kind == "2":
            source_ip = address
        elif kind == "1":
            device = address
        for sub in actor_roles:
            # a coded job role (e.g. from XUA), not one of the DICOM transfer roles
            if (sub.get("codeSystemName") or "").upper() != "DCM":
                code = _xml_code(sub) or ""
                if not code.startswith("11015"):
                    role = _xml_text(sub) or code or None
                    break

    patient = patient_name = study = accession = None
    raw_patient: str | None = None
    raw_name: str | None = None
    instances: int | None = None
    for obj in objects:
        id_type: str | None = None
        name: str | None = _str(obj.get("ParticipantObjectName"))
        for sub in obj:
            tag = sub.tag
            if tag == "ParticipantObjectIDTypeCode":
                id_type = _xml_code(sub)
            elif tag == "ParticipantObjectName":
                name = _str(sub.text)
            elif tag in ("ParticipantObjectDescription", "SOPClass"):
                for desc in sub.iter():
                    if desc.tag == "SOPClass":
                        count = _int(desc.get("NumberOfInstances"))
                        if count is not None:
                            instances = (instances or 0) + count
                    elif desc.tag == "Accession" and accession is None:
                        accession = _str(desc.get("Number"))
        oid = obj.get("ParticipantObjectID")
        if (patient is None and obj.get("ParticipantObjectTypeCode") == "1"
                and obj.get("ParticipantObjectTypeCodeRole") == "1"):
            raw_patient = _patient_id(oid)  # as fp.patient, fp.name
            patient = fp(raw_patient) if raw_patient else None
            if patient is not None and name:
                raw_name = _family_name(name)
                patient_name = fp(raw_name) if raw_name else None
        elif id_type == "110180" and study is None:
            study = fp.study(oid)
    if study is None and accession:
        study = fp.study(accession)

    action = _dicom_action(event_id, types, action_code, media_type is not None)
    if event_id in ("110104", "110102") and media_type is None and (
            local_destination or (requestor_is_source and action_code == "C")):
        # instances sent in (a modality's or a migration's C-STORE): the archive that wrote
        # the record is the destination, so nothing left it
        action = "import" if event_id == "110104" else "other"
    known = (raw_patient, raw_name)
    if actor_is_patient or (user is not None and _patient_id(user) == raw_patient):
        user, source_ip, device = fp.actor(user), fp.mask(source_ip), fp.mask(device)
    target = (f"media:{fp.label(media_type, known, codes=True)}" if media_type is not None
              else fp.label(destination, known))
    code = f"{event_id}/{types[0]}" if types else event_id
    return _Row(time, user, role, action, outcome, patient, patient_name, study, instances, None,
                source_ip, fp.label(device, known), _pick_purpose(purposes), event_key,
                fp.label(code, known, codes=True), target, fp.label(system, known), line)


def _parse_atna(path: Path, fp: _Fingerprints, col: _Collector,
                start_tag: re.Pattern[str] = _ATNA_START, end_tag: str = _ATNA_END,
                to_row: Callable[[ET.Element, _Fingerprints, int, str], _Row] = _atna_row,
                label: str = "AuditMessage") -> Iterator[Chunk]:
    """Stream the XML messages of a file (ATNA; FHIR AuditEvent in XML).

    Each runs from ``start_tag`` to ``end_tag`` (bare, in syslog lines, several on a line or
    one over many), is parsed with DTDs and entities refused and at most
    :data:`MAX_RECORD_CHARS` long, and is made a row by ``to_row``. Text outside the messages
    that is not markup is a malformed line (``no`` ``label``).
    """
    name = path.name
    too_large, truncated, missing = f"{label} too large", f"truncated {label}", f"no {label}"
    buffer: list[str] = []
    size = 0
    in_message = False
    start_line = 0
    dtd = False
    pending_header: int | None = None
    last_start = 0
    on_line = 0
    carry = ""
    line_start = True
    oversize = False  # inside a message too large to hold: skipped to its end

    def emit(text: str) -> Chunk | None:
        nonlocal dtd, last_start, on_line
        had_dtd, dtd = dtd, False
        if last_start == start_line:
            on_line += 1
        else:
            last_start, on_line = start_line, 1
        if had_dtd or ("<!" in text and _DTD.search(text)):
            col.bad(start_line, "DTD not allowed")
            return None
        try:
            root = ET.fromstring(text)
        except ET.ParseError:
            col.bad(start_line, "not XML")
            return None
        key = f"{name}:{start_line}" if on_line == 1 else f"{name}:{start_line}:{on_line}"
        try:
            row = to_row(root, fp, start_line, key)
        except _Bad as exc:
            col.bad(start_line, exc.reason)
            return None
        return col.add(row)

    with _open_text(path) as handle:
        lines = _Lines(handle)
        for lineno, raw_piece, complete in lines:
            piece = carry + raw_piece if carry else raw_piece
            carry = ""
            if not complete:  # keep a tag cut in two for the next piece
                lt = piece.rfind("<")
                if lt >= 0 and piece.find(">", lt) < 0 and len(piece) - lt < 256:
                    carry, piece = piece[lt:], piece[:lt]
            whole_line = line_start and complete
            line_start = complete
            touched = in_message
            pos = 0
            while True:
                if in_message:
                    end = piece.find(end_tag, pos)
                    restart = start_tag.search(piece, pos)
                    if restart is not None and (end < 0 or restart.start() < end):
                        col.bad(start_line, too_large if oversize
                                else truncated)
                        in_message, oversize, buffer, size = False, False, [], 0
                        pos = restart.start()
                        continue
                    if end < 0:
                        if not oversize:
                            buffer.append(piece[pos:])
                            size += len(piece) - pos
                            if size > MAX_RECORD_CHARS:
                                oversize, buffer, size = True, [], 0
                        break
                    stop = end + len(end_tag)
                    if oversize:
                        col.bad(start_line, too_large)
                        in_message, oversize = False, False
                        pos = stop
                        continue
                    buffer.append(piece[pos:stop])
                    text = "".join(buffer)
                    in_message, buffer, size = False, [], 0
                    chunk = emit(text)
                    if chunk is not None:
                        yield chunk
                    pos = stop
                    continue
                match = start_tag.search(piece, pos)
                outside = piece[pos:] if match is None else piece[pos:match.start()]
                if "<!" in outside and _DTD.search(outside):
                    dtd = True
                if match is None:
                    if not touched and whole_line:
                        if _SYSLOG_PRI.match(outside):
                            # a syslog header whose XML may follow on the next lines
                            if pending_header is not None:
                                col.bad(pending_header, missing)
                            pending_header = lineno
                        elif _TAG.sub("", outside).strip() and not dtd:
                            col.bad(lineno, missing)
                    break
                if pending_header is not None and _SYSLOG_PRI.match(outside):
                    # this message has its own syslog header: the pending one stood alone
                    col.bad(pending_header, missing)
                pending_header = None
                touched = in_message = True
                start_line = lineno
                buffer, size = [match.group()], 0
                pos = match.end()
        if lines.error is not None:
            col.bad(lines.line, lines.error)
        if in_message:
            col.bad(start_line, too_large if oversize
                    else truncated)
        if pending_header is not None:
            col.bad(pending_header, missing)
    yield from col.finish()
