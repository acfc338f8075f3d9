"""Sign a finished report PDF with a PAdES baseline B-B signature.

The signature is added as an incremental update: the bytes of the original
PDF are kept unchanged and the signature revision is appended after them, so
a PDF/A-3b report keeps its embedded files (such as ``findings.json``) and the
signature covers everything that came before it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.keys import load_private_key_from_pemder
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.sign import fields, signers

from hipaa_audit.errors import HipaaAuditError

__all__ = ["SigningError", "sign_pdf"]


class SigningError(HipaaAuditError):
    """The key or certificate cannot be used, or the PDF cannot be signed.

    The message names the file at fault; it never contains key material or
    the passphrase.
    """


def _require_file(path: Path, what: str) -> None:
    """Raise SigningError unless ``path`` is an existing regular file."""
    if not path.exists():
        raise SigningError(f"{what} file not found: {path}")
    if not path.is_file():
        raise SigningError(f"{what} is not a regular file: {path}")


def _check_key_files(key: Path, cert: Path, passphrase: bytes | None) -> None:
    """Raise SigningError naming the file if the certificate or key cannot be read.

    Done before ``SimpleSigner.load``, which only returns None on failure (and logs a
    traceback), so that the error says which file is at fault and why.
    """
    _require_file(key, "private key")
    _require_file(cert, "certificate")
    try:
        data = cert.read_bytes()
        if b"-----BEGIN" in data:
            count = len(x509.load_pem_x509_certificates(data))
        else:
            x509.load_der_x509_certificate(data)
            count = 1
    except OSError as exc:
        raise SigningError(f"cannot read certificate {cert}: {exc.strerror}") from None
    except Exception:
        count = 0
    if count != 1:
        raise SigningError(
            f"cannot read certificate {cert}: expected exactly one PEM or DER X.509 certificate"
        )
    try:
        load_private_key_from_pemder(str(key), passphrase=passphrase)
    except OSError as exc:
        raise SigningError(f"cannot read private key {key}: {exc.strerror}") from None
    except TypeError:
        # cryptography raises TypeError for a missing or a superfluous password.
        if passphrase is None:
            raise SigningError(
                f"private key {key} is encrypted: a passphrase is required"
            ) from None
        raise SigningError(
            f"private key {key} is not encrypted, but a passphrase was given"
        ) from None
    except Exception:
        if passphrase is not None:
            raise SigningError(
                f"cannot read private key {key}: wrong passphrase, or not a PEM/DER private key"
            ) from None
        raise SigningError(f"cannot read private key {key}: not a PEM/DER private key") from None


def _load_signer(
    key: Path, cert: Path, passphrase: bytes | None
) -> tuple[signers.SimpleSigner, str]:
    """Load the key pair and check that the key belongs to the certificate.

    Returns the signer and the certificate's SHA-256 fingerprint (lower-case hex).
    """
    _check_key_files(key, cert, passphrase)
    signer: signers.SimpleSigner | None
    try:
        # SimpleSigner.load is unannotated in pyHanko 0.38; it returns None on bad input.
        signer = signers.SimpleSigner.load(  # type: ignore[no-untyped-call]
            str(key), str(cert), key_passphrase=passphrase
        )
    except Exception:
        signer = None
    signing_cert = None if signer is None else signer.signing_cert
    if signer is None or signing_cert is None:
        raise SigningError(f"cannot load private key {key} with certificate {cert}")
    try:
        private = serialization.load_der_private_key(signer.signing_key.dump(), password=None)
        cert_public = serialization.load_der_public_key(signing_cert.public_key.dump())
        fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        matches = private.public_key().public_bytes(*fmt) == cert_public.public_bytes(*fmt)
    except Exception:
        raise SigningError(
            f"unsupported key type in private key {key} or certificate {cert}"
        ) from None
    if not matches:
        raise SigningError(f"private key {key} does not match certificate {cert}")
    return signer, hashlib.sha256(signing_cert.dump()).hexdigest()


def sign_pdf(
    pdf: Path,
    key: Path,
    cert: Path,
    *,
    passphrase: bytes | None = None,
    reason: str = "HIPAA risk analysis",
    location: str | None = None,
    field_name: str = "AssessorSignature",
) -> str:
    """Sign ``pdf`` in place with a PAdES baseline B-B signature (SHA-256).

    The signature is appended as an incremental update, so the original bytes,
    PDF/A-3b attachments included, are preserved and covered by the signature.
    The signed file is written to a temporary file beside ``pdf`` and moved
    over it with ``os.replace``, so a failure leaves the original untouched.

    ``key`` and ``cert`` are PEM or DER files; ``passphrase`` decrypts an
    encrypted key. ``reason`` and ``location`` go into the signature
    dictionary, and ``field_name`` names the signature field to create (or to
    fill, if an empty field of that name exists).

    Returns the SHA-256 fingerprint of the signer's DER certificate, as
    lower-case hex without colons (what ``openssl x509 -fingerprint -sha256``
    prints, minus the colons). Raises SigningError when a file is missing or
    unreadable, the passphrase is wrong or missing, the key does not match the
    certificate, or the PDF cannot be signed (not a PDF, field already signed).
    """
    signer, fingerprint = _load_signer(key, cert, passphrase)

    _require_file(pdf, "PDF")
    target = pdf.resolve()
    meta = signers.PdfSignatureMetadata(
        field_name=field_name,
        subfilter=fields.SigSeedSubFilter.PADES,
        md_algorithm="sha256",
        reason=reason,
        location=location,
    )
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".signing", dir=target.parent
        )
    except OSError as exc:
        raise SigningError(f"cannot create a temporary file beside PDF {pdf}: {exc}") from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, open(target, "rb") as src:
            writer = IncrementalPdfFileWriter(src)
            signers.sign_pdf(writer, meta, signer=signer, output=out)
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(OSError):
            os.chmod(tmp, target.stat().st_mode & 0o7777)
        os.replace(tmp, target)
    except (PdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise SigningError(f"cannot sign PDF {pdf}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)  # only still there if signing failed
    return fingerprint
