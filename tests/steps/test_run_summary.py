"""The human summary at the end of a spec run (steps/summary.py): each requirement with
its result on this target, read the way a person reads a nightly log."""

from __future__ import annotations

import json

import pytest

pytest_plugins = ["pytester"]

FEATURE = """\
Feature: Things that work
  Scenario: one passes
    Given a step that passes

  Scenario: one fails
    Given a step that fails

  @needs_real
  Scenario: one is skipped
    Given a step that passes

  Scenario Outline: an outline counts each example
    Given a step that <does>

    Examples:
      | does   |
      | passes |
      | passes |
"""

OTHER = """\
Feature: Other things
  Scenario: all good
    Given a step that passes
"""

CONFTEST = """\
import pytest
from pytest_bdd import given

pytest_plugins = ["steps.summary"]


def pytest_addoption(parser):
    parser.addoption("--target", default="fake")


def pytest_runtest_setup(item):
    if "needs_real" in {m.name for m in item.iter_markers()}:
        pytest.skip("only on a real account")


@given("a step that passes")
def _passes():
    pass


@given("a step that fails")
def _fails():
    raise AssertionError("it failed")
"""

TESTS = """\
from pytest_bdd import scenarios

scenarios("things.feature", "other.feature")

def test_not_a_scenario():
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makefile(".feature", things=FEATURE, other=OTHER)
    pytester.makepyfile(test_spec=TESTS)
    pytester.makeini("[pytest]\nmarkers =\n    needs_real: skipped off a real account\n")
    return pytester


def _summary(output: list[str]) -> list[str]:
    start = next(i for i, line in enumerate(output) if "requirements" in line and "=" in line)
    lines = []
    for line in output[start + 1:]:
        if line.startswith("="):
            break
        lines.append(line)
    return lines


def test_each_feature_is_listed_with_its_counts_and_the_target(suite: pytest.Pytester) -> None:
    result = suite.runpytest("-p", "no:cacheprovider", "--target", "existing")
    result.assert_outcomes(passed=5, failed=1, skipped=1)
    summary = _summary(result.outlines)
    where = suite.path.name          # pytest-bdd names a feature file by its folder and name
    assert summary[0] == "requirements on target existing"
    # Failed requirements come first, so they are what a person sees.
    assert summary[1].split() == ["FAILED", "Things", "that", "work", f"({where}/things.feature):",
                                  "3", "passed,", "1", "failed,", "1", "skipped"]
    assert summary[2].split() == ["ok", "Other", "things", f"({where}/other.feature):",
                                  "1", "passed"]
    assert len(summary) == 3          # the plain test is not a requirement


def test_no_summary_when_no_scenario_ran(suite: pytest.Pytester) -> None:
    result = suite.runpytest("-p", "no:cacheprovider", "-k", "not_a_scenario")
    result.assert_outcomes(passed=1)
    assert not any(line.startswith("requirements on target") for line in result.outlines)


def test_summary_agrees_with_the_cucumber_report(suite: pytest.Pytester) -> None:
    """The machine reports still work beside the summary, and say the same."""
    report = suite.path / "cucumber.json"
    junit = suite.path / "junit.xml"
    result = suite.runpytest("-p", "no:cacheprovider", f"--cucumberjson={report}",
                             f"--junitxml={junit}")
    features = {f["name"]: f for f in json.loads(report.read_text())}
    assert sorted(features) == ["Other things", "Things that work"]
    failed = [e["name"] for e in features["Things that work"]["elements"]
              if any(s["result"]["status"] == "failed" for s in e["steps"])]
    assert failed == ["one fails"]
    assert "failures=\"1\"" in junit.read_text()
    assert "requirements on target fake" in result.outlines
    assert _summary(result.outlines)[1].split()[0] == "FAILED"
