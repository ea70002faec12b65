"""The site file's [tls] section: defaults, each invalid field named, the directory chosen."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.errors import SiteFileError
from infra.site import LETSENCRYPT_PRODUCTION, LETSENCRYPT_STAGING, load_site, parse_site
from steps.sites import site_data

ROOT = Path(__file__).resolve().parents[2]


def with_tls(**tls) -> dict:
    data = site_data("alpha")
    data["tls"] = tls
    return data


def test_a_site_without_tls_has_no_front_door_and_an_empty_tls_gets_the_defaults() -> None:
    bare = parse_site(site_data("alpha"))
    assert bare.tls is None and bare.apps == {}
    assert load_site(ROOT / "site.example.toml").name == "demo"
    site = parse_site(with_tls())
    assert site.tls.challenge == "http-01"
    assert site.tls.renew_days == 30
    assert site.tls.production is False
    assert site.tls.directory is None and site.tls.email is None


def test_a_full_tls_section_loads() -> None:
    site = parse_site(with_tls(challenge="dns-01", directory="https://acme.example.test/dir",
                               email="admin@example.test", renew_days=10))
    assert (site.tls.challenge, site.tls.renew_days) == ("dns-01", 10)
    assert site.tls.email == "admin@example.test"


@pytest.mark.parametrize(("field", "value"), [
    ("challenge", "tls-alpn-01"),
    ("directory", "http://acme.example.test/dir"),
    ("directory", "not a url"),
    ("email", "nobody"),
    ("renew_days", 0),
    ("renew_days", 31),
    ("production", "yes"),
    ("colour", "blue"),
])
def test_each_invalid_tls_field_is_named(field: str, value: object) -> None:
    with pytest.raises(SiteFileError) as refused:
        parse_site(with_tls(**{field: value}))
    assert any(p.startswith(f"tls.{field}:") for p in refused.value.problems), \
        refused.value.problems


def test_production_with_an_explicit_directory_is_refused_naming_production() -> None:
    with pytest.raises(SiteFileError) as refused:
        parse_site(with_tls(directory="https://acme.example.test/dir", production=True))
    assert [p.split(":")[0] for p in refused.value.problems] == ["tls.production"]


@pytest.mark.parametrize(("tls", "target", "expected"), [
    ({}, None, LETSENCRYPT_STAGING),
    ({"production": True}, None, LETSENCRYPT_PRODUCTION),
    ({}, "https://127.0.0.1:14000/dir", "https://127.0.0.1:14000/dir"),
    ({"directory": "https://acme.example.test/dir"}, "https://127.0.0.1:14000/dir",
     "https://acme.example.test/dir"),
])
def test_the_directory_is_the_sites_then_the_targets_then_lets_encrypt(
        tls: dict, target: str | None, expected: str) -> None:
    assert parse_site(with_tls(**tls)).tls.directory_for(target) == expected


def test_apps_without_a_front_door_are_refused() -> None:
    data = site_data("alpha")
    data["apps"] = {"ingress": {}}
    with pytest.raises(SiteFileError) as refused:
        parse_site(data)
    assert [p.split(":")[0] for p in refused.value.problems] == ["apps"]


def test_an_apps_table_from_a_toml_file_is_checked(tmp_path: Path) -> None:
    # The example without its front door and apps, which this test adds its own way.
    text = (ROOT / "site.example.toml").read_text().split("\n[tls]\n")[0]
    good = tmp_path / "good.toml"
    good.write_text(text + '\n[tls]\nchallenge = "dns-01"\n\n[apps.ingress]\n'
                           'memory_limit = "512m"\n')
    site = load_site(good)
    assert site.apps["ingress"].settings == {"memory_limit": "512m"}
    bad = tmp_path / "bad.toml"
    bad.write_text(text + '\n[apps.ingress]\nmemory_limit = "lots"\n')
    with pytest.raises(SiteFileError) as refused:
        load_site(bad)
    assert refused.value.problems[0].startswith("apps.ingress.memory_limit:")
