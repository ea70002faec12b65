"""The cost guard on a fake world, through the CLI a user runs (issue 6 §1).

Above `site.max_cost_usd`, `up` exits 1 naming the estimate, the limit and the biggest
item, and the account is exactly as it was; under it, `up` proceeds and reports its
estimate, and `down` reports the droplet-hours measured on the world's clock.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from fakes.world import World
from infra.cli import app
from infra.digitalocean import DigitalOcean
from infra.resources.droplet import find as find_droplet
from infra.site import load_site
from infra.target import Target
from steps import inventory
from steps.cli_runner import CliRunner
from steps.sites import set_field, site_data

RUNNER = CliRunner()


def _site_file(directory: Path, name: str, max_cost_usd: float) -> Path:
    # Without [tls]: the guard is about the cloud resources, not the front door.
    data = set_field(site_data(name), "site.max_cost_usd", max_cost_usd)
    data = set_field(data, "site.droplet_size", "s-4vcpu-8gb")
    data = set_field(data, "site.region", "nyc3")
    lines = []
    for table in ("site", "image", "dns", "access", "truenas"):
        lines.append(f"[{table}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in data[table].items()]
    for volume in data["volumes"]:
        lines.append("[[volumes]]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in volume.items()]
    path = directory / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _cli(world: World, *args: str, env: dict | None = None):
    return RUNNER.invoke(app, [*args, "--world", str(world.world_file)],
                         env={"DIGITALOCEAN_TOKEN": None, **(env or {})})


def _do(world: World) -> DigitalOcean:
    return DigitalOcean(Target.from_world_file(world.world_file))


def _inventory(world: World) -> dict[str, dict]:
    return inventory.take(_do(world))


def test_an_up_above_the_limit_creates_nothing_and_exits_1(world: World, tmp_path) -> None:
    # s-4vcpu-8gb ($48/month) for 3 h is about $0.21, the two 50 GiB volumes $0.04
    site = _site_file(tmp_path, "pricey", max_cost_usd=0.05)
    before = _inventory(world)
    result = _cli(world, "up", "--site", str(site), "--state-dir", str(tmp_path / "state"))
    assert result.exit_code == 1, result.output
    message = " ".join(result.output.split())
    assert "estimated at $0.26 for 3 h" in message
    assert "above site.max_cost_usd $0.05" in message
    assert "biggest items: droplet s-4vcpu-8gb $0.21" in message
    assert "Nothing was created" in message
    assert _inventory(world) == before


def test_an_up_under_the_limit_proceeds_and_down_measures_droplet_hours(
        world: World, tmp_path) -> None:
    site = _site_file(tmp_path, "thrifty", max_cost_usd=5.0)
    state = str(tmp_path / "state")
    up = _cli(world, "up", "--site", str(site), "--state-dir", state, "--json")
    assert up.exit_code == 0, up.output
    report = json.loads(up.stdout)
    assert report["cost"]["total_usd"] == 0.2589  # 3 * 48/672 + 3 * 100 * 0.10/672
    assert report["resources"]["droplet"] is not None
    droplet = find_droplet(_do(world), load_site(site))
    # created_at is whole seconds (ISO 8601): allow one second either way
    created_at = datetime.fromisoformat(droplet["created_at"].replace("Z", "+00:00"))
    earliest = (world.clock.now() - created_at.timestamp() - 1) / 3600

    down = _cli(world, "down", "--site", str(site), "--state-dir", state, "--json")
    assert down.exit_code == 0, down.output
    latest = (world.clock.now() - created_at.timestamp() + 1) / 3600
    measured = json.loads(down.stdout)["droplet_hours"]
    assert earliest <= measured <= latest
    assert not inventory.of_site(_inventory(world), "thrifty", [], "example.test")
