"""A human summary at the end of a spec run: each requirement (feature) with its result
on this target.

The cucumber JSON and JUnit reports are for machines; this is the few lines a person
reads at the bottom of a nightly log:

    requirements on target fake
      FAILED  The site survives losing its droplet (features/recovery.feature): 2 passed, 1 failed
      ok      A replicable TrueNAS node (features/node.feature): 14 passed, 1 skipped

A scenario counts once: failed if any of its phases (setup, call, teardown) failed or
errored, skipped if it was skipped (the reason is in pytest's own summary), else
passed. Tests that are not scenarios (unit tests run in the same session) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

OUTCOMES = ("passed", "failed", "skipped")


@dataclass
class FeatureResult:
    name: str
    path: str
    scenarios: dict[str, str] = field(default_factory=dict)   # nodeid -> outcome

    def counts(self) -> dict[str, int]:
        return {o: sum(1 for v in self.scenarios.values() if v == o) for o in OUTCOMES}

    @property
    def verdict(self) -> str:
        counts = self.counts()
        if counts["failed"]:
            return "FAILED"
        if counts["passed"]:
            return "ok"
        return "skipped"


def _feature(item: pytest.Item) -> tuple[str, str] | None:
    """(feature name, feature file) of a pytest-bdd scenario item, else None."""
    from pytest_bdd.scenario import scenario_wrapper_template_registry

    template = scenario_wrapper_template_registry.get(getattr(item, "obj", None))
    if template is None:
        return None
    feature = template.feature
    return feature.name or feature.rel_filename, feature.rel_filename


class RunSummary:
    """Collects each scenario's outcome by feature, and prints them at the end."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.features: dict[str, FeatureResult] = {}
        self.feature_of: dict[str, str] = {}     # nodeid -> feature file

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            found = _feature(item)
            if found is None:
                continue
            name, path = found
            self.features.setdefault(path, FeatureResult(name, path))
            self.feature_of[item.nodeid] = path

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        # Under pytest-xdist the process that prints the summary collected nothing:
        # each report says its feature (attributes travel with it to the controller).
        outcome = yield
        found = _feature(item)
        if found is not None:
            outcome.get_result().spec_feature = list(found)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        path = self.feature_of.get(report.nodeid)
        told = getattr(report, "spec_feature", None)
        if path is None and told:
            name, path = told
            self.features.setdefault(path, FeatureResult(name, path))
            self.feature_of[report.nodeid] = path
        if path is None:
            return
        scenarios = self.features[path].scenarios
        previous = scenarios.get(report.nodeid)
        if report.failed:
            scenarios[report.nodeid] = "failed"
        elif report.skipped and previous != "failed":
            scenarios[report.nodeid] = "skipped"
        elif report.when == "call" and report.passed and previous is None:
            scenarios[report.nodeid] = "passed"

    def lines(self) -> list[str]:
        """The summary as lines of text (empty when the run held no scenario)."""
        ran = [f for f in self.features.values() if f.scenarios]
        if not ran:
            return []
        target = getattr(self.config.option, "target", None) or "unspecified"
        order = {"FAILED": 0, "ok": 1, "skipped": 2}
        lines = [f"requirements on target {target}"]
        for result in sorted(ran, key=lambda f: (order[f.verdict], f.path)):
            counts = result.counts()
            told = ", ".join(f"{counts[o]} {o}" for o in OUTCOMES if counts[o])
            lines.append(f"  {result.verdict:<8}{result.name} ({result.path}): {told}")
        return lines

    def pytest_terminal_summary(self, terminalreporter) -> None:
        lines = self.lines()
        if not lines:
            return
        terminalreporter.section("requirements", sep="=")
        for line in lines:
            terminalreporter.write_line(line)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(RunSummary(config), "spec-run-summary")
