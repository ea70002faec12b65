"""The fake world's admin API, for faults only a fake can make (`@fake_only`).

A fake target's handle (`Target.admin()`); it talks to the world over HTTPS like
everything else in infra/, and never imports fakes/."""

from __future__ import annotations

from typing import TYPE_CHECKING

import requests

if TYPE_CHECKING:
    from infra.target import Target


class FakeAdmin:
    def __init__(self, target: Target) -> None:
        if target.admin_endpoint is None or target.admin_secret is None:
            raise RuntimeError("this target has no fake admin API (a @fake_only step ran "
                               "against a real target)")
        self.endpoint = target.admin_endpoint
        # verify goes on every call: requests lets REQUESTS_CA_BUNDLE override a
        # session-wide `verify`, and the fake's CA must win here.
        self.verify = target.ca_bundle
        self.session = requests.Session()
        self.session.headers["X-Admin-Secret"] = target.admin_secret.reveal()

    def _post(self, path: str, body: dict, timeout: float = 10) -> dict:
        response = self.session.post(self.endpoint + path, json=body, timeout=timeout,
                                     verify=self.verify)
        response.raise_for_status()
        return response.json()

    def clock_now(self) -> float:
        """The world's virtual time (Unix seconds)."""
        response = self.session.get(self.endpoint + "/clock", timeout=10, verify=self.verify)
        response.raise_for_status()
        return float(response.json()["now"])

    def drop_port(self, port: int) -> None:
        """Every droplet becomes unreachable on `port`, whatever its firewall says."""
        self._post("/network/dropped-ports", {"port": port})

    def clear_dropped_ports(self) -> None:
        response = self.session.delete(self.endpoint + "/network/dropped-ports", timeout=10,
                                       verify=self.verify)
        response.raise_for_status()

    def fail_requests(self, method: str, path: str, status: int, count: int = 1,
                      mode: str = "before", retry_after: int | None = None) -> None:
        body = {"method": method, "path": path, "status": status, "count": count, "mode": mode}
        if retry_after is not None:
            body["retry_after"] = retry_after
        self._post("/faults", body)

    def clear_faults(self) -> None:
        response = self.session.delete(self.endpoint + "/faults", timeout=10, verify=self.verify)
        response.raise_for_status()

    def fail_next_action(self, action_type: str, count: int = 1) -> None:
        self._post("/actions/fail-next", {"type": action_type, "count": count})

    def advance_clock(self, seconds: float) -> None:
        # Weeks of virtual time fire every event in them (snapshot tasks of every site
        # that is up, health checks): this can take a while, and it is what was asked.
        self._post("/clock/advance", {"seconds": seconds}, timeout=600)

    def bit_rot(self, volume_id: str, dataset: str, path: str) -> None:
        """Flip bytes of one file on one mirror member only."""
        self._post("/truenas/bitrot", {"volume_id": volume_id, "dataset": dataset,
                                       "path": path})

    def requests(self) -> list[dict]:
        """The fake DigitalOcean's request journal: method, path, query, status..."""
        response = self.session.get(self.endpoint + "/requests", timeout=10, verify=self.verify)
        response.raise_for_status()
        return response.json()["requests"]

    def clear_requests(self) -> None:
        response = self.session.delete(self.endpoint + "/requests", timeout=10,
                                       verify=self.verify)
        response.raise_for_status()

    def truenas_calls(self) -> dict[str, list[str]]:
        """Each running fake node's address -> the method names called on it."""
        response = self.session.get(self.endpoint + "/truenas/calls", timeout=10,
                                    verify=self.verify)
        response.raise_for_status()
        return {node["address"]: node["calls"] for node in response.json()["nodes"]}

    def fail_host(self, droplet_id: int) -> None:
        self._post(f"/droplets/{droplet_id}/host-failure", {})
