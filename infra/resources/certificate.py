"""The site certificate on its node: obtained by http-01 or dns-01 (TrueNAS's ACME, or
the ingress's webroot), renewed when due, put on the UI and in the ingress. Obtaining,
installing and cleaning up are infra/certificates.py's; this module is their entry in
the common vocabulary."""

from __future__ import annotations

from collections.abc import Callable

from infra.certificates import (
    DELETE_SECONDS,
    CertificateOutcome,
    authenticator_name,
    certificate_due,
    ensure_certificate,
    site_entries,
)
from infra.change import Change
from infra.events import Reporter
from infra.site import Site
from infra.state import StateDir
from infra.target import Target
from infra.truenas.client import TrueNASClient


def diff(client: TrueNASClient, site: Site, target: Target) -> list[Change]:
    reason = certificate_due(client, site, target)
    if reason is None:
        return []
    return [Change("obtain_certificate", ", ".join(site.dns.hostnames), reason)]


def create_or_update(client: TrueNASClient, site: Site, target: Target, state: StateDir,
                     reporter: Reporter, *, address: str, force_renewal: bool = False,
                     reconnect: Callable[[], TrueNASClient] | None = None,
                     ) -> CertificateOutcome:
    return ensure_certificate(client, site, target, state, reporter, address=address,
                              force_renewal=force_renewal, reconnect=reconnect)


def destroy(client: TrueNASClient, site: Site, reporter: Reporter) -> list[str]:
    """Delete the site's certificates and CSRs and its DNS authenticator (none may be
    in use: the UI and the ingress have let go of them first)."""
    changes = []
    for entry in site_entries(client, site):
        change = f"delete certificate {entry['name']}"
        reporter.step(change)
        client.call_job("certificate.delete", entry["id"], real_seconds=DELETE_SECONDS)
        changes.append(change)
    for found in client.call("acme.dns.authenticator.query",
                             [["name", "=", authenticator_name(site)]]):
        change = f"delete DNS authenticator {found['name']}"
        reporter.step(change)
        client.call("acme.dns.authenticator.delete", found["id"])
        changes.append(change)
    return changes
