"""Loopback addresses for fake droplets and reserved IPs.

Every droplet gets its own 127.x.y.z so that its listeners are really separate
and no traffic ever leaves the machine (reference/this-machine.md §4). Addresses are never
reused within one world, so a stale DNS record can't point at a new droplet.
"""

from __future__ import annotations

import ipaddress
import threading


class AddressPool:
    def __init__(self, network: str) -> None:
        self._network = ipaddress.ip_network(network)
        if not self._network.subnet_of(ipaddress.ip_network("127.0.0.0/8")):
            raise ValueError(f"{network} is not inside loopback 127.0.0.0/8")
        self._hosts = self._network.hosts()
        next(self._hosts)  # keep .1 for the "gateway"
        self._lock = threading.Lock()

    @property
    def network(self):
        return self._network

    @property
    def gateway(self) -> str:
        return str(self._network.network_address + 1)

    @property
    def netmask(self) -> str:
        return str(self._network.netmask)

    def allocate(self) -> str:
        with self._lock:
            try:
                return str(next(self._hosts))
            except StopIteration:
                raise RuntimeError(f"address pool {self._network} is exhausted") from None
