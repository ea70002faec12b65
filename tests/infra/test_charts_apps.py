"""The project's charts (cockroachdb, gocd, uro): what a site that runs all three gets.

Rendered from a site file as a user writes it (steps/sites.py's site data with `[tls]`
and `[apps.*]` tables) and checked as `up` checks it before deploying anything.
"""

from __future__ import annotations

import json
import posixpath
import re
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from infra import desired
from infra.charts.catalog import CHARTS_DIR, Catalog, Route, load_chart
from infra.charts.deploy import ChartDeployer
from infra.charts.errors import ChartError
from infra.charts.images import check_pinned
from infra.charts.ingress import IngressRoute, caddy_config
from infra.charts.ports import published_ports
from infra.charts.render import render_site
from infra.charts.validate import prepare_site, validate_apps
from infra.errors import SiteFileError
from infra.site import parse_site
from infra.state import StateDir
from infra.truenas.errors import TrueNASCallError
from steps.sites import ADMIN_NETWORK, site_data
from tests.budget import examples
from tests.infra.test_charts import StubNode, write_chart

URO_IMAGE = "ghcr.io/v-sekai/uro:2025.06.1"
APPS = {"cockroachdb": {}, "gocd": {}, "uro": {"image": URO_IMAGE}}
APP_MEMORY_MB = 8192 - 4096  # validate.py keeps 4096 MiB of a droplet for TrueNAS
# The health checks the fake runtime judges (issue-5 brief), per service.
HEALTH = {
    "cockroachdb": ["CMD", "curl", "-f", "http://localhost:8080/health?ready=1"],
    "uro": ["CMD", "wget", "-qO-", "http://localhost:4000/health"],
    "redis": ["CMD", "redis-cli", "ping"],
    "gocd-server": ["CMD", "curl", "-f", "http://localhost:8153/go/api/v1/health"],
}


def site_data_with(apps: dict | None = None, name: str = "door-h") -> dict:
    data = site_data(name)
    data["tls"] = data.get("tls", {})
    data["access"]["admin_cidrs"] = [ADMIN_NETWORK]
    data["apps"] = APPS if apps is None else apps
    return data


def full_site(**apps_changes):
    apps = {name: dict(table) for name, table in APPS.items()}
    for chart, table in apps_changes.items():
        apps[chart].update(table)
    return parse_site(site_data_with(apps))


@pytest.fixture
def state(tmp_path: Path) -> StateDir:
    return StateDir(tmp_path / "state")


@pytest.fixture
def apps(state):
    return {app.name: app for app in
            prepare_site(full_site(), state, tls_ready=True, certificate_tag="t1",
                         environ={}, memory_mb=8192)}


def services(apps) -> dict[str, tuple[str, dict]]:
    return {name: (app.name, body) for app in apps.values()
            for name, body in app.compose["services"].items()}


def limit_mb(body: dict) -> int:
    text = body["deploy"]["resources"]["limits"]["memory"]
    amount, unit = re.fullmatch(r"(\d+)([mg])", text).groups()
    return int(amount) * (1024 if unit == "g" else 1)


# --- the charts as a site runs them ------------------------------------------------------
def test_a_site_with_all_three_charts_renders_and_validates(apps) -> None:
    assert list(apps) == ["ingress", "cockroachdb", "gocd", "uro"]
    assert {name for name in services(apps)} == {
        "caddy", "cockroachdb", "db-init", "gocd-server", "gocd-agent", "uro", "redis"}


def test_every_image_is_pinned_and_the_agreed_one(apps) -> None:
    images = {name: body["image"] for name, (_, body) in services(apps).items()}
    assert images == {"caddy": "caddy:2.8.4", "cockroachdb": "cockroachdb/cockroach:v25.1.1",
                      "db-init": "cockroachdb/cockroach:v25.1.1",
                      "redis": "redis:7.4.2", "uro": URO_IMAGE,
                      "gocd-server": "gocd/gocd-server:v25.3.0",
                      "gocd-agent": "gocd/gocd-agent-ubuntu-24.04:v25.3.0"}
    for image in images.values():
        check_pinned(image)


def test_every_service_restarts_has_a_health_check_and_a_memory_limit(apps) -> None:
    for name, (_, body) in services(apps).items():
        if name == "db-init":           # a one-shot job: retried until it succeeds
            assert body["restart"] == "on-failure"
            assert limit_mb(body) > 0
            continue
        assert body["restart"] == "unless-stopped", name
        assert body["healthcheck"]["test"], name
        assert limit_mb(body) > 0, name
        if name in HEALTH:
            assert body["healthcheck"]["test"] == HEALTH[name]
    agent = services(apps)["gocd-agent"][1]
    assert agent["healthcheck"]["test"][:2] == ["CMD", "pgrep"]  # a process check


def test_the_memory_limits_fit_an_8_gb_droplet(apps) -> None:
    total = sum(limit_mb(body) for _, body in services(apps).values())
    assert total <= APP_MEMORY_MB
    validate_apps(list(apps.values()), full_site(), memory_mb=8192)


def test_a_4_gb_droplet_is_refused_before_anything_is_deployed(state) -> None:
    with pytest.raises(ChartError) as caught:
        prepare_site(full_site(), state, tls_ready=False, environ={}, memory_mb=4096)
    assert "the memory limits add up to" in str(caught.value)


def test_limits_raised_beyond_the_droplet_are_refused(state) -> None:
    site = full_site(cockroachdb={"memory_limit": "2g"})
    with pytest.raises(ChartError, match="memory limits add up to 5120 MiB"):
        prepare_site(site, state, tls_ready=False, environ={}, memory_mb=8192)


def test_the_droplet_sizes_memory_comes_from_the_accounts_sizes() -> None:
    site = full_site()
    sizes = {"s-4vcpu-8gb": {"slug": "s-4vcpu-8gb", "memory": 8192}}
    assert desired.size_memory_mb(site, sizes) == 8192
    assert desired.size_memory_mb(site, {}) is None


def test_data_lives_only_under_the_charts_own_datasets_on_the_pool(apps) -> None:
    for app_name, body in services(apps).values():
        root = f"/mnt/tank/apps/{app_name}/"
        for entry in body.get("volumes", []):
            source = entry.split(":", 1)[0]
            assert posixpath.normpath(source).startswith(root), (app_name, entry)
            relative = source[len(root):].split("/")[0]
            assert f"tank/apps/{app_name}/{relative}" in apps[app_name].datasets
    mounts = {name: body.get("volumes", []) for name, (_, body) in services(apps).items()}
    assert mounts["cockroachdb"] == ["/mnt/tank/apps/cockroachdb/data:/cockroach/cockroach-data"]
    assert mounts["uro"] == ["/mnt/tank/apps/uro/uploads:/app/uploads"]
    assert mounts["redis"] == ["/mnt/tank/apps/uro/redis:/data"]
    assert mounts["gocd-server"] == ["/mnt/tank/apps/gocd/godata:/godata",
                                     "/mnt/tank/apps/gocd/home:/home/go"]


def test_only_the_database_console_is_published(apps) -> None:
    published = {app.name: [(p.service, p.port) for p in published_ports(app.compose)]
                 for app in apps.values()}
    assert published == {"ingress": [("caddy", 80), ("caddy", 443)],
                         "cockroachdb": [("cockroachdb", 8081)], "gocd": [], "uro": []}


def test_routed_services_share_the_front_network_and_the_agent_stays_off_it(apps) -> None:
    for app in apps.values():
        front = app.compose["networks"]["front"]
        assert front["name"] == "door-h-front"
        assert front.get("external", False) is (app.name != "ingress")
    on_front = {name for name, (_, body) in services(apps).items()
                if "front" in body.get("networks", [])}
    assert on_front == {"caddy", "cockroachdb", "db-init", "uro", "gocd-server"}


def test_cockroachdb_runs_the_agreed_single_insecure_node(apps) -> None:
    body = apps["cockroachdb"].compose["services"]["cockroachdb"]
    # no --listen-addr: cockroach.sh refuses any host but 127.0.0.1/localhost for it
    assert body["command"] == ["start-single-node", "--insecure", "--http-addr=0.0.0.0:8080"]
    init = apps["cockroachdb"].compose["services"]["db-init"]
    assert init["command"][0] == "sql"
    assert "CREATE DATABASE IF NOT EXISTS uro" in init["command"][-1]
    meta = (CHARTS_DIR / "cockroachdb" / "chart.toml").read_text()
    assert "Insecure, on purpose" in meta and "what it costs" in meta


def test_uro_gets_every_variable_it_requires(apps) -> None:
    body = apps["uro"].compose["services"]["uro"]
    env = body["environment"]
    assert set(env) >= {"URL", "ROOT_ORIGIN", "FRONTEND_URL", "DATABASE_URL", "REDIS_URL",
                        "PORT", "PHOENIX_KEY_BASE", "JOKEN_SIGNER"}
    assert env["DATABASE_URL"] == "postgresql://root@cockroachdb:26257/uro"
    assert len(env["SIGNUP_API_KEY"]) >= 32             # a generated secret: sign-up closed
    assert env["REDIS_URL"] == "redis://redis:6379"
    assert env["ROOT_ORIGIN"] == "https://door-h.example.test"
    assert len(env["PHOENIX_KEY_BASE"]) == 64 and env["JOKEN_SIGNER"]
    assert body["depends_on"] == {"redis": {"condition": "service_healthy"}}
    assert "PHOENIX_KEY_BASE" not in repr(apps["uro"]) and env["JOKEN_SIGNER"] not in repr(
        apps["uro"])


def test_generated_secrets_are_kept_so_a_second_render_is_the_same(state, apps) -> None:
    again = {a.name: a for a in render_site(full_site(), state, tls_ready=True,
                                            certificate_tag="t1", environ={})}
    assert {n: a.hash for n, a in again.items()} == {n: a.hash for n, a in apps.items()}


def test_the_gocd_agent_registers_with_the_key_seeded_into_the_servers_config(apps) -> None:
    gocd = apps["gocd"]
    agent = gocd.compose["services"]["gocd-agent"]
    env = agent["environment"]
    assert env["GO_SERVER_URL"] == "http://gocd-server:8153/go"
    assert env["AGENT_AUTO_REGISTER_HOSTNAME"] == "door-h-agent-1"
    assert agent["depends_on"] == {"gocd-server": {"condition": "service_healthy"}}
    [seed] = gocd.files
    assert seed.path == "/mnt/tank/apps/gocd/godata/config/cruise-config.xml"
    assert seed.on_change == "create"
    key = re.search(rb'agentAutoRegisterKey="([^"]+)"', seed.content).group(1).decode()
    assert key == env["AGENT_AUTO_REGISTER_KEY"]


# --- the ingress ----------------------------------------------------------------------------
def test_the_ingress_routes_both_hostnames_and_strips_api_v1_for_uro(apps) -> None:
    [caddy_json] = apps["ingress"].files
    routes = json.loads(caddy_json.content)["apps"]["http"]["servers"]["https"]["routes"]
    by_host = {r["match"][0]["host"][0]: r["handle"] for r in routes if "match" in r}
    assert by_host["door-h.example.test"] == [
        {"handler": "rewrite", "strip_path_prefix": "/api/v1"},
        {"handler": "reverse_proxy", "upstreams": [{"dial": "uro:4000"}]}]
    assert by_host["ci-door-h.example.test"] == [
        {"handler": "reverse_proxy", "upstreams": [{"dial": "gocd-server:8153"}]}]
    assert routes[-1]["handle"][0]["status_code"] == 404


def test_hostnames_can_be_set_and_must_be_the_sites(state) -> None:
    site = full_site(uro={"hostname": "ci-door-h.example.test"},
                     gocd={"hostname": "door-h.example.test"})
    apps = {a.name: a for a in prepare_site(site, state, tls_ready=True, environ={})}
    assert apps["uro"].routes[0].hostname == "ci-door-h.example.test"
    clash = full_site(gocd={"hostname": "door-h.example.test"})
    with pytest.raises(ChartError, match=r"apps\.(gocd|uro)\.hostname: door-h\.example\.test"
                                         r" is already routed to app"):
        prepare_site(clash, state, tls_ready=True, environ={})


def test_a_site_with_one_hostname_must_name_gocds(state) -> None:
    data = site_data_with()
    data["dns"]["hostnames"] = ["door-h.example.test"]
    with pytest.raises(ChartError, match=r"apps\.gocd\.hostname: is required: the site has "
                                         r"no dns\.hostnames\[1\]"):
        prepare_site(parse_site(data), state, tls_ready=True, environ={})


def test_the_strip_prefix_is_emitted_only_where_declared() -> None:
    config = caddy_config([IngressRoute("a.example.test", "a:1", "", "/x"),
                           IngressRoute("b.example.test", "b:2")], tls_ready=True)
    routes = config["apps"]["http"]["servers"]["https"]["routes"]
    assert [h["handler"] for h in routes[0]["handle"]] == ["rewrite", "reverse_proxy"]
    assert [h["handler"] for h in routes[1]["handle"]] == ["reverse_proxy"]


# --- the firewall ---------------------------------------------------------------------------
def _ports_open_to(rules: dict, sources: list[str]) -> set[str]:
    return {r["ports"] for r in rules["inbound_rules"]
            if sorted(r["sources"]["addresses"]) == sorted(sources)}


def test_the_console_port_is_open_to_the_admin_cidrs_only() -> None:
    rules = desired.firewall_rules(full_site())
    assert "8081" in _ports_open_to(rules, [ADMIN_NETWORK])
    assert _ports_open_to(rules, ["0.0.0.0/0", "::/0"]) == {"80", "443"}
    moved = desired.firewall_rules(full_site(cockroachdb={"console_port": 9090}))
    assert "9090" in _ports_open_to(moved, [ADMIN_NETWORK])
    assert "8081" not in _ports_open_to(moved, [ADMIN_NETWORK])


def test_without_cockroachdb_no_console_port_is_opened() -> None:
    site = parse_site(site_data_with({"uro": {"image": URO_IMAGE}}))
    assert _ports_open_to(desired.firewall_rules(site), [ADMIN_NETWORK]) == {"22", "8443"}


def test_check_sees_a_firewall_without_the_console_rule_as_different() -> None:
    site = full_site()
    without = parse_site({**site_data_with(), "apps": {}})
    assert not desired.rules_match(desired.firewall_rules(without), desired.firewall_rules(site))
    assert desired.rules_match(desired.firewall_rules(site), desired.firewall_rules(site))


# --- refused before anything is deployed, naming the field -----------------------------------
def test_a_missing_uro_image_is_refused_naming_it() -> None:
    apps = {"cockroachdb": {}, "gocd": {}, "uro": {}}
    with pytest.raises(SiteFileError, match=r"apps\.uro\.image: is required"):
        parse_site(site_data_with(apps))


@pytest.mark.parametrize("image", ["ghcr.io/v-sekai/uro", "ghcr.io/v-sekai/uro:latest",
                                   "uro:main"])
def test_an_unpinned_uro_image_is_refused_naming_it(image: str) -> None:
    with pytest.raises(SiteFileError, match=r"apps\.uro\.image: "):
        parse_site(site_data_with({"uro": {"image": image}}))


@pytest.mark.parametrize(("chart", "field", "value"), [
    ("cockroachdb", "console_port", 80), ("cockroachdb", "console_port", "8081"),
    ("gocd", "hostname", "not a host"), ("uro", "memory_limit", "lots"),
])
def test_an_invalid_setting_is_refused_naming_it(chart: str, field: str, value) -> None:
    apps = {name: dict(table) for name, table in APPS.items()}
    apps[chart][field] = value
    with pytest.raises(SiteFileError, match=rf"apps\.{chart}\.{field}: "):
        parse_site(site_data_with(apps))


def test_a_console_port_on_the_truenas_admin_port_is_refused(state) -> None:
    site = full_site(cockroachdb={"console_port": 8443})
    with pytest.raises(ChartError, match=r"host port 8443 is taken by the TrueNAS web UI"):
        prepare_site(site, state, tls_ready=False, environ={})


def test_a_missing_secret_file_is_refused_naming_it(state, tmp_path) -> None:
    site = full_site(uro={"secret_files": {"phoenix_key_base": "nowhere/key"}})
    with pytest.raises(ChartError) as caught:
        prepare_site(site, state, tls_ready=False, environ={}, site_dir=tmp_path)
    assert "apps.uro.secret_files.phoenix_key_base: cannot read" in str(caught.value)


def test_a_secret_from_a_file_reaches_the_app_and_no_message(state, tmp_path) -> None:
    key = tmp_path / "agent.key"
    key.write_text("k" * 40 + "\n")
    key.chmod(0o600)
    site = full_site(gocd={"secret_files": {"agent_auto_register_key": str(key)}})
    apps = {a.name: a for a in prepare_site(site, state, tls_ready=False, environ={})}
    env = apps["gocd"].compose["services"]["gocd-agent"]["environment"]
    assert env["AGENT_AUTO_REGISTER_KEY"] == "k" * 40
    assert "k" * 40 not in apps["gocd"].scrub(repr(apps["gocd"].compose))


# --- chart metadata the loader refuses ---------------------------------------------------------
def _with_admin_ports(directory: Path, names: list[str]) -> Path:
    meta = directory / "chart.toml"
    meta.write_text(f"admin_ports = {names!r}\n".replace("'", '"') + meta.read_text())
    return directory


def test_an_admin_port_must_be_a_published_port_setting(tmp_path) -> None:
    chart = _with_admin_ports(write_chart(tmp_path, "web"), ["nope"])
    with pytest.raises(ChartError, match=r"admin_ports\[0\]: 'nope' is not a setting of type"):
        load_chart(chart)
    unpublished = _with_admin_ports(write_chart(tmp_path / "b", "web", extra="""\
        [settings.console]
        description = "a port nothing publishes"
        type = "port"
        default = 9000
        """), ["console"])
    with pytest.raises(ChartError, match=r"admin_ports\[0\]: no service publishes"):
        load_chart(unpublished)


@settings(max_examples=examples(fast=10, deep=40), deadline=None)
@given(st.text(min_size=1, max_size=12))
def test_a_strip_prefix_is_a_plain_path(prefix: str) -> None:
    ok = re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", prefix) is not None
    try:
        Route(hostname_setting="h", service="s", port=1, strip_path_prefix=prefix)
    except ValidationError:
        assert not ok
    else:
        assert ok


def test_the_repository_catalog_loads_the_three_charts() -> None:
    assert Catalog.load(CHARTS_DIR).names() == ["cockroachdb", "gocd", "ingress", "uro"]


# --- the create-only file ---------------------------------------------------------------------
class StatNode(StubNode):
    """The stub node, answering filesystem.stat as middleware does (ENOENT when absent)."""

    def call(self, method: str, *params):
        if method == "filesystem.stat":
            self.calls.append(method)
            if params[0] not in self.files:
                raise TrueNASCallError(method, f"Path {params[0]} not found", errno=2,
                                       errname="ENOENT")
            return {"realpath": params[0], "type": "FILE"}
        return super().call(method, *params)


def test_the_gocd_config_seed_is_written_once_and_never_overwritten(state) -> None:
    site = full_site()
    apps = prepare_site(site, state, tls_ready=False, environ={})
    gocd = next(a for a in apps if a.name == "gocd")
    node = StatNode()
    ChartDeployer(site, node, state)._files(gocd)
    path = "/mnt/tank/apps/gocd/godata/config/cruise-config.xml"
    assert node.files[path] == gocd.files[0].content
    owned = textwrap.dedent("""\
        <cruise schemaVersion="139"><server agentAutoRegisterKey="x" serverId="y"/>
        <pipelines group="first"/></cruise>
        """).encode()
    node.files[path] = owned       # GoCD rewrote its config
    node.calls.clear()
    ChartDeployer(site, node, state)._files(gocd)
    assert node.files[path] == owned
    assert "filesystem.put" not in node.calls


def test_a_stat_failure_other_than_absence_never_overwrites_the_seed(state) -> None:
    class Broken(StatNode):
        def call(self, method: str, *params):
            if method == "filesystem.stat":
                raise TrueNASCallError(method, "I/O error", errno=5, errname="EIO")
            return super().call(method, *params)

    site = full_site()
    gocd = next(a for a in prepare_site(site, state, tls_ready=False, environ={})
                if a.name == "gocd")
    node = Broken()
    with pytest.raises(TrueNASCallError):
        ChartDeployer(site, node, state)._files(gocd)
    assert node.files == {}


# --- dataset owners ---------------------------------------------------------------------------
class OwnerNode(StubNode):
    """The stub node with filesystem.stat and filesystem.chown on directories."""

    def __init__(self) -> None:
        super().__init__("tank")
        self.owners: dict[str, tuple[int, int]] = {}

    def call(self, method: str, *params):
        if method == "filesystem.stat":
            self.calls.append(method)
            uid, gid = self.owners.get(params[0], (0, 0))
            return {"realpath": params[0], "type": "DIRECTORY", "uid": uid, "gid": gid}
        return super().call(method, *params)

    def call_job(self, method: str, *params, real_seconds: float = 0):
        if method == "filesystem.chown":
            self.calls.append(method)
            self.owners[params[0]["path"]] = (params[0]["uid"], params[0]["gid"])
            return None
        return super().call_job(method, *params, real_seconds=real_seconds)


def test_gocd_datasets_are_given_to_the_go_user_once(state) -> None:
    """GoCD runs as uid 1000 and a fresh dataset is root's: deploy chowns the chart's
    datasets that name an owner, and a converged site is only read."""
    site = full_site()
    gocd = next(a for a in prepare_site(site, state, tls_ready=False, environ={})
                if a.name == "gocd")
    go = (1000, 0)      # uid 1000, primary group root (the images' adduser/useradd)
    assert gocd.owners == {"tank/apps/gocd/godata": go, "tank/apps/gocd/home": go,
                           "tank/apps/gocd/agent": go}
    node = OwnerNode()
    ChartDeployer(site, node, state)._ownership(gocd)
    assert node.owners == {"/mnt/tank/apps/gocd/godata": go, "/mnt/tank/apps/gocd/home": go,
                           "/mnt/tank/apps/gocd/agent": go,
                           "/mnt/tank/apps/gocd/godata/config": go,
                           "/mnt/tank/apps/gocd/godata/config/cruise-config.xml": go}
    node.calls.clear()
    ChartDeployer(site, node, state)._ownership(gocd)
    assert node.mutating() == []


def test_the_gocd_agent_keeps_its_own_godata_on_the_pool(apps) -> None:
    """The agent's identity (config/guid.txt) lives in /godata: the image's VOLUME
    /godata would be an anonymous volume, gone with each recreated container."""
    agent = apps["gocd"].compose["services"]["gocd-agent"]
    assert agent["volumes"] == ["/mnt/tank/apps/gocd/agent:/godata"]
    assert apps["gocd"].owners["tank/apps/gocd/agent"] == (1000, 0)


def test_uros_frontend_url_follows_its_own_setting(state) -> None:
    site = full_site(uro={"frontend_hostname": "www.door-h.example.test"})
    uro = next(a for a in prepare_site(site, state, tls_ready=False, environ={})
               if a.name == "uro")
    env = uro.compose["services"]["uro"]["environment"]
    assert env["FRONTEND_URL"] == "https://www.door-h.example.test/"
