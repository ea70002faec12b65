"""The nightly workflow (.github/workflows/nightly.yml) has the properties a maintainer
relies on: it runs nightly and on demand, one run at a time, the spec against the real
target with both reports, a sweep and the report upload even when the tests fail, and
credentials only from repository secrets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from infra.cli import app
from steps.cli_runner import CliRunner

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "nightly.yml"
SECRETS = ("DIGITALOCEAN_TOKEN", "TRUENAS_API_KEY", "TRUENAS_IMAGE_URL", "ACME_ROOT_CA",
           "TRUENAS_ADMIN_PASSWORD")


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


@pytest.fixture(scope="module")
def steps(workflow: dict) -> list[dict]:
    return workflow["jobs"]["spec"]["steps"]


def test_the_containers_tier_runs_nightly_and_may_not_skip(workflow: dict) -> None:
    """tests/integration/containers (real images through testcontainers) runs in its own job, with
    the containers extra installed, and fails rather than skips without an engine."""
    job = workflow["jobs"]["containers"]
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    assert "'.[test,containers]'" in runs
    assert "pytest tests/integration/containers -m containers" in runs
    assert any(step.get("env", {}).get("SPEC_CONTAINERS_REQUIRED") for step in job["steps"])
    assert "secrets." not in yaml.safe_dump(job)


def test_the_deep_property_budgets_run_nightly_on_the_fakes(workflow: dict) -> None:
    """Developer runs give each property test a fast budget (tests/budget.py); the deep
    one, at least what each ran before, runs every night on the fakes, with hypothesis's
    example database kept from night to night."""
    job = workflow["jobs"]["deep"]
    [run] = [step for step in job["steps"] if "./dev test" in step.get("run", "")]
    assert run["env"]["SPEC_HYPOTHESIS_PROFILE"] == "deep"
    assert "--target" not in run["run"]          # the default: the embedded fakes
    [cache] = [step for step in job["steps"] if step.get("uses", "").startswith("actions/cache@")]
    assert cache["with"]["path"] == ".hypothesis"
    assert "secrets." not in yaml.safe_dump(job)


def _step(steps: list[dict], pattern: str) -> tuple[int, dict]:
    found = [(i, s) for i, s in enumerate(steps) if re.search(pattern, s.get("run", "")
                                                              + s.get("uses", ""))]
    assert len(found) == 1, f"one step matching {pattern!r}, found {len(found)}"
    return found[0]


def _runs_always(step: dict) -> bool:
    return "always()" in str(step.get("if", ""))


def test_it_runs_nightly_and_on_demand(workflow: dict) -> None:
    # YAML 1.1 reads the key `on` as True; GitHub reads it as "on".
    triggers = workflow.get("on", workflow.get(True))
    crons = [entry["cron"] for entry in triggers["schedule"]]
    assert crons and all(len(cron.split()) == 5 for cron in crons)
    # once a day: a fixed minute and hour, every day of every month
    assert all(cron.split()[2:] == ["*", "*", "*"] for cron in crons)
    assert "workflow_dispatch" in triggers


def test_only_one_run_at_a_time_and_none_is_cancelled(workflow: dict) -> None:
    concurrency = workflow["concurrency"]
    assert concurrency["group"]
    assert concurrency["cancel-in-progress"] is False


def test_the_spec_runs_against_the_real_target_with_both_reports(steps: list[dict]) -> None:
    _, step = _step(steps, r"--target real")
    command = step["run"]
    assert "features/" in command
    assert "--cucumberjson=reports/cucumber.json" in command
    assert "--junitxml=reports/junit.xml" in command
    assert not step.get("continue-on-error"), "a failing spec must fail the run"


def test_the_sweep_runs_after_the_spec_even_when_it_fails(steps: list[dict]) -> None:
    spec_at, _ = _step(steps, r"--target real")
    sweep_at, sweep = _step(steps, r"-m infra sweep")
    assert sweep_at > spec_at
    assert _runs_always(sweep)
    assert "--older-than 6h" in sweep["run"]


def test_the_sweep_command_exists_with_that_option() -> None:
    result = CliRunner().invoke(app, ["sweep", "--help"])
    assert result.exit_code == 0 and "--older-than" in result.output


def test_the_reports_are_uploaded_even_when_the_tests_fail(steps: list[dict]) -> None:
    spec_at, _ = _step(steps, r"--target real")
    upload_at, upload = _step(steps, r"actions/upload-artifact@")
    assert upload_at > spec_at
    assert _runs_always(upload)
    assert upload["with"]["path"].rstrip("/") == "reports"


def test_actions_are_pinned_to_a_major_version(steps: list[dict]) -> None:
    for step in steps:
        if "uses" in step:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", step["uses"]), step["uses"]


def _env_maps(workflow: dict):
    yield workflow.get("env") or {}
    for job in workflow["jobs"].values():
        yield job.get("env") or {}
        for step in job["steps"]:
            yield step.get("env") or {}


def test_credentials_come_only_from_repository_secrets(workflow: dict) -> None:
    text = WORKFLOW.read_text()
    # every expression that names a secret reads it from `secrets.`
    for expression in re.findall(r"\$\{\{(.*?)\}\}", text):
        for name in SECRETS:
            if name in expression:
                assert expression.strip() == f"secrets.{name}", expression
    # each required variable is set, and only from its secret
    values: dict[str, list[str]] = {}
    for env in _env_maps(workflow):
        for key, value in env.items():
            values.setdefault(key, []).append(str(value))
    for name in SECRETS[:3]:
        assert values.get(name) == [f"${{{{ secrets.{name} }}}}"], name
    assert "secrets: inherit" not in text
    # nothing that looks like a literal credential
    assert not re.search(r"dop_v1_[0-9a-f]{8}", text)
