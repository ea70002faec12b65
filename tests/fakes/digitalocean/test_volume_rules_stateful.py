"""Random sequences of volume and droplet calls obey DigitalOcean's attachment rules.

A hypothesis state machine drives the fake over HTTPS (the way any client would)
and predicts each answer from a small model of the real rules
(reference/digitalocean-api.md §5):

- a volume attaches to one droplet at a time, and only in its own region (422);
- attaching an attached volume is 422 "This volume is already attached";
- detaching what is not attached to that droplet is 422 "Attachment not found";
- deleting an attached volume is 409; deleting a droplet detaches its volumes and
  never deletes them;
- a droplet created with `volumes` gets them attached; a volume that is attached,
  gone, or in another region makes that create 422 "Invalid volume allocations".

After every step the fake's two views must agree with the model and with each other:
each volume's `droplet_ids` and each droplet's `volume_ids`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest
import requests
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from fakes.world import World
from tests.budget import examples

pytestmark = pytest.mark.fake_only

REGIONS = ("nyc3", "ams3")
SIZE, IMAGE = "s-1vcpu-1gb", "ubuntu-24-04-x64"
# Virtual seconds to jump so that each asynchronous event is surely over.
BOOT, ATTACH, DESTROY = 46.0, 7.0, 9.0
TIMEOUT = 10  # wall seconds for any one HTTP call

_examples = itertools.count(1)


class Fake:
    """The fake DigitalOcean over HTTPS, plus its admin clock."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.http = requests.Session()
        self.http.trust_env = False  # REQUESTS_CA_BUNDLE would override `verify`
        self.http.verify = str(world.ca.ca_path)
        self.http.headers["Authorization"] = f"Bearer {world.token}"

    def call(self, method: str, path: str, body: dict | None = None,
             **params) -> requests.Response:
        return self.http.request(method, self.world.endpoint + path, json=body,
                                 params=params or None, timeout=TIMEOUT)

    def admin(self, path: str, body: dict) -> None:
        response = self.http.post(f"{self.world.endpoint}/_admin{path}", json=body,
                                  headers={"X-Admin-Secret": self.world.admin_secret},
                                  timeout=TIMEOUT)
        response.raise_for_status()

    def advance(self, seconds: float) -> None:
        self.admin("/clock/advance", {"seconds": seconds})

    def close(self) -> None:
        self.http.close()


@dataclass
class Model:
    """What DigitalOcean's rules say the account holds."""

    volume_region: dict[str, str] = field(default_factory=dict)      # every volume made
    volume_name: dict[str, str] = field(default_factory=dict)
    attached_to: dict[str, int | None] = field(default_factory=dict)  # live volumes only
    droplet_region: dict[int, str] = field(default_factory=dict)      # every droplet made
    live_droplets: set[int] = field(default_factory=set)

    def volume_ids_of(self, droplet_id: int) -> set[str]:
        return {v for v, d in self.attached_to.items() if d == droplet_id}


def expect(response: requests.Response, status: int, why: str, message: str = "") -> None:
    assert response.status_code == status, (
        f"{response.request.method} {response.request.path_url}: expected {status} "
        f"({why}), got {response.status_code} {response.text}"
    )
    if status >= 400:
        assert response.json()["id"], "errors carry an id"
    if message:
        assert message in response.json()["message"], response.text


class VolumeRules(RuleBasedStateMachine):
    fake: Fake  # set by the test function

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        # Each example tags what it makes, so it only ever sees its own resources.
        self.tag = f"ex-{next(_examples)}"
        self._serial = itertools.count(1)

    # Rules mostly pick live resources (so attach, detach and delete meet each other
    # often); two rules revisit deleted ones. Small populations keep every example
    # far below the account's droplet and volume limits.
    def _room_for_a_volume(self) -> bool:
        return len(self.model.attached_to) < 6

    def _room_for_a_droplet(self) -> bool:
        return len(self.model.live_droplets) < 4

    def _has_volumes(self) -> bool:
        return bool(self.model.attached_to)

    def _has_droplets(self) -> bool:
        return bool(self.model.live_droplets)

    def _has_both(self) -> bool:
        return self._has_volumes() and self._has_droplets()

    @staticmethod
    def _pick(data, choices: list, label: str):
        # `choices` in creation order: the same draws must pick the same resource in
        # every run, whatever random ids the fake handed out.
        return data.draw(st.sampled_from(choices), label=label)

    def _live_volume(self, data) -> str:
        return self._pick(data, list(self.model.attached_to), "volume")

    def _live_droplet(self, data) -> int:
        return self._pick(data, sorted(self.model.live_droplets), "droplet")

    # --- creating --------------------------------------------------------------
    @precondition(_room_for_a_volume)
    @rule(region=st.sampled_from(REGIONS))
    def create_volume(self, region: str):
        name = f"{self.tag}-v{next(self._serial)}"
        response = self.fake.call("POST", "/v2/volumes", {
            "name": name, "size_gigabytes": 10, "region": region, "tags": [self.tag],
        })
        expect(response, 201, "a fresh name in an available region")
        volume_id = response.json()["volume"]["id"]
        self.model.volume_region[volume_id] = region
        self.model.volume_name[volume_id] = name
        self.model.attached_to[volume_id] = None

    def _create_droplet(self, region: str, volume_ids: list[str]) -> requests.Response:
        return self.fake.call("POST", "/v2/droplets", {
            "name": f"{self.tag}-d{next(self._serial)}", "region": region, "size": SIZE,
            "image": IMAGE, "tags": [self.tag], "volumes": volume_ids,
        })

    def _boot(self, response: requests.Response, region: str, volume_ids: list[str]) -> None:
        droplet_id = response.json()["droplet"]["id"]
        self.fake.advance(BOOT)
        droplet = self.fake.call("GET", f"/v2/droplets/{droplet_id}").json()["droplet"]
        assert droplet["status"] == "active"
        self.model.droplet_region[droplet_id] = region
        self.model.live_droplets.add(droplet_id)
        for volume_id in volume_ids:
            self.model.attached_to[volume_id] = droplet_id

    def _create_plain_droplet(self, region: str) -> None:
        response = self._create_droplet(region, [])
        expect(response, 202, "a plain droplet")
        self._boot(response, region, [])

    @initialize()
    def a_droplet_and_a_volume_in_each_region(self):
        for region in REGIONS:
            self.create_volume(region)
            self._create_plain_droplet(region)

    @precondition(_room_for_a_droplet)
    @rule(data=st.data(), region=st.sampled_from(REGIONS), with_volume=st.booleans())
    def create_droplet(self, data, region: str, with_volume: bool):
        if not with_volume:
            self._create_plain_droplet(region)
            return
        volume = self._pick(data, list(self.model.volume_region), "volume")  # even deleted
        response = self._create_droplet(region, [volume])
        if volume not in self.model.attached_to:
            expect(response, 422, "the volume was deleted", "Invalid volume allocations")
        elif self.model.attached_to[volume] is not None:
            expect(response, 422, "the volume is attached elsewhere",
                   "Invalid volume allocations")
        elif self.model.volume_region[volume] != region:
            expect(response, 422, "the volume is in another region",
                   "Invalid volume allocations")
        else:
            expect(response, 202, "a free volume in the droplet's region")
            self._boot(response, region, [volume])

    # --- attachment ------------------------------------------------------------
    def _volume_action(self, kind: str, volume: str, droplet: int,
                       by_name: bool) -> requests.Response:
        body = {"type": kind, "droplet_id": droplet,
                "region": self.model.volume_region[volume]}
        if by_name:
            body["volume_name"] = self.model.volume_name[volume]
            return self.fake.call("POST", "/v2/volumes/actions", body)
        return self.fake.call("POST", f"/v2/volumes/{volume}/actions", body)

    def _finish(self, response: requests.Response, action_type: str) -> None:
        action = response.json()["action"]
        assert action["type"] == action_type and action["status"] == "in-progress"
        self.fake.advance(ATTACH)
        done = self.fake.call("GET", f"/v2/actions/{action['id']}").json()["action"]
        assert done["status"] == "completed", done

    def _attach(self, volume: str, droplet: int, by_name: bool) -> None:
        model = self.model
        response = self._volume_action("attach", volume, droplet, by_name)
        if volume not in model.attached_to:
            expect(response, 404, "the volume was deleted")
        elif droplet not in model.live_droplets:
            expect(response, 404, "the droplet was deleted")
        elif model.volume_region[volume] != model.droplet_region[droplet]:
            expect(response, 422, "volume and droplet are in different regions")
        elif model.attached_to[volume] is not None:
            expect(response, 422, "one droplet per volume", "already attached")
        else:
            expect(response, 202, "a free volume and a droplet in its region")
            self._finish(response, "attach_volume")
            model.attached_to[volume] = droplet

    def _detach(self, volume: str, droplet: int, by_name: bool) -> None:
        model = self.model
        response = self._volume_action("detach", volume, droplet, by_name)
        if volume not in model.attached_to:
            expect(response, 404, "the volume was deleted")
        elif droplet not in model.live_droplets:
            expect(response, 404, "the droplet was deleted")
        elif model.attached_to[volume] != droplet:
            expect(response, 422, "not attached to that droplet", "Attachment not found")
        else:
            expect(response, 202, "the volume is attached to that droplet")
            self._finish(response, "detach_volume")
            model.attached_to[volume] = None

    @precondition(_has_both)
    @rule(data=st.data(), by_name=st.booleans())
    def attach(self, data, by_name: bool):
        self._attach(self._live_volume(data), self._live_droplet(data), by_name)

    @precondition(_has_both)
    @rule(data=st.data(), by_name=st.booleans())
    def detach(self, data, by_name: bool):
        volume = self._live_volume(data)
        # Usually the droplet it is attached to, sometimes any droplet.
        holder = self.model.attached_to[volume]
        if holder is not None and data.draw(st.booleans(), label="from its holder"):
            droplet = holder
        else:
            droplet = self._live_droplet(data)
        self._detach(volume, droplet, by_name)

    # --- deleting --------------------------------------------------------------
    def _delete_volume(self, volume: str) -> None:
        response = self.fake.call("DELETE", f"/v2/volumes/{volume}")
        if volume not in self.model.attached_to:
            expect(response, 404, "already deleted")
        elif self.model.attached_to[volume] is not None:
            expect(response, 409, "an attached volume cannot be deleted")
        else:
            expect(response, 204, "a detached volume")
            del self.model.attached_to[volume]

    def _delete_droplet(self, droplet: int) -> None:
        response = self.fake.call("DELETE", f"/v2/droplets/{droplet}")
        if droplet not in self.model.live_droplets:
            expect(response, 404, "already deleted")
            return
        expect(response, 204, "a live droplet")
        self.fake.advance(DESTROY)
        expect(self.fake.call("GET", f"/v2/droplets/{droplet}"), 404, "gone once destroyed")
        self.model.live_droplets.discard(droplet)
        for volume in self.model.volume_ids_of(droplet):
            self.model.attached_to[volume] = None  # detached, not deleted

    @precondition(_has_volumes)
    @rule(data=st.data())
    def delete_volume(self, data):
        self._delete_volume(self._live_volume(data))

    @precondition(_has_droplets)
    @rule(data=st.data())
    def delete_droplet(self, data):
        self._delete_droplet(self._live_droplet(data))

    def _deleted_volumes(self) -> list[str]:
        return [v for v in self.model.volume_region if v not in self.model.attached_to]

    def _deleted_droplets(self) -> list[int]:
        return [d for d in sorted(self.model.droplet_region)
                if d not in self.model.live_droplets]

    @precondition(_deleted_volumes)
    @rule(data=st.data(), call=st.sampled_from(["attach", "detach", "delete"]),
          by_name=st.booleans())
    def revisit_a_deleted_volume(self, data, call: str, by_name: bool):
        volume = self._pick(data, self._deleted_volumes(), "deleted volume")
        if call == "delete":
            self._delete_volume(volume)
            return
        droplet = self._pick(data, sorted(self.model.droplet_region), "any droplet")
        (self._attach if call == "attach" else self._detach)(volume, droplet, by_name)

    @precondition(_deleted_droplets)
    @rule(data=st.data(), call=st.sampled_from(["attach", "detach", "delete"]),
          by_name=st.booleans())
    def revisit_a_deleted_droplet(self, data, call: str, by_name: bool):
        droplet = self._pick(data, self._deleted_droplets(), "deleted droplet")
        if call == "delete":
            self._delete_droplet(droplet)
            return
        volume = self._pick(data, list(self.model.volume_region), "any volume")
        (self._attach if call == "attach" else self._detach)(volume, droplet, by_name)

    # --- the fake's views agree with the model and with each other --------------
    @invariant()
    def volumes_and_droplets_agree(self):
        volumes = self.fake.call("GET", "/v2/volumes", per_page=200).json()["volumes"]
        mine = {v["id"]: v["droplet_ids"] for v in volumes if self.tag in v["tags"]}
        droplets = self.fake.call("GET", "/v2/droplets", tag_name=self.tag,
                                  per_page=200).json()["droplets"]
        on_droplet = {d["id"]: set(d["volume_ids"]) for d in droplets}

        expected_volumes = {v: ([d] if d is not None else [])
                            for v, d in self.model.attached_to.items()}
        assert mine == expected_volumes, "volumes: fake vs model"
        assert set(on_droplet) == self.model.live_droplets, "droplets: fake vs model"
        for droplet_id, volume_ids in on_droplet.items():
            assert volume_ids == self.model.volume_ids_of(droplet_id), droplet_id
            for volume_id in volume_ids:
                assert mine[volume_id] == [droplet_id], "droplet_ids and volume_ids disagree"

    def teardown(self):
        # Best effort, so that a failure above is reported as it is: droplets first
        # (which detaches), then volumes; this keeps the account under its limits.
        for droplet in self.model.live_droplets:
            self.fake.call("DELETE", f"/v2/droplets/{droplet}")
        self.fake.advance(DESTROY)
        for volume in self.model.attached_to:
            self.fake.call("DELETE", f"/v2/volumes/{volume}")


@pytest.fixture
def fake(tmp_path):
    with World(tmp_path / "world", acme=False) as world:
        fake = Fake(world)
        # Hundreds of calls in a few wall seconds are hours of virtual time.
        fake.admin("/ratelimit", {"per_hour": 10**9, "per_minute": 10**9})
        yield fake
        fake.close()


def test_random_volume_and_droplet_calls_follow_digitaloceans_attachment_rules(fake):
    VolumeRules.fake = fake
    run_state_machine_as_test(
        VolumeRules,
        # No explain phase: tracing every HTTP call through it takes minutes.
        settings=settings(max_examples=examples(fast=10, deep=40),
                          stateful_step_count=30, deadline=None,
                          phases=[p for p in Phase if p is not Phase.explain]),
    )
