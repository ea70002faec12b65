"""The site's SSH key on a fake world (infra/resources/ssh_key.py, issue 10 item 6).

DigitalOcean refuses a droplet from a custom image without an SSH key. `up` registers
the site's own ed25519 key (generated once into the 0600 state directory) or sends the
fingerprints the site file names; `plan` shows the key it would register; `down` and
`sweep` remove a key the site registered and nothing else.
"""

from __future__ import annotations

import json
import stat
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fakes.world import World
from infra import desired
from infra.cli import app
from infra.digitalocean import DigitalOcean
from infra.resources import ssh_key
from infra.site import load_site
from infra.state import StateDir
from infra.sweep import Sweeper
from infra.target import Target
from steps.cli_runner import CliRunner
from steps.sites import set_field, site_data
from tests.fake_clients import settle

RUNNER = CliRunner()


def _site_file(directory: Path, name: str, **fields) -> Path:
    data = set_field(site_data(name), "site.region", "nyc3")
    for field, value in fields.items():
        data = set_field(data, field, value)
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


def _cli(world: World, *args: str):
    return RUNNER.invoke(app, [*args, "--world", str(world.world_file)],
                         env={"DIGITALOCEAN_TOKEN": None})


def _do(world: World) -> DigitalOcean:
    return DigitalOcean(Target.from_world_file(world.world_file))


def _keys(world: World) -> dict[str, dict]:
    do = _do(world)
    return {k["name"]: k for k in do.list_all("keys", do.client.ssh_keys.list, "ssh_keys")}


def _register(world: World, name: str) -> dict:
    public = Ed25519PrivateKey.generate().public_key().public_bytes(
        Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    return _do(world).client.ssh_keys.create({"name": name, "public_key": public})["ssh_key"]


def test_up_registers_the_site_key_and_down_removes_only_it(world: World, tmp_path) -> None:
    bystander = _register(world, "someone-laptop")
    site = _site_file(tmp_path, "keyed")
    state_dir = tmp_path / "state"

    plan = _cli(world, "plan", "--site", str(site), "--state-dir", str(state_dir), "--json")
    assert plan.exit_code == 0, plan.output
    kinds = [c["kind"] for c in json.loads(plan.stdout)["changes"]]
    assert "register_ssh_key" in kinds

    up = _cli(world, "up", "--site", str(site), "--state-dir", str(state_dir))
    assert up.exit_code == 0, up.output
    run_id = StateDir(state_dir).run_id()
    key = _keys(world)[f"keyed-ssh-{run_id}"]
    public = (state_dir / "ssh_key.pub").read_text()
    assert key["fingerprint"] == ssh_key.fingerprint(public)
    private = state_dir / "ssh_key"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_text() not in up.output
    assert "PRIVATE KEY" not in up.output

    again = _cli(world, "plan", "--site", str(site), "--state-dir", str(state_dir), "--json")
    assert json.loads(again.stdout)["changes"] == []

    down = _cli(world, "down", "--site", str(site), "--state-dir", str(state_dir))
    assert down.exit_code == 0, down.output
    left = _keys(world)
    assert f"keyed-ssh-{run_id}" not in left
    assert left["someone-laptop"]["id"] == bystander["id"]


def test_keys_named_in_the_site_file_are_sent_and_never_registered_or_deleted(
        world: World, tmp_path) -> None:
    mine = _register(world, "named-in-site")
    site = _site_file(tmp_path, "named", **{"access.ssh_key_fingerprints": [mine["fingerprint"]]})
    state_dir = tmp_path / "state"
    before = set(_keys(world))
    up = _cli(world, "up", "--site", str(site), "--state-dir", str(state_dir))
    assert up.exit_code == 0, up.output
    assert set(_keys(world)) == before
    assert not (state_dir / "ssh_key").exists()
    down = _cli(world, "down", "--site", str(site), "--state-dir", str(state_dir))
    assert down.exit_code == 0, down.output
    assert _keys(world)["named-in-site"]["id"] == mine["id"]


def test_a_bad_fingerprint_in_the_site_file_is_refused_naming_the_field(
        world: World, tmp_path) -> None:
    site = _site_file(tmp_path, "badprint", **{"access.ssh_key_fingerprints": ["SHA256:abc"]})
    result = _cli(world, "plan", "--site", str(site), "--state-dir", str(tmp_path / "s"))
    assert result.exit_code == 2
    assert "ssh_key_fingerprints" in result.output


def test_sweep_removes_the_key_of_a_run_with_nothing_left_and_no_other(
        world: World, tmp_path) -> None:
    do = _do(world)
    site = load_site(_site_file(tmp_path, "killed"))
    state = StateDir(tmp_path / "killed-state")
    # A run killed after registering its key, leaving one tagged volume behind.
    ssh_key.ensure(do, site, state)
    tags = desired.tags_for(site, state.run_id())
    do.client.volumes.create({"name": "killed-data", "size_gigabytes": 1, "region": "nyc3",
                              "tags": tags})
    # Another site's run, still going (its volume is young), and a user's own key.
    other = load_site(_site_file(tmp_path, "running"))
    other_state = StateDir(tmp_path / "running-state")
    settle(world, 7 * 3600)
    ssh_key.ensure(do, other, other_state)
    do.client.volumes.create({"name": "running-data", "size_gigabytes": 1, "region": "nyc3",
                              "tags": desired.tags_for(other, other_state.run_id())})
    _register(world, "a-users-key")

    dry = Sweeper(do, scope_tag="spec-suite").sweep(timedelta(hours=6), dry_run=True)
    assert [i.name for i in dry.deleted if i.kind == "ssh_key"] == \
        [f"killed-ssh-{state.run_id()}"]
    Sweeper(do, scope_tag="spec-suite").sweep(timedelta(hours=6))
    left = _keys(world)
    assert f"killed-ssh-{state.run_id()}" not in left
    assert f"running-ssh-{other_state.run_id()}" in left
    assert "a-users-key" in left
