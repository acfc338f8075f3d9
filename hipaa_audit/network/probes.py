"""Small network probes (I/O only): TCP reachability, does it speak TLS, HTTP GET, DICOM C-ECHO.

Each probe has its own timeout and returns data; none raises for a network failure. Nothing read
from the service is kept beyond protocol facts: HTTP bodies are never read, and a redirect's
``Location`` keeps its scheme, host and port only (a path or query could carry PHI).
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import socket
import ssl
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hipaa_audit.network.observation import DicomProbe, HttpProbe
from hipaa_audit.network.targets import is_ip

if TYPE_CHECKING:
    from hipaa_audit.evidence import Hsts

USER_AGENT = "hipaa-audit (transmission security check)"


@dataclass(frozen=True, slots=True)
class ClientCert:
    """A client certificate and key (PEM files) for servers that demand mutual TLS."""

    cert: Path
    key: Path


def resolve(host: str) -> str | None:
    """Return the first address of ``host``, or ``None`` when the name does not resolve."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, OSError):
        return None
    return str(infos[0][4][0]) if infos else None


def tcp_state(address: str, port: int, timeout: float) -> str:
    """Return ``open``, ``refused``, ``timeout`` or ``error`` for a TCP connect."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return "open"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "timeout"
    except OSError:
        return "error"


def lenient_context(client: ClientCert | None = None) -> ssl.SSLContext:
    """A client context that accepts any server and any old protocol: for probing, not trust."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with contextlib.suppress(ValueError, ssl.SSLError):
        ctx.minimum_version = ssl.TLSVersion.TLSv1
    with contextlib.suppress(ssl.SSLError):
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    if client is not None:
        ctx.load_cert_chain(str(client.cert), str(client.key))
    return ctx


def speaks_tls(address: str, port: int, server_name: str, timeout: float) -> str:
    """Send a TLS ClientHello; return ``tls``, ``plain``, ``silent`` or ``closed``.

    Any TLS answer (a handshake, or an alert such as "certificate required") is ``tls``; bytes
    that are not TLS are ``plain``; no answer within ``timeout`` is ``silent``.
    """
    ctx = lenient_context()
    try:
        with socket.create_connection((address, port), timeout=timeout) as raw:
            sni = None if is_ip(server_name) else server_name
            with ctx.wrap_socket(raw, server_hostname=sni):
                return "tls"
    except ssl.SSLError as exc:
        reason = (exc.reason or "").upper()
        if reason in ("WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "RECORD_LAYER_FAILURE",
                      "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST"):
            return "plain"
        if isinstance(exc, ssl.SSLEOFError) or reason == "UNEXPECTED_EOF_WHILE_READING":
            return "closed"
        return "tls"
    except TimeoutError:
        return "silent"
    except OSError:  # reset, aborted, broken pipe: closed without a word
        return "closed"


def _origin(location: str, base_host: str) -> str:
    """Keep the scheme, host and port of a Location (relative ones resolve to ``base_host``)."""
    parts = urllib.parse.urlsplit(location)
    if not parts.scheme:
        return f"http://{base_host}/"
    return f"{parts.scheme.lower()}://{parts.netloc.rsplit('@', 1)[-1]}/"


def probe_http(address: str, port: int, host: str, *, tls: bool, path: str = "/",
               timeout: float = 5.0) -> HttpProbe:
    """GET ``path``; return the status, the Location origin and the parsed HSTS, never the body."""
    conn: http.client.HTTPConnection
    if tls:
        conn = http.client.HTTPSConnection(address, port, timeout=timeout,
                                           context=lenient_context())
    else:
        conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        name = f"[{host}]" if ":" in host else host
        conn.request("GET", path, headers={"Host": name if port in (80, 443) else f"{name}:{port}",
                                           "User-Agent": USER_AGENT, "Connection": "close"})
        resp = conn.getresponse()
        location = resp.getheader("Location")
        hsts = resp.getheader("Strict-Transport-Security")
        return HttpProbe(resp.status, _origin(location, host) if location else None,
                         parse_hsts(hsts) if hsts else None)
    except TimeoutError:
        return HttpProbe(None, detail="no answer within the timeout")
    except ConnectionRefusedError:
        return HttpProbe(None, detail="connection refused")
    except (http.client.HTTPException, ssl.SSLError, OSError) as exc:
        return HttpProbe(None, detail=f"no HTTP answer ({type(exc).__name__})")
    finally:
        conn.close()


def parse_hsts(header: str) -> Hsts:
    """Parse a Strict-Transport-Security header into max_age, include_subdomains, preload."""
    out: Hsts = {"max_age": None, "include_subdomains": False, "preload": False}
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        name = name.strip().lower()
        if name == "max-age":
            with contextlib.suppress(ValueError):
                out["max_age"] = int(value.strip().strip('"'))
        elif name == "includesubdomains":
            out["include_subdomains"] = True
        elif name == "preload":
            out["preload"] = True
    return out


def probe_dicom(address: str, port: int, server_name: str, *, calling_ae: str, called_ae: str,
                tls: bool, timeout: float, client: ClientCert | None = None) -> DicomProbe:
    """Request a DICOM association with Verification and send a C-ECHO if it is accepted.

    An accepted *or rejected* association proves a DICOM listener; no valid AE title is needed.
    """
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(Verification)
    ae.acse_timeout = timeout
    ae.network_timeout = timeout
    ae.connection_timeout = timeout
    ae.dimse_timeout = timeout
    tls_args = None
    if tls:
        try:
            ctx = lenient_context(client)
        except (OSError, ssl.SSLError) as exc:
            return DicomProbe("error", tls, f"cannot load the client certificate ({exc})")
        # pynetdicom's stub says str, but it hands the name to wrap_socket, where None is valid
        tls_args = (ctx, None if is_ip(server_name) else server_name)
    started = time.monotonic()
    try:
        assoc = ae.associate(address, port, ae_title=called_ae,
                             tls_args=tls_args)  # type: ignore[arg-type]
    except Exception as exc:  # pynetdicom raises for odd socket states; errors are data
        return DicomProbe("error", tls, f"association attempt failed ({type(exc).__name__})")
    try:
        if assoc.is_established:
            status = assoc.send_c_echo()
            code = int(status.Status) if status and "Status" in status else None
            assoc.release()
            return DicomProbe("accepted", tls, "association accepted; C-ECHO answered"
                              if code is not None else "association accepted", code)
        if assoc.is_rejected:
            return DicomProbe("rejected", tls, "association rejected (A-ASSOCIATE-RJ)")
        if assoc.is_aborted and time.monotonic() - started < timeout:
            return DicomProbe("aborted", tls, "association aborted by the peer")
        return DicomProbe("no-answer", tls, "no DICOM answer")
    finally:
        ae.shutdown()
