"""Site files for the spec: one shape, a name per site, all in one account."""

from __future__ import annotations

import copy
import os

from infra.site import Site, parse_site

DOMAIN = "example.test"


# On a real account these come from the environment (a real, fetchable image).
FAKE_IMAGE_URL = "https://images.example.test/truenas-scale-25.10.img.gz"


# The front-door sites (features/tls.feature) and how each gets its certificate.
# Their admin network holds 127.0.0.1, where the suite runs from, since the admin UI
# moves behind the firewall's admin rule; they take no periodic snapshots, so that
# moving the clock weeks ahead stays cheap.
FRONT_DOOR_CHALLENGES = {"door-h": "http-01", "door-d": "dns-01"}
ADMIN_NETWORK = "127.0.0.0/24"

# The apps sites (features/apps.feature): a front door like door-h (http-01, admin
# network 127.0.0.0/24, no periodic snapshots) running the three project charts.
# Every site named apps-* gets them (apps-1 is brought up; others only feed refused
# site files). uro has no published image (reference/anchors-and-vsekai.md §4 uro): a real
# run names one in SPEC_URO_IMAGE; the fake recognises any image named .../uro.
APPS_PREFIX = "apps-"
URO_IMAGE = os.environ.get("SPEC_URO_IMAGE", "ghcr.io/v-sekai/uro:2025.06.1")


# The replication sites (features/replication.feature): "origin" is a production site
# whose periodic snapshot task of `data` runs once a year (Jan 1st, 03:00): no run
# bound to it starts by itself during a session and races a scenario's own (the
# scenarios take the task's snapshots themselves); each name in RECEIVERS receives
# its `data` ([[replication]]), with the source's file and state directory beside its
# own (steps/common.py's `Sites.site` writes them there). "weekly" replicates on a
# schedule of its own, Sundays at 03:00 (the clock is moved a week to see it run).
REPLICATION_SOURCE = "origin"
# "doomed" is a source like "origin" whose droplet a scenario destroys mid-transfer
# (its receiver "refuge" is then promoted without it); "origin" is shared by the
# other scenarios, so the lost source is a site of its own.
LOST_SOURCE = "doomed"
RECEIVERS = {"mirror": REPLICATION_SOURCE, "fork": REPLICATION_SOURCE,
             "slow": REPLICATION_SOURCE, "weekly": REPLICATION_SOURCE,
             "refuge": LOST_SOURCE, "stray": REPLICATION_SOURCE}
# "stray" is a receiver whose run a scenario abandons (state directory lost, droplet
# swept): what it left on "origin" is found and removed from the source's side.
REPLICATED = ["data"]
# "slow" and "refuge" receive at most this many bytes per second: a transfer long
# enough to cut.
SLOW_BYTES_PER_SECOND = 4 * 1024 * 1024
SLOW_RECEIVERS = ("slow", "refuge")

# Apps on the copy (features/replication.feature, issue 16 item 4): "gocd-prod" runs GoCD
# behind its front door (like apps-1: http-01, admin network 127.0.0.0/24, GoCD
# only, the cheapest chart with user data) and snapshots `apps` recursively once a
# year, as "origin" does `data` (no run starts by itself during a session);
# "gocd-staging" runs GoCD too and receives `apps/gocd` (with its child datasets) from
# it (RECEIVERS: its file is written beside its source's).
APPS_SOURCE = "gocd-prod"
APPS_RECEIVER = "gocd-staging"
RECEIVERS[APPS_RECEIVER] = APPS_SOURCE
RECEIVED_APP = "apps/gocd"


def site_data(name: str) -> dict:
    """A valid site file (as TOML data) for a site called `name`."""
    data = _base_site(name)
    if name in (REPLICATION_SOURCE, LOST_SOURCE):
        data["snapshots"] = [{"dataset": "data", "minute": "0", "hour": "3", "dom": "1",
                              "month": "1", "lifetime_value": 2, "lifetime_unit": "YEAR"}]
    if name in RECEIVERS:
        data["snapshots"] = []
        data["replication"] = [{"source": f"{RECEIVERS[name]}.toml",
                                "source_state_dir": RECEIVERS[name], "datasets": REPLICATED}]
        if name == APPS_RECEIVER:
            data["replication"][0].update({"datasets": [RECEIVED_APP], "recursive": True})
        if name in SLOW_RECEIVERS:
            data["replication"][0]["speed_limit"] = SLOW_BYTES_PER_SECOND
        if name == "weekly":
            data["replication"][0]["schedule"] = {"minute": "0", "hour": "3", "dow": "0"}
    if name in FRONT_DOOR_CHALLENGES:
        data["tls"] = {"challenge": FRONT_DOOR_CHALLENGES[name]}
        data["access"]["admin_cidrs"] = [ADMIN_NETWORK]
        data["snapshots"] = []
        if os.environ.get("SPEC_ACME_DIRECTORY"):
            data["tls"]["directory"] = os.environ["SPEC_ACME_DIRECTORY"]
    if name.startswith(APPS_PREFIX):
        data["tls"] = {"challenge": "http-01"}
        if os.environ.get("SPEC_ACME_DIRECTORY"):
            data["tls"]["directory"] = os.environ["SPEC_ACME_DIRECTORY"]
        data["access"]["admin_cidrs"] = [ADMIN_NETWORK]
        data["snapshots"] = []
        data["apps"] = {"cockroachdb": {}, "gocd": {}, "uro": {"image": URO_IMAGE}}
    if name in (APPS_SOURCE, APPS_RECEIVER):
        data["tls"] = {"challenge": "http-01"}
        if os.environ.get("SPEC_ACME_DIRECTORY"):
            data["tls"]["directory"] = os.environ["SPEC_ACME_DIRECTORY"]
        data["access"]["admin_cidrs"] = [ADMIN_NETWORK]
        data["apps"] = {"gocd": {}}
        if name == APPS_SOURCE:
            data["snapshots"] = [{"dataset": "apps", "recursive": True, "minute": "0",
                                  "hour": "3", "dom": "1", "month": "1",
                                  "lifetime_value": 2, "lifetime_unit": "YEAR"}]
    return data


def _base_site(name: str) -> dict:
    return {
        "site": {"name": name, "region": os.environ.get("SPEC_REGION", "nyc3"),
                 "droplet_size": os.environ.get("SPEC_DROPLET_SIZE", "s-4vcpu-8gb"),
                 "tags": ["spec-suite"]},
        "image": {"name": "truenas-scale-25-10",
                  "url": os.environ.get("TRUENAS_IMAGE_URL", FAKE_IMAGE_URL)},
        "volumes": [{"name": "pool-a", "size_gigabytes": 50},
                    {"name": "pool-b", "size_gigabytes": 50}],
        "dns": {"domain": DOMAIN, "hostnames": [f"{name}.{DOMAIN}", f"ci-{name}.{DOMAIN}"],
                "ttl": 300},
        "access": {"admin_cidrs": ["198.51.100.0/24"], "truenas_admin_port": 8443},
        "truenas": {"username": "truenas_admin", "pool": "tank", "datasets": ["apps", "data"]},
        "snapshots": [{"dataset": "data", "minute": "0", "hour": "*", "lifetime_value": 1,
                       "lifetime_unit": "DAY"}],
    }


# A site on a node of one's own (features/own_hardware.feature): its public names are
# in a domain the account does not hold (the owner's DNS answers for them), so `up`
# needs nothing of DigitalOcean.
OWN_DOMAIN = "home.test"


def own_node_site_data(name: str, address: str, disks: list[str], api_key_file: str,
                       tls: bool = False) -> dict:
    """A valid site file (as TOML data) for a site on the node at `address`, its pool
    mirrored over `disks`, logging in with the key in `api_key_file` (0600)."""
    data = _base_site(name)
    for droplet_only in ("image", "volumes"):
        del data[droplet_only]
    del data["site"]["region"], data["site"]["droplet_size"]
    data["node"] = {"address": address, "admin_port": 443, "disks": list(disks)}
    data["truenas"]["api_key_file"] = api_key_file
    data["dns"] = {"domain": OWN_DOMAIN, "hostnames": [f"{name}.{OWN_DOMAIN}"], "ttl": 300}
    if tls:
        data["tls"] = {"challenge": "http-01"}
        if os.environ.get("SPEC_ACME_DIRECTORY"):
            data["tls"]["directory"] = os.environ["SPEC_ACME_DIRECTORY"]
        data["access"]["admin_cidrs"] = [ADMIN_NETWORK]
    return data


def build_site(name: str) -> Site:
    return parse_site(site_data(name))


def set_field(data: dict, path: str, value: object) -> dict:
    """Set (or with value `...`, delete) a field given as `a.b[1].c`."""
    data = copy.deepcopy(data)
    parts: list[str | int] = []
    for piece in path.split("."):
        name, _, rest = piece.partition("[")
        parts.append(name)
        if rest:
            parts.append(int(rest.rstrip("]")))
    holder = data
    for part in parts[:-1]:
        if isinstance(part, str) and part not in holder and value is not ...:
            holder[part] = {}     # a table the base site file does not have yet
        holder = holder[part]
    if value is ...:
        del holder[parts[-1]]
    else:
        holder[parts[-1]] = value
    return data
