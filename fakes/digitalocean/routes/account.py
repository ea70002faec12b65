"""Account, regions, sizes and actions."""

from __future__ import annotations

from fakes.digitalocean import catalog
from fakes.digitalocean.api import Call, Reply
from fakes.digitalocean.api import to_dict as _action_dict
from fakes.digitalocean.errors import not_found
from fakes.digitalocean.models import DigitalOceanBackend


def get_account(backend: DigitalOceanBackend, call: Call) -> Reply:
    return Reply(200, {"account": dict(backend.account)})


def list_regions(backend: DigitalOceanBackend, call: Call) -> Reply:
    return Reply(200, call.page("regions", [catalog.region_dict(s) for s in catalog.REGIONS]))


def list_sizes(backend: DigitalOceanBackend, call: Call) -> Reply:
    return Reply(200, call.page("sizes", [dict(s) for s in catalog.SIZES.values()]))


def list_actions(backend: DigitalOceanBackend, call: Call) -> Reply:
    actions = backend.actions.newest_first()
    return Reply(200, call.page("actions", actions, _action_dict))


def get_action(backend: DigitalOceanBackend, call: Call) -> Reply:
    action = backend.actions.get(call.params["action_id"])
    if action is None:
        raise not_found()
    return Reply(200, {"action": action.to_dict()})


ROUTES = [
    ("GET", "/v2/account", get_account),
    ("GET", "/v2/regions", list_regions),
    ("GET", "/v2/sizes", list_sizes),
    ("GET", "/v2/actions", list_actions),
    ("GET", "/v2/actions/{action_id:int}", get_action),
]
