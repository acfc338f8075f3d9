"""The network scanner behind the contract (:mod:`hipaa_audit.scanner`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from hipaa_audit.model import AssetResult
from hipaa_audit.network.options import NetworkOptions, NetworkSummary
from hipaa_audit.network.setup import NetworkPlan, network_plan
from hipaa_audit.scanner import ScanContext, Scanner, Setup


# setup_stops_assessment: a bad target, policy or certificate file is a mistake in the section
# itself, so it stops an assessment.
class NetworkScanner(Scanner[NetworkOptions, NetworkPlan, NetworkSummary],
                     name="network", command="scan network", unit="endpoints",
                     setup_stops_assessment=True):
    """Endpoints checked for weak TLS, bad certificates and PHI sent in clear."""

    def plan(self, options: NetworkOptions, setup: Setup) -> NetworkPlan:
        """Parse the targets, load the policy and the certificate files."""
        return network_plan(list(options.targets), targets_file=options.targets_file,
                            policy=options.policy, ca_bundle=options.ca_bundle,
                            client_cert=options.client_cert, client_key=options.client_key,
                            gentle=options.gentle, deadline=options.deadline,
                            concurrency=options.concurrency, timeout=options.timeout,
                            calling_ae=options.calling_ae, called_ae=options.called_ae)

    def targets(self, options: NetworkOptions, plan: NetworkPlan | None,
                setup: Setup) -> list[str]:
        """The endpoints' URLs as parsed (the configured texts when there is no plan)."""
        return [t.url for t in plan.targets] if plan is not None else list(options.targets)

    def describe(self, plan: NetworkPlan) -> dict[str, object]:
        """The options a ``scan network`` run records (paths only, no secrets)."""
        return plan.describe()

    def summary(self, options: NetworkOptions) -> NetworkSummary:
        """The TLS policy and whether the scan was gentle."""
        return NetworkSummary(policy=options.policy, gentle=options.gentle)

    def total(self, plan: NetworkPlan) -> Callable[[], int] | None:
        """The number of endpoints."""
        count = len(plan.targets)
        return lambda: count

    def scan(self, plan: NetworkPlan, context: ScanContext) -> Iterator[AssetResult]:
        """Probe and judge every endpoint; record each endpoint's summary."""
        from hipaa_audit.network.run import scan_network

        endpoints = context.evidence("endpoints")
        yield from scan_network(plan.targets, plan.options, plan.policy, context.catalog,
                                lambda e: endpoints.append(context.grouped(e)))


#: The registered network scanner.
SCANNER = NetworkScanner()
