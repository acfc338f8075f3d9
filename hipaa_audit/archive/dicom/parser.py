"""A fast, read-only walker over the raw elements of a DICOM header.

pydicom builds a ``Dataset`` and converts values on access; auditing every element that way costs
about three times the parse itself (see ``bench/``). An audit only needs each element's tag, VR,
place in the sequence tree and, for a few elements, the raw value bytes. This module walks the
encoded bytes with ``struct`` and yields exactly that, in every transfer syntax pydicom reads:
implicit and explicit VR little endian, explicit VR big endian, deflated, and the encapsulated
syntaxes (whose header is explicit VR little endian). It stops at the top-level pixel data and
never decodes pixels. pydicom's data dictionary supplies the VRs of implicit-VR data.

Faults are data: :class:`DicomFault` carries a reason and the offset, and the elements read
before the fault are still returned, so the rules can check what could be read.
"""

from __future__ import annotations

import mmap
import struct
import zlib
from dataclasses import dataclass, field
from functools import cache
from typing import NamedTuple

from pydicom._dicom_dict import DicomDictionary, RepeatersDictionary

from hipaa_audit.errors import HipaaAuditError

#: The bytes the walker reads: a file's first bytes, or the whole file memory-mapped.
Buffer = bytes | mmap.mmap

#: A step in a sequence path: (sequence tag, item index).
Step = tuple[int, int]

IMPLICIT_VR_LE = "1.2.840.10008.1.2"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
EXPLICIT_VR_BE = "1.2.840.10008.1.2.2"
DEFLATED_TRANSFER_SYNTAXES = frozenset({"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.95"})

PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
ITEM = 0xFFFEE000
ITEM_DELIMITER = 0xFFFEE00D
SEQUENCE_DELIMITER = 0xFFFEE0DD
UNDEFINED = 0xFFFFFFFF

_VR_NAMES = (
    "AE AS AT CS DA DS DT FL FD IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN "
    "UR US UT UV"
).split()
VR_BY_BYTES: dict[bytes, str] = {v.encode(): v for v in _VR_NAMES}
LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})

#: Values longer than this are not copied out of the buffer (only their length is kept).
MAX_VALUE_COPY = 64 * 1024
#: Sequences nested deeper than this are reported as a fault instead of walked.
MAX_DEPTH = 32
#: Deflated data sets are inflated up to this many bytes (the header before the pixel data).
MAX_INFLATED = 64 * 1024 * 1024
#: Deflated data sets are first inflated this far; then as far as the walk asks, doubling.
INFLATE_STEP = 1024 * 1024
#: Compressed bytes handed to the inflater at a time.
INFLATE_INPUT = 64 * 1024

_UL = struct.Struct("<I")
_BL = struct.Struct(">I")
_TAG_LE = struct.Struct("<HH")
_TAG_BE = struct.Struct(">HH")
_SHORT_LE = struct.Struct("<H")
#: One unpack per element header: (group, element, VR bytes, 16-bit length) or, for implicit VR,
#: (group, element, no VR bytes, 32-bit length).
_EXPLICIT_LE = struct.Struct("<HH2sH")
_EXPLICIT_BE = struct.Struct(">HH2sH")
_IMPLICIT_LE = struct.Struct("<HH0sI")
_IMPLICIT_BE = struct.Struct(">HH0sI")


class Element(NamedTuple):
    """One element as encoded: ``value`` is ``None`` for sequences and values too long to copy."""

    tag: int
    vr: str
    value: bytes | None
    length: int
    path: tuple[Step, ...]
    offset: int


class DicomFault(NamedTuple):
    """Why the walk stopped early, and where (an offset into the data set bytes)."""

    reason: str
    offset: int


@dataclass(slots=True)
class ParsedHeader:
    """The elements of a DICOM header, file meta first, in encoded order."""

    transfer_syntax: str
    has_preamble: bool
    elements: list[Element] = field(default_factory=list)
    fault: DicomFault | None = None
    reached_pixel_data: bool = False


class NeedMoreData(HipaaAuditError):
    """The buffer ended before the walk did; ``needed`` is the offset it must reach."""

    def __init__(self, needed: int) -> None:
        super().__init__(needed)
        self.needed = needed


@cache
def implicit_vr_table() -> dict[int, str]:
    """Map every tag of pydicom's data dictionary to its first VR (for implicit VR data)."""
    table: dict[int, str] = {}
    for tag, entry in DicomDictionary.items():
        table[tag] = entry[0].split(" or ")[0]
    return table


@cache
def _repeater_vrs() -> dict[int, str]:
    out: dict[int, str] = {}
    for mask, entry in RepeatersDictionary.items():
        try:
            out[int(mask.replace("x", "0"), 16)] = entry[0].split(" or ")[0]
        except ValueError:
            continue
    return out


def implicit_vr(tag: int) -> str:
    """Return the VR of ``tag`` for implicit VR data, as pydicom's dictionary gives it."""
    vr = implicit_vr_table().get(tag)
    if vr is not None:
        return vr
    group, elem = tag >> 16, tag & 0xFFFF
    if elem == 0:
        return "UL"
    if group & 1:
        return "LO" if 0x10 <= elem <= 0xFF else "UN"
    if group & 0xFF00 in (0x5000, 0x6000):
        return _repeater_vrs().get(tag & 0xFF00FFFF, "UN")
    return "UN"


def sniff(head: Buffer) -> tuple[int, bool] | None:
    """Tell whether ``head`` (the first bytes of a file) starts a DICOM file or data set.

    Returns ``(offset of the first element, has file meta marker)``, or ``None`` when the bytes
    are not DICOM. Recognises the 128-byte preamble followed by ``DICM``, ``DICM`` without a
    preamble, and bare data sets (implicit or explicit VR little endian, explicit VR big endian)
    that start with a plausible group.
    """
    if len(head) >= 132 and head[128:132] == b"DICM":
        return 132, True
    if head[:4] == b"DICM":
        return 4, True
    if len(head) < 8 or not any(head[:8]):
        # eight zero bytes are no element: a zero-filled file, or one cut inside its preamble
        return None
    group_le, elem_le = _TAG_LE.unpack_from(head, 0)
    group_be, _ = _TAG_BE.unpack_from(head, 0)
    if group_le in (0x0002, 0x0008) or (group_le in (0x0000, 0x0004, 0x0010) and elem_le < 0x100):
        if head[4:6] in VR_BY_BYTES:
            return 0, False
        (length,) = _UL.unpack_from(head, 4)
        if length < 0x10000 or (group_le == 0x0008 and length == UNDEFINED):
            return 0, False
        return None
    if group_be == 0x0008 and head[4:6] in VR_BY_BYTES:
        return 0, False
    return None


class _Walker:
    """Walks one data set buffer; ``complete`` says the buffer holds the whole remaining file."""

    __slots__ = ("buf", "complete", "elements", "little", "size")

    def __init__(self, buf: Buffer, little: bool, complete: bool) -> None:
        self.buf = buf
        self.size = len(buf)
        self.little = little
        self.complete = complete
        self.elements: list[Element] = []

    def short(self, needed: int, what: str, offset: int) -> DicomFault:
        if not self.complete:
            raise NeedMoreData(needed)
        return DicomFault(what, offset)

    def walk(
        self, pos: int, end: int, path: tuple[Step, ...], explicit: bool, in_item: bool
    ) -> tuple[int, DicomFault | None, bool]:
        """Walk elements from ``pos`` to ``end``; return (position, fault, reached pixel data)."""
        buf = self.buf
        size = self.size
        top = not path
        ul_s = _UL if self.little else _BL
        head_s = (_EXPLICIT_LE if self.little else _EXPLICIT_BE) if explicit else (
            _IMPLICIT_LE if self.little else _IMPLICIT_BE)
        vr_by_bytes = VR_BY_BYTES
        long_vrs = LONG_VRS
        append = self.elements.append
        new = tuple.__new__
        implicit_table = implicit_vr_table()
        while pos < end:
            un_sequence = False
            if pos + 8 > size:
                if top and self.complete and _all_padding(buf, pos):
                    return size, None, False
                problem = self.short(pos + 8, "the file ends inside an element header", pos)
                return pos, problem, False
            group, elem, vr_raw, length = head_s.unpack_from(buf, pos)
            tag = (group << 16) | elem
            if group == 0xFFFE:
                if tag == ITEM_DELIMITER and in_item:
                    return pos + 8, None, False
                if tag == SEQUENCE_DELIMITER and in_item:
                    # a missing item delimiter: let the sequence loop see its delimiter
                    return pos, None, False
                problem = DicomFault(f"unexpected delimiter ({group:04X},{elem:04X})", pos)
                return pos, problem, False
            if explicit:
                vr = vr_by_bytes.get(vr_raw)
                if vr is None:
                    return pos, DicomFault(
                        f"element ({group:04X},{elem:04X}) has no valid VR", pos
                    ), False
                if vr in long_vrs:
                    if pos + 12 > size:
                        problem = self.short(pos + 12, "the file ends inside a header", pos)
                        return pos, problem, False
                    (length,) = ul_s.unpack_from(buf, pos + 8)
                    vstart = pos + 12
                else:
                    vstart = pos + 8
                if vr == "UN":
                    # as pydicom does: a UN element whose tag the dictionary knows takes its VR
                    # (a known sequence is then read as implicit VR little endian)
                    vr = implicit_table.get(tag, "UN")
                    if vr == "SQ":
                        un_sequence = True
            else:
                vstart = pos + 8
                vr = implicit_table.get(tag) or implicit_vr(tag)
                if vr != "SQ" and length == UNDEFINED and vr in ("UN", "OB", "OW"):
                    vr = "SQ" if tag not in PIXEL_TAGS else vr
            if top and tag in PIXEL_TAGS:
                return pos, None, True
            if vr == "SQ" or (length == UNDEFINED and vr == "UN"):
                append(new(Element, (tag, "SQ", None, length, path, pos)))
                # an undefined-length UN in explicit VR data is a sequence in implicit VR LE
                seq_explicit = explicit and vr == "SQ" and not un_sequence
                if len(path) >= MAX_DEPTH:
                    return pos, DicomFault(f"sequences nested deeper than {MAX_DEPTH}", pos), False
                pos, fault = self.sequence(vstart, length, tag, path, seq_explicit)
                if fault is not None:
                    return pos, fault, False
                continue
            if length == UNDEFINED:
                # encapsulated fragments (e.g. a compressed icon): skip items to the delimiter
                append(new(Element, (tag, vr, None, length, path, pos)))
                pos, fault = self.skip_fragments(vstart)
                if fault is not None:
                    return pos, fault, False
                continue
            vend = vstart + length
            if vend > size:
                if self.complete:
                    return pos, DicomFault(
                        f"element ({group:04X},{elem:04X}) claims {length} bytes but the file "
                        f"ends {size - vstart} bytes later",
                        pos,
                    ), False
                raise NeedMoreData(vend + 12)
            if vend > end:
                return pos, DicomFault(
                    f"element ({group:04X},{elem:04X}) runs past the end of its item", pos
                ), False
            append(new(Element, (tag, vr, buf[vstart:vend] if length <= MAX_VALUE_COPY else None,
                                 length, path, pos)))
            pos = vend
        return pos, None, False

    def sequence(
        self, pos: int, length: int, seq_tag: int, path: tuple[Step, ...], explicit: bool
    ) -> tuple[int, DicomFault | None]:
        buf = self.buf
        size = self.size
        tag_s = _TAG_LE if self.little else _TAG_BE
        ul_s = _UL if self.little else _BL
        end = UNDEFINED if length == UNDEFINED else pos + length
        overrun: DicomFault | None = None
        if end != UNDEFINED and end > size:
            if not self.complete:
                raise NeedMoreData(end)
            overrun = DicomFault(
                f"sequence ({seq_tag >> 16:04X},{seq_tag & 0xFFFF:04X}) claims {length} "
                f"bytes, {end - size} more than the file holds",
                pos,
            )
            end = size
        index = 0
        while end == UNDEFINED or pos < end:
            if pos + 8 > size:
                return pos, overrun or self.short(pos + 8, "the file ends inside a sequence", pos)
            group, elem = tag_s.unpack_from(buf, pos)
            tag = (group << 16) | elem
            (item_len,) = ul_s.unpack_from(buf, pos + 4)
            if tag == SEQUENCE_DELIMITER:
                return pos + 8, None
            if tag != ITEM:
                return pos, DicomFault(
                    f"sequence ({seq_tag >> 16:04X},{seq_tag & 0xFFFF:04X}) holds "
                    f"({group:04X},{elem:04X}) where an item was expected",
                    pos,
                )
            item_path = (*path, (seq_tag, index))
            start = pos + 8
            if item_len == UNDEFINED:
                pos, fault, _ = self.walk(start, UNDEFINED, item_path, explicit, True)
            else:
                item_end = start + item_len
                if item_end > size and not self.complete:
                    raise NeedMoreData(item_end)
                pos, fault, _ = self.walk(start, min(item_end, size), item_path, explicit, False)
                if fault is None and item_end > size:
                    fault = DicomFault(
                        f"an item claims {item_len} bytes, {item_end - size} more than the file "
                        "holds",
                        pos,
                    )
                if fault is None:
                    pos = item_end
            if fault is not None:
                return pos, fault
            index += 1
        return pos, overrun

    def skip_fragments(self, pos: int) -> tuple[int, DicomFault | None]:
        buf = self.buf
        tag_s = _TAG_LE if self.little else _TAG_BE
        ul_s = _UL if self.little else _BL
        while True:
            if pos + 8 > self.size:
                return pos, self.short(pos + 8, "the file ends inside encapsulated data", pos)
            group, elem = tag_s.unpack_from(buf, pos)
            tag = (group << 16) | elem
            (n,) = ul_s.unpack_from(buf, pos + 4)
            if tag == SEQUENCE_DELIMITER:
                return pos + 8, None
            if tag != ITEM or n == UNDEFINED:
                return pos, DicomFault("malformed encapsulated fragments", pos)
            pos += 8 + n


def _all_padding(buf: Buffer, pos: int) -> bool:
    return not buf[pos:].strip(b"\x00")


def parse_header(data: Buffer, *, complete: bool) -> ParsedHeader | None:
    """Walk the header of a DICOM file held in ``data`` (the file's first bytes, or all of it).

    Returns ``None`` when the bytes are not DICOM. Raises :class:`NeedMoreData` when ``data`` is
    not the whole file (``complete`` false) and the walk needs bytes beyond it. A parse fault
    (truncation, absurd lengths, bad VRs) is returned in ``ParsedHeader.fault`` together with
    every element read before it.
    """
    found = sniff(data)
    if found is None:
        return None
    start, has_meta_marker = found
    elements: list[Element] = []
    transfer_syntax = ""
    pos = start
    size = len(data)
    if has_meta_marker or (size >= 8 and _TAG_LE.unpack_from(data, 0)[0] == 0x0002):
        meta = _Walker(data, little=True, complete=complete)
        pos, fault = _walk_meta(meta, pos)
        elements.extend(meta.elements)
        for el in meta.elements:
            if el.tag == 0x00020010 and el.value is not None:
                transfer_syntax = el.value.decode("ascii", "replace").strip("\x00 ")
        if fault is not None:
            return ParsedHeader(transfer_syntax, has_meta_marker, elements, fault)
    if transfer_syntax in DEFLATED_TRANSFER_SYNTAXES:
        if not complete:
            raise NeedMoreData(size + 1)
        return _parse_deflated(data, pos, transfer_syntax, has_meta_marker, elements)
    little, explicit = _encoding(transfer_syntax, data, pos)
    walker = _Walker(data, little=little, complete=complete)
    _, fault, pixels = walker.walk(pos, size if complete else UNDEFINED, (), explicit, False)
    elements.extend(walker.elements)
    return ParsedHeader(transfer_syntax or _describe(little, explicit), has_meta_marker,
                        elements, fault, pixels)


def _parse_deflated(data: Buffer, pos: int, transfer_syntax: str, has_meta_marker: bool,
                    elements: list[Element]) -> ParsedHeader:
    """Walk a deflated data set, inflating only as far as the walk needs.

    The walk stops at the pixel data, so a data set whose pixels inflate to gigabytes (a
    deflate bomb) costs about :data:`INFLATE_STEP` bytes; a header that needs more than
    :data:`MAX_INFLATED` bytes is a fault, told without inflating past the cap.
    """
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    offset = pos  # the compressed input is fed in slices: a large file is never copied whole
    pending = b""
    inflated = bytearray()
    want = INFLATE_STEP
    while True:
        try:
            while len(inflated) < want and not inflater.eof:
                if not pending:
                    if offset >= len(data):
                        break  # the input is spent before the stream's end: cut short
                    pending = data[offset:offset + INFLATE_INPUT]
                    offset += len(pending)
                inflated += inflater.decompress(pending, want - len(inflated))
                pending = inflater.unconsumed_tail
        except zlib.error as exc:
            return ParsedHeader(transfer_syntax, has_meta_marker, elements,
                                DicomFault(f"the deflated data set does not inflate ({exc})", pos))
        body = bytes(inflated)
        done = len(body) < want or inflater.eof
        little, explicit = _encoding(transfer_syntax, body, 0)
        walker = _Walker(body, little=little, complete=done)
        try:
            _, fault, pixels = walker.walk(0, len(body) if done else UNDEFINED, (), explicit,
                                           False)
        except NeedMoreData as more:
            if len(body) < more.needed <= MAX_INFLATED:
                want = min(max(more.needed, 2 * len(body)), MAX_INFLATED)
                continue
            fault = DicomFault(f"the deflated data set needs more than {MAX_INFLATED} inflated "
                               "bytes before its pixel data, beyond the cap", len(body))
            pixels = False
        if fault is None and not pixels and not inflater.eof:
            fault = DicomFault("the deflated data set is cut short", len(body))
        elements.extend(walker.elements)
        return ParsedHeader(transfer_syntax, has_meta_marker, elements, fault, pixels)


def _walk_meta(meta: _Walker, pos: int) -> tuple[int, DicomFault | None]:
    """Walk group 0002 (always explicit VR little endian) up to the first other group."""
    buf = meta.buf
    while True:
        if pos + 8 > meta.size:
            if meta.complete:
                return pos, (DicomFault("the file ends inside the file meta", pos)
                             if pos < meta.size else None)
            raise NeedMoreData(pos + 8)
        group, _ = _TAG_LE.unpack_from(buf, pos)
        if group != 0x0002:
            return pos, None
        # walk exactly one element: bound the region to its own header and value
        vr = VR_BY_BYTES.get(buf[pos + 4 : pos + 6])
        if vr is None:
            return pos, DicomFault("a file meta element has no valid VR", pos)
        if vr in LONG_VRS:
            if pos + 12 > meta.size:
                return pos, meta.short(pos + 12, "the file ends inside the file meta", pos)
            (length,) = _UL.unpack_from(buf, pos + 8)
            end = pos + 12 + length
        else:
            (length,) = _SHORT_LE.unpack_from(buf, pos + 6)
            end = pos + 8 + length
        if end > meta.size and not meta.complete:
            raise NeedMoreData(end + 8)
        pos, fault, _ = meta.walk(pos, min(end, meta.size) if meta.complete else end, (), True,
                                  False)
        if fault is not None:
            return pos, fault
        if end > meta.size:
            return pos, DicomFault("a file meta element runs past the end of the file", pos)


def _encoding(transfer_syntax: str, body: Buffer, pos: int) -> tuple[bool, bool]:
    """Return (little endian, explicit VR) for the data set, checking the first element."""
    if transfer_syntax == IMPLICIT_VR_LE:
        little, explicit = True, False
    elif transfer_syntax == EXPLICIT_VR_BE:
        little, explicit = False, True
    elif transfer_syntax:
        little, explicit = True, True
    else:
        little = not (len(body) >= pos + 2 and body[pos] == 0 and body[pos + 1] != 0)
        explicit = True
    # guard against files whose transfer syntax lies about VR encoding
    if len(body) >= pos + 6 and explicit != (body[pos + 4 : pos + 6] in VR_BY_BYTES):
        explicit = not explicit
    return little, explicit


def _describe(little: bool, explicit: bool) -> str:
    if not explicit:
        return IMPLICIT_VR_LE
    return EXPLICIT_VR_LE if little else EXPLICIT_VR_BE
