"""The site's front door on its node: the ingress on 80/443, the site certificate,
and the TrueNAS UI moved behind the admin port.

Order (each step only when something differs; a converged site sees reads only):
1. the UI leaves 80/443 for the admin port, keeping its certificate for now, so that
   the ingress can publish the public ports (TrueNAS 25.10: anything besides the UI
   that listens is an app, reference/truenas-api.md §4 Apps);
2. the charts (the ingress first) are deployed: http only until the site certificate
   is in the ingress's `certs/` (so http-01 can be answered on port 80 first);
3. the certificate is obtained or renewed (infra/certificates.py), written for the
   ingress and put on the UI;
4. the ingress's watched config is rewritten for https with the new certificate's tag:
   Caddy reloads in place, so a renewal costs no downtime.
A chart whose data the site receives from another (`apps/<app>` in `[[replication]]`)
and has not promoted is left alone, neither created nor written into: `plan` lists it
among what `up` cannot do, and why (infra/resources/replication.py `waiting_apps`);
its route stays in the ingress, which answers 502 for it until it runs.
Whenever the UI moves, the client that moved it is stale: a new one is opened on the
admin port through the pin just recorded.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from infra.certificates import CertificateOutcome
from infra.change import Change
from infra.charts.ingress import RELOAD_SECONDS, ingress_paths, wait_until_served
from infra.charts.secretstore import unknown_secrets
from infra.events import Reporter
from infra.report import CheckReport
from infra.resources import apps, certificate, replication, ui
from infra.site import Site
from infra.state import StateDir
from infra.target import Target
from infra.tls_probe import probe_redirect, probe_tls
from infra.truenas.client import TrueNASClient
from infra.truenas.errors import TrueNASError


@dataclass
class FrontDoorResult:
    changes: list[str]
    client: TrueNASClient            # the live client (the one passed in may be stale)
    certificate: CertificateOutcome | None = None


class FrontDoor:
    def __init__(self, site: Site, target: Target, state: StateDir, address: str,
                 reconnect: Callable[[], TrueNASClient], reporter: Reporter | None = None,
                 memory_mb: int | None = None) -> None:
        self.site = site
        self.target = target
        self.state = state
        self.address = address
        self.reconnect = reconnect
        self.reporter = reporter or Reporter()
        self.memory_mb = memory_mb

    def converge(self, client: TrueNASClient, *, force_renewal: bool = False) -> FrontDoorResult:
        changes: list[str] = []
        if ui.update(client, self.site, self.target, self.state, address=self.address,
                     reporter=self.reporter):
            changes.append(f"TrueNAS UI moved to port {self.site.access.truenas_admin_port}")
            client = self._fresh(client)
        tag = self._installed_tag(client)
        changes += self._deploy(client, tag)
        outcome = certificate.create_or_update(
            client, self.site, self.target, self.state, self.reporter, address=self.address,
            force_renewal=force_renewal, reconnect=self.reconnect)
        changes += list(outcome.actions)
        if outcome.ui_moved:
            client = self._fresh(client)
        new_tag = self._installed_tag(client)
        if new_tag != tag:
            changes += self._deploy(client, new_tag)
            self._wait_served(client)
        return FrontDoorResult(changes, client, outcome)

    def _wait_served(self, client: TrueNASClient) -> None:
        """The ingress reloads its watched config by itself: wait until 443 serves the
        certificate just written (infra/charts/ingress.py wait_until_served)."""
        fullchain = client.download(ingress_paths(self.site.truenas.pool).fullchain)
        hostname, timing = self.site.dns.hostnames[0], self.target.timing
        wait_until_served(
            fullchain, lambda: probe_tls(self.address, self.target.node_port(443), hostname,
                                         self.target.acme_root_ca, timeout=timing.deadline(5.0),
                                         now=self.target.now()),
            deadline=time.monotonic() + timing.deadline(RELOAD_SECONDS),
            poll=timing.poll_interval)
    def plan(self, client: TrueNASClient) -> list[Change]:
        """What `converge` would redo (reads only): the UI's move, each app not running
        the site's chart, and a certificate to obtain (with why)."""
        tag = self._installed_tag(client)
        wanted = apps.desired(self.site, self.state, tls_ready=tag is not None,
                              certificate_tag=tag, memory_mb=self.memory_mb)
        waiting = replication.waiting_apps(self.site, self.state)
        deployed = [app for app in wanted if app.name not in waiting]
        return [*ui.diff(client, self.site),
                *apps.diff(apps.find(client, self.site, self.state, deployed)),
                *certificate.diff(client, self.site, self.target)]

    def waiting(self) -> list[Change]:
        """The charts `up` does not deploy yet, each saying why (no requests)."""
        return [Change("deploy_app", name, why) for name, why in
                sorted(replication.waiting_apps(self.site, self.state).items())
                if name in self.site.apps]

    def _deploy(self, client: TrueNASClient, tag: str | None) -> list[str]:
        wanted = apps.desired(self.site, self.state, tls_ready=tag is not None,
                              certificate_tag=tag, memory_mb=self.memory_mb)
        # Only a chart the site runs waits: an app whose data is received but whose
        # chart the site no longer names goes as any dropped app does.
        waiting = {name: why for name, why in
                   replication.waiting_apps(self.site, self.state).items()
                   if name in {app.name for app in wanted}}
        for name in sorted(waiting):
            self.reporter.note(f"app {name} {waiting[name]}")
        return apps.create_or_update(client, self.site, self.state,
                                     [app for app in wanted if app.name not in waiting],
                                     self.reporter, keep=waiting.keys())

    def _installed_tag(self, client: TrueNASClient) -> str | None:
        """A digest of the certificate the ingress has in certs/, or None before the first."""
        path = ingress_paths(self.site.truenas.pool).fullchain
        try:
            data = client.download(path)
        except TrueNASError:
            return None          # not there yet (ENOENT), or the dataset is not yet made
        return hashlib.sha256(data).hexdigest()[:16] if data else None

    def _fresh(self, stale: TrueNASClient) -> TrueNASClient:
        stale.close()
        return self.reconnect()


# --- check: what the front door looks like from outside (reads only) ---------------
PROBE_SECONDS = 30.0


def front_door_findings(report: CheckReport, site: Site, target: Target, state: StateDir,
                        address: str, client: TrueNASClient | None) -> None:
    """The certificate each public hostname presents on 443 (verified against the
    target's ACME root, judged on the target's clock), the http -> https redirect, and
    each app the site runs."""
    assert site.tls is not None
    timeout = target.timing.deadline(PROBE_SECONDS)
    now = target.now()
    renew_days = site.tls.renew_days
    for hostname in site.dns.hostnames:
        probe = probe_tls(address, target.node_port(443), hostname, target.acme_root_ca,
                          timeout=timeout, now=now)
        requirement = f"certificate for {hostname} on 443"
        if not probe.ok:
            report.add(requirement, False, probe.describe())
        elif probe.days_left is not None and probe.days_left <= renew_days:
            report.add(requirement, False,
                       f"due for renewal: {probe.days_left:.1f} days left (renewed at "
                       f"{renew_days} or fewer; run up)")
        else:
            report.add(requirement, True, probe.describe())
        redirect = probe_redirect(address, target.node_port(80), hostname, timeout=timeout)
        report.add(f"http://{hostname} redirects to https", redirect.ok, redirect.describe())
    if client is None:
        return
    wanted = apps.desired(site, state, tls_ready=True)
    # Generated secrets the state directory does not hold would be made up here: the
    # app's hash then says nothing, so whether it runs the current chart is not judged.
    unknown = {app.name: unknown_secrets(app.chart, (site.apps.get(app.name).secret_files
                                                     if site.apps.get(app.name) else {}),
                                         state) for app in wanted}
    waiting = replication.waiting_apps(site, state)
    for app in apps.find(client, site, state, wanted):
        if app.name in waiting:
            report.skip(f"app {app.name} runs", f"{app.state}: {waiting[app.name]}")
            continue
        if unknown.get(app.name):
            detail = (f"{app.state}; whether it runs the site's current chart is not judged: "
                      f"its generated secrets ({', '.join(unknown[app.name])}) are in the "
                      "state directory `up` used, not here (--state-dir names it)")
            report.add(f"app {app.name} runs", app.state == "RUNNING", detail)
            continue
        detail = app.state + ("" if app.up_to_date else ", not the site's current chart")
        if app.reasons:
            detail += ": " + "; ".join(app.reasons)
        report.add(f"app {app.name} runs", app.healthy, detail)
