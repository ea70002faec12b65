"""A clock jump skips the healthchecks of healthy containers that would change
nothing, and leaves exactly what running every probe one by one leaves.

Two identical nodes (same clock start) run the same app (one to three services, each
with its own healthcheck and an image healthy from some virtual time on) through the
same jumps, with the same things happening between them (an image turning sick or
well, the app stopped or started). One clock coalesces (fakes/clock.py `quiet_until`,
containers.py `_schedule_probe`), the other runs every probe. Afterwards each
container's status, health, failing streak and restarts, the app's state and when
each container is probed next must be the same.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from fakes.clock import VirtualClock
from fakes.truenas.apps import images
from tests.budget import examples
from tests.fakes.truenas.test_apps_runtime import Env, Scripted, succeeded

# Wall time must not move these clocks (see test_snapshot_jumps.py).
STILL = 1e-12
START = 1_780_000_000.0

checks = st.fixed_dictionaries({
    "test": st.just(["CMD", "true"]),
    "interval": st.sampled_from(["30s", "10m", "1h", "90m"]),
    "retries": st.integers(1, 3),
}, optional={
    "start_period": st.sampled_from(["1m", "20m"]),
    "start_interval": st.sampled_from(["2s", "1m"]),
})
services = st.lists(st.tuples(checks, st.sampled_from([0.0, 40.0, 3000.0, None])),
                    min_size=1, max_size=3)
events = st.lists(st.tuples(
    st.floats(1, 12 * 3600),                                    # a jump, in seconds
    st.sampled_from([None, None, "sicken", "heal", "stop", "start"]),
    st.integers(0, 2),                                          # which service
), min_size=1, max_size=5)


class Toggled(Scripted):
    """Healthy from `healthy_from` on, unless made sick between two jumps."""

    def __init__(self, clock) -> None:
        super().__init__(clock)
        self.sick = False

    def healthy(self, container):
        return not self.sick and super().healthy(container)


def _run(root: Path, coalesce: bool, spec: list, plan: list) -> dict:
    env = Env(root, VirtualClock(speed=STILL, start=START, coalesce=coalesce))
    succeeded(env.call("pool.create", {"name": "tank", "topology": {
        "data": [{"type": "MIRROR", "disks": ["sda", "sdb"]}]}}))
    job = env.call("docker.update", {"pool": "tank"})
    env.advance(15)
    succeeded(job)
    behaviours = []
    compose = {}
    try:
        for i, (check, healthy_after) in enumerate(spec):
            behaviour = Toggled(env.clock)
            behaviour.healthy_from = None if healthy_after is None else env.now() + healthy_after
            repository = f"example.test/jumps-{str(coalesce).lower()}-{i}"
            images.register(repository, behaviour)
            behaviours.append(behaviour)
            compose[f"s{i}"] = {"image": f"{repository}:1.0", "healthcheck": check}
        job = env.create("web", compose)
        env.advance(5)
        succeeded(job)
        for seconds, action, which in plan:
            env.advance(seconds)
            behaviour = behaviours[which % len(behaviours)]
            if action in ("sicken", "heal"):
                behaviour.sick = action == "sicken"
            elif action in ("stop", "start") and env.app("web") is not None:
                env.call(f"app.{action}", "web")
        env.advance(1)
        runtime = env.node.apps
        app = runtime.apps.get("web")
        containers = {}
        for container in (app.containers.values() if app is not None else []):
            pending = sorted(t.due for t in container._timers
                             if not t.cancelled and t.due > env.now())
            containers[container.service.name] = (
                container.status, container.health, container.failing_streak,
                container.restarts, container.exit_code, pending)
        entry = env.app("web")
        return {"now": env.now(), "state": entry and entry["state"], "containers": containers}
    finally:
        for i in range(len(spec)):
            images._REGISTRY.pop(f"example.test/jumps-{str(coalesce).lower()}-{i}", None)


@settings(max_examples=examples(fast=8, deep=20))
@given(spec=services, plan=events)
def test_skipping_quiet_probes_leaves_what_running_them_leaves(spec, plan):
    with tempfile.TemporaryDirectory() as fast, tempfile.TemporaryDirectory() as slow:
        assert _run(Path(fast), True, spec, plan) == _run(Path(slow), False, spec, plan)


def test_a_healthy_container_is_not_probed_hourly_through_a_long_jump(tmp_path):
    """The point of it: weeks of a healthy container cost a probe, not one an hour."""
    env = Env(tmp_path, VirtualClock(speed=STILL, start=START))
    succeeded(env.call("pool.create", {"name": "tank", "topology": {
        "data": [{"type": "MIRROR", "disks": ["sda", "sdb"]}]}}))
    job = env.call("docker.update", {"pool": "tank"})
    env.advance(15)
    succeeded(job)
    behaviour = Scripted(env.clock)
    images.register("example.test/jumps-long", behaviour)
    try:
        job = env.create("web", {"web": {"image": "example.test/jumps-long:1.0",
                                         "healthcheck": {"test": ["CMD", "true"],
                                                         "interval": "30s"}}})
        env.advance(120)
        assert env.app("web")["state"] == "RUNNING"
        with env.lock:
            fired = env.clock.advance(80 * 86400)
        assert fired < 5
        assert env.app("web")["state"] == "RUNNING"
    finally:
        images._REGISTRY.pop("example.test/jumps-long", None)
