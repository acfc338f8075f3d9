"""The TLS collector: one sslyze scan of one endpoint, turned into a :class:`TlsObservation`.

sslyze (Python API, major version 6) does the protocol work. This module only chooses the
commands, runs them, and copies the facts out: every command attempt is checked, and a failed
one is recorded with its reason instead of being read as a pass.
"""

from __future__ import annotations

import ipaddress
import re
import warnings
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from sslyze import (
    CertificateInfoExtraArgument,
    ClientAuthenticationCredentials,
    ScanCommand,
    ScanCommandAttemptStatusEnum,
    ScanCommandsExtraArguments,
    Scanner,
    ServerNetworkConfiguration,
    ServerNetworkLocation,
    ServerScanRequest,
)
from sslyze.errors import (
    ConnectionToServerTimedOut,
    ServerRejectedConnection,
    ServerTlsConfigurationNotSupported,
    TlsHandshakeTimedOut,
)
from sslyze.server_connectivity import check_connectivity_to_server

from hipaa_audit.errors import HipaaAuditError
from hipaa_audit.network.observation import (
    GENTLE,
    NEEDS_CLIENT_CERT,
    CertInfo,
    Suite,
    TlsObservation,
)
from hipaa_audit.network.probes import ClientCert
from hipaa_audit.network.targets import is_ip
from hipaa_audit.scanrun import iso_utc

#: sslyze command → the protocol version its result describes
VERSION_COMMANDS = {
    ScanCommand.SSL_2_0_CIPHER_SUITES: "SSLv2",
    ScanCommand.SSL_3_0_CIPHER_SUITES: "SSLv3",
    ScanCommand.TLS_1_0_CIPHER_SUITES: "TLSv1.0",
    ScanCommand.TLS_1_1_CIPHER_SUITES: "TLSv1.1",
    ScanCommand.TLS_1_2_CIPHER_SUITES: "TLSv1.2",
    ScanCommand.TLS_1_3_CIPHER_SUITES: "TLSv1.3",
}
OTHER_COMMANDS = (
    ScanCommand.CERTIFICATE_INFO, ScanCommand.ELLIPTIC_CURVES, ScanCommand.TLS_COMPRESSION,
    ScanCommand.OPENSSL_CCS_INJECTION, ScanCommand.HEARTBLEED, ScanCommand.ROBOT,
    ScanCommand.SESSION_RENEGOTIATION, ScanCommand.TLS_FALLBACK_SCSV,
    ScanCommand.TLS_EXTENDED_MASTER_SECRET,
)
#: Commands that hammer a server with many handshakes: left out in gentle mode.
HEAVY_COMMANDS = (ScanCommand.ROBOT, ScanCommand.SESSION_RENEGOTIATION)
#: Commands that need the handshake to finish (so a client certificate when one is required).
FULL_HANDSHAKE_COMMANDS = (ScanCommand.ROBOT, ScanCommand.SESSION_RENEGOTIATION,
                           ScanCommand.HTTP_HEADERS)


class NotTls(HipaaAuditError):
    """The port does not complete a TLS handshake; ``state`` says how (plain, refused, silent)."""

    def __init__(self, state: str, detail: str) -> None:
        super().__init__(detail)
        self.state = state


def network_configuration(host: str, client: ClientCert | None,
                          timeout: float) -> ServerNetworkConfiguration:
    """The sslyze connection settings for one endpoint (SNI = the name used, if not an IP)."""
    creds = None
    if client is not None:
        creds = ClientAuthenticationCredentials(certificate_chain_path=client.cert,
                                                key_path=client.key)
    return ServerNetworkConfiguration(tls_server_name_indication=host,
                                      tls_client_auth_credentials=creds,
                                      network_timeout=int(max(1, timeout)),
                                      network_max_retries=1)


def connect(host: str, address: str, port: int, client: ClientCert | None,
            timeout: float) -> tuple[ServerNetworkLocation, ServerNetworkConfiguration, str]:
    """Check that the endpoint speaks TLS; return its location, configuration and client-auth.

    Raise :class:`NotTls` when it does not.
    """
    location = ServerNetworkLocation(hostname=host, port=port, ip_address=address)
    config = network_configuration(host, client, timeout)
    try:
        probing = check_connectivity_to_server(location, config)
    except ServerTlsConfigurationNotSupported as exc:
        raise NotTls("plain", f"no TLS handshake: {exc.error_message}") from None
    except ServerRejectedConnection:
        raise NotTls("refused", "the connection was refused") from None
    except (ConnectionToServerTimedOut, TlsHandshakeTimedOut):
        raise NotTls("silent", "the TLS handshake timed out") from None
    except Exception as exc:  # sslyze's other connectivity errors: data, not a crash
        raise NotTls("error", f"TLS connection failed ({type(exc).__name__})") from None
    return location, config, probing.client_auth_requirement.value


def scan_tls(location: ServerNetworkLocation, config: ServerNetworkConfiguration,
             client_auth: str, *, http: bool, gentle: bool, ca_bundle: Path | None,
             have_client_cert: bool) -> TlsObservation:
    """Run the TLS commands on one endpoint and copy out what the rules need."""
    commands = set(VERSION_COMMANDS) | set(OTHER_COMMANDS)
    if http:
        commands.add(ScanCommand.HTTP_HEADERS)
    obs = TlsObservation(client_auth=client_auth)
    skipped: dict[ScanCommand, str] = {}
    if gentle:
        skipped.update(dict.fromkeys(HEAVY_COMMANDS, GENTLE))
    if client_auth == "REQUIRED" and not have_client_cert:
        skipped.update(dict.fromkeys(FULL_HANDSHAKE_COMMANDS, NEEDS_CLIENT_CERT))
    obs.skipped = {c.value: why for c, why in sorted(skipped.items(), key=lambda kv: kv[0].value)
                   if c in commands}
    commands -= set(skipped)
    extra = ScanCommandsExtraArguments(
        certificate_info=CertificateInfoExtraArgument(custom_ca_file=ca_bundle)
    ) if ca_bundle is not None else ScanCommandsExtraArguments()
    request = ServerScanRequest(server_location=location, network_configuration=config,
                                scan_commands=commands, scan_commands_extra_arguments=extra)
    scanner = Scanner(per_server_concurrent_connections_limit=1 if gentle else 5,
                      concurrent_server_scans_limit=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scanner.queue_scans([request])
        results = list(scanner.get_results())
    result = results[0]
    if result.scan_result is None:
        trace = result.connectivity_error_trace
        why = f"connectivity lost ({trace.exc_type.__name__})" if trace else "no result"
        obs.errors = {c.value: why for c in commands}
        return obs
    for command in sorted(commands, key=lambda c: c.value):
        attempt = getattr(result.scan_result, command.value)
        if attempt.status != ScanCommandAttemptStatusEnum.COMPLETED or attempt.result is None:
            reason = attempt.error_reason.value if attempt.error_reason else attempt.status.value
            obs.errors[command.value] = reason.lower().replace("_", " ")
            continue
        _copy(obs, command, attempt.result, location.hostname)
    return obs


#: commands whose result is one flag: command → (observation attribute, result field)
FLAGS = {
    ScanCommand.TLS_COMPRESSION: ("compression", "supports_compression"),
    ScanCommand.OPENSSL_CCS_INJECTION: ("ccs_injection", "is_vulnerable_to_ccs_injection"),
    ScanCommand.HEARTBLEED: ("heartbleed", "is_vulnerable_to_heartbleed"),
    ScanCommand.TLS_FALLBACK_SCSV: ("fallback_scsv", "supports_fallback_scsv"),
    ScanCommand.TLS_EXTENDED_MASTER_SECRET: ("ems", "supports_ems_extension"),
}


def _copy(obs: TlsObservation, command: ScanCommand, res: Any, hostname: str) -> None:
    if command in VERSION_COMMANDS:
        version = VERSION_COMMANDS[command]
        obs.versions[version] = bool(res.is_tls_version_supported)
        obs.suites[version] = [_suite(a) for a in res.accepted_cipher_suites]
    elif command is ScanCommand.CERTIFICATE_INFO:
        obs.cert = _cert(res, hostname)
    elif command is ScanCommand.ELLIPTIC_CURVES:
        obs.curves = [c.name for c in res.supported_curves] if res.supports_ecdh_key_exchange \
            else []
    elif command in FLAGS:
        attribute, field = FLAGS[command]
        setattr(obs, attribute, bool(getattr(res, field)))
    elif command is ScanCommand.ROBOT:
        obs.robot = str(res.robot_result.value)
    elif command is ScanCommand.SESSION_RENEGOTIATION:
        obs.secure_renegotiation = bool(res.supports_secure_renegotiation)
        obs.client_renegotiation = bool(res.is_vulnerable_to_client_renegotiation_dos)
    elif command is ScanCommand.HTTP_HEADERS:
        obs.hsts_checked = res.http_error_trace is None
        h = res.strict_transport_security_header
        if h is not None:
            obs.hsts = {"max_age": h.max_age, "include_subdomains": bool(h.include_subdomains),
                        "preload": bool(h.preload)}


def _suite(accepted: Any) -> Suite:
    cs = accepted.cipher_suite
    key = accepted.ephemeral_key
    kx_type = kx_curve = None
    kx_size = None
    if key is not None:
        kx_size = int(key.size)
        curve = getattr(key, "curve_name", None)
        kx_type = "ECDH" if curve is not None else "DH"
        kx_curve = str(curve) if curve is not None else None
    return Suite(cs.name, cs.openssl_name, int(cs.key_size), bool(cs.is_anonymous),
                 kx_type, kx_size, kx_curve)


#: The part of a path-validation error that quotes the certificate (its subject and issuer
#: names were read from the endpoint: they stay out of the findings).
_QUOTED_CERT = re.compile(r"\s*\(?(encountered processing )?<Certificate\(.*$", re.DOTALL)


def _validation_error(error: object) -> str:
    """The validation error without the certificate it quotes."""
    return _QUOTED_CERT.sub("", str(error or "validation failed")).strip() or "validation failed"


def _cert(res: Any, hostname: str) -> CertInfo | None:
    if not res.certificate_deployments:
        return None
    deployment = res.certificate_deployments[0]
    chain: list[x509.Certificate] = deployment.received_certificate_chain
    if not chain:
        return None
    leaf = chain[0]
    key = leaf.public_key()
    curve = None
    if isinstance(key, rsa.RSAPublicKey):
        key_type, size = "rsa", key.key_size
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key_type, size, curve = "ecdsa", key.key_size, key.curve.name
    elif isinstance(key, dsa.DSAPublicKey):
        key_type, size = "dsa", key.key_size
    elif isinstance(key, ed25519.Ed25519PublicKey):
        key_type, size = "ed25519", 256
    elif isinstance(key, ed448.Ed448PublicKey):
        key_type, size = "ed448", 456
    else:
        key_type, size = "other", 0
    sig_name = getattr(leaf.signature_algorithm_oid, "_name", None) or \
        leaf.signature_algorithm_oid.dotted_string
    try:
        hash_alg = leaf.signature_hash_algorithm
        sig_hash = hash_alg.name if hash_alg is not None else None
    except Exception:  # an unsupported algorithm (e.g. MD2): keep the name from the OID
        sig_hash = next((h for h in ("md2", "md4", "md5", "sha1") if h in sig_name.lower()), None)
    not_before = leaf.not_valid_before_utc
    not_after = leaf.not_valid_after_utc
    validation: dict[str, str | None] = {}
    for pv in deployment.path_validation_results:
        validation[pv.trust_store.name] = None if pv.was_validation_successful \
            else _validation_error(pv.validation_error)
    return CertInfo(
        key_type=key_type, key_size=int(size), curve=curve,
        signature_algorithm=str(sig_name), signature_hash=sig_hash,
        not_before=iso_utc(not_before), not_after=iso_utc(not_after),
        lifetime_days=(not_after - not_before).days,
        self_signed=leaf.issuer == leaf.subject,
        hostname_used=hostname,
        hostname_ok=names_host(leaf, hostname),
        validation=validation,
        ocsp_stapled=deployment.ocsp_response is not None,
    )


def names_host(cert: x509.Certificate, host: str) -> bool | None:
    """Whether ``host`` (a name or an IP address) is among the certificate's SAN entries.

    ``None`` when the certificate has no SAN extension to compare with.
    """
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    if is_ip(host):
        return ipaddress.ip_address(host) in san.get_values_for_type(x509.IPAddress)
    wanted = host.lower().rstrip(".")
    for name in san.get_values_for_type(x509.DNSName):
        name = name.lower().rstrip(".")
        if name == wanted:
            return True
        if name.startswith("*.") and "." in wanted and wanted.split(".", 1)[1] == name[2:]:
            return True
    return False
