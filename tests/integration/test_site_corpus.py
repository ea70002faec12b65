"""Broken site files are refused before anything is made (issue 13).

Every file of tests/integration/site_corpus/ (its first line `# expect: FIELD...` names what the
refusal must name) goes through `plan` and `up` as a user runs them, against a fake
world: each exits 2 naming every expected field, with no traceback, no raw control
character and no markup interpreted, and the world's request journal shows no
mutating request. `plan` leaves no state directory behind. The key-file cases need
files git cannot hold (a directory, modes), made here beside a copy of the corpus.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fakes.world import World
from infra.cli import app
from infra.digitalocean import MUTATING
from steps.cli_runner import CliRunner
from steps.fake_admin import FakeAdmin

CORPUS = Path(__file__).resolve().parent / "site_corpus"
CASES = sorted(CORPUS.glob("*.toml"))
RUNNER = CliRunner()


def _expected(path: Path) -> list[str]:
    first = path.read_bytes().split(b"\n", 1)[0].decode("latin-1")
    first = first.removeprefix("\ufeff").removeprefix("ï»¿")
    assert first.startswith("# expect: "), f"{path.name} does not say what it expects"
    return first.removeprefix("# expect: ").split()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site-corpus")
    where = root / "corpus"
    shutil.copytree(CORPUS, where)
    (where / "keydir").mkdir()
    for name, mode, text in [("world-readable-key", 0o644, "a-key"), ("empty-key", 0o600, ""),
                             ("good-key", 0o600, "a-key")]:
        (where / name).write_text(text)
        os.chmod(where / name, mode)
    # What `../corpus/private-key` would reach: a file that exists, outside by '..'.
    (where / "private-key").write_text("a-key")
    os.chmod(where / "private-key", 0o600)
    return where


def _mutating(admin: FakeAdmin) -> list[tuple[str, str]]:
    return [(r["method"], r["path"]) for r in admin.requests()
            if r["method"].upper() in MUTATING]


def test_the_corpus_holds_the_issues_cases_and_more() -> None:
    names = {case.stem for case in CASES}
    assert {"key-file-missing", "key-file-directory", "key-file-world-readable",
            "key-file-escaping", "dataset-dotdot", "dataset-escaping", "cron-minute-61",
            "cron-hour-25", "image-xz", "snapshot-three-problems", "latin-1", "utf8-bom",
            "size-as-string", "domain-is-ipv4", "domain-numeric-tld", "admin-port-22",
            "domain-markup"} <= names
    assert len(names) >= 60


def test_the_corpus_base_is_a_site_plan_accepts(world: World, corpus: Path,
                                                 tmp_path: Path) -> None:
    """The broken files differ from a good one only where they say."""
    base = corpus / "base.toml"
    shutil.copy(corpus / "valid.toml.base", base)
    result = RUNNER.invoke(app, ["plan", "--site", str(base), "--world", str(world.world_file),
                                 "--state-dir", str(tmp_path / "state")])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "state").exists(), "plan wrote a state directory"


@pytest.mark.parametrize("command", ["plan", "up"])
@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_a_broken_site_file_is_refused_before_any_change(
        world: World, corpus: Path, tmp_path: Path, case: Path, command: str) -> None:
    admin = FakeAdmin.from_world_file(world.world_file)
    admin.clear_requests()
    state = tmp_path / "state"
    result = RUNNER.invoke(app, [command, "--site", str(corpus / case.name), "--world",
                                 str(world.world_file), "--state-dir", str(state)],
                           env={"TRUENAS_API_KEY": None, "DIGITALOCEAN_TOKEN": None})
    output = result.output
    assert result.exit_code == 2, output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in output
    assert "\x1b" not in output and "\x07" not in output, "a control character reached the terminal"
    flat = " ".join(output.split())
    for field in _expected(case):
        assert field in flat, f"{field} not named in: {output}"
    assert _mutating(admin) == []
    if command == "plan":
        assert not state.exists(), "plan wrote a state directory"


def test_markup_in_a_site_file_is_shown_as_typed(world: World, corpus: Path) -> None:
    result = RUNNER.invoke(app, ["plan", "--site", str(corpus / "domain-markup.toml"),
                                 "--world", str(world.world_file)])
    assert "[/x]probe.test" in result.output


def test_a_snapshot_entry_with_three_problems_gets_three_messages(corpus: Path) -> None:
    result = RUNNER.invoke(app, ["plan", "--site", str(corpus / "snapshot-three-problems.toml")])
    lines = [line for line in result.output.splitlines() if "snapshots[0]." in line]
    assert len(lines) == 3, result.output
