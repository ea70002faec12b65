"""Fixtures shared by the tests that drive a fake world through pydo.

A module that needs something else defines its own `world` or `client`, which
takes precedence over these."""

from __future__ import annotations

import pytest

from fakes.world import World
from tests.fake_clients import connect


def _world(request: pytest.FixtureRequest, factory: pytest.TempPathFactory, **options):
    name = request.module.__name__.rsplit(".", 1)[-1]
    # pebble takes seconds to start: only for a module with a test marked `acme`
    acme = any(item.get_closest_marker("acme") for item in request.session.items
               if getattr(item, "module", None) is request.module)
    return World(factory.mktemp(name), acme=acme, **options)


@pytest.fixture(scope="module")
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    with _world(request, tmp_path_factory) as started:
        yield started


@pytest.fixture(scope="module")
def client(world: World):
    # Closing the client closes its keep-alive connections, so the world stops at once.
    with connect(world) as connected:
        yield connected


@pytest.fixture(scope="module")
def slow_world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A world whose clock barely moves by itself, to look at a change in flight."""
    with _world(request, tmp_path_factory, speed=1.0) as started:
        yield started


@pytest.fixture(scope="module")
def slow_client(slow_world: World):
    with connect(slow_world) as connected:
        yield connected
