"""What a file that is neither DICOM nor a container is: an encryption envelope, or high entropy.

Encrypted envelopes are recognised by their headers (OpenPGP binary and armoured messages,
``openssl enc`` with its ``Salted__`` prefix, age, CMS/PKCS #7 enveloped data). A file that is
none of these yet does not compress is recorded as high entropy: encrypted or compressed in a
format the scanner does not know, never called PHI. Also: whether the file system holding a
scanned path sits on a dm-crypt (LUKS) block device, as evidence for the reports.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

from hipaa_audit.evidence import StorageEncryption

_PGP_ARMOR = b"-----BEGIN PGP MESSAGE-----"
_AGE = (b"age-encryption.org/v1\n", b"-----BEGIN AGE ENCRYPTED FILE-----")
_CMS_PEM = (b"-----BEGIN PKCS7-----", b"-----BEGIN CMS-----")
#: DER content-type OIDs: envelopedData (1.2.840.113549.1.7.3), authEnvelopedData (...9.16.1.23)
_CMS_OIDS = (bytes.fromhex("06092a864886f70d010703"), bytes.fromhex("060b2a864886f70d0109100117"))
#: Packet tags that open an encrypted OpenPGP message, with the versions they may carry.
_PGP_VERSIONS = {1: (3, 6), 3: (4, 5, 6)}
#: Bytes compressed to test entropy, and the ratio above which a sample counts as random.
ENTROPY_SAMPLE = 16 * 1024
ENTROPY_RATIO = 0.98


def envelope(head: bytes) -> str | None:
    """Return ``openpgp``, ``openssl-enc``, ``age`` or ``cms`` for an encrypted file's header."""
    if head.startswith(b"Salted__"):
        return "openssl-enc"
    if head.startswith(_AGE):
        return "age"
    if head.startswith(_PGP_ARMOR) or _openpgp_binary(head):
        return "openpgp"
    if head.startswith(_CMS_PEM) or (head[:1] == b"\x30" and any(o in head[:40]
                                                                 for o in _CMS_OIDS)):
        return "cms"
    return None


def _openpgp_binary(head: bytes) -> bool:
    if len(head) < 8 or not head[0] & 0x80:
        return False
    first = head[0]
    if first & 0x40:  # new packet format
        tag = first & 0x3F
        octet = head[1]
        version_at = 2 if octet < 192 else 3 if octet < 224 else 6 if octet == 255 else -1
    else:  # old packet format
        tag = (first >> 2) & 0x0F
        version_at = {0: 2, 1: 3, 2: 5}.get(first & 0x03, -1)
    versions = _PGP_VERSIONS.get(tag)
    return versions is not None and 0 < version_at < len(head) and head[version_at] in versions


def high_entropy(head: bytes) -> bool:
    """True when the first bytes do not compress: encrypted or compressed data."""
    sample = head[:ENTROPY_SAMPLE]
    if len(sample) < 1024:
        return False
    return len(zlib.compress(sample, 1)) >= ENTROPY_RATIO * len(sample)


def storage_encryption(path: str) -> StorageEncryption:
    """Say whether the file system holding ``path`` sits on a dm-crypt block device.

    Follows the device-mapper stack (LVM over LUKS, for instance) through ``/sys``.
    ``encrypted`` is ``None`` when it cannot be told (a network, overlay or memory file system).
    """
    try:
        dev = os.stat(path).st_dev
    except OSError as exc:
        return StorageEncryption(target=path, device=None, encrypted=None,
                                 evidence=f"cannot stat ({exc.strerror})")
    number = f"{os.major(dev)}:{os.minor(dev)}"
    node = Path("/sys/dev/block") / number
    if not node.exists():
        return StorageEncryption(
            target=path, device=number, encrypted=None,
            evidence="not a block device (network, overlay or memory file system)")
    found = _crypt_below(node.resolve(), depth=0)
    return StorageEncryption(
        target=path,
        device=node.resolve().name,
        encrypted=found is not None,
        evidence=f"dm-crypt ({found})" if found else "no dm-crypt layer below this device",
    )


def _crypt_below(node: Path, depth: int) -> str | None:
    """Return the dm-crypt kind (``CRYPT-LUKS2``...) at or below a /sys block node."""
    if depth > 6:
        return None
    for candidate in (node, node.parent):  # a partition's dm data sits on its disk
        try:
            uuid = (candidate / "dm" / "uuid").read_text().strip()
        except OSError:
            continue
        if uuid.startswith("CRYPT-"):
            return "-".join(uuid.split("-")[:2])
    slaves = node / "slaves"
    if slaves.is_dir():
        for slave in sorted(slaves.iterdir()):
            found = _crypt_below(slave.resolve(), depth + 1)
            if found:
                return found
    return None
