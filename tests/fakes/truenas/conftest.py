"""Fixtures the fake TrueNAS app tests share: an asyncio loop on its own thread, host
files a container reads, and an HTTP backend that echoes what reached it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.truenas.helpers import EchoBackend, HostFiles, LoopThread


@pytest.fixture
def files() -> HostFiles:
    return HostFiles()


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    running = LoopThread()
    yield running
    running.close()


@pytest.fixture
def backend() -> Iterator[EchoBackend]:
    server = EchoBackend()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def idle_nginx() -> Iterator[None]:
    """The app tests' stand-in image, declared (the fake refuses an image it has no
    behaviour for): `nginx` here listens on nothing and is always healthy."""
    from fakes.truenas.apps import images

    images.register("nginx", images.ImageBehaviour())
    yield
    images._REGISTRY.pop("nginx", None)
