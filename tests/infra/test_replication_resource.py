"""infra/resources/replication.py against a scripted node: the task's body is
middleware 25.10's replication.create (reference/truenas-schemas/), the plan lists
exactly what a converged source lacks, and teardown takes only the site's own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from infra import desired
from infra.events import Reporter
from infra.resources import replication as tasks
from infra.site import parse_site
from infra.state import StateDir
from infra.truenas import ejson
from steps.sites import site_data
from tests.reference import truenas_schema

TARGET = "127.20.0.9"


class ScriptedNode:
    """One method's answers each, and every call kept (method, params)."""

    def __init__(self, answers: dict[str, Any]) -> None:
        from infra.target import Timing

        self.answers = answers
        self.calls: list[tuple[str, tuple]] = []
        self.timing = Timing()

    def call(self, method: str, *params: Any, **_: Any) -> Any:
        params = tuple(ejson.loads(ejson.dumps(list(params))))   # as the node reads them
        self.calls.append((method, params))
        answer = self.answers.get(method)
        return answer(*params) if callable(answer) else answer

    def methods(self) -> list[str]:
        return [method for method, _ in self.calls]


def _sites(tmp_path: Path, **replication: Any):
    prod = parse_site(site_data("prod"))
    data = site_data("staging")
    data["snapshots"] = []
    data["replication"] = [{"source": str(tmp_path / "prod.toml"), "datasets": ["data"],
                            **replication}]
    staging = parse_site(data)
    source = tasks.Source(staging.replication[0], prod, StateDir(tmp_path / "prod"))
    return staging, source


SNAPSHOT_TASKS = [{"id": 4, "dataset": "tank/data", "naming_schema": "auto-%Y-%m-%d_%H-%M"},
                  {"id": 5, "dataset": "tank/apps", "naming_schema": "auto-%Y"}]


def test_the_task_is_a_push_over_ssh_bound_to_the_sources_snapshot_task(tmp_path) -> None:
    staging, source = _sites(tmp_path)
    body = tasks.desired_task(staging, source, "data", 7, SNAPSHOT_TASKS)
    assert body["direction"] == "PUSH" and body["transport"] == "SSH"
    assert body["ssh_credentials"] == 7 and body["periodic_snapshot_tasks"] == [4]
    assert body["source_datasets"] == ["tank/data"] and body["target_dataset"] == "tank/data"
    assert body["allow_from_scratch"] is False and body["readonly"] == "SET"
    assert body["retention_policy"] == "SOURCE" and body["auto"] is True
    _valid("replication.create", [body])


def _valid(method: str, params: list) -> None:
    """`params` are what middleware 25.10 accepts for `method` (its vendored schema)."""
    Draft202012Validator(truenas_schema(method, "params_schema")).validate(params)


def test_a_schedule_of_its_own_names_the_sources_schemas_instead(tmp_path) -> None:
    staging, source = _sites(tmp_path, schedule={"minute": "*/15"}, retention="custom",
                             lifetime_value=3, lifetime_unit="DAY", readonly=False)
    body = tasks.desired_task(staging, source, "data", 7, SNAPSHOT_TASKS)
    _valid("replication.create", [body])
    assert body["periodic_snapshot_tasks"] == []
    assert body["also_include_naming_schema"] == ["auto-%Y-%m-%d_%H-%M"]
    assert body["schedule"]["minute"] == "*/15" and body["schedule"]["hour"] == "*"
    assert (body["retention_policy"], body["lifetime_value"], body["lifetime_unit"]) == \
        ("CUSTOM", 3, "DAY")
    assert body["readonly"] == "IGNORE"


def _as_queried(body: dict, task_id: int, state: str) -> dict:
    """The task as replication.query shows it: credentials and tasks as entries."""
    return {**body, "id": task_id, "state": {"state": state},
            "ssh_credentials": {"id": body["ssh_credentials"], "name": "x"},
            "periodic_snapshot_tasks": [{"id": i} for i in body["periodic_snapshot_tasks"]],
            "schedule": None, "naming_schema": [], "exclude": []}


def test_the_plan_lists_what_the_source_lacks_and_nothing_once_converged(tmp_path) -> None:
    staging, source = _sites(tmp_path)
    empty = tasks.OnSource(snapshot_tasks=SNAPSHOT_TASKS)
    assert [c.kind for c in tasks.diff(staging, source, empty, TARGET, set())] == [
        "setup_ssh_connection", "create_replication", "run_replication"]
    connection = {"id": 9, "name": "staging-replication", "type": "SSH_CREDENTIALS",
                  "attributes": {"host": TARGET, "port": 22}}
    body = tasks.desired_task(staging, source, "data", 9, SNAPSHOT_TASKS)
    done = tasks.OnSource([connection], [_as_queried(body, 1, "FINISHED")], SNAPSHOT_TASKS)
    assert tasks.diff(staging, source, done, TARGET, set()) == []
    failed = tasks.OnSource([connection], [_as_queried(body, 1, "ERROR")], SNAPSHOT_TASKS)
    assert [c.kind for c in tasks.diff(staging, source, failed, TARGET, set())] == [
        "run_replication"]
    moved = tasks.diff(staging, source, done, "127.20.0.10", set())
    assert [c.kind for c in moved] == ["setup_ssh_connection"]
    assert moved[0].requests[0] == tasks.DELETE_CREDENTIAL


def test_a_promoted_copy_stays_disabled(tmp_path) -> None:
    staging, source = _sites(tmp_path)
    connection = {"id": 9, "name": "staging-replication",
                  "attributes": {"host": TARGET}}
    body = tasks.desired_task(staging, source, "data", 9, SNAPSHOT_TASKS, promoted=True)
    assert body["enabled"] is False
    seen = tasks.OnSource([connection], [_as_queried(body, 1, "FINISHED")], SNAPSHOT_TASKS)
    assert tasks.diff(staging, source, seen, TARGET, {"data"}) == []
    running = tasks.desired_task(staging, source, "data", 9, SNAPSHOT_TASKS)
    seen = tasks.OnSource([connection], [_as_queried(running, 1, "FINISHED")],
                          SNAPSHOT_TASKS)
    assert [c.kind for c in tasks.diff(staging, source, seen, TARGET, {"data"})] == [
        "update_replication"]


def test_the_pairing_is_semi_automatic_with_a_single_use_token(tmp_path) -> None:
    staging, _ = _sites(tmp_path)
    target = ScriptedNode({"system.general.config": {"ui_httpsport": 8443},
                           "auth.generate_token": "t0ken-secret"})
    source = ScriptedNode({tasks.SETUP: {"id": 3, "name": "staging-replication"}})
    steps: list[str] = []

    class Recording(Reporter):
        def step(self, message: str) -> None:
            steps.append(message)

    tasks.setup_connection(source, target, staging, TARGET, tasks.OnSource(), Recording())
    assert target.calls[-1] == ("auth.generate_token", (600, {}, False, True))
    (method, (body,)), = source.calls
    _valid(tasks.SETUP, [body])
    _valid("auth.generate_token", list(target.calls[-1][1]))
    assert method == tasks.SETUP and body["setup_type"] == "SEMI-AUTOMATIC"
    assert body["private_key"] == {"generate_key": True, "name": "staging-replication-key"}
    setup = body["semi_automatic_setup"]
    assert setup["url"] == f"https://{TARGET}:8443" and setup["token"] == "t0ken-secret"
    assert setup["username"] == "truenas_admin" and setup["sudo"] is True
    assert not any("t0ken" in line for line in steps)


def test_teardown_takes_only_the_sites_tasks_and_credentials(tmp_path) -> None:
    staging, _ = _sites(tmp_path)
    node = ScriptedNode({
        "keychaincredential.query": [
            {"id": 1, "name": "staging-replication-key", "type": "SSH_KEY_PAIR"},
            {"id": 2, "name": "staging-replication", "type": "SSH_CREDENTIALS"}],
        "replication.query": [{"id": 7, "name": "staging:data"},
                              {"id": 8, "name": "prod-offsite:data"}],
        "pool.snapshottask.query": SNAPSHOT_TASKS,
    })
    tasks.destroy(node, staging, Reporter())
    assert [c for c in node.calls if c[0] in (tasks.DELETE, tasks.DELETE_CREDENTIAL)] == [
        (tasks.DELETE, (7,)), (tasks.DELETE_CREDENTIAL, (2, {"cascade": False})),
        (tasks.DELETE_CREDENTIAL, (1, {"cascade": False}))]


def test_port_22_opens_to_the_source_alone() -> None:
    data = site_data("staging")
    site = parse_site(data)
    rules = desired.firewall_rules(site, ["127.20.0.5"])["inbound_rules"]
    assert {"protocol": "tcp", "ports": "22", "sources": {"addresses": ["127.20.0.5/32"]}} \
        in rules
    assert not desired.rules_match({"inbound_rules": rules},
                                   {"inbound_rules": desired.firewall_rules(site)["inbound_rules"]})
    assert desired.firewall_rules(site, []) == desired.firewall_rules(site)


@pytest.mark.parametrize("datasets", [["data"], ["media/photos"]])
def test_a_received_dataset_is_not_made_by_up(datasets: list[str]) -> None:
    from infra.resources import datasets as made
    data = site_data("staging")
    data["snapshots"] = []
    data["truenas"]["datasets"] = ["apps", "data", "media/photos"]
    data["replication"] = [{"source": "/x/prod.toml", "datasets": datasets}]
    wanted = made.desired(parse_site(data))
    for name in datasets:
        assert f"tank/{name}" not in wanted
    assert "tank/apps" in wanted and "tank/media" in wanted


class JobNode:
    """A node whose one job answers `records` in turn (core.get_jobs), the last one
    for good."""

    def __init__(self, *records: dict) -> None:
        from infra.target import Timing

        self.records = list(records)
        self.timing = Timing(poll_interval=0.0, min_deadline=5.0)

    def job(self, job_id: int) -> dict:
        return self.records.pop(0) if len(self.records) > 1 else self.records[0]

    def scrub(self, text: str) -> str:
        return text


def test_a_runs_bytes_come_from_its_progress() -> None:
    sending = {"state": "RUNNING", "progress": {
        "percent": 50, "description": "Sending 1 of 1: tank/data@auto-1 (500 B / 900 B)"}}
    done = {"state": "SUCCESS", "progress": {"percent": 100, "description": "done"}}
    assert tasks.wait_job(JobNode(sending, done), 1, "x", Reporter()).bytes_sent == 500
    # A run over before the first look: the last report's total (the fake node's words).
    told = {"state": "SUCCESS", "progress": {"percent": 100,
                                             "description": "Sent 2 snapshots, 4096 B"}}
    assert tasks.wait_job(JobNode(told), 1, "x", Reporter()).bytes_sent == 4096
