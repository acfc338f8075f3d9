"""Observe one endpoint, stage by stage: resolve, connect, classify, scan, check it still answers.

:func:`observe` reports each partial :class:`Observation` through ``report`` as it goes, so that
when the parent stops a target at its deadline it still knows how far probing got.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from hipaa_audit.network import probes
from hipaa_audit.network.observation import DicomProbe, HttpProbe, Observation
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
    obs.address = probes.resolve(target.host)
    if obs.address is None:
        obs.reachable = "unresolvable"
        step("done")
        return obs
    step("connecting")
    obs.reachable = probes.tcp_state(obs.address, target.port, opts.timeout)
    if obs.reachable != "open":
        step("done")
        return obs
    step("classifying")
    probe = _Prober(obs, obs.address, opts)
    if target.kind == PROBE:
        probe.classify(step)
    if obs.kind == "http":
        probe.http(step)
    elif obs.kind == "dicom":
        probe.dicom()
    elif obs.kind in ("https", "tls", "dicom+tls"):
        probe.tls(step)
    step("liveness")
    obs.alive_after = _alive(obs.address, target.port, opts.timeout)
    step("done")
    return obs


def _alive(address: str, port: int, timeout: float, tries: int = 3) -> bool:
    """Whether the port still accepts TCP (a few tries: a busy server may be slow)."""
    for i in range(tries):
        if probes.tcp_state(address, port, timeout) == "open":
            return True
        time.sleep(0.5 * (i + 1))
    return False


class _Prober:
    """The probes of one endpoint, with its address and options bound."""

    def __init__(self, obs: Observation, address: str, opts: ProbeOptions) -> None:
        self.obs, self.address, self.opts = obs, address, opts
        self.t = obs.target

    def get(self, *, tls: bool) -> HttpProbe:
        return probes.probe_http(self.address, self.t.port, self.t.host, tls=tls,
                                 path=self.t.path, timeout=self.opts.timeout)

    def echo(self, *, tls: bool) -> DicomProbe:
        o = self.opts
        return probes.probe_dicom(self.address, self.t.port, self.t.host,
                                  calling_ae=o.calling_ae, called_ae=o.called_ae, tls=tls,
                                  timeout=o.timeout, client=o.client if tls else None)

    def hello(self) -> str:
        return probes.speaks_tls(self.address, self.t.port, self.t.host, self.opts.timeout)

    def classify(self, step: Callable[[str], None]) -> None:
        """Find what a bare ``host:port`` speaks: HTTP, then TLS, then DICOM.

        HTTP goes first because every other server answers it (or closes) at once.
        ``obs.kind`` stays ``probe`` when nothing answers.
        """
        obs = self.obs
        http = self.get(tls=False)
        if http.status is not None:
            obs.kind, obs.speaks, obs.http = "http", "plain", http
            return
        speaks = self.hello()
        step("classifying")
        if speaks == "tls":
            obs.speaks = "tls"
            if self.get(tls=True).status is not None:
                obs.kind = "https"
            else:
                tls_echo = self.echo(tls=True)
                obs.kind = "dicom+tls" if tls_echo.outcome in ("accepted", "rejected") else "tls"
            return
        dicom = self.echo(tls=False)
        if dicom.outcome in ("accepted", "rejected"):
            obs.kind, obs.speaks, obs.dicom = "dicom", "plain", dicom
            return
        obs.speaks = speaks if speaks in ("silent", "plain") else None
        obs.notes.append("the port answers neither HTTP, TLS nor a DICOM association")

    def http(self, step: Callable[[str], None]) -> None:
        obs = self.obs
        if obs.http is None:
            obs.http = self.get(tls=False)
        if obs.http.status is None:
            speaks = self.hello()
            obs.speaks = speaks if speaks in ("tls", "silent", "plain") else None
            return
        obs.speaks = "plain"
        if obs.http.redirects_to_https and obs.http.location:
            step("following the redirect")
            parts = urlsplit(obs.http.location)
            host, port = parts.hostname or "", parts.port or 443
            to = probes.resolve(host)
            obs.redirect_hsts = probes.probe_http(to, port, host, tls=True,
                                                  timeout=self.opts.timeout) if to else \
                HttpProbe(None, detail="the redirect target does not resolve")

    def dicom(self) -> None:
        obs = self.obs
        if obs.dicom is None:
            obs.dicom = self.echo(tls=False)
        if obs.dicom.outcome in ("accepted", "rejected"):
            obs.speaks = "plain"
            return
        speaks = self.hello()
        obs.speaks = speaks if speaks in ("tls", "silent", "plain") else None

    def tls(self, step: Callable[[str], None]) -> None:
        from hipaa_audit.network import tlsscan

        obs, t, opts = self.obs, self.t, self.opts
        # A quick ClientHello first (unless classifying already sent one): sslyze needs about
        # a minute to give up on a silent port and ten seconds on a plaintext HTTP one.
        speaks = "tls" if obs.speaks == "tls" else self.hello()
        if speaks in ("silent", "plain"):
            step("probing plaintext")
            self.plaintext()
            answered = (obs.http is not None and obs.http.status is not None) or \
                (obs.dicom is not None and obs.dicom.outcome in ("accepted", "rejected"))
            obs.speaks = "plain" if speaks == "plain" or answered else "silent"
            return
        try:
            location, config, client_auth = tlsscan.connect(t.host, self.address, t.port,
                                                            opts.client, opts.timeout)
        except tlsscan.NotTls as exc:
            obs.speaks = {"plain": "plain", "silent": "silent"}.get(exc.state)
            if exc.state == "refused":
                obs.reachable = "refused"
            obs.notes.append(str(exc))
            if exc.state == "plain":
                step("probing plaintext")
                self.plaintext()
            return
        obs.speaks = "tls"
        step("scanning TLS")
        obs.tls = tlsscan.scan_tls(location, config, client_auth, http=obs.kind == "https",
                                   gentle=opts.gentle, ca_bundle=opts.ca_bundle,
                                   have_client_cert=opts.client is not None)
        if obs.kind == "dicom+tls":
            step("associating over TLS")
            obs.dicom = self.echo(tls=True)

    def plaintext(self) -> None:
        """Check whether a TLS target that does not speak TLS serves HTTP or DICOM in clear."""
        obs = self.obs
        if obs.kind in ("https", "tls"):
            obs.http = self.get(tls=False)
        if obs.kind in ("dicom+tls", "tls") and (obs.http is None or obs.http.status is None):
            obs.dicom = self.echo(tls=False)
