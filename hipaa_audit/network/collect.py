"""Observe one endpoint, stage by stage: resolve, connect, classify, scan, check it still answers.

:func:`observe` reports each partial :class:`Observation` through ``report`` as it goes, so that
when the parent stops a target at its deadline it still knows how far probing got.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hipaa_audit.network import probes
from hipaa_audit.network.observation import HttpProbe, Observation
from hipaa_audit.network.targets import PROBE, Target


@dataclass(frozen=True, slots=True)
class ProbeOptions:
    """How to probe: timeouts, manners, credentials and DICOM AE titles."""

    timeout: float = 5.0
    gentle: bool = False
    ca_bundle: Path | None = None
    client: probes.ClientCert | None = None
    calling_ae: str = "HIPAA-AUDIT"
    called_ae: str = "ANY-SCP"


Report = Callable[[Observation], None]


def observe(target: Target, opts: ProbeOptions, report: Report) -> Observation:
    """Probe ``target``; return (and report along the way) what was observed."""
    started = time.monotonic()
    obs = Observation(target, target.kind)

    def step(stage: str) -> None:
        obs.stage = stage
        obs.seconds = time.monotonic() - started
        report(obs)

    step("resolving")
    address = probes.resolve(target.host)
    if address is None:
        obs.reachable = "unresolvable"
        step("done")
        return obs
    step("connecting")
    obs.reachable = probes.tcp_state(address, target.port, opts.timeout)
    if obs.reachable != "open":
        step("done")
        return obs
    step("classifying")
    if target.kind == PROBE:
        _classify(obs, address, opts, step)
    if obs.kind == "http":
        _http(obs, address, opts, step)
    elif obs.kind == "dicom":
        _dicom(obs, address, opts, step)
    elif obs.kind in ("https", "tls", "dicom+tls"):
        _tls(obs, address, opts, step)
    step("liveness")
    obs.alive_after = _alive(address, target.port, opts.timeout)
    step("done")
    return obs


def _alive(address: str, port: int, timeout: float, tries: int = 3) -> bool:
    """Whether the port still accepts TCP (a few tries: a busy server may be slow)."""
    for i in range(tries):
        if probes.tcp_state(address, port, timeout) == "open":
            return True
        time.sleep(0.5 * (i + 1))
    return False


def _classify(obs: Observation, address: str, opts: ProbeOptions,
              step: Callable[[str], None]) -> None:
    """Find what a bare ``host:port`` speaks: HTTP, then TLS, then DICOM.

    HTTP goes first because every other server answers it (or closes) at once. ``obs.kind``
    stays ``probe`` when nothing answers.
    """
    t = obs.target
    obs.http = probes.probe_http(address, t.port, t.host, tls=False, timeout=opts.timeout)
    if obs.http.status is not None:
        obs.kind, obs.speaks = "http", "plain"
        return
    obs.http = None
    speaks = probes.speaks_tls(address, t.port, t.host, opts.timeout)
    step("classifying")
    if speaks == "tls":
        obs.speaks = "tls"
        https = probes.probe_http(address, t.port, t.host, tls=True, timeout=opts.timeout)
        if https.status is not None:
            obs.kind = "https"
            return
        dicom = probes.probe_dicom(address, t.port, t.host, calling_ae=opts.calling_ae,
                                   called_ae=opts.called_ae, tls=True, timeout=opts.timeout,
                                   client=opts.client)
        obs.kind = "dicom+tls" if dicom.outcome in ("accepted", "rejected") else "tls"
        return
    dicom = probes.probe_dicom(address, t.port, t.host, calling_ae=opts.calling_ae,
                               called_ae=opts.called_ae, tls=False, timeout=opts.timeout)
    if dicom.outcome in ("accepted", "rejected"):
        obs.kind, obs.speaks, obs.dicom = "dicom", "plain", dicom
        return
    obs.speaks = "silent" if speaks == "silent" else "plain" if speaks == "plain" else None
    obs.notes.append("the port answers neither HTTP, TLS nor a DICOM association")


def _http(obs: Observation, address: str, opts: ProbeOptions,
          step: Callable[[str], None]) -> None:
    t = obs.target
    if obs.http is None:
        obs.http = probes.probe_http(address, t.port, t.host, tls=False, path=t.path,
                                     timeout=opts.timeout)
    if obs.http.status is None:
        obs.speaks = "tls" if probes.speaks_tls(address, t.port, t.host, opts.timeout) == "tls" \
            else "silent"
        return
    obs.speaks = "plain"
    if obs.http.redirects_to_https and obs.http.location:
        step("following the redirect")
        redirect = Target("https", *_host_port(obs.http.location))
        to = probes.resolve(redirect.host)
        obs.redirect_hsts = probes.probe_http(to, redirect.port, redirect.host, tls=True,
                                              timeout=opts.timeout) if to else \
            HttpProbe(None, detail="the redirect target does not resolve")


def _host_port(origin: str) -> tuple[str, int]:
    from urllib.parse import urlsplit

    parts = urlsplit(origin)
    return (parts.hostname or ""), (parts.port or 443)


def _dicom(obs: Observation, address: str, opts: ProbeOptions,
           step: Callable[[str], None]) -> None:
    t = obs.target
    if obs.dicom is None:
        obs.dicom = probes.probe_dicom(address, t.port, t.host, calling_ae=opts.calling_ae,
                                       called_ae=opts.called_ae, tls=False, timeout=opts.timeout)
    if obs.dicom.outcome in ("accepted", "rejected"):
        obs.speaks = "plain"
        return
    step("classifying")
    speaks = probes.speaks_tls(address, t.port, t.host, opts.timeout)
    obs.speaks = speaks if speaks in ("tls", "silent", "plain") else None
    if speaks == "tls":
        obs.notes.append("the port speaks TLS: scan it as dicom+tls://")


def _tls(obs: Observation, address: str, opts: ProbeOptions,
         step: Callable[[str], None]) -> None:
    from hipaa_audit.network import tlsscan

    t = obs.target
    # A quick ClientHello first: sslyze needs about a minute to give up on a silent port and
    # ten seconds on a plaintext HTTP one.
    speaks = probes.speaks_tls(address, t.port, t.host, opts.timeout)
    if speaks == "silent":
        step("probing plaintext")
        _plaintext_probes(obs, address, opts)
        if obs.http is None or obs.http.status is None:
            obs.speaks = "silent"
        return
    if speaks == "plain":
        step("probing plaintext")
        obs.speaks = "plain"
        obs.notes.append("the port does not speak TLS")
        _plaintext_probes(obs, address, opts)
        return
    try:
        location, config, client_auth = tlsscan.connect(t.host, address, t.port, opts.client,
                                                        opts.timeout)
    except tlsscan.NotTls as exc:
        obs.speaks = {"plain": "plain", "silent": "silent"}.get(exc.state)
        if exc.state == "refused":
            obs.reachable = "refused"
        obs.notes.append(str(exc))
        if exc.state == "plain":
            step("probing plaintext")
            _plaintext_probes(obs, address, opts)
        return
    obs.speaks = "tls"
    step("scanning TLS")
    obs.tls = tlsscan.scan_tls(location, config, client_auth, http=obs.kind == "https",
                               gentle=opts.gentle, ca_bundle=opts.ca_bundle,
                               have_client_cert=opts.client is not None)
    if obs.kind == "dicom+tls":
        step("associating over TLS")
        obs.dicom = probes.probe_dicom(address, t.port, t.host, calling_ae=opts.calling_ae,
                                       called_ae=opts.called_ae, tls=True, timeout=opts.timeout,
                                       client=opts.client)


def _plaintext_probes(obs: Observation, address: str, opts: ProbeOptions) -> None:
    """Check whether a TLS target that does not speak TLS serves HTTP or DICOM in clear."""
    t = obs.target
    if obs.kind in ("https", "tls"):
        obs.http = probes.probe_http(address, t.port, t.host, tls=False, path=t.path,
                                     timeout=opts.timeout)
    if obs.kind in ("dicom+tls", "tls") and (obs.http is None or obs.http.status is None):
        obs.dicom = probes.probe_dicom(address, t.port, t.host, calling_ae=opts.calling_ae,
                                       called_ae=opts.called_ae, tls=False,
                                       timeout=opts.timeout)
