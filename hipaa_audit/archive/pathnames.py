"""Path names that identify a patient: which components look like identifiers, and masking them.

A folder called ``Doe_John_MRN12345678`` discloses PHI to anyone who can list its parent, and
its name travels in every finding, report and history entry that names a file inside it. This
module decides which components of an asset's path look like identifiers (pure functions: no
I/O) and replaces them by a masked form for ``--mask-paths``.

A component is suspicious when, with ``_`` read as a space, it matches a Safe Harbor pattern
(``hipaa_audit.phi.patterns``), holds a date of the ``YYYYMMDD`` shape, a number shaped like a
record or social security number (7 to 10 digits, not a counter padded with zeros, not part of
a UID), an ``MRN``/``PID``/``SSN``/``DOB`` prefix glued to digits, or one of the file's own
identifiers (a part of its PatientName, its PatientID, accession, telephone, birth date).
"""

from __future__ import annotations

import re
from datetime import date
from functools import lru_cache

from hipaa_audit.catalog import Check
from hipaa_audit.evidence import EvidenceKey, PathComponent
from hipaa_audit.model import AssetResult, Finding, Location, Severity, worst
from hipaa_audit.phi.patterns import safe_harbor_counts
from hipaa_audit.redaction import Masker, shape

#: The catalog id of the path check.
PATH_CHECK = "archive-identifier-in-path"
#: Separator of a container and its member in an asset (``a.zip!/b.dcm``).
MEMBER_SEPARATOR = "!/"
#: Location keys of archive findings whose values are paths (masked with the asset).
PATH_KEYS: frozenset[EvidenceKey] = frozenset({"writable_folder"})

_TOKENS = re.compile(r"[0-9A-Za-z]+")
_UID_LIKE = re.compile(r"\d+(?:\.\d+){2,}")
_PREFIXED = re.compile(r"(mrn|mr|pid|ptid|patid|patientid|ssn|dob)(\d{4,})")
_PREFIX_KIND = {"ssn": "ssn", "dob": "date"}
_SUFFIX = re.compile(r"\.[A-Za-z]{1,5}$")
_WORDS = re.compile(r"[^\W_]+")
#: Components longer than this (only container members can have them) are judged by their
#: first characters and not remembered, so hostile names cannot fill the cache.
CACHED_COMPONENT = 256
JUDGED_COMPONENT = 1024
_MASKED = re.compile(r"\[[^\[\]]* #[0-9a-f]{16}\](?:\.[A-Za-z]{1,5})?")


def masked_component(component: str, masker: Masker) -> str:
    """Return the masked form of one path component: ``[Aaa_Aaaa_AAA99999999 #<hmac>]``.

    The shape and the keyed fingerprint are those of :mod:`hipaa_audit.redaction`; a short
    alphabetic extension (``.dcm``) is kept. The same component gives the same form in every
    run of one installation, so finding ids stay stable.
    """
    suffix = ""
    match = _SUFFIX.search(component)
    if match and match.start() > 0:
        suffix = match.group()
        component = component[: match.start()]
    return f"[{shape(component)} #{masker.fingerprint(component)}]{suffix}"


def is_masked(component: str) -> bool:
    """True when ``component`` is already a masked form."""
    return _MASKED.fullmatch(component) is not None


def _valid_date(digits: str) -> bool:
    year, month, day = int(digits[:4]), int(digits[4:6]), int(digits[6:])
    if not 1900 < year < 2100:
        return False
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


def component_kinds(
    component: str, tokens: frozenset[str] = frozenset(), phrases: frozenset[str] = frozenset()
) -> tuple[str, ...]:
    """Return the identifier kinds a path component looks like holding (empty: none).

    ``tokens`` and ``phrases`` are the file's own identifiers, as
    :func:`hipaa_audit.archive.dicom.rules.identifier_terms` returns them.
    """
    if not component or component in (".", ".."):
        return ()
    if len(component) <= CACHED_COMPONENT:
        kinds = _shape_kinds(component)
    else:
        kinds = _shape_kinds.__wrapped__(component[:JUDGED_COMPONENT])
    own: list[str] = []
    if tokens and _words(component) & tokens:
        own.append("patient-name")
    if phrases:
        lowered = component.lower()
        if any(phrase in lowered for phrase in phrases):
            own.append("patient-id")
    if own and not is_masked(component):
        return tuple(sorted({*kinds, *own}))
    return kinds


@lru_cache(maxsize=16384)
def _shape_kinds(component: str) -> tuple[str, ...]:
    """The kinds a component looks like by its shape alone; cached (folders repeat)."""
    if is_masked(component):
        return ()
    text = component.replace("_", " ")
    kinds = {kind for kind, _ in safe_harbor_counts(text)}
    stem = _SUFFIX.sub("", component)
    if not _UID_LIKE.fullmatch(stem) and any(ch.isdigit() for ch in component):
        for token in _TOKENS.findall(component):
            if token.isdigit():
                if len(token) == 8 and _valid_date(token):
                    kinds.add("date")
                elif 7 <= len(token) <= 10 and len(token.lstrip("0")) >= 5:
                    kinds.add("identifier-number")
            elif (prefixed := _PREFIXED.fullmatch(token.lower())) is not None:
                kinds.add(_PREFIX_KIND.get(prefixed.group(1), "mrn"))
    return tuple(sorted(kinds))


def _own_terms(
    path: str, tokens: frozenset[str], phrases: frozenset[str]
) -> tuple[frozenset[str], frozenset[str]]:
    """Return the file's identifiers worth looking for in each component of ``path``.

    None when the whole path holds none of them (the common case): each component is then
    judged by its shape alone, which is cached.
    """
    if tokens and _words(path) & tokens:
        return tokens, phrases
    if phrases:
        lowered = path.lower()
        if any(phrase in lowered for phrase in phrases):
            return tokens, phrases
    return frozenset(), frozenset()


def _words(text: str) -> set[str]:
    """The lower-case words of ``text`` (``_`` separates words), as the rules find them."""
    return set(_WORDS.findall(text.lower()))


def components(asset: str) -> list[str]:
    """Split an asset into its path components, members of containers included."""
    return [part for level in asset.split(MEMBER_SEPARATOR) for part in level.split("/")]


def mask_path(
    path: str, masker: Masker, tokens: frozenset[str] = frozenset(),
    phrases: frozenset[str] = frozenset(),
) -> str:
    """Return ``path`` with every suspicious component masked, the rest kept as it is."""
    tokens, phrases = _own_terms(path, tokens, phrases)
    levels = []
    for level in path.split(MEMBER_SEPARATOR):
        parts = [
            masked_component(part, masker) if component_kinds(part, tokens, phrases) else part
            for part in level.split("/")
        ]
        levels.append("/".join(parts))
    return MEMBER_SEPARATOR.join(levels)


def mask_finding(finding: Finding, asset: str, masker: Masker) -> Finding:
    """Return ``finding`` named by the masked ``asset``, its path-valued locations masked."""
    locations = finding.locations
    if any(k in PATH_KEYS for loc in locations for k, _ in loc.fields):
        locations = tuple(
            Location(tuple(
                (k, mask_path(v, masker) if k in PATH_KEYS and isinstance(v, str) else v)
                for k, v in loc.fields
            ))
            for loc in locations
        )
    return finding._replace(asset=asset, locations=locations)


def mask_result(
    result: AssetResult, masker: Masker, tokens: frozenset[str] = frozenset(),
    phrases: frozenset[str] = frozenset(),
) -> AssetResult:
    """Mask the suspicious components of a result's asset in it and in all its findings."""
    asset = mask_path(result.asset, masker, tokens, phrases)
    result.findings = [
        mask_finding(f, mask_path(f.asset, masker, tokens, phrases)
                     if f.asset != result.asset else asset, masker)
        for f in result.findings
    ]
    result.asset = asset
    return result


def path_finding(
    asset: str, check: Check, masker: Masker, tokens: frozenset[str] = frozenset(),
    phrases: frozenset[str] = frozenset(),
) -> Finding | None:
    """Return the finding for the identifier-looking components of ``asset``, or ``None``.

    Each location gives the component's position (0 is the first component of the asset),
    the kinds it looks like and masked evidence; never the component itself.
    """
    severity_by_kind: dict[str, str] = check.params.get("severity_by_kind", {})
    tokens, phrases = _own_terms(asset, tokens, phrases)
    locs: list[PathComponent] = []
    severities: list[Severity] = []
    for position, part in enumerate(components(asset)):
        kinds = component_kinds(part, tokens, phrases)
        if not kinds:
            continue
        severities.extend(Severity(severity_by_kind.get(k, check.severity.value)) for k in kinds)
        locs.append(PathComponent(component=position, found=list(kinds),
                                  evidence=masker.evidence(part)))
    if not locs:
        return None
    found = sorted({k for loc in locs for k in loc["found"]})
    return check.finding(
        asset,
        f"{len(locs)} component(s) of this path look like patient identifiers "
        f"({', '.join(found)}): the name alone discloses them to anyone who can list the "
        "folder, and it is copied into every report that names the file.",
        severity=worst(severities),
        locations=tuple(Location.of_evidence(loc) for loc in locs),
    )

