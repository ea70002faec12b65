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
from collections.abc import Callable
from dataclasses import dataclass
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
from infra.resources.pool import report as pool_report
from steps.common import (
    ADMIN_SOURCE,
    INTERNET_SOURCE,
    PROBE_TIMEOUT,
    Run,
    SiteFile,
    Sites,
    write_site_file,
)
from steps.sites import build_site, set_field, site_data

# GoCD's API versions are chosen by media type (api.gocd.org).
GOCD_GROUPS = "application/vnd.go.cd.v1+json"
GOCD_AGENTS = "application/vnd.go.cd.v7+json"
GOCD_CONFIG = "godata/config/cruise-config.xml"   # under the gocd app's dataset
APP_WAIT_SECONDS = 300.0     # an app's health after it reports RUNNING (real seconds)
# The apps dataset of every site holds one child dataset per app (infra/charts).
APPS_DATASET = "apps"


@dataclass(frozen=True)
class PipelineGroup:
    """A GoCD pipeline group a step made: the scenario's label, and its name in GoCD
    (unique, since the site outlives the scenario)."""

    label: str
    name: str


@dataclass(frozen=True)
class BumpedCharts:
    """A copy of the charts whose gocd chart is one patch release newer."""

    directory: Path
    version: str


# --- helpers ---------------------------------------------------------------------

def _rendered(sites: Sites, name: str) -> dict[str, RenderedApp]:
    """The site's apps as `up` renders them (secrets already in its state dir)."""
    site = build_site(name)
    return {app.name: app for app in prepare_site(site, sites.state(name), tls_ready=True)}


def _hostname(sites: Sites, name: str, app: str) -> str:
    routes = _rendered(sites, name)[app].routes
    assert routes, f"the app {app} of the site {name} has no public hostname"
    return routes[0].hostname


def _https(sites: Sites, name: str, hostname: str, method: str, path: str, *,
           headers: dict[str, str] | None = None, body: Any = None) -> HttpAnswer:
    """One request through 443 as a browser sends it, verified against the ACME root."""
    sent = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        sent["Content-Type"] = "application/json"
    return https_request(sites.address(name), sites.target.node_port(443), hostname, method,
                         path, ca_bundle=sites.target.acme_root_ca, timeout=PROBE_TIMEOUT,
                         headers=sent, body=data)


def _tls_of(sites: Sites, name: str, hostname: str) -> Callable[[], str]:
    """What port 443 presents for `hostname` (for a failure message)."""
    def explain() -> str:
        return f"443 with SNI {hostname}: {sites.probe(name, hostname).describe()}"
    return explain


def _gocd(sites: Sites, name: str, method: str, path: str, accept: str,
          body: Any = None) -> HttpAnswer:
    headers = {"Accept": accept}
    if method != "GET":
        headers["X-GoCD-Confirm"] = "true"   # GoCD's CSRF guard on older API versions
    return _https(sites, name, _hostname(sites, name, "gocd"), method, path, headers=headers,
                  body=body)


def _groups(sites: Sites, name: str) -> list[str]:
    answer = _gocd(sites, name, "GET", "/go/api/admin/pipeline_groups", GOCD_GROUPS)
    assert answer.status == 200, (answer.status, answer.body)
    return [group["name"] for group in answer.json()["_embedded"]["groups"]]


def _create_group(sites: Sites, name: str, label: str) -> PipelineGroup:
    group = f"{label}-{secrets.token_hex(3)}"   # the site outlives the scenario
    answer = sites.eventually(
        f"GoCD of {name} to accept a new pipeline group",
        lambda: _done_when(_gocd(sites, name, "POST", "/go/api/admin/pipeline_groups",
                                 GOCD_GROUPS, {"name": group, "pipelines": []}),
                           lambda a: a.status == 200), APP_WAIT_SECONDS)
    assert answer.json()["name"] == group, answer.body
    assert group in _groups(sites, name)
    return PipelineGroup(label, group)


def _done_when(answer: HttpAnswer, ok: Callable[[HttpAnswer], bool]) -> tuple[bool, HttpAnswer]:
    return ok(answer), answer


def _wait_running(sites: Sites, name: str, client, app: str) -> None:
    ChartDeployer(build_site(name), client, sites.state(name)).wait_running(app)


def _gocd_config_path(sites: Sites, name: str) -> str:
    site = build_site(name)
    return f"/mnt/{site.truenas.pool}/{APPS_DATASET}/gocd/{GOCD_CONFIG}"


# --- Given -----------------------------------------------------------------------

@given(parsers.parse("an apps site file where {field} is {value}"), target_fixture="site_file")
def _bad_apps_site(sites: Sites, field: str, value: str) -> SiteFile:
    """Like node_steps' "a site file where ...", on a site that runs the apps. It is
    never brought up: were the file accepted, nothing of apps-1 would be touched."""
    import tomllib

    data = site_data("apps-refused")
    if value == "missing":
        data = set_field(data, field, ...)
    else:
        data = set_field(data, field, tomllib.loads(f"v = {value}")["v"])
    return write_site_file(sites, "invalid-apps-site.toml", data)


@given(parsers.parse('a GoCD pipeline group "{label}" on the site "{name}"'),
       target_fixture="pipeline_group")
def _group_exists(sites: Sites, label: str, name: str) -> PipelineGroup:
    return _create_group(sites, name, label)


@given("the charts with the gocd chart's version bumped", target_fixture="bumped_charts")
def _bumped_charts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> BumpedCharts:
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
    return BumpedCharts(copy, bumped)


# --- When ------------------------------------------------------------------------

@when(parsers.parse('I create a GoCD pipeline group "{label}" on the site "{name}"'),
      target_fixture="pipeline_group")
def _create(sites: Sites, label: str, name: str) -> PipelineGroup:
    return _create_group(sites, name, label)


def _group_named(group: PipelineGroup, label: str) -> str:
    assert group.label == label, f"the scenario made the pipeline group {group.label}, " \
        f"not {label}"
    return group.name


@when(parsers.parse('I delete the GoCD pipeline group "{label}" on the site "{name}"'))
def _delete(sites: Sites, pipeline_group: PipelineGroup, label: str, name: str) -> None:
    group = _group_named(pipeline_group, label)
    answer = _gocd(sites, name, "DELETE", f"/go/api/admin/pipeline_groups/{group}", GOCD_GROUPS)
    assert answer.status == 200, (answer.status, answer.body)


@when(parsers.parse('I restart the app "{app}" of the site "{name}"'))
def _restart(sites: Sites, app: str, name: str) -> None:
    with sites.node(name) as client:
        client.call_job("app.stop", app)
        client.call_job("app.start", app)
        _wait_running(sites, name, client, app)


@when(parsers.parse('I snapshot the apps dataset of the site "{name}"'),
      target_fixture="apps_snapshot")
def _snapshot(sites: Sites, name: str) -> str:
    snapshot = f"spec-apps-{secrets.token_hex(3)}"
    with sites.node(name) as client:
        snapshots.take(client, build_site(name), APPS_DATASET, snapshot, recursive=True)
        taken = {s["snapshot_name"] for s in
                 snapshots.list_(client, build_site(name), f"{APPS_DATASET}/gocd")}
    assert snapshot in taken, f"the gocd dataset has no snapshot {snapshot}: {taken}"
    return snapshot


@when(parsers.parse('I stop the app "{app}" of the site "{name}", roll its data back to that '
                    "snapshot and start it"))
def _stop_rollback_start(sites: Sites, apps_snapshot: str, app: str, name: str) -> None:
    site = build_site(name)
    with sites.node(name) as client:
        client.call_job("app.stop", app)
        # Only this app's datasets: the other apps keep running on theirs.
        snapshots.rollback(client, site, f"{APPS_DATASET}/{app}", apps_snapshot,
                           descendants=True)
        client.call_job("app.start", app)
        _wait_running(sites, name, client, app)


# --- Then ------------------------------------------------------------------------

@then(parsers.parse("check reports the apps cockroachdb, gocd and uro of the site "
                    '"{name}" as running'))
def _all_running(sites: Sites, name: str) -> None:
    report = check(build_site(name), sites.client(), sites.state(name))
    findings = {f.requirement: f for f in report.findings if f.requirement.startswith("app ")}
    for app in ("ingress", "cockroachdb", "gocd", "uro"):
        finding = findings.get(f"app {app} runs")
        assert finding is not None, f"check said nothing about app {app}: {sorted(findings)}"
        assert finding.ok, f"app {app}: {finding.detail}"
        assert finding.detail.startswith("RUNNING"), finding.detail


def _health(sites: Sites, name: str, app: str, path: str):
    """The app's health endpoint through the ingress on 443, once it answers 200."""
    hostname = _hostname(sites, name, app)
    return sites.eventually(
        f"{app} at https://{hostname}{path} to answer",
        lambda: _done_when(_https(sites, name, hostname, "GET", path,
                                  headers={"Accept": "application/json"}),
                           lambda a: a.status == 200),
        APP_WAIT_SECONDS, explain=_tls_of(sites, name, hostname))


@then(parsers.parse("GoCD's health of the site \"{name}\" answers OK through https on 443"))
def _gocd_healthy(sites: Sites, name: str) -> None:
    answer = _health(sites, name, "gocd", "/go/api/v1/health")
    assert answer.json() == {"health": "OK"}, answer.body


@then(parsers.parse("uro's health of the site \"{name}\" answers healthy through https on 443"))
def _uro_healthy(sites: Sites, name: str) -> None:
    answer = _health(sites, name, "uro", "/api/v1/health")
    assert answer.json()["services"]["uro"] == "healthy", answer.body


def _console(sites: Sites, name: str, source: str) -> HttpAnswer:
    port = int(_rendered(sites, name)["cockroachdb"].settings["console_port"])
    url = f"http://{sites.address(name)}:{sites.target.node_port(port)}/health?ready=1"
    return http_get(url, source_address=source, timeout=PROBE_TIMEOUT)


@then(parsers.parse('CockroachDB of the site "{name}" answers ready on its console port from '
                    "an address in the admin CIDR"))
def _cockroach_ready(sites: Sites, name: str) -> None:
    def attempt() -> tuple[bool, Any]:
        answer = _console(sites, name, ADMIN_SOURCE)
        return answer.status == 200, answer.describe()

    sites.eventually("CockroachDB's /health?ready=1 to answer 200", attempt, APP_WAIT_SECONDS)


@then(parsers.parse('the CockroachDB console of the site "{name}" is unreachable from an '
                    "internet address"))
def _cockroach_closed(sites: Sites, name: str) -> None:
    answer = _console(sites, name, INTERNET_SOURCE)
    # refused, reset or dropped by the firewall: no answer at all
    assert not answer.answered, f"the console answered an internet address: {answer.describe()}"


@then(parsers.parse("GoCD's config of the site \"{name}\" is a file on the site's pool"))
def _config_on_pool(sites: Sites, name: str) -> None:
    path = _gocd_config_path(sites, name)
    with sites.node(name) as client:
        stat = client.call("filesystem.stat", path)
        pool = pool_report(client, build_site(name))
    assert stat["type"] == "FILE" and stat["size"] > 0, stat
    # The pool is the mirror of the site's two volumes (features/storage.feature).
    assert pool.exists and pool.layout == "MIRROR", pool


@then(parsers.parse('GoCD of the site "{name}" lists the pipeline group "{label}"'))
def _group_listed(sites: Sites, pipeline_group: PipelineGroup, name: str, label: str) -> None:
    group = _group_named(pipeline_group, label)
    sites.eventually(f"GoCD to list the pipeline group {group}",
                     lambda: (group in (seen := _groups(sites, name)), seen), APP_WAIT_SECONDS)


@then(parsers.parse('GoCD of the site "{name}" does not list the pipeline group "{label}"'))
def _group_gone(sites: Sites, pipeline_group: PipelineGroup, name: str, label: str) -> None:
    assert _group_named(pipeline_group, label) not in _groups(sites, name)


@then(parsers.parse('the app "{app}" of the site "{name}" was updated in place to the bumped '
                    "chart version"))
def _updated_in_place(sites: Sites, run: Run, bumped_charts: BumpedCharts, app: str,
                      name: str) -> None:
    changes = run.report.changes
    mine = [c for c in changes if f"app {app} " in f"{c} "]
    assert any(c.startswith(f"update app {app} ") for c in mine), changes
    assert not any(c.startswith((f"create app {app} ", f"delete app {app}")) for c in mine), mine
    site = build_site(name)
    rendered = prepare_site(site, sites.state(name), tls_ready=True)
    with sites.node(name) as client:
        reports = {r.name: r for r in ChartDeployer(site, client, sites.state(name))
                   .report(rendered)}
    assert reports[app].state == "RUNNING", reports[app]
    assert reports[app].up_to_date, reports[app]
    assert reports[app].deployed_chart_version == bumped_charts.version, reports[app]


@then(parsers.parse('GoCD of the site "{name}" lists the agent "{agent}"'))
def _agent_registered(sites: Sites, name: str, agent: str) -> None:
    def attempt() -> tuple[bool, Any]:
        answer = _gocd(sites, name, "GET", "/go/api/agents", GOCD_AGENTS)
        if answer.status != 200:
            return False, f"{answer.status} {answer.body[:200]}"
        # Registered means enabled: an agent whose key is not the server's
        # agentAutoRegisterKey is listed too, Pending an administrator's approval.
        states = {a.get("hostname"): a.get("agent_config_state")
                  for a in answer.json()["_embedded"]["agents"]}
        return states.get(agent) == "Enabled", states

    sites.eventually(f"the agent {agent} to register with GoCD, enabled", attempt,
                     APP_WAIT_SECONDS)
