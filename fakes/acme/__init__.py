"""A real ACME server for the fake world: pebble, Let's Encrypt's test CA
(reference/this-machine.md §1)."""

from fakes.acme.pebble import PebbleServer, PebbleStartError, pebble_unavailable

__all__ = ["PebbleServer", "PebbleStartError", "pebble_unavailable"]
