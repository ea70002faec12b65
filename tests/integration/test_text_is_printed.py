"""Text is printed, never interpreted (issue 13): Rich markup, control characters and
long strings, from the site file, the command line or an API's answer, reach the
terminal as typed (markup escaped, control characters as \\xNN) through every
command, and the CLI's own `[tls]` shows. None crashes, none prints a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fakes.world import World
from infra.cli import app
from steps.cli_runner import CliRunner
from steps.sites import site_data

MARKUP = "[/bold]x[red]y[/]"
CONTROL = "\x1b[31m\x07"
LONG = "z" * 400
RUNNER = CliRunner()


def _toml(data: dict) -> str:
    lines = []
    for table in ("site", "image", "dns", "access", "truenas"):
        lines.append(f"[{table}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in data[table].items()]
    for array in ("volumes", "snapshots"):
        for entry in data.get(array, []):
            lines.append(f"[[{array}]]")
            lines += [f"{key} = {json.dumps(value)}" for key, value in entry.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def site_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = site_data("markup")
    # The image name is the site file's one free-form string that reaches the cloud
    # (and comes back in its answers).
    data["image"]["name"] = MARKUP + CONTROL + LONG
    data["dns"] = {"domain": "markup.test", "hostnames": ["www.markup.test"], "ttl": 300}
    path = tmp_path_factory.mktemp("markup") / "markup.toml"
    path.write_text(_toml(data))
    return path


def _run(world: World, *args: str, state: Path | None = None, world_option: bool = True):
    extra = ["--world", str(world.world_file)] if world_option else []
    if state is not None:
        extra += ["--state-dir", str(state)]
    result = RUNNER.invoke(app, [*args, *extra], env={"COLUMNS": "500"})
    output = result.output
    assert isinstance(result.exception, SystemExit | None), repr(result.exception)
    assert "Traceback" not in output
    assert "\x1b" not in output and "\x07" not in output, output
    return result, " ".join(output.split())


def test_every_command_prints_text_as_typed(world: World, site_file: Path,
                                            tmp_path: Path) -> None:
    state = tmp_path / "state"
    site = ["--site", str(site_file)]
    result, text = _run(world, "plan", *site, state=state)
    assert result.exit_code == 0 and MARKUP in text and "\\x1b" in text, text
    result, text = _run(world, "up", *site, state=state)
    try:
        assert result.exit_code == 0, text
        assert MARKUP in text and "\\x1b[31m\\x07" in text and LONG[:50] in text
        result, text = _run(world, "check", *site, state=state)
        assert result.exit_code == 0, text
        assert MARKUP in text
        result, text = _run(world, "snapshot", "data", MARKUP + CONTROL, *site, state=state)
        assert result.exit_code == 1, text            # TrueNAS refuses the name
        result, text = _run(world, "restore", "data", MARKUP, *site, state=state)
        assert result.exit_code == 1, text
        result, text = _run(world, "renew", *site, state=state)
        assert result.exit_code == 1 and "[tls]" in text, text    # the CLI's own brackets
        result, text = _run(world, "repair", *site, state=state)
        assert result.exit_code == 0, text
        result, text = _run(world, "sweep", "--older-than", MARKUP + CONTROL)
        assert result.exit_code == 2 and MARKUP in text, text
        result, text = _run(world, "sweep", "--older-than", "9" * 30 + "d")
        assert result.exit_code == 2 and "--older-than" in text, text
        result, text = _run(world, "sweep", "--older-than", "1d", "--run-id", MARKUP + CONTROL,
                            "--tag", MARKUP, "--dry-run")
        assert result.exit_code == 0, text
    finally:
        result, text = _run(world, "down", *site, state=state)
    assert result.exit_code == 0, text
    assert MARKUP in text


def test_the_clis_own_brackets_show_in_site_file_messages(tmp_path: Path) -> None:
    data = site_data("brackets")
    path = tmp_path / "brackets.toml"
    path.write_text(_toml(data) + "\n[apps.gocd]\n")
    result = RUNNER.invoke(app, ["plan", "--site", str(path)])
    assert result.exit_code == 2
    assert "needs a [tls] section" in " ".join(result.output.split()), result.output


@pytest.mark.parametrize("where", ["a file", "a directory"])
def test_a_state_dir_that_is_not_one_is_a_message(world: World, site_file: Path,
                                                  tmp_path: Path, where: str) -> None:
    state = tmp_path / "state"
    if where == "a file":
        state.write_text("not a directory")
    else:
        (state / "ledger.json").mkdir(parents=True)
    result, text = _run(world, "up", "--site", str(site_file), state=state)
    assert result.exit_code == 2, text
    assert str(state) in text


def test_an_unreadable_ca_file_is_a_message(world: World, site_file: Path,
                                            tmp_path: Path) -> None:
    described = json.loads(world.world_file.read_text())
    described["ca_bundle"] = str(tmp_path / "no-such-ca.pem")
    broken = tmp_path / "world.json"
    broken.write_text(json.dumps(described))
    result = RUNNER.invoke(app, ["plan", "--site", str(site_file), "--world", str(broken)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "no-such-ca.pem" in " ".join(result.output.split())
