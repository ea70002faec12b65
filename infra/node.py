"""Reaching the site's node (one login, or a wait until READY; which key it uses is
infra/node_credentials.py), and the node part of `up`: the pool, its datasets, its
snapshot tasks (each in infra/resources/).

On a node of one's own, what `up` made there is remembered in the state directory
(`own_node`: the pool if it made it, datasets, snapshot tasks, where the UI was), so
that `down` removes exactly that and nothing the owner had before."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from infra.change import Change
from infra.errors import SiteFileError
from infra.events import Reporter
from infra.node_credentials import api_key_for, check_node_credentials
from infra.resources import datasets, pool, snapshot_tasks
from infra.secrets import Secret
from infra.site import Site
from infra.state import StateDir
from infra.target import Target
from infra.tls_probe import probe_tls
from infra.truenas import credentials
from infra.truenas.calllog import CallLog
from infra.truenas.client import TrueNASClient
from infra.truenas.connect import connect_node, wait_until_ready
from infra.truenas.errors import TrueNASUnavailable
from infra.truenas.pinning import fingerprint


def own_node_preflight(site: Site, target: Target, state_path: Path | None = None) -> None:
    """What a site on a node of one's own needs before any request: a way to log in,
    and a DigitalOcean token for dns-01 (TrueNAS writes the TXT records with it) and
    for `[[replication]]` (each source's droplet is found in the account)."""
    problems: list[str] = []
    try:
        check_node_credentials(site, target, state_path)
    except SiteFileError as error:
        problems += error.problems
    if site.tls is not None and site.tls.challenge == "dns-01" and target.do_token is None:
        problems.append("tls.challenge: dns-01 needs a DigitalOcean token "
                        "(DIGITALOCEAN_TOKEN) for TrueNAS to write the TXT records in "
                        f"{site.dns.domain}; or use http-01")
    if target.do_token is None:
        problems += [f"replication[{index}].source: {spec.source} runs on a droplet, found "
                     "through the DigitalOcean account: set DIGITALOCEAN_TOKEN (reading "
                     "it is all this site asks of the account)"
                     for index, spec in enumerate(site.replication)]
    if problems:
        raise SiteFileError(problems)


OWN_NODE = "own_node"


def remember(state: StateDir | None, what: str, value: object = True) -> None:
    """Note that `up` made `what` on a node of one's own (`down` removes only those)."""
    if state is not None and not state.read_only:
        state.record_created(OWN_NODE, what, value)


def made(state: StateDir) -> dict:
    """What `up` made on the site's own node (OWN_NODE entries)."""
    return state.created(OWN_NODE)


def remember_ui(client: TrueNASClient, state: StateDir) -> None:
    """Where the node's UI was before the front door first moves it (`down` puts it
    back there, on its own certificate)."""
    if "ui" in made(state):
        return
    config = client.call("system.general.config")
    certificate = config.get("ui_certificate")
    remember(state, "ui", {
        "ui_port": config.get("ui_port"), "ui_httpsport": config.get("ui_httpsport"),
        "ui_httpsredirect": config.get("ui_httpsredirect"),
        "ui_certificate": certificate.get("id") if isinstance(certificate, dict)
        else certificate})


RENEWAL_PROBE_SECONDS = 10.0


def site_certificate_test(site: Site, target: Target, address: str,
                          port: int) -> Callable[[str], bool] | None:
    """For a site with a front door: whether a certificate the node's UI presents at
    address:port is the site certificate (it chains to the target's ACME root, names
    one of the site's hostnames, is valid on the target's clock): a renewal, which a
    pin follows, rather than someone in the middle."""
    if site.tls is None:
        return None

    def renewed(pem: str) -> bool:
        wanted = fingerprint(pem)
        for hostname in site.dns.hostnames:
            probe = probe_tls(address, port, hostname, target.acme_root_ca,
                              timeout=target.timing.deadline(RENEWAL_PROBE_SECONDS),
                              now=target.now())
            if probe.ok and probe.certificate and probe.certificate.fingerprint == wanted:
                return True
        return False

    return renewed


def connect_site_node(site: Site, target: Target, state: StateDir, address: str,
                      log: CallLog | None = None, repin: bool = False,
                      credential: Secret | None = None) -> TrueNASClient:
    """One attempt to log in to the site's node: on the admin port, where a converged
    node serves its UI (the public 443 belongs to the ingress), else on 443, where a
    fresh one does. TrueNASUnavailable when neither answers. `credential`: the admin
    password of a fresh node, instead of the site's API key."""
    key = credential or api_key_for(site, target, state=state)
    unavailable: TrueNASUnavailable | None = None
    # A node of one's own serves its UI on node.admin_port until the front door moves it.
    fresh_port = target.node_port(site.node.admin_port) if site.node is not None \
        else target.truenas_https_port
    for port in dict.fromkeys((target.node_port(site.access.truenas_admin_port), fresh_port)):
        try:
            return connect_node(address, key, site.truenas.username, state.path,
                                target.timing, port=port, log=log, repin=repin,
                                read_only=getattr(state, "read_only", False),
                                renewal=site_certificate_test(site, target, address, port))
        except TrueNASUnavailable as exc:
            unavailable = exc
    assert unavailable is not None
    raise unavailable


def open_node(site: Site, target: Target, state: StateDir, address: str,
              log: CallLog | None = None, reporter: Reporter | None = None,
              repin: bool = False) -> TrueNASClient:
    """A logged-in client to the node at `address`, once its middleware is READY.

    `repin`: the node was rebuilt on purpose (failover), so the certificate it
    presents now replaces whatever was pinned for that address.
    """
    password = None
    try:
        api_key_for(site, target, state=state)   # a missing key is refused before waiting
    except SiteFileError:
        # A fresh node: its admin password makes the site's key, unless this run may
        # not write the state directory (a read-only check keeps no key).
        if getattr(state, "read_only", False):
            raise
        password = credentials.admin_password(site.truenas.admin_password_file)
        if password is None:
            raise
    reporter = reporter or Reporter()
    first = [repin]

    def factory(credential: Secret | None = None) -> TrueNASClient:
        client = connect_site_node(site, target, state, address, log, repin=first[0],
                                   credential=credential)
        first[0] = False  # re-pin once, then hold the new node to its certificate
        return client

    with reporter.waiting(f"TrueNAS on {address} to be ready"):
        if password is not None:
            # A fresh node: the password once, for the site's own key.
            reporter.step(f"create the site's TrueNAS API key on {address}")
            credentials.provision_api_key(
                lambda secret: wait_until_ready(lambda: factory(secret), target.timing,
                                                what=f"TrueNAS on {address}"),
                state.path, site.name, site.truenas.username, password)
        return wait_until_ready(factory, target.timing, what=f"TrueNAS on {address}")


class NodeSetup:
    """The node part of `up`: the pool, then the datasets, then the snapshot tasks
    (infra/resources/pool.py, datasets.py, snapshot_tasks.py)."""

    def __init__(self, site: Site, client: TrueNASClient, reporter: Reporter | None = None,
                 state: StateDir | None = None) -> None:
        """`state`: on a node of one's own, where what is made gets remembered."""
        self.site = site
        self.client = client
        self.reporter = reporter or Reporter()
        self.state = state
        self.changes: list[str] = []

    def plan(self) -> list[Change]:
        """What `converge` would change (reads only). With no pool yet, the datasets
        and tasks it would hold are not known until it is imported or created."""
        changes = pool.diff(self.client, self.site)
        if changes:
            return changes
        return [*datasets.diff(self.site, datasets.find(self.client, self.site)),
                *snapshot_tasks.diff(self.site, snapshot_tasks.find(self.client))]

    def converge(self, planned: list[Change] | None = None) -> list[str]:
        """Apply `planned` (by default, what `plan` says now); with a pool change, the
        datasets and tasks are planned again once the pool is there."""
        changes = self.plan() if planned is None else planned
        kinds = {c.kind for c in changes}
        if "create_pool" in kinds:
            made_pool = pool.create(self.client, self.site, self.reporter)
            self.changes.append(made_pool)
            if made_pool.startswith("create pool"):
                remember(self.state, "pool")
            changes = self.plan()
            kinds = {c.kind for c in changes}
        for change in changes:
            if change.kind == "create_dataset":
                self.changes.append(datasets.create(self.client, change.subject, self.reporter))
                remember(self.state, f"dataset:{change.subject}")
        if kinds & {"create_snapshot_task", "update_snapshot_task"}:
            tasks = snapshot_tasks.find(self.client)
            for policy in self.site.snapshots:
                done = snapshot_tasks.create_or_update(self.client, self.site, policy, tasks,
                                                       self.reporter)
                if done is not None:
                    self.changes.append(done)
                    body = snapshot_tasks.desired(self.site, policy)
                    remember(self.state, f"task:{body['dataset']}@{body['naming_schema']}")
        return self.changes
