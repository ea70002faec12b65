"""`--target real` reads its credentials from the environment and refuses, before any
request, naming every missing variable and where to set it (issue 6 §1). No network:
a socket that tries to connect fails the test."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infra.cli import app
from infra.errors import TargetError
from infra.target import LETSENCRYPT_STAGING, REAL_REQUIRED, Target
from steps.cli_runner import CliRunner

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_SITE = REPO / "site.example.toml"
COMPLETE = {
    "DIGITALOCEAN_TOKEN": "dop_v1_distinctive-token-4711",
    "TRUENAS_API_KEY": "1-distinctive-api-key-0815",
    "TRUENAS_IMAGE_URL": "https://images.example.test/truenas-scale-25.10.img.gz",
}


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the target opened a connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_a_complete_environment_gives_a_real_target() -> None:
    target = Target.real_from_env(COMPLETE)
    assert target.kind == "real"
    assert target.do_endpoint == "https://api.digitalocean.com"
    assert target.do_token.reveal() == COMPLETE["DIGITALOCEAN_TOKEN"]
    assert target.truenas_api_key.reveal() == COMPLETE["TRUENAS_API_KEY"]
    assert target.acme_directory == LETSENCRYPT_STAGING
    assert target.acme_root_ca is None
    # the credentials are not in the target's repr (it may end up in a traceback)
    assert COMPLETE["DIGITALOCEAN_TOKEN"] not in repr(target)
    assert COMPLETE["TRUENAS_API_KEY"] not in repr(target)


def test_nothing_set_names_all_three_and_where_to_set_them() -> None:
    with pytest.raises(TargetError) as refused:
        Target.real_from_env({})
    message = str(refused.value)
    for name in ("DIGITALOCEAN_TOKEN", "TRUENAS_API_KEY", "TRUENAS_IMAGE_URL"):
        assert name in message
    assert "Export them" in message and "repository secrets" in message


@given(present=st.sets(st.sampled_from(sorted(REAL_REQUIRED))),
       blank=st.sampled_from(["", "   ", "\t"]))
def test_the_message_names_exactly_what_is_missing(present: set[str], blank: str) -> None:
    env = {name: (COMPLETE[name] if name in present else blank) for name in REAL_REQUIRED}
    if present == set(REAL_REQUIRED):
        assert Target.real_from_env(env).kind == "real"
        return
    with pytest.raises(TargetError) as refused:
        Target.real_from_env(env)
    message = str(refused.value)
    for name in REAL_REQUIRED:
        assert (name in message) == (name not in present), name
    # what is set is never repeated back: the token and key are secrets
    for name in present:
        assert COMPLETE[name] not in message


def test_the_admin_password_stands_in_for_the_api_key() -> None:
    # a freshly built image knows only its admin password; `up` creates the key from it
    env = {**COMPLETE, "TRUENAS_API_KEY": " ", "TRUENAS_ADMIN_PASSWORD": "distinctive-pw-31"}
    target = Target.real_from_env(env)
    assert target.kind == "real" and target.truenas_api_key is None
    assert "distinctive-pw-31" not in repr(target)


def test_without_key_or_password_the_message_offers_both() -> None:
    with pytest.raises(TargetError) as refused:
        Target.real_from_env({**COMPLETE, "TRUENAS_API_KEY": ""})
    message = str(refused.value)
    assert "TRUENAS_API_KEY" in message and "TRUENAS_ADMIN_PASSWORD" in message
    assert "DIGITALOCEAN_TOKEN" not in message


def test_acme_root_ca_is_read_from_the_environment(tmp_path) -> None:
    roots = tmp_path / "staging-roots.pem"
    roots.write_text("-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n")
    target = Target.real_from_env({**COMPLETE, "ACME_ROOT_CA": str(roots)})
    assert target.acme_root_ca == str(roots)


def test_an_acme_root_ca_that_is_not_a_file_is_refused(tmp_path) -> None:
    with pytest.raises(TargetError, match="ACME_ROOT_CA: no PEM file at"):
        Target.real_from_env({**COMPLETE, "ACME_ROOT_CA": str(tmp_path / "absent.pem")})


def test_the_cli_needs_only_the_token_since_the_site_file_has_the_rest() -> None:
    target = Target.real_from_env({"DIGITALOCEAN_TOKEN": "dop_v1_x"},
                                  required=("DIGITALOCEAN_TOKEN",))
    assert target.kind == "real" and target.truenas_api_key is None


def test_the_cli_without_a_token_exits_2_before_any_request() -> None:
    env = {name: None for name in (*REAL_REQUIRED, "FAKE_WORLD")}
    result = CliRunner().invoke(app, ["plan", "--site", str(EXAMPLE_SITE)], env=env)
    assert result.exit_code == 2, result.output
    assert "DIGITALOCEAN_TOKEN" in result.output
    assert "TRUENAS_IMAGE_URL" not in result.output


def test_pytest_with_the_real_target_stops_before_any_test_when_one_is_missing() -> None:
    # a subprocess: a usage error ends pytest's session, which must not be this one
    env = {k: v for k, v in os.environ.items()
           if k not in (*REAL_REQUIRED, "SPEC_TARGET", "ACME_ROOT_CA")}
    env["DIGITALOCEAN_TOKEN"] = COMPLETE["DIGITALOCEAN_TOKEN"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--target", "real", "--collect-only", "-q",
         str(Path(__file__).with_name("test_nightly_workflow.py"))],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, output
    assert "TRUENAS_API_KEY" in output and "TRUENAS_IMAGE_URL" in output
    assert "DIGITALOCEAN_TOKEN (" not in output
    assert COMPLETE["DIGITALOCEAN_TOKEN"] not in output
