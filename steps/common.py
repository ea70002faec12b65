"""What the step modules share: the spec's sites on the target (`Sites`: bring one up
or down, open its node, find its address, probe a port, wait for something), what
steps hand each other (`Run`, `WrittenFiles`, `SiteFile`), and the probes' constants.
Step modules import from here, never from each other; the fixtures that hand these to
steps are in steps/fixtures.py."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.digitalocean import DigitalOcean, RequestLog
from infra.down import Teardown
from infra.errors import InfraError
from infra.node import open_node
from infra.report import RunReport
from infra.resources.droplet import find as find_droplet
from infra.resources.droplet import public_ipv4
from infra.site import Site, load_site, parse_site
from infra.state import StateDir
from infra.target import Target
from infra.tls_probe import TlsProbe, probe_tls
from infra.truenas.calllog import CallLog
from infra.truenas.client import TrueNASClient
from infra.up import Provisioner
from infra.wait import Pending, wait_for
from steps import inventory
from steps.sites import DOMAIN, RECEIVERS, build_site, site_data

PROBE_TIMEOUT = 10.0
# Where the scenarios connect from (see the site files in steps/sites.py): the admin
# network holds 127.0.0.1; this address is outside every admin CIDR.
ADMIN_SOURCE = "127.0.0.1"
INTERNET_SOURCE = "127.3.0.1"


@dataclass(frozen=True)
class Run:
    """One `up` or `down` a step ran: its report, the requests it sent to DigitalOcean
    and the calls it made on the node, and the error it failed with (up only)."""

    site: str
    report: RunReport | None
    requests: RequestLog
    node_calls: CallLog | None = None
    error: InfraError | None = None
    # A receiving site's calls on its sources' nodes (up only).
    source_calls: CallLog | None = None


@dataclass(frozen=True)
class WrittenFiles:
    """Files written on a site's node: path -> SHA-256 of the bytes written."""

    site: str
    digests: dict[str, str]


@dataclass(frozen=True)
class SiteFile:
    """A site file written for the CLI, and the account as it was before."""

    path: Path
    account_before: dict[str, dict]


@dataclass(frozen=True)
class Sites:
    """The spec's sites on one target: each site file comes from steps/sites.py (or,
    for a site on a node of one's own, from `own`, written by the step that booted the
    node), each state directory lives under `state_root`, and every site brought up is
    noted in `brought_up` (all of them are taken down when the session ends)."""

    target: Target
    state_root: Path
    brought_up: set[str]
    own: dict[str, dict] = field(default_factory=dict)
    # The steps' own reads share one client per thread (a pydo client costs about 1 ms
    # of CPU to build and the steps asked for thousands); a run's client is its own.
    _clients: threading.local = field(default_factory=threading.local, repr=False,
                                      compare=False)

    def state(self, name: str) -> StateDir:
        return StateDir(self.state_root / name)

    def site(self, name: str) -> Site:
        """The site called `name`; a receiving site (steps/sites.py RECEIVERS) is loaded
        from its file in the state root, its source's file written beside it, so that
        its `[[replication]]` finds the source's file and state directory there; a site
        on a node of one's own comes from `own`."""
        if name in self.own:
            return parse_site(self.own[name])
        if name not in RECEIVERS:
            return build_site(name)
        source = RECEIVERS[name]
        (self.state_root / f"{source}.toml").write_text(to_toml(site_data(source)))
        path = self.state_root / f"{name}.toml"
        path.write_text(to_toml(site_data(name)))
        return load_site(path)

    def client(self, log: RequestLog | None = None) -> DigitalOcean:
        """A client of the target: a new one counting into `log`, or without a log the
        steps' shared one (its requests are nobody's run's)."""
        if log is not None:
            return DigitalOcean(self.target, log)
        shared = getattr(self._clients, "do", None)
        if shared is None:
            shared = self._clients.do = DigitalOcean(self.target)
        return shared

    def up(self, name: str) -> Run:
        """`up` for the site; a failure is kept in the run, for the steps to judge."""
        self.brought_up.add(name)
        log = RequestLog()
        site = self.site(name)
        provisioner = Provisioner(site, self.client(log), self.state(name), target=self.target)
        try:
            report = provisioner.up()
        except InfraError as error:
            return Run(name, None, log, provisioner.node_log, error, provisioner.source_log)
        return Run(name, report, log, provisioner.node_log, source_calls=provisioner.source_log)

    def down(self, name: str) -> Run:
        log = RequestLog()
        report = Teardown(self.site(name), self.client(log), self.state(name),
                          target=self.target).down()
        return Run(name, report, log)

    def take_down_all(self) -> None:
        """Take every site brought up down, forgetting those that went; every other
        site still goes when one fails, and the failures are asserted at the end."""
        if self.target.read_only:
            return
        failures = []
        # Receiving sites first: what they made on their sources goes with them.
        for name in sorted(self.brought_up, key=lambda n: (n not in RECEIVERS, n)):
            try:
                self.down(name)
                self.brought_up.discard(name)
            except Exception as error:  # keep going: every other site must still go
                failures.append(f"{name}: {error}")
        assert not failures, "teardown left resources behind: " + "; ".join(failures)

    def inventory(self, name: str) -> dict[str, dict]:
        """What of the account is the site's (steps/inventory.py)."""
        site = self.site(name)
        return inventory.of_site(inventory.take(self.client()), name, site.dns.hostnames,
                                 DOMAIN)

    def address(self, name: str) -> str:
        """The public address of the site's droplet (or of its own node)."""
        site = self.site(name)
        if site.node is not None:
            return site.node.address
        droplet = find_droplet(self.client(), site)
        assert droplet is not None, f"the site {name} has no droplet"
        address = public_ipv4(droplet)
        assert address, f"the droplet of the site {name} has no public address"
        return address

    def node(self, name: str) -> TrueNASClient:
        """A connection to the site's TrueNAS node (use it in a `with`)."""
        return open_node(self.site(name), self.target, self.state(name), self.address(name))

    def probe(self, name: str, hostname: str, port: int = 443,
              source: str | None = None) -> TlsProbe:
        """What the site's `port` presents to a client asking for `hostname`, judged
        against the ACME root on the target's clock."""
        target = self.target
        return probe_tls(self.address(name), target.node_port(port), hostname,
                         target.acme_root_ca, source_address=source, timeout=PROBE_TIMEOUT,
                         now=target.now())

    def eventually(self, what: str, attempt: Callable[[], tuple[bool, Any]],
                   real_seconds: float, explain: Callable[[], str] | None = None) -> Any:
        """Retry `attempt` (-> (done, what it saw)) until done, within the target's
        deadline for `real_seconds`; fail with the last thing seen (and what `explain`
        adds). A network error is something seen, not a failure: a service may still
        be starting."""
        last: list[Any] = [None]

        def done() -> Any:
            try:
                finished, last[0] = attempt()
            except OSError as error:
                finished, last[0] = False, f"{type(error).__name__}: {error}"
            return last[0] if finished else Pending(str(last[0]))

        def never(_limit: float, _status: str) -> AssertionError:
            more = f"; {explain()}" if explain else ""
            return AssertionError(f"{what}: never happened; last seen: {last[0]}{more}")

        # infra's one bounded waiter, on the target's deadline and poll interval.
        return wait_for(what, done, self.target.timing, real_seconds, timeout=never)


def write_site_file(sites: Sites, file_name: str, data: dict) -> SiteFile:
    """`data` as a site file in the state root, and the account as it is now."""
    path = sites.state_root / file_name
    path.write_text(to_toml(data))
    return SiteFile(path, inventory.take(sites.client()))


def resolve(server: tuple[str, int], hostname: str) -> list[str]:
    """The A records `server` answers for `hostname`."""
    from dnslib import QTYPE, DNSRecord

    answer = DNSRecord.question(hostname, "A").send(server[0], server[1], timeout=5)
    return [str(rr.rdata) for rr in DNSRecord.parse(answer).rr if rr.rtype == QTYPE.A]


def to_toml(data: dict) -> str:
    """Just enough TOML writing for site files (tables, arrays of tables, scalars)."""
    def scalar(value) -> str:
        if isinstance(value, str):
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, list):
            return "[" + ", ".join(scalar(v) for v in value) + "]"
        if isinstance(value, dict):   # an inline table (a replication's schedule)
            return "{" + ", ".join(f"{k} = {scalar(v)}" for k, v in value.items()) + "}"
        return str(value)

    lines: list[str] = []

    def table(prefix: str, values: dict) -> None:
        lines.append(f"[{prefix}]")
        lines.extend(f"{k} = {scalar(v)}" for k, v in values.items()
                     if not isinstance(v, dict))
        for k, v in values.items():
            if isinstance(v, dict):
                table(f"{prefix}.{k}", v)

    for key, value in data.items():
        if isinstance(value, dict):
            table(key, value)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                lines.append(f"[[{key}]]")
                lines += [f"{k} = {scalar(v)}" for k, v in item.items()]
        else:
            lines.insert(0, f"{key} = {scalar(value)}")
    return "\n".join(lines) + "\n"
