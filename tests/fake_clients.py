"""Helpers for tests that drive a fake world through pydo."""

from __future__ import annotations

import json
import uuid

import pydo
import pytest
from azure.core.exceptions import HttpResponseError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fakes.world import World


def connect(world: World) -> pydo.Client:
    """A pydo client pointed at the world as any user would: from its world.json."""
    described = json.loads(world.world_file.read_text())
    return pydo.Client(
        described["digitalocean"]["token"],
        endpoint=described["digitalocean"]["endpoint"],
        connection_verify=described["ca_bundle"],
        retry_total=0,
    )


def ssh_key(client: pydo.Client) -> int:
    """A fresh SSH key registered on the account: a droplet from a custom image needs
    one (reference/digitalocean-api.md §5). Returns its id."""
    public = Ed25519PrivateKey.generate().public_key().public_bytes(
        Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    name = f"test-{uuid.uuid4().hex[:8]}"
    return client.ssh_keys.create({"name": name, "public_key": public})["ssh_key"]["id"]


def settle(world: World, seconds: float = 60.0) -> None:
    """Let virtual time pass at once (droplets boot, actions complete, firewalls apply)."""
    with world.backend.lock:
        world.clock.advance(seconds)


def refused(call, *args, **kwargs) -> tuple[int, str]:
    """The status and message of a call the API refuses."""
    with pytest.raises(HttpResponseError) as info:
        call(*args, **kwargs)
    return info.value.status_code, info.value.response.json()["message"]
