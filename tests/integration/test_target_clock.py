"""A target's clock (`Target.now`): a fake world tells its virtual time in the Date
header of its API's answers; other targets are on this machine's clock."""

from __future__ import annotations

import time

from fakes.world import World
from infra.target import Target
from tests.fake_clients import settle

DAY = 86400


def test_a_fake_target_tells_the_virtual_time_of_its_world(world: World) -> None:
    target = Target.from_world_file(world.world_file)
    before = world.clock.now()
    told = target.now()
    after = world.clock.now()
    # Date is in whole seconds: the told time is the second it fell in.
    assert int(before) <= told <= after
    settle(world, 30 * DAY)
    assert target.now() >= before + 30 * DAY


def test_a_real_target_is_on_this_machine_s_clock() -> None:
    target = Target.real_from_env({"DIGITALOCEAN_TOKEN": "t", "TRUENAS_API_KEY": "k",
                                   "TRUENAS_IMAGE_URL": "https://images.example.test/x.img"})
    before = time.time()
    assert before <= target.now() <= time.time()
