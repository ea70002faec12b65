"""JSON-RPC method name -> handler, for one fake TrueNAS node.

A handler is `handler(node, params: list, ctx: CallContext) -> result | Job`: it
checks the positional params, calls the models, and serialises. Job methods
return the Job they submitted through `node.jobs.submit(..., message_id=...)`.
The transport (rpc.py) keeps `core.*` and `auth.*` itself and calls the rest
through `node.call`, under `node.lock`.

While the node is BOOTING only `system.state` and `system.ready` answer (and the
transport's `core.*`); anything else is CallError("Middleware is not ready",
EBUSY). Middleware does refuse work before its plugins are loaded, but the exact
wording and errno a real node sends in that window are not known.
"""

from __future__ import annotations

import errno
import functools

from fakes.truenas.errors import CallError
from fakes.truenas.methods import (
    api_key,
    app,
    boot,
    certificate,
    dataset,
    disk,
    docker,
    filesystem,
    keychain,
    pool,
    replication,
    snapshot,
    snapshottask,
    system,
)

ALWAYS_AVAILABLE = ("system.state", "system.ready")

# The methods that are jobs (`@job` in their 25.10 plugin; each vendored schema's
# `job` agrees, tests/fakes/truenas/test_schemas.py checks both against what the handler
# returns), and their pipes (`job(pipes=[...])`): `core.get_methods` publishes both.
JOB_METHODS = frozenset({
    "pool.create", "pool.replace", "pool.scrub", "pool.export", "pool.import_find",
    "pool.import_pool", "filesystem.put", "filesystem.get", "filesystem.chown",
    "certificate.create", "certificate.update", "certificate.delete", "docker.update",
    "app.create", "app.update", "app.delete", "app.start", "app.stop", "app.redeploy",
    "core.job_wait", "replication.run", "replication.run_onetime"})
PIPES = {"filesystem.put": ("input",), "filesystem.get": ("output",)}
# Served because clients and the project call them, but private in 25.10 (`@private`,
# or a service with `private = True`): no API model, and `core.get_methods` leaves
# them out. disk.get_unused: plugins/disk_/availability.py; pool.flatten_topology:
# plugins/pool_/topology.py; zfs.snapshot.*: plugins/zfs_/snapshot.py (Config private);
# keychaincredential.ssh_pair: plugins/keychain.py (`private=True`), what another
# node's semi-automatic SSH setup calls.
PRIVATE_METHODS = frozenset({
    "disk.get_unused", "pool.flatten_topology", "zfs.snapshot.query",
    "zfs.snapshot.get_instance", "zfs.snapshot.create", "zfs.snapshot.delete",
    "zfs.snapshot.rollback", "zfs.snapshot.clone", "keychaincredential.ssh_pair"})


def _when_ready(name, handler):
    if name in ALWAYS_AVAILABLE or name.startswith("core."):
        return handler

    @functools.wraps(handler)
    def guarded(node, params, ctx):
        if node.state == "BOOTING":
            raise CallError("Middleware is not ready", errno.EBUSY)
        return handler(node, params, ctx)

    return guarded


METHODS = {
    name: _when_ready(name, handler)
    for module in (system, api_key, boot, disk, pool, dataset, snapshot, snapshottask, filesystem,
                   certificate, docker, app, keychain, replication)
    for name, handler in module.METHODS.items()
}

__all__ = ["JOB_METHODS", "METHODS", "PIPES", "PRIVATE_METHODS"]
