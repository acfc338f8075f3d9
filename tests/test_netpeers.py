"""fixtures/netpeers.py: every loopback peer really behaves as its name says.

Real servers only (openssl s_server, Python http.server, dcmtk storescp, Orthanc), probed with
the standard library, ``openssl s_client`` (TLS 1.0/1.1, which Python's OpenSSL 3 refuses) and
pynetdicom. The ``all`` set is the session's (``netpeer_set`` in conftest.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import http.client
import json
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, pid_running
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from helpers import served_json, serving, sigterm_exit

sys.path.insert(0, str(ROOT / "fixtures"))
import netpeers

pytestmark = pytest.mark.fixtures

SCRIPT = ROOT / "fixtures" / "netpeers.py"


@pytest.fixture(scope="module")
def certs(netpeer_certs: netpeers.Certs) -> netpeers.Certs:
    return netpeer_certs


@pytest.fixture(scope="module")
def peers(netpeer_set: netpeers.Peers) -> dict[str, netpeers.Peer]:
    """The session's ``all`` set (conftest.py checks at its end that every server stopped)."""
    return netpeer_set.peers


# ---------------------------------------------------------------------------------------------
# helpers


def trusting(certs: netpeers.Certs, *, check_hostname: bool = True) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs.ca_crt))
    ctx.check_hostname = check_hostname
    return ctx


def unverified() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def handshake(peer: netpeers.Peer, ctx: ssl.SSLContext,
              server_hostname: str = "localhost") -> tuple[str, str, bytes]:
    """TLS handshake, then GET / (s_server -www answers): version, cipher, leaf DER."""
    with socket.create_connection((netpeers.HOST, peer.port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
        version, cipher = tls.version(), tls.cipher()
        der = tls.getpeercert(binary_form=True)
        assert version is not None and cipher is not None and der is not None
        tls.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert tls.recv(64).startswith(b"HTTP/1.0 200")
        return version, cipher[0], der


def leaf(peer: netpeers.Peer) -> x509.Certificate:
    ctx = unverified()
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return x509.load_der_x509_certificate(handshake(peer, ctx)[2])


def s_client(peer: netpeers.Peer, *args: str) -> str:
    """openssl s_client -brief with the legacy-friendly cipher string; returns its stderr."""
    proc = subprocess.run(
        ["openssl", "s_client", "-connect", f"{netpeers.HOST}:{peer.port}", "-brief",
         "-cipher", "DEFAULT@SECLEVEL=0", *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=15, check=False)
    return proc.stderr


def c_echo(peer: netpeers.Peer, tls_args: tuple[ssl.SSLContext, str] | None = None,
           ae_title: str | None = None) -> Any:
    """pynetdicom C-ECHO: the status (a Dataset) or None when no association was established."""
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

    ae = AE(ae_title="NETPEERSTEST")
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.network_timeout = ae.connection_timeout = 5
    assoc = ae.associate(netpeers.HOST, peer.port, ae_title=ae_title or peer.ae_title or "ANY",
                         tls_args=tls_args)
    try:
        if not assoc.is_established:
            return None
        return assoc.send_c_echo()
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()


def http_get(peer: netpeers.Peer, ctx: ssl.SSLContext | None = None,
             method: str = "GET") -> http.client.HTTPResponse:
    conn: http.client.HTTPConnection
    if ctx is None:
        conn = http.client.HTTPConnection(netpeers.HOST, peer.port, timeout=5)
    else:
        conn = http.client.HTTPSConnection(netpeers.HOST, peer.port, timeout=5, context=ctx)
    conn.request(method, "/")
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


# ---------------------------------------------------------------------------------------------
# certificates


def test_certificates(certs: netpeers.Certs) -> None:
    now = dt.datetime.now(dt.UTC)

    def load(path: Path) -> x509.Certificate:
        return x509.load_pem_x509_certificate(path.read_bytes())

    ca = load(certs.ca_crt)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)

    for name, days, key_type, signed in (("ec", 90, ec.EllipticCurvePublicKey, True),
                                         ("rsa", 364, rsa.RSAPublicKey, True),
                                         ("selfsigned", 364, rsa.RSAPublicKey, False),
                                         ("mismatch", 364, rsa.RSAPublicKey, True),
                                         ("client", 364, ec.EllipticCurvePublicKey, True)):
        cert = load(getattr(certs, f"{name}_crt"))
        assert isinstance(cert.public_key(), key_type), name
        assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == days, name
        assert cert.not_valid_before_utc < now < cert.not_valid_after_utc, name
        assert (cert.issuer == ca.subject) is signed, name
        ext = cert.extensions
        ext.get_extension_for_class(x509.SubjectKeyIdentifier)
        aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
        if signed:
            assert aki == ca_ski, name
        sans = ext.get_extension_for_class(x509.SubjectAlternativeName).value
        if name == "mismatch":
            assert sans.get_values_for_type(x509.DNSName) == ["wrong.example.org"]
            assert not sans.get_values_for_type(x509.IPAddress)
        else:
            assert sans.get_values_for_type(x509.DNSName) == ["localhost"], name
            assert [str(i) for i in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
        eku = ext.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
        assert (ExtendedKeyUsageOID.SERVER_AUTH in eku) is (name != "client"), name
    rsa_key = load(certs.rsa_crt).public_key()
    assert isinstance(rsa_key, rsa.RSAPublicKey) and rsa_key.key_size == 2048

    expired = load(certs.expired_crt)
    assert expired.not_valid_after_utc < now - dt.timedelta(days=364)
    assert expired.not_valid_before_utc < now - dt.timedelta(days=729)

    weak = load(certs.weak_crt)
    weak_key = weak.public_key()
    assert isinstance(weak_key, rsa.RSAPublicKey) and weak_key.key_size == 1024
    assert isinstance(weak.signature_hash_algorithm, hashes.SHA1)
    assert not weak.extensions.get_extension_for_class(x509.BasicConstraints).value.ca

    assert certs.client_crt.read_text().count("BEGIN CERTIFICATE") == 1
    mtimes = [p.stat().st_mtime_ns for p in certs.files()]
    assert netpeers.make_certs(certs.folder) == certs  # cached: nothing rewritten
    assert [p.stat().st_mtime_ns for p in certs.files()] == mtimes


# ---------------------------------------------------------------------------------------------
# TLS peers (openssl s_server)


def test_targets(peers: dict[str, netpeers.Peer]) -> None:
    assert peers["good_tls13"].target == f"tls://127.0.0.1:{peers['good_tls13'].port}"
    assert peers["https_hsts"].target.startswith("https://127.0.0.1:")
    assert peers["http_content"].target.startswith("http://127.0.0.1:")
    assert peers["storescp_plain"].target.startswith("dicom://127.0.0.1:")
    assert peers["storescp_tls"].target.startswith("dicom+tls://127.0.0.1:")
    assert peers["orthanc_plain"].target.startswith("dicom://127.0.0.1:")
    assert len({p.port for p in peers.values()}) == len(peers)
    assert all(p.alive() for p in peers.values())


def test_good_tls13(peers: dict[str, netpeers.Peer], certs: netpeers.Certs) -> None:
    version, cipher, _ = handshake(peers["good_tls13"], trusting(certs))
    assert version == "TLSv1.3" and cipher.startswith("TLS_")
    ctx = trusting(certs)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        handshake(peers["good_tls13"], ctx)


def test_good_tls12(peers: dict[str, netpeers.Peer], certs: netpeers.Certs) -> None:
    ctx = trusting(certs)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    version, cipher, _ = handshake(peers["good_tls12"], ctx)
    assert version == "TLSv1.2" and cipher.startswith("ECDHE-RSA-") and "CBC" not in cipher
    assert "Protocol version: TLSv1.1" not in s_client(peers["good_tls12"], "-tls1_1")


def test_legacy_accepts_tls10_and_null(peers: dict[str, netpeers.Peer]) -> None:
    out = s_client(peers["legacy"], "-tls1")
    assert "Protocol version: TLSv1\n" in out, out
    out = s_client(peers["legacy"], "-tls1_2", "-cipher", "NULL-SHA256:@SECLEVEL=0")
    assert "Ciphersuite: NULL-SHA256" in out, out
    assert "Protocol version: TLSv1.3" not in s_client(peers["legacy"], "-tls1_3")


def test_tls11_only(peers: dict[str, netpeers.Peer]) -> None:
    out = s_client(peers["tls11_only"], "-tls1_1")
    assert "Protocol version: TLSv1.1" in out, out
    assert "CONNECTION ESTABLISHED" not in s_client(peers["tls11_only"], "-tls1_2")


def test_static_rsa_cbc(peers: dict[str, netpeers.Peer]) -> None:
    ctx = unverified()
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    version, cipher, _ = handshake(peers["static_rsa_cbc"], ctx)
    assert version == "TLSv1.2" and cipher in ("AES128-SHA", "AES256-SHA")


def test_expired(peers: dict[str, netpeers.Peer], tmp_path: Path) -> None:
    cert = leaf(peers["expired"])
    assert cert.not_valid_after_utc < dt.datetime.now(dt.UTC)
    trust = tmp_path / "expired.pem"  # trust the certificate itself: only the dates can fail
    trust.write_bytes(cert.public_bytes(Encoding.PEM))
    with pytest.raises(ssl.SSLCertVerificationError, match="expired"):
        handshake(peers["expired"], ssl.create_default_context(cafile=str(trust)))


def test_selfsigned_and_mismatch(peers: dict[str, netpeers.Peer], certs: netpeers.Certs) -> None:
    cert = leaf(peers["selfsigned"])
    assert cert.issuer == cert.subject
    with pytest.raises(ssl.SSLCertVerificationError, match="self-signed"):
        handshake(peers["selfsigned"], trusting(certs))
    with pytest.raises(ssl.SSLCertVerificationError, match="match"):
        handshake(peers["mismatch"], trusting(certs))
    handshake(peers["mismatch"], trusting(certs), server_hostname="wrong.example.org")


def test_weak_cert(peers: dict[str, netpeers.Peer]) -> None:
    cert = leaf(peers["weak_cert"])
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 1024
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA1)


def test_client_cert_required(peers: dict[str, netpeers.Peer], certs: netpeers.Certs) -> None:
    peer = peers["client_cert_required"]
    with pytest.raises((ssl.SSLError, ConnectionError)):
        handshake(peer, trusting(certs))  # TLS 1.3: the alert comes after the handshake
    ctx = trusting(certs)
    ctx.load_cert_chain(str(certs.client_crt), str(certs.client_key))
    assert handshake(peer, ctx)[0] == "TLSv1.3"


# ---------------------------------------------------------------------------------------------
# HTTP(S) peers


def test_https_hsts(peers: dict[str, netpeers.Peer], certs: netpeers.Certs) -> None:
    response = http_get(peers["https_hsts"], trusting(certs))
    assert response.status == 200
    assert response.headers["Strict-Transport-Security"] == netpeers.HSTS_GOOD
    head = http_get(peers["https_hsts"], trusting(certs), method="HEAD")
    assert head.status == 200 and head.headers["Strict-Transport-Security"]
    response = http_get(peers["https_no_hsts"], trusting(certs))
    assert response.status == 200 and "Strict-Transport-Security" not in response.headers


def test_https_versions(peers: dict[str, netpeers.Peer], certs: netpeers.Certs) -> None:
    ctx = trusting(certs)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection((netpeers.HOST, peers["https_hsts"].port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        cipher = tls.cipher()
        assert tls.version() == "TLSv1.2" and cipher and cipher[0].startswith("ECDHE-ECDSA-")
    assert "CONNECTION ESTABLISHED" not in s_client(peers["https_hsts"], "-tls1_1")


def test_https_survives_silent_client(peers: dict[str, netpeers.Peer],
                                      certs: netpeers.Certs) -> None:
    """A client that connects and never handshakes must not block other clients."""
    with socket.create_connection((netpeers.HOST, peers["https_hsts"].port), timeout=5):
        assert http_get(peers["https_hsts"], trusting(certs)).status == 200


def test_http(peers: dict[str, netpeers.Peer]) -> None:
    response = http_get(peers["http_content"])
    assert response.status == 200 and "Location" not in response.headers
    response = http_get(peers["http_redirect"])
    assert response.status == 301
    assert response.headers["Location"] == peers["https_hsts"].target + "/"


# ---------------------------------------------------------------------------------------------
# DICOM peers


def test_storescp_plain(peers: dict[str, netpeers.Peer]) -> None:
    status = c_echo(peers["storescp_plain"], ae_title="STORESCP")
    assert status is not None and status.Status == 0x0000


def test_storescp_tls(peers: dict[str, netpeers.Peer], certs: netpeers.Certs) -> None:
    peer = peers["storescp_tls"]
    status = c_echo(peer, tls_args=(trusting(certs), "localhost"))
    assert status is not None and status.Status == 0x0000
    assert c_echo(peer) is None  # plaintext to the TLS port is aborted
    assert "Protocol version: TLSv1.1" not in s_client(peer, "-tls1_1")


def test_storescp_tls_client_required(peers: dict[str, netpeers.Peer],
                                      certs: netpeers.Certs) -> None:
    peer = peers["storescp_tls_client_required"]
    assert c_echo(peer, tls_args=(trusting(certs), "localhost")) is None
    ctx = trusting(certs)
    ctx.load_cert_chain(str(certs.client_crt), str(certs.client_key))
    status = c_echo(peer, tls_args=(ctx, "localhost"))
    assert status is not None and status.Status == 0x0000


def test_storescp_tls_weak(peers: dict[str, netpeers.Peer], certs: netpeers.Certs) -> None:
    peer = peers["storescp_tls_weak"]
    out = s_client(peer, "-tls1")
    assert "Protocol version: TLSv1\n" in out, out
    status = c_echo(peer, tls_args=(trusting(certs), "localhost"))
    assert status is not None and status.Status == 0x0000


def test_orthanc_plain(peers: dict[str, netpeers.Peer]) -> None:
    peer = peers["orthanc_plain"]
    assert peer.ae_title == "ORTHANC"
    status = c_echo(peer)
    assert status is not None and status.Status == 0x0000


def test_orthanc_tls(peers: dict[str, netpeers.Peer], certs: netpeers.Certs) -> None:
    peer = peers["orthanc_tls"]
    assert peer.ae_title == "ORTHANCTLS" and peer.target.startswith("dicom+tls://")
    status = c_echo(peer, tls_args=(trusting(certs), "localhost"))
    assert status is not None and status.Status == 0x0000
    assert c_echo(peer) is None  # plaintext to the TLS port is aborted


# ---------------------------------------------------------------------------------------------
# closed and silent ports


def test_closed_port(peers: dict[str, netpeers.Peer]) -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((netpeers.HOST, peers["closed"].port), timeout=2)


def test_silent_port(peers: dict[str, netpeers.Peer]) -> None:
    with socket.create_connection((netpeers.HOST, peers["silent"].port), timeout=2) as sock:
        sock.settimeout(1)
        sock.sendall(b"\x16\x03\x01\x00\x05hello")
        with pytest.raises(TimeoutError):
            sock.recv(1)


def test_peers_survived_the_probes(peers: dict[str, netpeers.Peer]) -> None:
    """Nothing above (failed handshakes, plaintext to TLS ports, stdin at EOF) killed a peer."""
    assert [name for name, peer in peers.items() if not peer.alive()] == []
    for name, peer in peers.items():
        if name != "closed":
            socket.create_connection((netpeers.HOST, peer.port), timeout=2).close()


# ---------------------------------------------------------------------------------------------
# lifecycle and command line


def test_peers_stop_on_error(tmp_path: Path, certs: netpeers.Certs) -> None:
    started: list[netpeers.Peer] = []
    with pytest.raises(RuntimeError, match="boom"), netpeers.Peers(tmp_path) as group:
        started.append(group.start("a", netpeers.good_tls13, certs))
        started.append(group.start("b", netpeers.storescp, certs, tmp_path, "plain"))
        started.append(group.start("c", netpeers.silent_port))
        assert group.targets["c"].startswith("tls://")
        raise RuntimeError("boom")
    assert not [p.name for p in started if p.alive()]
    assert not [p.pid for p in started if p.pid is not None and pid_running(p.pid)]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((netpeers.HOST, started[0].port), timeout=2)


def test_start_failure_reports_output(tmp_path: Path, certs: netpeers.Certs) -> None:
    # storescp listens first and loads its key afterwards: readiness is a TLS handshake, which
    # a storescp about to exit can never complete, so the exit is reported whatever the load.
    broken = dataclasses.replace(certs, rsa_key=tmp_path / "missing.key")
    with pytest.raises(RuntimeError, match="exited") as info:
        netpeers.storescp(broken, tmp_path, "tls")
    assert "missing.key" in str(info.value)
    with socket.socket() as busy:
        busy.bind((netpeers.HOST, 0))
        busy.listen()
        with pytest.raises(RuntimeError, match="in use"):
            netpeers.legacy(certs, port=busy.getsockname()[1])


def test_readiness_checks(peers: dict[str, netpeers.Peer], certs: netpeers.Certs) -> None:
    client = (certs.client_crt, certs.client_key)
    assert netpeers.tls_handshake_ok(peers["storescp_tls"].port)
    assert netpeers.tls_handshake_ok(peers["storescp_tls_client_required"].port, client)
    assert not netpeers.tls_handshake_ok(peers["storescp_plain"].port, timeout=5)
    assert not netpeers.tls_handshake_ok(peers["closed"].port)
    assert netpeers.ORTHANC_STARTED in peers["orthanc_plain"].output()


def test_orthanc_start_failure_after_dicom_listen(tmp_path: Path) -> None:
    # Orthanc listens on its DICOM port, then fails to bind the HTTP one and exits: readiness
    # waits for its "started" line, so this is reported as an exit, never as a ready peer.
    with socket.socket() as busy:
        busy.bind((netpeers.HOST, 0))
        busy.listen()
        with pytest.raises(RuntimeError, match="exited") as info:
            netpeers.orthanc(tmp_path, http_port=busy.getsockname()[1])
    assert "already in use" in str(info.value)


def test_cli_run_demo(tmp_path: Path) -> None:
    pins = {"portal": netpeers.free_port(), "modality": netpeers.free_port()}
    (tmp_path / "ports.json").write_text(json.dumps(pins))
    check = (
        "import json, socket, sys\n"
        f"t = json.load(open({str(tmp_path / 'peers.json')!r}))\n"
        "assert sorted(t) == sorted(%r), t\n"
        "for target in t.values():\n"
        "    host, port = target.split('://')[1].split(':')\n"
        "    socket.create_connection((host, int(port)), timeout=5).close()\n"
        "print(json.dumps(t))\n"
        "sys.exit(7)\n"
    ) % sorted(netpeers.DEMO_PEERS)
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "run", "--set", "demo", "--folder", str(tmp_path),
         "--ports-json", str(tmp_path / "ports.json"), "--", sys.executable, "-c", check],
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 7, proc.stderr
    targets = json.loads(proc.stdout)
    assert targets["portal"] == f"https://127.0.0.1:{pins['portal']}"
    assert targets["modality"] == f"dicom://127.0.0.1:{pins['modality']}"
    assert targets["pacs_dicom_tls"].startswith("dicom+tls://")
    for target in targets.values():
        port = int(target.rsplit(":", 1)[1])
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((netpeers.HOST, port), timeout=2)


def test_cli_serve_stops_on_sigterm(tmp_path: Path) -> None:
    with serving([sys.executable, str(SCRIPT), "serve", "--set", "bench", "--count", "4",
                  "--folder", str(tmp_path)]) as proc:
        targets = served_json(proc)
        assert len(targets) == 4
        assert json.loads((tmp_path / "peers.json").read_text()) == targets
        assert sigterm_exit(proc, timeout=20) == 128 + signal.SIGTERM
    for target in targets.values():
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((netpeers.HOST, int(target.rsplit(":", 1)[1])), timeout=2)
