"""FHIR R4 ``AuditEvent`` (one resource, a ``Bundle``, NDJSON or XML) into event rows."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hipaa_audit.logs.parsers.atna import _CRUDE, _dicom_action, _strip_namespaces
from hipaa_audit.logs.parsers.common import (
    PATIENT_ID_TYPES,
    _Bad,
    _Collector,
    _dict,
    _family_name,
    _Fingerprints,
    _int,
    _is_patient_role,
    _patient_id,
    _pick_purpose,
    _Row,
    _str,
    may_identify,
)
from hipaa_audit.logs.parsers.jsonstream import _json_record_rows

#: Nested DICOM extensions of a FHIR entity followed at most this deep.
MAX_EXTENSION_DEPTH = 16


# FHIR AuditEvent

_REST = {
    "read": "view", "vread": "view",
    "search": "query", "search-type": "query", "search-system": "query",
    "search-compartment": "query", "history": "query", "history-instance": "query",
    "history-type": "query", "history-system": "query",
    "create": "create", "update": "update", "patch": "update", "delete": "delete",
}
_PATIENT_REF = re.compile(r"(?:^|/)Patient/([^/?#]+)")


def _codes(value: object) -> list[str]:
    """The codes of a Coding, a CodeableConcept, or a list of either."""
    out: list[str] = []
    if value is None:
        return out
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, dict):
            continue
        code = item.get("code")
        if isinstance(code, str) and code.strip():
            out.append(code.strip())
        codings = item.get("coding")
        if isinstance(codings, list):
            for coding in codings:
                if isinstance(coding, dict):
                    sub = coding.get("code")
                    if isinstance(sub, str) and sub.strip():
                        out.append(sub.strip())
    return out


def _concept_text(value: object) -> str | None:
    """A readable label of a CodeableConcept (or the first of a list): text, display or code."""
    if isinstance(value, list):
        value = value[0] if value else None
    if not isinstance(value, dict):
        return None
    text = _str(value.get("text"))
    if text:
        return text
    codings = value.get("coding")
    if isinstance(codings, list):
        for coding in codings:
            if isinstance(coding, dict):
                label = _str(coding.get("display")) or _str(coding.get("code"))
                if label:
                    return label
    return _str(value.get("display")) or _str(value.get("code"))


def _reference_label(value: object) -> str | None:
    ref = _dict(value)
    return (_str(ref.get("display")) or _str(ref.get("reference"))
            or _str(_dict(ref.get("identifier")).get("value")))


def _instances(extensions: object, depth: int = 0) -> int | None:
    """Σ ``NumberOfInstances`` in the (nested) DICOM extensions of an entity.

    Raises :class:`_Bad` past :data:`MAX_EXTENSION_DEPTH` levels or for a count out of range.
    """
    total: int | None = None
    if not isinstance(extensions, list):
        return None
    if depth > MAX_EXTENSION_DEPTH:
        raise _Bad("extensions nested too deep")
    for ext in extensions:
        if not isinstance(ext, dict):
            continue
        url = ext.get("url")
        if isinstance(url, str) and "numberofinstances" in url.lower():
            for key in ("valueInteger", "valueUnsignedInt", "valuePositiveInt", "valueString",
                        "valueDecimal"):
                count = _int(ext.get(key))
                if count is not None:
                    total = (total or 0) + count
                    break
        nested = _instances(ext.get("extension"), depth + 1)
        if nested is not None:
            total = (total or 0) + nested
    return total


def _fhir_row(res: dict[str, Any], fp: _Fingerprints, line: int, fallback_id: str) -> _Row:
    if res.get("resourceType") != "AuditEvent":
        raise _Bad("not an AuditEvent")
    time = _str(res.get("recorded"))
    if time is None:
        raise _Bad("no recorded")
    raw_outcome = res.get("outcome")
    if isinstance(raw_outcome, dict):  # R5: {code: Coding}
        raw_outcome = _dict(raw_outcome.get("code")).get("code")
    outcome_code = _str(raw_outcome)
    outcome = None if outcome_code is None else ("success" if outcome_code == "0" else "failure")
    type_codes = _codes(res.get("type")) or _codes(res.get("category"))
    subtypes = _codes(res.get("subtype")) or _codes(res.get("code"))
    action_code = (_str(res.get("action")) or "").upper()

    agents = [a for a in res.get("agent") or [] if isinstance(a, dict)]
    actor = next((a for a in agents if a.get("requestor") in (True, "true")), None)
    if actor is None and agents:
        actor = agents[0]
    user = role = source_ip = device = actor_id = None
    actor_is_patient = False
    purposes = _codes(res.get("purposeOfEvent")) + _codes(res.get("authorization"))
    if actor is not None:
        who = _dict(actor.get("who"))
        if not who:  # STU3: the agent's userId (Identifier) and reference (Reference)
            who = {**_dict(actor.get("reference")), "identifier": _dict(actor.get("userId"))}
        reference = _str(who.get("reference"))
        ident = _dict(who.get("identifier"))
        identifier = _str(ident.get("value"))
        found = _PATIENT_REF.search(reference or "")
        # a patient acting (portal): by reference, type, role (PAT) or an MRN-typed identifier
        actor_is_patient = (found is not None or who.get("type") == "Patient"
                            or _is_patient_role(_codes(actor.get("role"))
                                                + _codes(actor.get("type")))
                            or any(c.upper() in PATIENT_ID_TYPES
                                   for c in _codes(ident.get("type"))))
        actor_id = found.group(1) if found else identifier or reference
        user = identifier or reference or _str(actor.get("name")) or _str(who.get("display"))
        role = _concept_text(actor.get("role"))
        network = _dict(actor.get("network"))
        address = _str(network.get("address")) or _str(actor.get("networkString"))
        kind = _str(network.get("type"))
        if kind in ("1", "5"):  # machine name, URI
            device = address
        elif kind in (None, "2"):  # IP address (or unsaid); not phone numbers or e-mail
            source_ip = address
        purposes += _codes(actor.get("purposeOfUse"))
    source = _dict(res.get("source"))
    # STU3: the source's identifier (Identifier) stands for R4's observer
    observer = _reference_label(source.get("observer")) or _str(
        _dict(source.get("identifier")).get("value"))
    site = _str(source.get("site")) or _reference_label(source.get("site"))
    device = device or observer
    system = observer or site  # the observer is the system that wrote it (AuditSourceID)

    patient = patient_name = study = None
    raw_patient: str | None = None
    raw_name: str | None = None
    instances: int | None = None
    for entity in res.get("entity") or []:
        if not isinstance(entity, dict):
            continue
        what = _dict(entity.get("what"))
        if not what:  # STU3: the entity's reference (Reference) and identifier (Identifier)
            what = {**_dict(entity.get("reference")),
                    "identifier": _dict(entity.get("identifier"))}
        reference = _str(what.get("reference"))
        ident = _dict(what.get("identifier"))
        value = _str(ident.get("value"))
        found = _PATIENT_REF.search(reference) if reference else None
        if patient is None and ("1" in _codes(entity.get("role")) or found is not None):
            raw_patient = _patient_id(found.group(1) if found else value or reference)
            patient = fp(raw_patient) if raw_patient else None  # as fp.patient
            name = _str(entity.get("name")) or _str(what.get("display"))
            if patient is not None and name:
                raw_name = _family_name(name)  # as fp.name
                patient_name = fp(raw_name) if raw_name else None
        elif study is None and (
                "110180" in _codes(ident.get("type")) or "110180" in _codes(entity.get("type"))
                or ident.get("system") == "urn:dicom:uid"
                or (reference is not None and reference.startswith("ImagingStudy/"))):
            study = fp.study(value or (reference.split("/", 1)[1] if reference else None))
        count = _instances(entity.get("extension"))
        if count is not None:
            instances = (instances or 0) + count
    if patient is None:  # R5 AuditEvent.patient
        found = _PATIENT_REF.search(_str(_dict(res.get("patient")).get("reference")) or "")
        if found:
            raw_patient = _patient_id(found.group(1))
            patient = fp(raw_patient) if raw_patient else None
    known = (raw_patient, raw_name)
    if actor_is_patient or (raw_patient is not None and raw_patient in (
            _patient_id(actor_id), _patient_id(user))):
        # never their raw id, name or address
        user = fp.actor((actor_id or user) if actor_is_patient else raw_patient)
        source_ip, device = fp.mask(source_ip), fp.mask(device) if device != observer else device

    type_code = type_codes[0] if type_codes else None
    if type_code is not None and type_code.startswith("1101"):
        action = _dicom_action(type_code, subtypes, action_code, False)
    else:
        action = next((_REST[s] for s in subtypes if s in _REST), "") or _CRUDE.get(
            action_code, "other")
    code = f"{type_code}/{subtypes[0]}" if type_code and subtypes else (type_code or (
        subtypes[0] if subtypes else None))
    event_key = _str(res.get("id"))
    if event_key is None or may_identify(event_key, known):
        event_key = fallback_id
    return _Row(time, user, role, action, outcome, patient, patient_name, study, instances, None,
                source_ip, fp.label(device, known), _pick_purpose(purposes), event_key,
                fp.label(code, known, codes=True), None, fp.label(system, known), line)


#: FHIR elements that are lists in JSON wherever they appear (AuditEvent R4, STU3 and R5, their
#: data types, Bundle); ``type`` is one only under ``source``.
_FHIR_XML_LISTS = frozenset({
    "subtype", "purposeOfEvent", "agent", "entity", "role", "policy", "purposeOfUse", "detail",
    "securityLabel", "coding", "extension", "modifierExtension", "category", "authorization",
    "entry", "link"})
#: A FHIR XML resource nested deeper than this is malformed.
MAX_FHIR_XML_DEPTH = 32


def _fhir_xml_value(element: ET.Element, depth: int) -> Any:
    """A FHIR XML element as its JSON form.

    A primitive's ``value``, else an object whose repeating elements (:data:`_FHIR_XML_LISTS`)
    are lists. Narrative (``text``/``div``) and contained resources are left out.
    """
    if depth > MAX_FHIR_XML_DEPTH:
        raise _Bad("AuditEvent nested too deep")
    value = element.get("value")
    if value is not None:
        return value
    out: dict[str, Any] = {}
    url = element.get("url")
    if url is not None:
        out["url"] = url
    for child in element:
        tag = child.tag
        if not isinstance(tag, str) or tag in ("div", "contained") or (
                tag == "text" and depth == 0):
            continue
        inner = _fhir_xml_value(child, depth + 1)
        if tag in _FHIR_XML_LISTS or (tag == "type" and element.tag == "source"):
            out.setdefault(tag, []).append(inner)
        else:
            out.setdefault(tag, inner)
    return out


def _fhir_xml_row(root: ET.Element, fp: _Fingerprints, line: int, fallback_id: str) -> _Row:
    """A FHIR AuditEvent in XML (R4, STU3): read as its JSON form by :func:`_fhir_row`."""
    _strip_namespaces(root)
    resource = _fhir_xml_value(root, 0)
    resource["resourceType"] = root.tag
    return _fhir_row(resource, fp, line, fallback_id)


def _fhir_unpack(value: dict[str, Any]) -> dict[str, Any] | list[dict[str, Any] | str]:
    """One resource (bare or a Bundle entry), or the entries of a Bundle held whole.

    A Bundle is held whole when nested or small; a Bundle inside one is counted bad.
    """
    resource = value
    if "resourceType" not in value and isinstance(value.get("resource"), dict):
        resource = value["resource"]  # a Bundle entry
    if resource.get("resourceType") != "Bundle":
        return resource
    entries = resource.get("entry") or []
    inner = [_dict(_dict(entry).get("resource"))
             for entry in (entries if isinstance(entries, list) else [])]
    return [res if res.get("resourceType") != "Bundle" else "nested Bundle" for res in inner]


def _fhir_records(path: Path, fp: _Fingerprints) -> Callable[[int, Any, _Collector],
                                                             Iterator[_Row]]:
    return _json_record_rows(path, fp, _fhir_row, _fhir_unpack)
