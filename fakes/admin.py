"""The fault-injection admin API: apart from `/v2`, guarded by its own secret.

Faults only a fake can make go here (DESIGN.md): fail the next N requests that
match a method and path, make the next action of a type errored, advance the
clock, make a droplet's host fail, change the rate limits, and read the request
journal; for the fake TrueNAS, rot bits of one file on one mirror member, have a
process on a node delete a file (the API deletes none), list the running nodes,
boot a TrueNAS node of one's own (not a droplet: issue 15 §6) with disks of given
sizes and its public names, and power it off. Every call needs the
header `X-Admin-Secret`.
"""

from __future__ import annotations

import errno
import hmac
import json
import time
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fakes.digitalocean.errors import ApiError
from fakes.truenas.errors import CallError

if TYPE_CHECKING:
    from fakes.world import World

PREFIX = "/_admin"


def admin_routes(world: World) -> list[Route]:
    service = world.digitalocean

    def guarded(handler):
        async def endpoint(request: Request) -> Response:
            supplied = request.headers.get("x-admin-secret", "")
            if not hmac.compare_digest(supplied, world.admin_secret):
                return JSONResponse({"error": "admin secret required"}, status_code=401)
            raw = await request.body()
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                return JSONResponse({"error": "body is not JSON"}, status_code=400)
            try:
                with service.backend.lock:
                    service.clock.run_due()
                    result = handler(body, request.path_params)
            except (ValueError, KeyError, TypeError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            except ApiError as exc:
                return JSONResponse({"error": exc.message}, status_code=exc.status)
            return JSONResponse(result if result is not None else {})

        return endpoint

    def add_fault(body: dict, _params: dict) -> dict:
        rule = service.faults.add(
            method=body["method"], path=body["path"], status=int(body["status"]),
            count=int(body.get("count", 1)), mode=body.get("mode", "before"),
            retry_after=body.get("retry_after"),
        )
        return {"method": rule.method, "path": rule.path.pattern, "status": rule.status,
                "remaining": rule.remaining, "mode": rule.mode}

    def clear_faults(_body: dict, _params: dict) -> None:
        service.faults.clear()

    def fail_next_action(body: dict, _params: dict) -> None:
        service.backend.actions.fail_next(body["type"], int(body.get("count", 1)))

    def advance_clock(body: dict, _params: dict) -> dict:
        service.clock.advance(float(body["seconds"]))
        if world.acme is not None:
            world.acme.follow_clock(service.clock.now() - time.time())
        return clock_state(body, _params)

    def clock_state(_body: dict, _params: dict) -> dict:
        return {"now": service.clock.now(), "speed": service.clock.speed}

    def host_failure(_body: dict, params: dict) -> dict:
        droplet = service.backend.droplets.fail_host(int(params["droplet_id"]))
        return {"droplet_id": droplet.id, "status": droplet.status}

    def rate_limits(body: dict, _params: dict) -> dict:
        service.limiter.configure(body.get("per_hour"), body.get("per_minute"))
        return {"per_hour": service.limiter.per_hour, "per_minute": service.limiter.per_minute}

    def requests_log(_body: dict, _params: dict) -> dict:
        return {"requests": [entry.to_dict() for entry in service.journal]}

    def clear_requests(_body: dict, _params: dict) -> None:
        service.journal.clear()

    def truenas_bit_rot(body: dict, _params: dict) -> dict:
        """Corrupt one file's bytes on one volume (one mirror member) only."""
        volume = service.backend.volumes.get(str(body["volume_id"]))
        dataset, path = str(body["dataset"]), str(body["path"])
        # The on-disk layout of pool data belongs to the TrueNAS models.
        try:
            from fakes.truenas.models import inject_bit_rot
        except ImportError:
            raise ApiError(501, "not_implemented",
                           "the fake TrueNAS models have no inject_bit_rot") from None
        try:
            result = inject_bit_rot(volume.backing_dir, dataset, path)
        except FileNotFoundError as exc:
            raise ApiError(404, "not_found", f"no such file on that volume: {exc}") from None
        return {"volume_id": volume.id, "dataset": dataset, "path": path,
                **(result if isinstance(result, dict) else {})}

    def truenas_unlink(body: dict, params: dict) -> dict:
        """A process on the droplet's node (an app, a shell) deletes one file: TrueNAS's
        API has no method that does (fakes/truenas/models/files.py)."""
        entry = world.truenas.nodes.get(int(params["droplet_id"]))
        if entry is None:
            raise ApiError(404, "not_found", "no TrueNAS node runs on that droplet")
        try:
            entry.node.storage.remove_file(str(body["path"]))
        except CallError as exc:      # no such file: 404; a directory, read-only: 409
            if exc.errno == errno.ENOENT:
                raise ApiError(404, "not_found", str(exc)) from None
            raise ApiError(409, "conflict", str(exc)) from None
        return {"droplet_id": entry.droplet_id, "path": body["path"]}

    def truenas_nodes(_body: dict, _params: dict) -> dict:
        return {"nodes": world.truenas.describe_nodes(), "errors": list(world.truenas.errors)}

    def truenas_calls(_body: dict, _params: dict) -> dict:
        """The methods called on each running node (names only, oldest first)."""
        return {"nodes": [{"droplet_id": entry.droplet_id, "address": entry.node.address,
                           "calls": list(entry.node.calls)}
                          for entry in world.truenas.nodes.values()]}

    def boot_own_node(body: dict, _params: dict) -> dict:
        """A TrueNAS node someone runs at home: `disks` [{serial, size_gigabytes}],
        `hostnames` its public names (answered by the world's DNS), `memory_gigabytes`
        its RAM (8 unless given: system.info physmem). The answer holds
        its address, ports, API key (as its owner would copy it from the UI) and disks."""
        disks = [(str(d["serial"]), int(d["size_gigabytes"]) * 2**30) for d in body["disks"]]
        entry = world.truenas.boot_own_node(disks, str(body.get("hostname", "truenas")),
                                            int(body.get("memory_gigabytes", 8)) * 2**30)
        for name in body.get("hostnames", []):
            world.outside_names.set(str(name), entry.node.address)
        # Own nodes are numbered 1, 2... here (the fleet keys them by -1, -2...).
        return {**entry.describe(), "node_id": -entry.droplet_id,
                "api_key": world.truenas.own_keys[entry.droplet_id],
                "disks": [{"name": disk.name, "serial": disk.serial, "size": disk.size}
                          for disk in entry.node.storage.disks.all()]}

    def stop_own_node(body: dict, params: dict) -> dict:
        node_id = -int(params["node_id"])
        entry = world.truenas.nodes.get(node_id)
        try:
            world.truenas.stop_own_node(node_id)
        except KeyError as exc:
            raise ApiError(404, "not_found", str(exc)) from None
        for name in body.get("hostnames", []):
            world.outside_names.remove(str(name))
        return {"node_id": -node_id, "address": entry.node.address if entry else None}

    def drop_port(body: dict, _params: dict) -> dict:
        world.truenas.drop_inbound_port(int(body["port"]))
        return {"dropped_ports": sorted(world.truenas.dropped_ports)}

    def clear_dropped_ports(_body: dict, _params: dict) -> dict:
        world.truenas.clear_dropped_ports()
        return {"dropped_ports": []}

    table = [
        ("POST", "/faults", add_fault),
        ("DELETE", "/faults", clear_faults),
        ("POST", "/actions/fail-next", fail_next_action),
        ("POST", "/clock/advance", advance_clock),
        ("GET", "/clock", clock_state),
        ("POST", "/droplets/{droplet_id:int}/host-failure", host_failure),
        ("POST", "/ratelimit", rate_limits),
        ("GET", "/requests", requests_log),
        ("DELETE", "/requests", clear_requests),
        ("POST", "/truenas/bitrot", truenas_bit_rot),
        ("GET", "/truenas/nodes", truenas_nodes),
        ("POST", "/truenas/nodes/{droplet_id:int}/unlink", truenas_unlink),
        ("GET", "/truenas/calls", truenas_calls),
        ("POST", "/truenas/own-nodes", boot_own_node),
        ("DELETE", "/truenas/own-nodes/{node_id:int}", stop_own_node),
        ("POST", "/network/dropped-ports", drop_port),
        ("DELETE", "/network/dropped-ports", clear_dropped_ports),
    ]
    return [Route(PREFIX + path, guarded(h), methods=[m]) for m, path, h in table]
