"""A client of the fake world's admin API, for faults only a fake can make
(`@fake_only` steps, and tests that drive a fake world).

It reads the endpoint and secret from the world's `world.json` and talks HTTPS like
any other client (fakes/admin.py serves it); infra/ never uses it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from infra.net import https_request
from infra.secrets import Secret

TIMEOUT = 10.0


class AdminError(RuntimeError):
    """The admin API refused a call (the message never holds the secret)."""


class FakeAdmin:
    def __init__(self, endpoint: str, secret: Secret, ca_bundle: str) -> None:
        self.endpoint = endpoint
        self.secret = secret
        self.ca_bundle = ca_bundle

    @classmethod
    def from_world_file(cls, world_file: Path | str) -> FakeAdmin:
        world = json.loads(Path(world_file).read_text())
        return cls(world["admin"]["endpoint"], Secret(world["admin"]["secret"]),
                   world["ca_bundle"])

    def _call(self, method: str, path: str, body: dict | None = None,
              timeout: float = TIMEOUT) -> Any:
        url = urlsplit(self.endpoint + path)
        headers = {"X-Admin-Secret": self.secret.reveal(), "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        assert url.hostname is not None and url.port is not None, self.endpoint
        answer = https_request(url.hostname, url.port, url.hostname, method, url.path,
                               ca_bundle=self.ca_bundle, timeout=timeout, headers=headers,
                               body=data)
        if answer.status is None or answer.status >= 400:
            raise AdminError(f"{method} {path}: {answer.describe()}")
        return answer.json()

    def drop_port(self, port: int) -> None:
        """Every droplet becomes unreachable on `port`, whatever its firewall says."""
        self._call("POST", "/network/dropped-ports", {"port": port})

    def clear_dropped_ports(self) -> None:
        self._call("DELETE", "/network/dropped-ports")

    def fail_requests(self, method: str, path: str, status: int, count: int = 1,
                      mode: str = "before", retry_after: int | None = None) -> None:
        body: dict[str, Any] = {"method": method, "path": path, "status": status,
                                "count": count, "mode": mode}
        if retry_after is not None:
            body["retry_after"] = retry_after
        self._call("POST", "/faults", body)

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def fail_next_action(self, action_type: str, count: int = 1) -> None:
        self._call("POST", "/actions/fail-next", {"type": action_type, "count": count})

    def advance_clock(self, seconds: float) -> None:
        # Weeks of virtual time fire every event in them (snapshot tasks of every site
        # that is up, health checks): this can take a while, and it is what was asked.
        self._call("POST", "/clock/advance", {"seconds": seconds}, timeout=600)

    def bit_rot(self, volume_id: str, dataset: str, path: str) -> None:
        """Flip bytes of one file on one mirror member only."""
        self._call("POST", "/truenas/bitrot", {"volume_id": volume_id, "dataset": dataset,
                                               "path": path})

    def remove_file(self, droplet_id: int, path: str) -> None:
        """A process on the droplet's TrueNAS node deletes the file (the API has no
        method that deletes a file: the fake's admin API stands in for the process)."""
        self._call("POST", f"/truenas/nodes/{droplet_id}/unlink", {"path": path})

    def requests(self) -> list[dict]:
        """The fake DigitalOcean's request journal: method, path, query, status..."""
        return self._call("GET", "/requests")["requests"]

    def clear_requests(self) -> None:
        self._call("DELETE", "/requests")

    def truenas_calls(self) -> dict[str, list[str]]:
        """Each running fake node's address -> the method names called on it."""
        return {node["address"]: node["calls"]
                for node in self._call("GET", "/truenas/calls")["nodes"]}

    def fail_host(self, droplet_id: int) -> None:
        self._call("POST", f"/droplets/{droplet_id}/host-failure", {})

    def boot_own_node(self, disk_gigabytes: list[int], hostnames: list[str],
                      serial_prefix: str = "HOME", memory_gigabytes: int = 8) -> dict:
        """A TrueNAS node of one's own (not a droplet), with disks of these sizes
        (serials `<prefix>-1`, `<prefix>-2`...), this much RAM and these public names:
        its address, ports, API key, node_id and disks (name, serial, size)."""
        disks = [{"serial": f"{serial_prefix}-{index}", "size_gigabytes": size}
                 for index, size in enumerate(disk_gigabytes, start=1)]
        return self._call("POST", "/truenas/own-nodes",
                          {"disks": disks, "hostnames": hostnames,
                           "memory_gigabytes": memory_gigabytes})

    def stop_own_node(self, node_id: int, hostnames: list[str] = ()) -> None:
        self._call("DELETE", f"/truenas/own-nodes/{node_id}", {"hostnames": list(hostnames)})
