"""Docker networks of the fake node: named and external networks shared between apps,
and names resolved across apps the way Docker's embedded DNS does.

Driven through JSON-RPC on the virtual clock (the Env of test_apps_runtime.py, whose
node network records what is published instead of listening).
"""

from __future__ import annotations

import pytest

from fakes.truenas.apps import images
from tests.fakes.truenas.test_apps_runtime import Env, Scripted, succeeded

FRONT = {"front": {"name": "site-front"}}
FRONT_EXTERNAL = {"front": {"name": "site-front", "external": True}}


def docker_on_a_pool(root) -> Env:
    """A node with a mirrored pool `tank` and Docker running on it."""
    env = Env(root)
    succeeded(env.call("pool.create", {"name": "tank", "topology": {
        "data": [{"type": "MIRROR", "disks": ["sda", "sdb"]}]}}))
    job = env.call("docker.update", {"pool": "tank"})
    env.advance(15)
    succeeded(job)
    return env


@pytest.fixture
def docker(tmp_path) -> Env:
    return docker_on_a_pool(tmp_path)


@pytest.fixture
def web(docker):
    behaviour = Scripted(docker.clock)
    behaviour.listens = {4000: object()}
    images.register("example.test/netprobe", behaviour)
    yield behaviour
    images._REGISTRY.pop("example.test/netprobe", None)


def svc(**fields):
    return {"image": "example.test/netprobe:1.0", **fields}


def deploy(env: Env, name: str, services: dict, **extra) -> object:
    job = env.create(name, services, **extra)
    env.advance(6)
    return job


def view(behaviour: Scripted, app: str, service: str):
    return next(c for c in reversed(behaviour.seen) if c.app == app and c.service == service)


def test_two_apps_on_a_shared_network_reach_each_other_by_service_name(docker, web):
    succeeded(deploy(docker, "ingress", {"caddy": svc(networks=["front"])}, networks=FRONT))
    succeeded(deploy(docker, "uro", {"uro": svc(networks=["front", "default"]),
                                     "redis": svc()}, networks=FRONT_EXTERNAL))
    succeeded(deploy(docker, "lonely", {"solo": svc()}))

    caddy = view(web, "ingress", "caddy")
    uro = view(web, "uro", "uro")
    address, port = caddy.resolve_upstream("uro:4000")
    assert address == "127.10.0.5"
    # the unpublished port is served on an internal listener, owned as such
    assert docker.network.owners[port - 10000] == "internal:uro"
    assert caddy.resolve_upstream("ix-uro-uro-1:4000") == (address, port)
    assert uro.resolve_upstream("caddy:4000") is not None
    # redis is only on uro's default network: uro reaches it, caddy does not
    assert uro.resolve_upstream("redis:4000") is not None
    assert caddy.resolve_upstream("redis:4000") is None
    # an app on its own default network sees nobody else, and nobody sees it
    assert view(web, "lonely", "solo").resolve_upstream("uro:4000") is None
    assert caddy.resolve_upstream("solo:4000") is None
    # a port the image does not listen on is refused
    assert caddy.resolve_upstream("uro:5000") is None
    assert not any(p["container_port"] == 4000 for p in
                   docker.app("uro")["active_workloads"]["used_ports"])


def test_an_external_network_that_does_not_exist_fails_the_deploy(docker, web):
    job = deploy(docker, "uro", {"uro": svc(networks=["front"])}, networks=FRONT_EXTERNAL)
    assert job.state == "FAILED"
    assert "network site-front declared as external, but could not be found" in (
        job.logs_excerpt)
    assert "Failed 'up' action for 'uro' app" in job.error
    assert docker.app("uro") is None                  # TrueNAS removes a failed create


def test_a_network_stays_while_another_app_uses_it_and_goes_with_its_project(docker, web):
    succeeded(deploy(docker, "ingress", {"caddy": svc(networks=["front"])}, networks=FRONT))
    succeeded(deploy(docker, "uro", {"uro": svc(networks=["front"])}, networks=FRONT_EXTERNAL))
    [shown] = docker.app("ingress")["active_workloads"]["networks"]
    assert shown["Name"] == "site-front"
    assert shown["Labels"]["com.docker.compose.project"] == "ix-ingress"

    job = docker.call("app.delete", "ingress")
    docker.advance(1)
    succeeded(job)
    # uro is still attached: Docker refuses to remove it, and uro keeps its peers' DNS
    assert "site-front" in docker.node.apps.networks.existing
    redeploy = docker.call("app.redeploy", "uro")
    docker.advance(6)
    succeeded(redeploy)

    succeeded(docker.call("app.stop", "uro"))
    # nothing attached any more, but only its project's `down` removes a network
    assert "site-front" in docker.node.apps.networks.existing
    succeeded(deploy(docker, "ingress", {"caddy": svc(networks=["front"])}, networks=FRONT))
    job = docker.call("app.stop", "ingress")
    docker.advance(1)
    succeeded(job)
    assert "site-front" not in docker.node.apps.networks.existing
    start = docker.call("app.start", "uro")
    docker.advance(6)
    assert start.state == "FAILED"
    assert "declared as external, but could not be found" in start.logs_excerpt


def test_a_network_of_another_project_with_another_key_is_refused(docker, web):
    succeeded(deploy(docker, "ingress", {"caddy": svc(networks=["front"])}, networks=FRONT))
    job = deploy(docker, "other", {"x": svc(networks=["edge"])},
                 networks={"edge": {"name": "site-front"}})
    assert job.state == "FAILED"
    assert ('network site-front was found but has incorrect label '
            'com.docker.compose.network set to "front"') in job.logs_excerpt
    same_key = deploy(docker, "again", {"x": svc(networks=["front"])}, networks=FRONT)
    succeeded(same_key)                    # Compose only warns: reused
