"""Validate what a network scan is asked to do, before anything is probed.

The CLI and ``assess`` both build their scan here (through :mod:`.entry`), so that a bad
target, an unknown policy or a missing certificate file is one clear message (exit 2) and
nothing is scanned.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hipaa_audit.network.collect import ProbeOptions
from hipaa_audit.network.policy import Policy, PolicyError, get_policy
from hipaa_audit.network.probes import ClientCert
from hipaa_audit.network.run import ScanOptions
from hipaa_audit.network.targets import Target, TargetError, parse_targets, read_targets_file
from hipaa_audit.scanner import ScannerSetupError


class NetworkSetupError(ScannerSetupError):
    """A network scan that cannot start; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class NetworkPlan:
    """A validated network scan: its targets, options and policy."""

    targets: list[Target]
    options: ScanOptions
    policy: Policy

    def describe(self) -> dict[str, Any]:
        """The options as the run records them (no secrets: paths only)."""
        p = self.options.probe
        return {"policy": self.policy.name, "gentle": p.gentle,
                "deadline": self.options.deadline, "concurrency": self.options.limit,
                "timeout": p.timeout, "ca_bundle": str(p.ca_bundle) if p.ca_bundle else None,
                "client_cert": str(p.client.cert) if p.client else None,
                "calling_ae": p.calling_ae, "called_ae": p.called_ae}


def _ae(value: str, option: str) -> str:
    if not 0 < len(value) <= 16 or not value.isascii() or "\\" in value or not value.strip():
        raise NetworkSetupError(f"{option}: an AE title is 1 to 16 ASCII characters")
    return value


def network_plan(targets: list[str], *, targets_file: str | None = None,
                 policy: str = "nist-800-52r2", ca_bundle: str | None = None,
                 client_cert: str | None = None, client_key: str | None = None,
                 gentle: bool = False, deadline: float = 90.0, concurrency: int = 8,
                 timeout: float = 5.0, calling_ae: str = "HIPAA-AUDIT",
                 called_ae: str = "ANY-SCP") -> NetworkPlan:
    """Check every input of a network scan; raise :class:`NetworkSetupError` at the first bad."""
    texts = list(targets)
    try:
        if targets_file is not None:
            texts += read_targets_file(targets_file)
        parsed = parse_targets(texts)
    except TargetError as exc:
        raise NetworkSetupError(str(exc)) from None
    if not parsed:
        raise NetworkSetupError("no targets: give TARGET arguments or --targets-file")
    try:
        chosen = get_policy(policy)
    except PolicyError as exc:
        raise NetworkSetupError(str(exc)) from None
    ca = None
    if ca_bundle is not None:
        ca = Path(ca_bundle)
        try:
            ssl.create_default_context(cafile=str(ca))
        except (OSError, ssl.SSLError) as exc:
            raise NetworkSetupError(f"--ca-bundle {ca_bundle}: not a readable PEM CA bundle "
                                    f"({exc})") from None
    client = None
    if (client_cert is None) != (client_key is None):
        raise NetworkSetupError("--client-cert and --client-key go together")
    if client_cert is not None and client_key is not None:
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(client_cert, client_key)
        except (OSError, ssl.SSLError) as exc:
            raise NetworkSetupError(f"--client-cert/--client-key: cannot load ({exc})") from None
        client = ClientCert(Path(client_cert), Path(client_key))
    probe = ProbeOptions(timeout=timeout, gentle=gentle, ca_bundle=ca, client=client,
                         calling_ae=_ae(calling_ae, "--calling-ae"),
                         called_ae=_ae(called_ae, "--called-ae"))
    return NetworkPlan(parsed, ScanOptions(probe, deadline=deadline, concurrency=concurrency),
                       chosen)
