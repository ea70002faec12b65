"""system.* (truenas-api.md §4 System; system.info.json, system.state.json).

`system.state` is BOOTING | READY | SHUTTING_DOWN and `system.ready` its boolean.
`system.info` fields per SystemInfoResult; datetimes (buildtime, boottime,
datetime) go on the wire as `{"$date": ms}` like every middleware datetime.
Chosen, not known for a real droplet: the hardware figures (a s-4vcpu-8gb
droplet: 4 cores, 8 GiB, CPU model "DO-Regular"), system_product "Droplet",
manufacturer "DigitalOcean", serial = the droplet id, timezone "Etc/UTC", and
`system.version` "TrueNAS-25.10.2" (older releases said "TrueNAS-SCALE-...").
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from fakes.truenas.ejson import Timestamp
from fakes.truenas.methods.params import parse
from fakes.truenas.node import TRUENAS_VERSION

BUILD_TIME = 1_760_000_000.0          # around 25.10's release, October 2025
PHYSMEM = 8 * 2**30
CORES = 4


def state(node, params, ctx):
    parse(params, [])
    return node.state


def ready(node, params, ctx):
    parse(params, [])
    return node.state == "READY"


def version_short(node, params, ctx):
    parse(params, [])
    return TRUENAS_VERSION


def version(node, params, ctx):
    parse(params, [])
    return f"TrueNAS-{TRUENAS_VERSION}"


def boot_id(node, params, ctx):
    parse(params, [])
    return str(uuid.uuid5(uuid.NAMESPACE_OID, f"{node.droplet_id}:{node.booted_at}"))


def info(node, params, ctx):
    parse(params, [])
    now = node.clock.now()
    booted = node.booted_at or now
    uptime = max(0.0, now - booted)
    return {
        "version": TRUENAS_VERSION,
        "buildtime": Timestamp(BUILD_TIME),
        "hostname": node.hostname,
        "physmem": PHYSMEM,
        "model": "DO-Regular",
        "cores": CORES,
        "physical_cores": CORES,
        "loadavg": [0.0, 0.0, 0.0],
        "uptime": str(timedelta(seconds=uptime)),
        "uptime_seconds": uptime,
        "system_serial": str(node.droplet_id),
        "system_product": "Droplet",
        "system_product_version": "20171212",
        "license": None,
        "boottime": Timestamp(booted),
        "datetime": Timestamp(now),
        "timezone": "Etc/UTC",
        "system_manufacturer": "DigitalOcean",
        "ecc_memory": False,
    }


METHODS = {
    "system.state": state,
    "system.ready": ready,
    "system.info": info,
    "system.version": version,
    "system.version_short": version_short,
    "system.boot_id": boot_id,
}
