"""Apps on a receiving site's copy (issue 16 item 4), without a node: what a site that
runs charts may receive is refused by field before any request, a received app's
chart waits for `promote` (listed by `plan`, left alone by the deploy), and a
replication of an app's dataset binds to the source's recursive snapshot task."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.charts.deploy import ChartDeployer
from infra.errors import SiteFileError
from infra.resources import replication as tasks
from infra.site import load_site, parse_site
from infra.state import StateDir
from steps.common import to_toml
from steps.sites import APPS_RECEIVER, APPS_SOURCE, site_data
from tests.infra.test_replication_resource import ScriptedNode


def _write(path: Path, data: dict) -> Path:
    path.write_text(to_toml(data))
    return path


def _receiving(tmp_path: Path, replication: dict, source: dict | None = None) -> Path:
    _write(tmp_path / "prod.toml", source or site_data(APPS_SOURCE))
    data = site_data(APPS_RECEIVER)
    data["replication"] = [{"source": "prod.toml", **replication}]
    return _write(tmp_path / "staging.toml", data)


def _refused(path: Path) -> list[str]:
    with pytest.raises(SiteFileError) as refused:
        load_site(path)
    return refused.value.problems


def test_the_spec_sites_load(tmp_path: Path) -> None:
    site = load_site(_receiving(tmp_path, {"datasets": ["apps/gocd"], "recursive": True}))
    assert site.replication[0].datasets == ["apps/gocd"] and "gocd" in site.apps


@pytest.mark.parametrize(("replication", "field", "says"), [
    # the front door's own data (certificate, key, routes) would arrive over this site's
    ({"datasets": ["apps"], "recursive": True}, "replication[0].datasets", "apps/gocd"),
    ({"datasets": ["apps/ingress"], "recursive": True}, "replication[0].datasets",
     "never received"),
    ({"datasets": ["apps/ingress/certs"]}, "replication[0].datasets", "never received"),
    # half an app is no copy
    ({"datasets": ["apps/gocd/godata"]}, "replication[0].datasets", 'receive "apps/gocd"'),
    # an app's datasets come with it, or the deploy would make them under a copy
    ({"datasets": ["apps/gocd"]}, "replication[0].recursive", "godata, home, agent"),
])
def test_what_a_site_with_charts_may_not_receive_is_refused_by_field(
        tmp_path: Path, replication: dict, field: str, says: str) -> None:
    problems = _refused(_receiving(tmp_path, replication))
    assert any(p.startswith(f"{field}: ") and says in p for p in problems), problems


def test_a_site_without_a_front_door_may_receive_apps_whole() -> None:
    """A plain copy (no charts run on it) takes the apps' data like any dataset."""
    data = site_data("mirror")
    data["replication"][0].update({"datasets": ["apps"], "recursive": True})
    assert parse_site(data).replication[0].datasets == ["apps"]


def test_the_source_must_snapshot_the_app_and_run_it(tmp_path: Path) -> None:
    source = site_data(APPS_SOURCE)
    source["snapshots"][0]["recursive"] = False      # apps only, not apps/gocd
    problems = _refused(_receiving(tmp_path, {"datasets": ["apps/gocd"], "recursive": True},
                                   source))
    assert any(p.startswith("replication[0].datasets: 'apps/gocd' has no periodic snapshot")
               for p in problems), problems
    source = site_data(APPS_SOURCE)
    source["apps"] = {"cockroachdb": {}}
    problems = _refused(_receiving(tmp_path, {"datasets": ["apps/gocd"], "recursive": True},
                                   source))
    assert any("runs no app gocd" in p for p in problems), problems


def test_a_received_app_waits_until_promoted(tmp_path: Path) -> None:
    site = load_site(_receiving(tmp_path, {"datasets": ["apps/gocd"], "recursive": True}))
    state = StateDir(tmp_path / "state")
    waiting = tasks.waiting_apps(site, state)
    assert list(waiting) == ["gocd"]
    assert "truenas-site promote" in waiting["gocd"] and "tank/apps/gocd" in waiting["gocd"]
    state.record_created(tasks.PROMOTED, "apps/gocd", "2026-01-01T00:00:00")
    assert tasks.waiting_apps(site, state) == {}


def test_the_task_binds_the_sources_recursive_task_of_apps(tmp_path: Path) -> None:
    site = load_site(_receiving(tmp_path, {"datasets": ["apps/gocd"], "recursive": True}))
    source = tasks.sources(site, read_only=True)[0]
    snapshot_tasks = [{"id": 4, "dataset": "tank/apps", "recursive": True,
                       "naming_schema": "auto-%Y-%m-%d_%H-%M"},
                      {"id": 5, "dataset": "tank/data", "recursive": True,
                       "naming_schema": "auto-%Y-%m-%d_%H-%M"},
                      {"id": 6, "dataset": "tank/apps", "recursive": False,
                       "naming_schema": "other-%Y-%m-%d_%H-%M"}]
    body = tasks.desired_task(site, source, "apps/gocd", 3, snapshot_tasks)
    assert body["periodic_snapshot_tasks"] == [4]
    assert body["source_datasets"] == ["tank/apps/gocd"]
    assert body["target_dataset"] == "tank/apps/gocd" and body["recursive"] is True


def test_the_deploy_leaves_a_kept_app_alone(tmp_path: Path) -> None:
    """An app of the site kept aside (waiting for promote) is not pruned as dropped."""
    site = parse_site(site_data(APPS_RECEIVER))
    node = ScriptedNode({
        "system.general.config": {"ui_port": 8080, "ui_httpsport": 8443},
        "docker.config": {"pool": "tank"}, "docker.status": {"status": "RUNNING"},
        "pool.dataset.query": [],
        "app.query": [{"name": "gocd", "state": "STOPPED",
                       "config": {"x-truenas-site": {"site": site.name}}}],
    })
    deleted: list[str] = []
    node.call_job = lambda method, *params, **_: deleted.append(method)  # type: ignore[attr-defined]
    deployer = ChartDeployer(site, node, StateDir(tmp_path / "state"))  # type: ignore[arg-type]
    deployer.converge([], keep={"gocd"})
    assert deleted == []
    deployer.converge([])           # the control: without `keep`, it is the site's to prune
    assert deleted == ["app.delete"]


def test_a_received_apps_generated_secrets_are_the_sources(tmp_path: Path) -> None:
    """GoCD's received cruise-config.xml holds production's agent key: the copy's agent
    must present that key, not one this site generates, or it waits for approval."""
    from infra.charts.catalog import default_catalog
    from infra.charts.secretstore import generated_path, resolve_secrets

    data = site_data(APPS_SOURCE)
    data["snapshots"] = [{"dataset": "apps", "recursive": True, "minute": "0", "hour": "3",
                          "dom": "1", "month": "1", "lifetime_value": 1,
                          "lifetime_unit": "YEAR"}]
    source_state = StateDir(tmp_path / "state-prod")
    _write(tmp_path / "prod.toml", data)
    path = _receiving(tmp_path, {"source_state_dir": str(source_state.path),
                                 "datasets": ["apps/gocd"], "recursive": True}, data)
    site = load_site(path)
    chart = default_catalog()["gocd"]
    theirs, _ = resolve_secrets(chart, {}, source_state)
    sources = tasks.app_sources(site)
    assert set(sources) == {"gocd"}

    own = StateDir(tmp_path / "state-staging")
    mine, problems = resolve_secrets(chart, {}, own, source_state=sources["gocd"])
    assert not problems
    key = "agent_auto_register_key"
    assert mine[key].reveal() == theirs[key].reveal()
    kept = generated_path(own, "gocd", key)
    assert kept.read_text().strip() == theirs[key].reveal()
    assert kept.stat().st_mode & 0o077 == 0
