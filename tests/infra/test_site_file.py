"""The site file: valid files load, every invalid one is refused naming its field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from infra import desired
from infra.errors import SiteFileError
from infra.site import load_site, parse_site
from steps.sites import set_field, site_data

ROOT = Path(__file__).resolve().parents[2]
# DigitalOcean's own name rules (droplet_create.yml pattern; volumes_ext4.yml wording)
DROPLET_NAME = re.compile(r"^[a-zA-Z0-9]?[a-z0-9A-Z.\-]*[a-z0-9A-Z]$")
VOLUME_NAME = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
TAG = re.compile(r"^[a-zA-Z0-9_\-:]{1,255}$")


def test_the_documented_example_is_a_valid_site() -> None:
    site = load_site(ROOT / "site.example.toml")
    assert site.name == "demo"
    assert len(site.volumes) == 2


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("site.name", "Bad_Name", "site.name"),
        ("site.region", "mars1", "site.region"),
        ("site.droplet_size", "S 4 GB", "site.droplet_size"),
        ("site.tags", ["has space"], "site.tags"),
        ("image.url", "ftp://x.test/a.img", "image.url"),
        ("volumes[0].name", "Data", "volumes[0].name"),
        ("volumes[1].size_gigabytes", 16385, "volumes[1].size_gigabytes"),
        ("dns.domain", "nodot", "dns.domain"),
        ("dns.hostnames", [], "dns.hostnames"),
        ("dns.hostnames", ["a.example.test", "a.example.test"], "dns.hostnames"),
        ("dns.ttl", 5, "dns.ttl"),
        ("access.admin_cidrs", ["0.0.0.0/0"], "access.admin_cidrs"),
        ("access.admin_cidrs", ["::/0"], "access.admin_cidrs"),
        ("access.truenas_admin_port", 443, "access.truenas_admin_port"),
        ("site.colour", "blue", "site.colour"),
    ],
)
def test_each_invalid_field_is_named(field: str, value: object, named: str) -> None:
    with pytest.raises(SiteFileError) as refused:
        parse_site(set_field(site_data("alpha"), field, value))
    assert any(problem.startswith(named + ":") for problem in refused.value.problems), \
        refused.value.problems


def test_every_problem_is_reported_at_once() -> None:
    data = set_field(site_data("alpha"), "site.region", "mars1")
    data = set_field(data, "dns.ttl", 1)
    with pytest.raises(SiteFileError) as refused:
        parse_site(data)
    assert len(refused.value.problems) == 2


def test_a_pool_needs_exactly_two_volumes() -> None:
    data = site_data("alpha")
    with pytest.raises(SiteFileError, match="exactly two"):
        parse_site(set_field(data, "volumes", data["volumes"] * 2))


def test_unreadable_and_malformed_files_are_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(SiteFileError, match="no such site file"):
        load_site(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[site\nname = 1")
    with pytest.raises(SiteFileError, match="not valid TOML"):
        load_site(broken)


site_names = st.from_regex(r"[a-z][a-z0-9-]{0,28}[a-z0-9]", fullmatch=True)
volume_names = st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z0-9]", fullmatch=True)


@given(name=site_names, first=volume_names, second=volume_names)
def test_names_derived_from_any_valid_site_are_valid_on_digitalocean(name: str, first: str,
                                                                     second: str) -> None:
    assume(first != second)
    data = set_field(site_data("alpha"), "site.name", name)
    data = set_field(data, "volumes[0].name", first)
    data = set_field(data, "volumes[1].name", second)
    data = set_field(data, "dns.hostnames", [f"{name}.example.test"])
    site = parse_site(data)
    assert DROPLET_NAME.match(desired.droplet_name(site))
    for derived in desired.volume_names(site):
        assert VOLUME_NAME.match(derived), derived
    for tag in desired.tags_for(site, "abcd1234"):
        assert TAG.match(tag), tag


@given(st.text(max_size=40))
def test_a_site_name_is_accepted_only_in_the_documented_shape(name: str) -> None:
    documented = re.fullmatch(r"[a-z][a-z0-9-]{0,28}[a-z0-9]", name) is not None
    try:
        parse_site(set_field(site_data("alpha"), "site.name", name))
        accepted = True
    except SiteFileError as refused:
        accepted = False
        assert all(p.startswith("site.name:") for p in refused.problems)
    assert accepted == documented


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("truenas.pool", "mirror", "truenas.pool"),
        ("truenas.datasets", ["ok", "bad name"], "truenas.datasets"),
        ("snapshots", [{"dataset": "elsewhere"}], "snapshots[0].dataset"),
        ("snapshots", [{"dataset": "data", "hour": "every"}], "snapshots[0].hour"),
        ("snapshots", [{"dataset": "data", "lifetime_unit": "FORTNIGHT"}],
         "snapshots[0].lifetime_unit"),
        ("snapshots", [{"dataset": "data", "naming_schema": "snap-%Y"}],
         "snapshots[0].naming_schema"),
    ],
)
def test_truenas_settings_are_checked_too(field: str, value: object, named: str) -> None:
    with pytest.raises(SiteFileError) as refused:
        parse_site(set_field(site_data("alpha"), field, value))
    assert any(problem.startswith(named + ":") for problem in refused.value.problems), \
        refused.value.problems


def test_the_example_describes_the_whole_site() -> None:
    """The demo brings this file up: the front door and every chart of charts/."""
    site = load_site(ROOT / "site.example.toml")
    assert site.tls is not None and site.tls.challenge in ("http-01", "dns-01")
    charts = {path.parent.name for path in (ROOT / "charts").glob("*/chart.toml")}
    assert set(site.apps) == charts
    assert not site.tls.production, "the example must not ask Let's Encrypt production"
    assert site.image.url.startswith("https://") and "?" not in site.image.url
