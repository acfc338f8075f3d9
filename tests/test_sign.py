"""PAdES signing of report PDFs: real keys from openssl, real PDFs from WeasyPrint, no mocks."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

pytestmark = pytest.mark.e2e

if TYPE_CHECKING:
    from pyhanko.sign.validation.status import PdfSignatureStatus

if shutil.which("openssl") is None:
    pytest.skip("openssl command not available", allow_module_level=True)

PASSPHRASE = b"correct horse battery staple"


@pytest.fixture(scope="module", autouse=True)
def signing_libraries() -> None:
    """WeasyPrint and pyHanko, imported when this file's first test runs, not at collection
    (every pytest-xdist worker collects every file); without them the tests are skipped."""
    pytest.importorskip("weasyprint")
    pytest.importorskip("pyhanko.sign")


@dataclass(frozen=True)
class KeyMaterial:
    key: Path  # unencrypted PKCS#8 key
    cert: Path  # self-signed certificate for ``key``
    enc_key: Path  # passphrase-protected key
    enc_cert: Path  # self-signed certificate for ``enc_key``


def _openssl(*args: str) -> str:
    proc = subprocess.run(
        ["openssl", *args], capture_output=True, text=True, check=True, timeout=60
    )
    return proc.stdout


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyMaterial:
    """Two self-signed RSA-3072 identities; the second key is passphrase-protected."""
    d = tmp_path_factory.mktemp("keys")
    common = ["req", "-x509", "-newkey", "rsa:3072", "-sha256", "-days", "2"]
    _openssl(*common, "-nodes", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"),
             "-subj", "/CN=Test Assessor/O=HIPAA Audit Tests")
    _openssl(*common, "-passout", "pass:" + PASSPHRASE.decode(),
             "-keyout", str(d / "enc_key.pem"), "-out", str(d / "enc_cert.pem"),
             "-subj", "/CN=Encrypted Assessor/O=HIPAA Audit Tests")
    assert b"ENCRYPTED" in (d / "enc_key.pem").read_bytes()
    return KeyMaterial(d / "key.pem", d / "cert.pem", d / "enc_key.pem", d / "enc_cert.pem")


@pytest.fixture(scope="module")
def unsigned_pdf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A small PDF/A-3b report carrying findings.json, as WeasyPrint writes it."""
    import weasyprint

    d = tmp_path_factory.mktemp("pdf")
    path = d / "report.pdf"
    weasyprint.HTML(string="<h1>HIPAA risk analysis</h1><p>No findings.</p>").write_pdf(
        path,
        pdf_variant="pdf/a-3b",
        attachments=[
            # WeasyPrint 70: ``name`` is the attachment's file name; ``filename`` is a source path.
            weasyprint.Attachment(string="{}", base_url=str(d), name="findings.json",
                                  relationship="Data"),
        ],
    )
    return path.read_bytes()


@pytest.fixture
def pdf(tmp_path: Path, unsigned_pdf: bytes) -> Path:
    path = tmp_path / "report.pdf"
    path.write_bytes(unsigned_pdf)
    return path


def _validate(pdf: Path, cert: Path) -> PdfSignatureStatus:
    from pyhanko.keys.pemder import load_certs_from_pemder_data
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    with pdf.open("rb") as f:
        reader = PdfFileReader(f)
        sigs = reader.embedded_signatures
        assert len(sigs) == 1
        ctx = ValidationContext(trust_roots=list(load_certs_from_pemder_data(cert.read_bytes())))
        return validate_pdf_signature(sigs[0], ctx)


def _openssl_fingerprint(cert: Path) -> str:
    out = _openssl("x509", "-noout", "-fingerprint", "-sha256", "-in", str(cert))
    return out.strip().split("=", 1)[1].replace(":", "").lower()


def test_sign_validates_and_returns_fingerprint(pdf: Path, keys: KeyMaterial,
                                                 unsigned_pdf: bytes) -> None:
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation.status import SignatureCoverageLevel

    from hipaa_audit.report.sign import sign_pdf

    fingerprint = sign_pdf(pdf, keys.key, keys.cert, location="Springfield")

    assert fingerprint == _openssl_fingerprint(keys.cert)
    assert len(fingerprint) == 64 and fingerprint == fingerprint.lower()

    signed = pdf.read_bytes()
    assert signed.startswith(unsigned_pdf), "signing must be an incremental update"
    assert len(signed) > len(unsigned_pdf)
    assert not [p for p in pdf.parent.iterdir() if p.name != pdf.name], "temp file left behind"

    status = _validate(pdf, keys.cert)
    assert status.intact
    assert status.valid
    assert status.trusted
    assert status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    assert status.bottom_line
    assert status.md_algorithm == "sha256"

    with pdf.open("rb") as f:
        sig = PdfFileReader(f).embedded_signatures[0]
        assert sig.field_name == "AssessorSignature"
        assert sig.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"
        assert sig.sig_object["/Reason"] == "HIPAA risk analysis"
        assert sig.sig_object["/Location"] == "Springfield"


def test_attachment_survives_and_poppler_sees_one_signature(pdf: Path,
                                                            keys: KeyMaterial) -> None:
    from hipaa_audit.report.sign import sign_pdf

    if shutil.which("pdfdetach") is None or shutil.which("pdfsig") is None:
        pytest.skip("poppler-utils not available")
    sign_pdf(pdf, keys.key, keys.cert)

    listing = subprocess.run(["pdfdetach", "-list", str(pdf)], capture_output=True, text=True,
                             check=True, timeout=30).stdout
    assert "findings.json" in listing

    report = subprocess.run(["pdfsig", str(pdf)], capture_output=True, text=True,
                            check=True, timeout=30).stdout
    assert report.count("Signature #") == 1
    assert "Signature Field Name: AssessorSignature" in report
    assert "Signature is Valid" in report
    assert "Total document signed" in report


def test_passphrase_protected_key(pdf: Path, keys: KeyMaterial) -> None:
    from hipaa_audit.report.sign import SigningError, sign_pdf

    with pytest.raises(SigningError, match="passphrase") as info:
        sign_pdf(pdf, keys.enc_key, keys.enc_cert)
    assert str(keys.enc_key) in str(info.value)

    with pytest.raises(SigningError, match="wrong passphrase") as info:
        sign_pdf(pdf, keys.enc_key, keys.enc_cert, passphrase=b"not it")
    assert str(keys.enc_key) in str(info.value)
    assert "not it" not in str(info.value)

    fingerprint = sign_pdf(pdf, keys.enc_key, keys.enc_cert, passphrase=PASSPHRASE)
    assert fingerprint == _openssl_fingerprint(keys.enc_cert)
    status = _validate(pdf, keys.enc_cert)
    assert status.intact and status.valid and status.trusted


def test_mismatched_key_names_files(pdf: Path, keys: KeyMaterial, unsigned_pdf: bytes) -> None:
    from hipaa_audit.report.sign import SigningError, sign_pdf

    with pytest.raises(SigningError, match="does not match") as info:
        sign_pdf(pdf, keys.key, keys.enc_cert)
    assert str(keys.key) in str(info.value)
    assert str(keys.enc_cert) in str(info.value)
    assert "PRIVATE KEY" not in str(info.value)
    assert pdf.read_bytes() == unsigned_pdf, "a failed signing must leave the PDF untouched"


def test_missing_files_are_named(pdf: Path, keys: KeyMaterial, tmp_path: Path) -> None:
    from hipaa_audit.report.sign import SigningError, sign_pdf

    missing_key = tmp_path / "no-such-key.pem"
    with pytest.raises(SigningError, match="not found") as info:
        sign_pdf(pdf, missing_key, keys.cert)
    assert str(missing_key) in str(info.value)

    missing_cert = tmp_path / "no-such-cert.pem"
    with pytest.raises(SigningError, match="not found") as info:
        sign_pdf(pdf, keys.key, missing_cert)
    assert str(missing_cert) in str(info.value)

    missing_pdf = tmp_path / "no-such-report.pdf"
    with pytest.raises(SigningError, match="not found") as info:
        sign_pdf(missing_pdf, keys.key, keys.cert)
    assert str(missing_pdf) in str(info.value)


def test_certificate_file_that_is_not_a_certificate(pdf: Path, keys: KeyMaterial) -> None:
    from hipaa_audit.report.sign import SigningError, sign_pdf

    with pytest.raises(SigningError, match="certificate") as info:
        sign_pdf(pdf, keys.key, keys.key)  # a key where the certificate should be
    assert str(keys.key) in str(info.value)


def test_not_a_pdf_leaves_no_temp_file(tmp_path: Path, keys: KeyMaterial) -> None:
    from hipaa_audit.report.sign import SigningError, sign_pdf

    bogus = tmp_path / "bogus.pdf"
    bogus.write_bytes(b"this is not a PDF\n")
    with pytest.raises(SigningError, match="cannot sign PDF") as info:
        sign_pdf(bogus, keys.key, keys.cert)
    assert str(bogus) in str(info.value)
    assert bogus.read_bytes() == b"this is not a PDF\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bogus.pdf"]


def test_second_signature_in_same_field_is_refused(pdf: Path, keys: KeyMaterial) -> None:
    from hipaa_audit.report.sign import SigningError, sign_pdf

    sign_pdf(pdf, keys.key, keys.cert)
    signed = pdf.read_bytes()
    with pytest.raises(SigningError, match=str(pdf.name)):
        sign_pdf(pdf, keys.key, keys.cert)
    assert pdf.read_bytes() == signed


def test_one_changed_byte_in_first_revision_breaks_the_signature(pdf: Path,
                                                                 keys: KeyMaterial) -> None:
    from hipaa_audit.report.sign import sign_pdf

    sign_pdf(pdf, keys.key, keys.cert)
    assert _validate(pdf, keys.cert).intact

    data = bytearray(pdf.read_bytes())
    # Flip a bit in the binary comment on the original file's second line: the PDF still
    # parses exactly as before, but the signed byte range no longer hashes the same.
    assert data.startswith(b"%PDF-")
    offset = data.index(b"\n%") + 2
    assert data[offset] >= 0x80, "expected the binary-marker comment after the header"
    data[offset] ^= 0x01
    pdf.write_bytes(bytes(data))

    status = _validate(pdf, keys.cert)
    assert not status.intact  # the document digest no longer matches
    # (status.valid stays True: the CMS signature over the signed attributes is still good)
    assert not status.bottom_line
