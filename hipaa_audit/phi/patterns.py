"""Safe Harbor identifier patterns for free text, and pseudonym recognition.

Shared by every scanner that reads text (DICOM free-text attributes now; CSV, HL7 and notes
later). Detectors return kinds and counts, never the matched text.

Every pattern runs in time linear in the text: each repetition that could restart at every
position of a long run (the local part and the labels of an e-mail address) has a bound, so a
64 KiB line of ``a.a.a.`` costs microseconds per position, not a scan to the end of the line.
Only short texts are remembered (:data:`MAX_CACHED`), so the caches stay small however long the
values are.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

_MONTHS = "jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec"
_STREET = (
    "street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|"
    "terrace|ter|parkway|pkwy|highway|hwy"
)

#: A name after a cue word. The name's capitals are matched case-sensitively (``(?-i:...)``):
#: under IGNORECASE "patient supine with arms" would read as a name.
_NAME_CONTEXT = (
    r"\b(?:patient|pt|name|mr|mrs|ms|miss)\.?\s*[:=]?\s*"
    r"(?-i:[A-Z][a-z]+(?:[\s^,]+[A-Z][a-z]+)+)"
)
#: Upper-case CT and DR after a number are modalities ("5 mm CT"), not Court and Drive.
_NOT_MODALITY = r"(?!(?-i:CT|DR)\b)"

#: Between a context word and its value: a bounded run of blanks around an optional ``:``/``#``
#: (bounded, so that a long run of blanks after a cue costs linear time).
_SEP = r"\s{0,3}[:#]?\s{0,3}"
#: A letter of a Medicare Beneficiary Identifier: upper case, without S, L, O, I, B and Z (CMS).
_MBI_A = "[AC-HJKMNP-RT-Y]"
_MBI_AN = "[AC-HJKMNP-RT-Y0-9]"
#: The CMS MBI format (11 characters, printed with or without dashes after the 4th and 7th).
#: Its shape is its own context: digits and letters at fixed places, upper case only.
MBI = rf"(?-i:[1-9]{_MBI_A}{_MBI_AN}\d-?{_MBI_A}{_MBI_AN}\d-?{_MBI_A}{{2}}\d{{2}})"

#: One alternation, one pass per text: each named group is a Safe Harbor kind. Every pattern
#: but ``name`` needs a digit or an ``@``; texts without either only meet :data:`NAME_IN_CONTEXT`.
SAFE_HARBOR = re.compile(
    r"(?P<ssn>\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b)"
    # RFC 5321 4.5.3.1: a local part of at most 64 octets, labels of at most 63
    r"|(?P<email>\b[\w.+-]{1,64}@[a-z0-9-]{1,63}(?:\.[a-z0-9-]{1,63}){0,8}\.[a-z]{2,24}\b)"
    r"|(?P<phone>(?:\(\d{3}\)\s?|\b\d{3}[-.\s])\d{3}[-.]\d{4}\b)"
    r"|(?P<mrn>\b(?:mrn|mr\#|medical\s+record(?:\s+(?:number|no\.?))?|chart\s+(?:number|no\.?))"
    r"\s*[:#]?\s*[a-z]*\d[a-z0-9-]{3,}\b)"
    r"|(?P<date>\b(?:\d{1,2}[/.-]\d{1,2}[/.-](?:19|20)\d{2}|(?:19|20)\d{2}-\d{2}-\d{2}"
    rf"|(?:{_MONTHS})[a-z]*\.?\s+\d{{1,2}},?\s+(?:19|20)\d{{2}}"
    rf"|\d{{1,2}}\s+(?:{_MONTHS})[a-z]*\.?\s+(?:19|20)\d{{2}})\b)"
    rf"|(?P<address>\b\d{{1,5}}\s+(?:[a-z]+\s+){{1,3}}{_NOT_MODALITY}(?:{_STREET})\b)"
    rf"|(?P<name>{_NAME_CONTEXT})"
    rf"|(?P<mbi>\b{MBI}\b)"
    # the numeric forms need their context word: bare, they are any nine or ten digits
    r"|(?P<hicn>\b(?:hicn|hic\s?(?:number|no\.?|\#)|medicare\s(?:claim\s)?(?:id|number|no\.?|\#))"
    rf"{_SEP}\d{{3}}-?\d{{2}}-?\d{{4}}-?[a-z]\d?\b)"
    rf"|(?P<npi>\bnpi(?:\s?(?:number|no\.?|\#))?{_SEP}[12]\d{{9}}\b)"
    rf"|(?P<dea>\bdea(?:\s?(?:number|no\.?|\#|registration))?{_SEP}[a-z][a-z9]\d{{7}}\b)"
    r"|(?P<health_plan>\b(?:member|subscriber|policy|beneficiary|insurance|health\s?plan)"
    rf"\s?(?:id|number|no\.?|\#){_SEP}[a-z]{{0,4}}\d[a-z0-9-]{{4,24}}\b)",
    re.IGNORECASE,
)
NAME_IN_CONTEXT = re.compile(f"(?P<name>{_NAME_CONTEXT})", re.IGNORECASE)
_DIGIT_OR_AT = re.compile(r"[\d@]")
_UID_LIKE = re.compile(r"[\d.]{11,}")

#: Words that mark a value as a pseudonym or dummy rather than a real identifier.
PSEUDONYM_WORDS = frozenset(
    """anon anonymous anonymized anonymised anonymize deidentified deid identified removed
    redacted patient subject subj research study case test phantom unknown none na n/a dummy
    pseudo pseudonym pseudonymized blinded masked xxx xxxx zzz qa qc volunteer participant pt id
    tcia ctp noname nn sample demo trial control""".split()
)

_TOKEN = re.compile(r"[a-z]+|\d+")
#: Letters of any script, with the separators PN and written names use; no digits.
_NAME = re.compile(r"[^\W\d_](?:[^\W\d_]|[\^=\s,.'-])*")
_LETTERS = re.compile(r"[^\W\d_]+")
_ANY_WORD = re.compile(r"[^\W_]+")
_HEXISH = re.compile(r"^[0-9a-f]{8,}$")


#: Texts up to this many characters are remembered by the cached detectors; longer ones (a
#: report, a 64 KiB line) are rarely repeated and would make the caches large.
MAX_CACHED = 256


def npi_valid(digits: str) -> bool:
    """True for a 10-digit NPI whose last digit is its Luhn check digit (with prefix 80840)."""
    if len(digits) != 10 or not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed("80840" + digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def dea_valid(number: str) -> bool:
    """True for a DEA registration number (2 letters, 7 digits) whose 7th digit checks out.

    The check digit is the last digit of (d1 + d3 + d5) + 2 * (d2 + d4 + d6).
    """
    digits = number[-7:]
    if len(number) != 9 or not digits.isdigit():
        return False
    d = [int(c) for c in digits]
    return (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10 == d[6]


_LAST_TOKEN = re.compile(r"[a-z0-9]+$", re.IGNORECASE)
#: Kinds whose match must also pass its check digit.
_CHECKED = {"npi": npi_valid, "dea": dea_valid}


def safe_harbor_kinds(text: str) -> Counter[str]:
    """Count the Safe Harbor identifier kinds found in ``text`` (``ssn``, ``email``...)."""
    return Counter(dict(safe_harbor_counts(text)))


def safe_harbor_counts(text: str) -> tuple[tuple[str, int], ...]:
    """Return ``(kind, count)`` pairs for ``text``, sorted.

    Short texts are cached (texts repeat in a study).
    """
    if len(text) > MAX_CACHED:
        return _safe_harbor_counts(text)
    return _cached_safe_harbor_counts(text)


def _safe_harbor_counts(text: str) -> tuple[tuple[str, int], ...]:
    if _UID_LIKE.fullmatch(text):
        return ()  # a UID or a long dotted number: no Safe Harbor pattern fits
    pattern = SAFE_HARBOR if _DIGIT_OR_AT.search(text) else NAME_IN_CONTEXT
    found: dict[str, int] = {}
    for match in pattern.finditer(text):
        kind = match.lastgroup
        if kind is None:
            continue
        checked = _CHECKED.get(kind)
        if checked is not None:
            token = _LAST_TOKEN.search(match.group())
            if token is None or not checked(token.group()):
                continue
        kind = kind.replace("_", "-")
        found[kind] = found.get(kind, 0) + 1
    return tuple(sorted(found.items()))


_cached_safe_harbor_counts = lru_cache(maxsize=16384)(_safe_harbor_counts)


def words_of(text: str) -> frozenset[str]:
    """Return the lower-case words (letters of any script, or digits) of ``text``.

    Short texts are cached.
    """
    if len(text) > MAX_CACHED:
        return _words_of(text)
    return _cached_words_of(text)


def _words_of(text: str) -> frozenset[str]:
    return frozenset(_ANY_WORD.findall(text.lower()))


_cached_words_of = lru_cache(maxsize=16384)(_words_of)


def looks_like_pseudonym(text: str) -> bool:
    """True when ``text`` reads as a pseudonym or dummy (a study code, ``ANON^0001``, a hash).

    Digits mixed with words, pseudonym vocabulary, or a long hex string all qualify; a plain
    ``Family^Given`` name or a bare number does not.
    """
    lowered = text.lower()
    tokens = _TOKEN.findall(lowered)
    if not tokens:
        return True
    if any(t in PSEUDONYM_WORDS for t in tokens):
        return True
    compact = re.sub(r"[^0-9a-z]", "", lowered)
    if _HEXISH.match(compact):
        return True
    has_digits = any(t.isdigit() for t in tokens)
    has_letters = any(t.isalpha() for t in tokens)
    return has_digits and has_letters


#: Words of a name template (``Last Name^First Name``, ``Last^First^mid^pre``).
TEMPLATE_NAME_WORDS = frozenset(
    "name first last given family middle mid pre prefix suffix surname firstname lastname".split()
)


def is_template_name(text: str) -> bool:
    """True when every word of a name is a template word: a form never filled in."""
    tokens = _LETTERS.findall(text.lower())
    return bool(tokens) and TEMPLATE_NAME_WORDS.issuperset(tokens)


def looks_like_person_name(text: str) -> bool:
    """True when a PN value reads as a real person's name (alphabetic parts, no pseudonym)."""
    if not _NAME.fullmatch(text):
        return False
    tokens = _LETTERS.findall(text.lower())
    return (
        any(len(t) >= 2 for t in tokens)
        and not PSEUDONYM_WORDS.intersection(tokens)
        and not TEMPLATE_NAME_WORDS.issuperset(tokens)
    )


#: One component of a PN value: runs of letters joined by single spaces, hyphens, dots or
#: apostrophes (disjoint classes, so matching is linear).
_PN_PART = re.compile(r"[^\W\d_]+(?:[ '.-]{1,2}[^\W\d_]+)*")


#: DICOM defined terms and anatomy that ``^``-joined private values carry (``ORIGINAL^PRIMARY``,
#: ``HEAD^NECK``): a value holding one is not read as a name.
DICOM_TERM_WORDS = frozenset(
    """original primary secondary derived axial localizer coronal sagittal oblique mpr mip
    reformatted projection image images other none head neck chest thorax abdomen pelvis spine
    brain body breast knee hip shoulder heart cardiac left right both bilateral prone supine
    default standard normal high low fast slow mode series study scan protocol version build
    on off yes no true false""".split()
)


def looks_like_pn_name(text: str) -> bool:
    """True when ``text`` is shaped like a DICOM person name of a real person (``Doe^John``).

    Two to five ``^``-separated components of letters, at least two of them filled in, and no
    pseudonym or template word: ``ORIGINAL`` or ``ANON^0042`` do not qualify. Used where a
    value's attribute says nothing of its meaning (a private element).
    """
    text = text.strip(" \x00")
    parts = text.split("^")
    if not 2 <= len(parts) <= 5 or len(text) > 64:
        return False
    filled = [p for p in parts if p]
    return (
        len(filled) >= 2
        and all(_PN_PART.fullmatch(p) for p in filled)
        and not DICOM_TERM_WORDS.intersection(_LETTERS.findall(text.lower()))
        and looks_like_person_name(text)
    )


def is_dummy_date(text: str) -> bool:
    """True for an empty, malformed or placeholder date (year 1900 or earlier)."""
    digits = text.strip()[:8]
    if len(digits) < 8 or not digits.isdigit():
        return True
    return int(digits[:4]) <= 1900
