"""system.* (reference/truenas-api.md §4 System; system.info.json, system.state.json).

`system.state` is BOOTING | READY | SHUTTING_DOWN and `system.ready` its boolean.
`system.info` fields per SystemInfoResult; datetimes (buildtime, boottime,
datetime) go on the wire as `{"$date": ms}` like every middleware datetime.
Chosen, not known for a real droplet: the hardware figures (a s-4vcpu-8gb
droplet: 4 cores, CPU model "DO-Regular"; `physmem` is the node's own, 8 GiB unless
an own node was booted with another), system_product "Droplet",
manufacturer "DigitalOcean", serial = the droplet id, timezone system.general's
(default "Etc/UTC"), and
`system.version` "TrueNAS-25.10.2" (older releases said "TrueNAS-SCALE-...").

system.general.* (reference/truenas-api.md §4 Web UI settings; system.general.config.json,
system.general.update.json; the model is models/ui_settings.py): `config`,
`update` (saved at once; the UI moves after `ui_restart <delay>` or
`ui_restart_delay`), `ui_restart`, `checkin`, `checkin_waiting`, and the choices
the UI offers (`ui_httpsprotocols_choices`, `ui_certificate_choices`).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from fakes.truenas.ejson import Timestamp
from fakes.truenas.errors import ValidationErrors
from fakes.truenas.methods.cert_specs import Ranged
from fakes.truenas.methods.params import (
    MISSING,
    NOT_GIVEN,
    Bool,
    Field,
    Int,
    List,
    Obj,
    Str,
    parse,
)
from fakes.truenas.models.certificates import store_of
from fakes.truenas.models.ui_settings import HTTPS_PROTOCOLS, settings_of
from fakes.truenas.node import TRUENAS_VERSION

BUILD_TIME = 1_760_000_000.0          # around 25.10's release, October 2025
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
        "physmem": node.physmem,
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
        "timezone": settings_of(node).saved["timezone"],
        "system_manufacturer": "DigitalOcean",
        "ecc_memory": False,
    }


def _port() -> Ranged:
    return Ranged(minimum=1, maximum=65535)


GENERAL_UPDATE = Obj({name: Field(spec, NOT_GIVEN) for name, spec in {
    "ui_certificate": Int(nullable=True),
    "ui_httpsport": _port(),
    "ui_httpsredirect": Bool(),
    "ui_httpsprotocols": List(Str(HTTPS_PROTOCOLS)),
    "ui_port": _port(),
    "ui_address": List(Str()),
    "ui_v6address": List(Str()),
    "ui_allowlist": List(Str()),
    "ui_consolemsg": Bool(),
    "ui_x_frame_options": Str(["SAMEORIGIN", "DENY", "ALLOW_ALL"]),
    "kbdmap": Str(),
    "timezone": Str(min_length=1),
    "usage_collection": Bool(nullable=True),
    "ds_auth": Bool(),
    "ui_restart_delay": Int(nullable=True),
    "rollback_timeout": Int(nullable=True),
}.items()})


def general_config(node, params, ctx):
    parse(params, [])
    return settings_of(node).config()


def general_update(node, params, ctx):
    (data,) = parse(params, [("general_settings", GENERAL_UPDATE, MISSING)])
    for name in ("ui_address", "ui_v6address"):
        if name in data and not data[name]:
            raise ValidationErrors([(f"general_settings.{name}",
                                     "List should have at least 1 item after validation, not 0",
                                     22)])
    if len(set(data.get("ui_httpsprotocols", []))) != len(data.get("ui_httpsprotocols", [])):
        raise ValidationErrors([("general_settings.ui_httpsprotocols",
                                 "List should have unique items", 22)])
    return settings_of(node).update(data)


def general_ui_restart(node, params, ctx):
    (delay,) = parse(params, [("delay", Int(minimum=0), 3)])
    settings_of(node).restart(delay)
    return None


def general_checkin(node, params, ctx):
    parse(params, [])
    settings_of(node).checkin()
    return None


def general_checkin_waiting(node, params, ctx):
    parse(params, [])
    return settings_of(node).checkin_waiting()


def general_ui_httpsprotocols_choices(node, params, ctx):
    parse(params, [])
    return {p: p for p in HTTPS_PROTOCOLS}


def general_ui_certificate_choices(node, params, ctx):
    """ui.py: certificates that are neither CSRs nor CAs, id -> name."""
    parse(params, [])
    store = store_of(node)
    now = node.clock.now()
    entries = [store.entry(r, now) for _, r in sorted(store.certs.items())]
    return {str(e["id"]): e["name"] for e in entries
            if not e["cert_type_CSR"] and not e["cert_type_CA"]}


METHODS = {
    "system.general.config": general_config,
    "system.general.update": general_update,
    "system.general.ui_restart": general_ui_restart,
    "system.general.checkin": general_checkin,
    "system.general.checkin_waiting": general_checkin_waiting,
    "system.general.ui_httpsprotocols_choices": general_ui_httpsprotocols_choices,
    "system.general.ui_certificate_choices": general_ui_certificate_choices,
    "system.state": state,
    "system.ready": ready,
    "system.info": info,
    "system.version": version,
    "system.version_short": version_short,
    "system.boot_id": boot_id,
}
