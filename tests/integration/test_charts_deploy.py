"""The ingress chart deployed by infra/charts onto a fake TrueNAS node, end to end.

The site comes up through `up` (droplet, pool, datasets); then infra's ChartDeployer,
over the project's own TrueNAS client, points Docker at the pool, writes the Caddy
config, creates the app and waits for RUNNING; the real Caddy 2.8.4 the fake node runs
for it (fakes/truenas/apps/caddy.py) then answers on the droplet's port 80 (and on 443
once a certificate is written and its --watch reloads the config that says so).
Each step is checked the way a user would: what answers on the ports, and how many
mutating calls a run sent.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from fakes.world import World
from infra.charts.deploy import ChartDeployer
from infra.charts.ingress import ingress_paths
from infra.charts.validate import prepare_site
from infra.digitalocean import DigitalOcean
from infra.node import open_node
from infra.node_credentials import api_key_for
from infra.resources.droplet import find as find_droplet
from infra.resources.droplet import public_ipv4
from infra.site import Site, parse_site
from infra.state import StateDir
from infra.target import Target
from infra.truenas.calllog import CallLog
from infra.truenas.client import TrueNASClient
from infra.truenas.connect import connect_node, wait_until_ready
from infra.up import Provisioner
from steps.sites import site_data

pytestmark = pytest.mark.caddy

SITE = "charts"
HOST = f"{SITE}.example.test"
TIMEOUT = 10.0


@dataclass
class Rig:
    target: Target
    site: Site
    state: StateDir
    client: TrueNASClient
    log: CallLog
    address: str
    tmp: Path
    do: DigitalOcean | None = None

    def converge(self, site: Site | None = None, **render) -> list[str]:
        site = site or self.site
        apps = prepare_site(site, self.state, environ={}, **{"tls_ready": False, **render})
        return ChartDeployer(site, self.client, self.state).converge(apps)

    def get(self, port: int, path: str) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection(self.address, self.target.node_port(port),
                                          timeout=TIMEOUT)
        try:
            conn.request("GET", path, headers={"Host": HOST})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()


def site_file(**tables) -> dict:
    """Site `charts`, its admin network holding 127.0.0.1 (where the test runs from):
    the firewall lets only the admin network reach the UI on the admin port."""
    data = site_data(SITE)
    data["access"]["admin_cidrs"] = ["127.0.0.0/24"]
    data.update(tables)
    return data


def front_door(apps: dict | None = None) -> Site:
    data = site_file(tls={})
    if apps:
        data["apps"] = apps
    return parse_site(data)


def _free_80_and_443(site: Site, target: Target, state: StateDir, address: str,
                     client: TrueNASClient, log: CallLog) -> TrueNASClient:
    """What `up` does before the ingress (infra/certificates.py point_ui, there with the
    site certificate): the UI leaves 80/443 for the admin port. Then reconnect there."""
    admin = site.access.truenas_admin_port
    client.call("system.general.update", {"ui_httpsport": admin, "ui_port": admin + 1,
                                          "ui_restart_delay": 0})
    client.close()
    key = api_key_for(site, target)
    return wait_until_ready(
        lambda: connect_node(address, key, site.truenas.username, state.path, target.timing,
                             port=target.node_port(admin), log=log), target.timing)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp: Path = tmp_path_factory.mktemp("charts-deploy")
    with World(tmp / "world", acme=False) as world, contextlib.ExitStack() as closing:
        target = Target.from_world_file(world.world_file)
        bare = parse_site(site_file())  # no [tls]: `up` builds droplet, pool, datasets
        do = DigitalOcean(target)
        closing.callback(do.client.close)
        state = StateDir(tmp / "state")
        Provisioner(bare, do, state).up()
        droplet = find_droplet(do, bare)
        assert droplet is not None
        address = public_ipv4(droplet)
        log = CallLog()
        site = front_door()
        client = _free_80_and_443(site, target, state, address,
                                  open_node(site, target, state, address, log), log)
        closing.callback(client.close)
        yield Rig(target, site, state, client, log, address, tmp, do)


def test_the_first_deploy_brings_the_ingress_up_on_port_80(rig: Rig) -> None:
    rig.converge()
    [app] = rig.client.call("app.query", [["name", "=", "ingress"]])
    assert app["state"] == "RUNNING"
    assert rig.client.call("docker.config")["pool"] == rig.site.truenas.pool
    assert rig.get(80, "/healthz")[0] == 200
    status, headers, _ = rig.get(80, "/some/page?x=1")
    assert status == 308
    assert headers["Location"] == f"https://{HOST}/some/page?x=1"


def test_a_second_deploy_sends_no_mutating_call(rig: Rig) -> None:
    rig.converge()
    before = rig.log.mutating
    assert rig.converge() == []
    assert rig.log.mutating == before, rig.log.mutating_calls()[-5:]


def test_a_changed_setting_updates_the_app_in_place(rig: Rig) -> None:
    rig.converge()
    changes = rig.converge(front_door({"ingress": {"memory_limit": "300m"}}))
    assert [c.split(" (")[0] for c in changes] == ["update app ingress"]
    [app] = rig.client.call("app.query", [["name", "=", "ingress"]],
                            {"extra": {"retrieve_config": True}})
    assert app["state"] == "RUNNING"
    caddy = app["config"]["services"]["caddy"]
    assert caddy["deploy"]["resources"]["limits"]["memory"] == "300m"
    rig.converge()  # back to the site file's settings


def _tls_404(rig: Rig, ca: trustme.CA) -> bytes | None:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    try:
        with socket.create_connection((rig.address, rig.target.node_port(443)),
                                      timeout=TIMEOUT) as raw, \
                context.wrap_socket(raw, server_hostname=HOST) as tls:
            tls.sendall(f"GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
            return b"".join(iter(lambda: tls.recv(4096), b""))
    except (ConnectionError, ssl.SSLError, OSError):
        return None


def test_the_certificate_turns_on_https_without_redeploying(rig: Rig) -> None:
    rig.converge()
    ca = trustme.CA()
    issued = ca.issue_cert(HOST)
    paths = ingress_paths(rig.site.truenas.pool)
    rig.client.upload(paths.privkey, issued.private_key_pem.bytes(), mode=0o600)
    rig.client.upload(paths.fullchain, issued.cert_chain_pems[0].bytes())
    before = len(rig.log.entries)
    rig.converge(tls_ready=True, certificate_tag="test-certificate-1")
    sent = [m for m in rig.log.entries[before:] if m in ("app.update", "filesystem.put")]
    assert sent == ["filesystem.put"]  # only caddy.json: Caddy --watch reloads it
    answer = None
    deadline = time.monotonic() + TIMEOUT  # the watcher polls; bounded, never a hang
    while answer is None and time.monotonic() < deadline:
        answer = _tls_404(rig, ca)
        if answer is None:
            time.sleep(0.05)
    assert answer is not None and answer.startswith(b"HTTP/1.1 404")
    assert f"no service is published at {HOST}".encode() in answer


def test_down_removes_the_app_and_its_listeners(rig: Rig) -> None:
    rig.converge()
    assert ChartDeployer(rig.site, rig.client, rig.state).remove() == ["delete app ingress"]
    assert rig.client.call("app.query", [["name", "=", "ingress"]]) == []
    with pytest.raises(OSError):
        rig.get(80, "/healthz")
    assert ChartDeployer(rig.site, rig.client, rig.state).remove() == []


def caddy_processes(under: Path) -> list[int]:
    """Pids of the caddy processes whose config lives under `under` (this test's world)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"/caddy") and any(str(under).encode() in a for a in argv):
            found.append(int(proc.name))
    return found


def _gone(under: Path, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while caddy_processes(under) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not caddy_processes(under)


def test_the_ingress_is_a_real_caddy_process_that_ends_with_its_app(rig: Rig) -> None:
    rig.converge()
    [pid] = caddy_processes(rig.tmp)
    version = Path(f"/proc/{pid}/exe").resolve()
    assert version.name == "caddy"
    ChartDeployer(rig.site, rig.client, rig.state).remove()
    assert _gone(rig.tmp)


def test_powering_the_droplet_off_ends_its_caddy(rig: Rig) -> None:
    rig.converge()
    assert caddy_processes(rig.tmp)
    droplet = find_droplet(rig.do, rig.site)
    rig.do.client.droplet_actions.post(droplet["id"], {"type": "power_off"})
    assert _gone(rig.tmp)
