"""The fake world: one clock, one DigitalOcean account, its DNS, on loopback.

Started in-process by a pytest fixture, or standalone with `python -m fakes`. It
writes `world.json` describing itself (endpoints, token, CA bundle, DNS address,
the TrueNAS API key and ports) so that any client (pydo, curl, infra/) can be
pointed at it. Droplets built from a TrueNAS image run a fake TrueNAS node
(fakes/truenas/fleet.py).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
from pathlib import Path

from starlette.applications import Starlette

from fakes.acme import PebbleServer, pebble_unavailable
from fakes.admin import admin_routes
from fakes.clock import VirtualClock
from fakes.digitalocean.api import DigitalOceanService, build_routes
from fakes.digitalocean.models import DigitalOceanBackend
from fakes.dns.outside import OutsideNames
from fakes.dns.server import DnsServer
from fakes.serving import HttpsServer
from fakes.tls import WorldCA
from fakes.truenas.fleet import TrueNASFleet, WorldServices, new_api_key

DEFAULT_SPEED = 500.0
# What a client should poll with against this world: 20 ms of wall time is
# 10 virtual seconds at the default speed, close to what terraform uses.
POLL_INTERVAL_SECONDS = 0.02
TICK_SECONDS = 0.01


def _claim_address_block() -> tuple[int, socket.socket]:
    """A free block (second octet) for a world's loopback addresses, and the socket
    that holds it: bound, never listening, to a port of an address of the block that
    no droplet gets (the last of the /16) until the world stops. A process that finds
    it taken (EADDRINUSE) tries another block."""
    blocks = list(range(10, 248, 3))
    secrets.SystemRandom().shuffle(blocks)
    for block in blocks:
        claim = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            claim.bind((f"127.{block}.255.254", 9))
        except OSError:
            claim.close()
            continue
        return block, claim
    raise RuntimeError("every loopback address block is taken by another fake world")


class World:
    def __init__(self, state_dir: Path, speed: float = DEFAULT_SPEED, host: str = "127.0.0.1",
                 port: int = 0, token: str | None = None, admin_secret: str | None = None,
                 truenas_api_key: str | None = None, acme: bool = True) -> None:
        """`token`, `admin_secret` and `truenas_api_key` are random unless given (a test
        that searches a run's output for them gives distinctive ones). `acme=False`
        starts no ACME server (pebble takes seconds to start: a test that never asks
        for a certificate need not wait for it)."""
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        self.host = host
        self.clock = VirtualClock(speed=speed)
        self.token = token or "dop_v1_" + secrets.token_hex(32)
        self.admin_secret = admin_secret or secrets.token_urlsafe(24)
        self.ca = WorldCA(self.state_dir)
        # A block of loopback addresses per world: two worlds on one machine (a test
        # session and a demo, or parallel test workers) must not both put a droplet
        # on 127.x.0.2:443, so the block is claimed, not only drawn at random.
        block, self._block_claim = _claim_address_block()
        self.backend = DigitalOceanBackend(self.clock, self.state_dir / "storage",
                                           address_block=block)
        self.digitalocean = DigitalOceanService(self.backend, self.clock, self.token)
        # The API key baked into the TrueNAS image: every node starts with it.
        self.truenas = TrueNASFleet(self.state_dir / "truenas", self.backend, self.clock,
                                    truenas_api_key or new_api_key())
        app = Starlette(routes=[*admin_routes(self), *build_routes(self.digitalocean)])
        cert = self.ca.issue("digitalocean", host, "localhost")
        self.https = HttpsServer(app, host, cert, port, now=self.clock.now)
        # Names the world answers outside the account (a home node's public names).
        self.outside_names = OutsideNames()
        self.dns = DnsServer(self.backend, host=host, outside=self.outside_names)
        # A real ACME server (pebble) resolving through our DNS and validating on the
        # droplets' port 80/443; without pebble installed the world runs and says why.
        self.acme_unavailable = pebble_unavailable() if acme else \
            "this fake world was started without an ACME server (World(acme=False))"
        self.acme = None if self.acme_unavailable else PebbleServer(
            self.state_dir, self.ca, (host, self.dns.port), http_port=self.truenas.ports["http"],
            tls_port=self.truenas.ports["https"], host=host)
        self._ticking = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="world-clock", daemon=True)

    @property
    def endpoint(self) -> str:
        return self.https.url

    @property
    def world_file(self) -> Path:
        return self.state_dir / "world.json"

    def describe(self) -> dict:
        return {
            "digitalocean": {"endpoint": self.endpoint, "token": self.token},
            "admin": {"endpoint": f"{self.endpoint}/_admin", "secret": self.admin_secret},
            "ca_bundle": str(self.ca.ca_path),
            "dns": {"host": self.host, "port": self.dns.port},
            "truenas": self.truenas.describe(),
            # A droplet's port P answers on host port port_map[P] at its address, or
            # on P when P is not listed (only ports this process may not bind are mapped).
            "network": {"port_map": {str(port): host_port for port, host_port
                                     in sorted(self.truenas.port_map.items())}},
            "acme": self.acme.describe() if self.acme else None,
            "acme_unavailable": self.acme_unavailable,
            "clock": {"speed": self.clock.speed},
            "timing": {"poll_interval_seconds": POLL_INTERVAL_SECONDS,
                       "time_scale": 1.0 / self.clock.speed},
        }

    def start(self) -> World:
        self.https.start()
        self.truenas.services = WorldServices(self.endpoint, str(self.ca.ca_path))
        self.dns.start()
        if self.acme:
            try:
                self.acme.start()
            except BaseException:
                self.dns.stop()
                self.https.stop()
                raise
        self._ticker.start()
        # world.json holds the token and admin secret: 0600, inside a 0700 directory.
        descriptor = os.open(self.world_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(self.describe(), handle, indent=2)
        return self

    def stop(self) -> None:
        self._ticking.set()
        self.clock.wakeup.set()
        if self._ticker.is_alive():
            self._ticker.join(timeout=5)
        self.truenas.stop_all()
        if self.acme:
            self.acme.stop()
        self.dns.stop()
        self.https.stop()
        self._block_claim.close()

    def __enter__(self) -> World:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

    def _tick(self) -> None:
        self.clock.tick_forever(self._ticking, self.backend.lock, TICK_SECONDS)
