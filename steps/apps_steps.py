"""Steps of features/apps.feature: GoCD, CockroachDB and uro on the node.

Everything is checked the way a user would: the apps' own HTTP APIs through the
ingress on 443 (SNI and Host = the app's public hostname, the chain verified against
the target's ACME root), the CockroachDB console on its published port from an admin
or an internet source address, `check`'s findings, and the node's own API (files,
app.stop/app.start, snapshots). Real paths and media types: GoCD's API
(api.gocd.org: pipeline groups v1, agents v7), uro's /health behind /api/v1
(reference/anchors-and-vsekai.md §4 uro), CockroachDB's /health?ready=1 (§4 External facts).
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pytest_bdd import given, parsers, then, when

from infra import snapshots
from infra.charts.catalog import CHARTS_DIR, CHARTS_ENV
from infra.charts.deploy import ChartDeployer
from infra.charts.render import RenderedApp
from infra.charts.validate import prepare_site
from infra.check import check
from infra.net import HttpAnswer, http_get, https_request
from infra.node import pool_report
from infra.tls_probe import probe_tls
from steps import inventory
from steps.fixtures import ScenarioContext
from steps.node_steps import _state, _to_toml
from steps.sites import build_site, set_field, site_data
from steps.storage_steps import node
from steps.tls_steps import ADMIN_SOURCE, INTERNET_SOURCE, PROBE_TIMEOUT, _address

# GoCD's API versions are chosen by media type (api.gocd.org).
GOCD_GROUPS = "application/vnd.go.cd.v1+json"
GOCD_AGENTS = "application/vnd.go.cd.v7+json"
GOCD_CONFIG = "godata/config/cruise-config.xml"   # under the gocd app's dataset
APP_WAIT_SECONDS = 300.0     # an app's health after it reports RUNNING (real seconds)
# The apps dataset of every site holds one child dataset per app (infra/charts).
APPS_DATASET = "apps"


@dataclass
class AppsContext:
    """What one apps scenario passes along."""

    groups: dict[str, str] = field(default_factory=dict)   # label -> name in GoCD
    snapshot: str | None = None
    charts_dir: Path | None = None
    bumped_version: str | None = None


@pytest.fixture
def apps() -> AppsContext:
    return AppsContext()


# --- helpers ---------------------------------------------------------------------

def _rendered(spec: ScenarioContext, name: str) -> dict[str, RenderedApp]:
    """The site's apps as `up` renders them (secrets already in its state dir)."""
    site = build_site(name)
    return {app.name: app for app in prepare_site(site, _state(spec, name), tls_ready=True)}


def _hostname(spec: ScenarioContext, name: str, app: str) -> str:
    routes = _rendered(spec, name)[app].routes
    assert routes, f"the app {app} of the site {name} has no public hostname"
    return routes[0].hostname


def _https(spec: ScenarioContext, name: str, hostname: str, method: str, path: str, *,
           headers: dict[str, str] | None = None, body: Any = None) -> HttpAnswer:
    """One request through 443 as a browser sends it, verified against the ACME root."""
    sent = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        sent["Content-Type"] = "application/json"
    return https_request(_address(spec, name), spec.target.node_port(443), hostname, method,
                         path, ca_bundle=spec.target.acme_root_ca, timeout=PROBE_TIMEOUT,
                         headers=sent, body=data)


def _eventually(spec: ScenarioContext, what: str, attempt: Callable[[], tuple[bool, Any]],
                real_seconds: float = APP_WAIT_SECONDS,
                explain: Callable[[], str] | None = None) -> Any:
    """Retry `attempt` (-> (done, what it saw)) until done, bounded by the target's
    timing; fail with the last thing seen (and what `explain` adds)."""
    timing = spec.target.timing
    deadline = time.monotonic() + timing.deadline(real_seconds)
    while True:
        try:
            done, seen = attempt()
        except OSError as error:     # the app may still be starting behind the ingress
            done, seen = False, f"{type(error).__name__}: {error}"
        if done:
            return seen
        if time.monotonic() > deadline:
            more = f"; {explain()}" if explain else ""
            raise AssertionError(f"{what}: never happened; last seen: {seen}{more}")
        time.sleep(timing.poll_interval)


def _tls_of(spec: ScenarioContext, name: str, hostname: str) -> Callable[[], str]:
    """What port 443 presents for `hostname` (for a failure message)."""
    def explain() -> str:
        probe = probe_tls(_address(spec, name), spec.target.node_port(443), hostname,
                          spec.target.acme_root_ca, timeout=PROBE_TIMEOUT, now=spec.target.now())
        return f"443 with SNI {hostname}: {probe.describe()}"
    return explain


def _gocd(spec: ScenarioContext, name: str, method: str, path: str, accept: str,
          body: Any = None) -> HttpAnswer:
    headers = {"Accept": accept}
    if method != "GET":
        headers["X-GoCD-Confirm"] = "true"   # GoCD's CSRF guard on older API versions
    return _https(spec, name, _hostname(spec, name, "gocd"), method, path, headers=headers,
                  body=body)


def _groups(spec: ScenarioContext, name: str) -> list[str]:
    answer = _gocd(spec, name, "GET", "/go/api/admin/pipeline_groups", GOCD_GROUPS)
    assert answer.status == 200, (answer.status, answer.body)
    return [group["name"] for group in answer.json()["_embedded"]["groups"]]


def _create_group(spec: ScenarioContext, apps: AppsContext, name: str, label: str) -> str:
    group = f"{label}-{secrets.token_hex(3)}"   # the site outlives the scenario
    answer = _eventually(
        spec, f"GoCD of {name} to accept a new pipeline group",
        lambda: _done_when(_gocd(spec, name, "POST", "/go/api/admin/pipeline_groups",
                                 GOCD_GROUPS, {"name": group, "pipelines": []}),
                           lambda a: a.status == 200))
    assert answer.json()["name"] == group, answer.body
    apps.groups[label] = group
    assert group in _groups(spec, name)
    return group


def _done_when(answer: HttpAnswer, ok: Callable[[HttpAnswer], bool]) -> tuple[bool, HttpAnswer]:
    return ok(answer), answer


def _wait_running(spec: ScenarioContext, name: str, client, app: str) -> None:
    ChartDeployer(build_site(name), client, _state(spec, name)).wait_running(app)


def _gocd_config_path(spec: ScenarioContext, name: str) -> str:
    site = build_site(name)
    return f"/mnt/{site.truenas.pool}/{APPS_DATASET}/gocd/{GOCD_CONFIG}"


# --- Given -----------------------------------------------------------------------

@given(parsers.parse("an apps site file where {field} is {value}"), target_fixture="bad_site")
def _bad_apps_site(spec: ScenarioContext, field: str, value: str) -> dict:
    """Like node_steps' "a site file where ...", on a site that runs the apps. It is
    never brought up: were the file accepted, nothing of apps-1 would be touched."""
    import tomllib

    data = site_data("apps-refused")
    if value == "missing":
        data = set_field(data, field, ...)
    else:
        data = set_field(data, field, tomllib.loads(f"v = {value}")["v"])
    spec.site_file = spec.state_root / "invalid-apps-site.toml"
    spec.site_file.write_text(_to_toml(data))
    spec.before = inventory.take(spec.client())
    return data


@given(parsers.parse('a GoCD pipeline group "{label}" on the site "{name}"'))
def _group_exists(spec: ScenarioContext, apps: AppsContext, label: str, name: str) -> None:
    _create_group(spec, apps, name, label)


@given("the charts with the gocd chart's version bumped")
def _bumped_charts(apps: AppsContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy of the repository's charts whose gocd chart_version is one patch
    release newer; infra renders from it through $TRUENAS_SITE_CHARTS (until the
    scenario ends)."""
    import tomllib

    copy = tmp_path / "charts"
    shutil.copytree(CHARTS_DIR, copy)
    meta = copy / "gocd" / "chart.toml"
    text = meta.read_text()
    current = tomllib.loads(text)["chart_version"]
    major, minor, patch = current.split("-")[0].split("+")[0].split(".")
    bumped = f"{major}.{minor}.{int(patch) + 1}"
    meta.write_text(text.replace(f'chart_version = "{current}"',
                                 f'chart_version = "{bumped}"', 1))
    assert tomllib.loads(meta.read_text())["chart_version"] == bumped
    monkeypatch.setenv(CHARTS_ENV, str(copy))
    apps.charts_dir, apps.bumped_version = copy, bumped


# --- When ------------------------------------------------------------------------

@when(parsers.parse('I create a GoCD pipeline group "{label}" on the site "{name}"'))
def _create(spec: ScenarioContext, apps: AppsContext, label: str, name: str) -> None:
    _create_group(spec, apps, name, label)


@when(parsers.parse('I delete the GoCD pipeline group "{label}" on the site "{name}"'))
def _delete(spec: ScenarioContext, apps: AppsContext, label: str, name: str) -> None:
    group = apps.groups[label]
    answer = _gocd(spec, name, "DELETE", f"/go/api/admin/pipeline_groups/{group}", GOCD_GROUPS)
    assert answer.status == 200, (answer.status, answer.body)


@when(parsers.parse('I restart the app "{app}" of the site "{name}"'))
def _restart(spec: ScenarioContext, app: str, name: str) -> None:
    with node(spec, name) as client:
        client.call_job("app.stop", app)
        client.call_job("app.start", app)
        _wait_running(spec, name, client, app)


@when(parsers.parse('I snapshot the apps dataset of the site "{name}"'))
def _snapshot(spec: ScenarioContext, apps: AppsContext, name: str) -> None:
    apps.snapshot = f"spec-apps-{secrets.token_hex(3)}"
    with node(spec, name) as client:
        snapshots.take(client, build_site(name), APPS_DATASET, apps.snapshot, recursive=True)
        taken = {s["snapshot_name"] for s in
                 snapshots.list_(client, build_site(name), f"{APPS_DATASET}/gocd")}
    assert apps.snapshot in taken, f"the gocd dataset has no snapshot {apps.snapshot}: {taken}"


@when(parsers.parse('I stop the app "{app}" of the site "{name}", roll its data back to that '
                    "snapshot and start it"))
def _stop_rollback_start(spec: ScenarioContext, apps: AppsContext, app: str, name: str) -> None:
    assert apps.snapshot is not None, "no snapshot was taken in this scenario"
    site = build_site(name)
    with node(spec, name) as client:
        client.call_job("app.stop", app)
        # Only this app's datasets: the other apps keep running on theirs.
        snapshots.rollback(client, site, f"{APPS_DATASET}/{app}", apps.snapshot,
                           descendants=True)
        client.call_job("app.start", app)
        _wait_running(spec, name, client, app)


# --- Then ------------------------------------------------------------------------

@then(parsers.parse("check reports the apps cockroachdb, gocd and uro of the site "
                    '"{name}" as running'))
def _all_running(spec: ScenarioContext, name: str) -> None:
    report = check(build_site(name), spec.client(), _state(spec, name))
    findings = {f.requirement: f for f in report.findings if f.requirement.startswith("app ")}
    for app in ("ingress", "cockroachdb", "gocd", "uro"):
        finding = findings.get(f"app {app} runs")
        assert finding is not None, f"check said nothing about app {app}: {sorted(findings)}"
        assert finding.ok, f"app {app}: {finding.detail}"
        assert finding.detail.startswith("RUNNING"), finding.detail


def _health(spec: ScenarioContext, name: str, app: str, path: str):
    """The app's health endpoint through the ingress on 443, once it answers 200."""
    hostname = _hostname(spec, name, app)
    return _eventually(
        spec, f"{app} at https://{hostname}{path} to answer",
        lambda: _done_when(_https(spec, name, hostname, "GET", path,
                                  headers={"Accept": "application/json"}),
                           lambda a: a.status == 200),
        explain=_tls_of(spec, name, hostname))


@then(parsers.parse("GoCD's health of the site \"{name}\" answers OK through https on 443"))
def _gocd_healthy(spec: ScenarioContext, name: str) -> None:
    answer = _health(spec, name, "gocd", "/go/api/v1/health")
    assert answer.json() == {"health": "OK"}, answer.body


@then(parsers.parse("uro's health of the site \"{name}\" answers healthy through https on 443"))
def _uro_healthy(spec: ScenarioContext, name: str) -> None:
    answer = _health(spec, name, "uro", "/api/v1/health")
    assert answer.json()["services"]["uro"] == "healthy", answer.body


def _console(spec: ScenarioContext, name: str, source: str) -> HttpAnswer:
    port = int(_rendered(spec, name)["cockroachdb"].settings["console_port"])
    url = f"http://{_address(spec, name)}:{spec.target.node_port(port)}/health?ready=1"
    return http_get(url, source_address=source, timeout=PROBE_TIMEOUT)


@then(parsers.parse('CockroachDB of the site "{name}" answers ready on its console port from '
                    "an address in the admin CIDR"))
def _cockroach_ready(spec: ScenarioContext, name: str) -> None:
    def attempt() -> tuple[bool, Any]:
        answer = _console(spec, name, ADMIN_SOURCE)
        return answer.status == 200, answer.describe()

    _eventually(spec, "CockroachDB's /health?ready=1 to answer 200", attempt)


@then(parsers.parse('the CockroachDB console of the site "{name}" is unreachable from an '
                    "internet address"))
def _cockroach_closed(spec: ScenarioContext, name: str) -> None:
    answer = _console(spec, name, INTERNET_SOURCE)
    # refused, reset or dropped by the firewall: no answer at all
    assert not answer.answered, f"the console answered an internet address: {answer.describe()}"


@then(parsers.parse("GoCD's config of the site \"{name}\" is a file on the site's pool"))
def _config_on_pool(spec: ScenarioContext, name: str) -> None:
    path = _gocd_config_path(spec, name)
    with node(spec, name) as client:
        stat = client.call("filesystem.stat", path)
        pool = pool_report(client, build_site(name))
    assert stat["type"] == "FILE" and stat["size"] > 0, stat
    # The pool is the mirror of the site's two volumes (features/storage.feature).
    assert pool.exists and pool.layout == "MIRROR", pool


@then(parsers.parse('GoCD of the site "{name}" lists the pipeline group "{label}"'))
def _group_listed(spec: ScenarioContext, apps: AppsContext, name: str, label: str) -> None:
    group = apps.groups[label]
    _eventually(spec, f"GoCD to list the pipeline group {group}",
                lambda: (group in (seen := _groups(spec, name)), seen))


@then(parsers.parse('GoCD of the site "{name}" does not list the pipeline group "{label}"'))
def _group_gone(spec: ScenarioContext, apps: AppsContext, name: str, label: str) -> None:
    assert apps.groups[label] not in _groups(spec, name)


@then(parsers.parse('the app "{app}" of the site "{name}" was updated in place to the bumped '
                    "chart version"))
def _updated_in_place(spec: ScenarioContext, apps: AppsContext, app: str, name: str) -> None:
    changes = spec.last_run.changes
    mine = [c for c in changes if f"app {app} " in f"{c} "]
    assert any(c.startswith(f"update app {app} ") for c in mine), changes
    assert not any(c.startswith((f"create app {app} ", f"delete app {app}")) for c in mine), mine
    site = build_site(name)
    rendered = prepare_site(site, _state(spec, name), tls_ready=True)
    with node(spec, name) as client:
        reports = {r.name: r for r in ChartDeployer(site, client, _state(spec, name))
                   .report(rendered)}
    assert reports[app].state == "RUNNING", reports[app]
    assert reports[app].up_to_date, reports[app]
    assert reports[app].deployed_chart_version == apps.bumped_version, reports[app]


@then(parsers.parse('GoCD of the site "{name}" lists the agent "{agent}"'))
def _agent_registered(spec: ScenarioContext, name: str, agent: str) -> None:
    def attempt() -> tuple[bool, Any]:
        answer = _gocd(spec, name, "GET", "/go/api/agents", GOCD_AGENTS)
        if answer.status != 200:
            return False, f"{answer.status} {answer.body[:200]}"
        hostnames = [a.get("hostname") for a in answer.json()["_embedded"]["agents"]]
        return agent in hostnames, hostnames

    _eventually(spec, f"the agent {agent} to register with GoCD", attempt)
