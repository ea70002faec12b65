"""The site file: valid files load, every invalid one is refused naming its field."""

from __future__ import annotations

import re
import tomllib
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


# --- a site on a node of one's own (issue 15 §6) --------------------------------------
def _own_example() -> dict:
    return tomllib.loads((ROOT / "site.own-hardware.example.toml").read_text())


def test_a_droplet_site_needs_its_dns_section() -> None:
    with pytest.raises(SiteFileError) as refused:
        parse_site(set_field(site_data("alpha"), "dns", ...))
    assert refused.value.problems == ["dns: is required"]


def test_a_site_on_its_own_node_without_tls_needs_no_dns_section() -> None:
    data = _own_example()
    del data["dns"], data["tls"]
    data.pop("apps", None)
    assert parse_site(data).dns is None
    with pytest.raises(SiteFileError) as refused:
        parse_site({**data, "tls": {"challenge": "http-01"}})
    assert [p for p in refused.value.problems if p.startswith("dns")] == [
        "dns: [tls] serves the site's public hostnames: add [dns] with the domain and the "
        "hostnames (or drop [tls])"]


def test_the_own_hardware_example_is_a_valid_site_without_a_droplet() -> None:
    site = parse_site(_own_example())
    assert site.on_own_node and site.node is not None
    assert site.image is None and site.volumes == [] and site.site.region is None
    assert site.node.disks == ["WD-WCC4N1234567", "WD-WCC4N7654321"]


@pytest.mark.parametrize("field, value, named", [
    ("node.disks", ["sdb"], "node.disks"),
    ("node.disks", ["sdb", "sdb"], "node.disks"),
    ("node.disks", ["sdb", "bad disk"], "node.disks"),
    ("node.address", "https://192.168.1.20:443", "node.address"),
    ("node.admin_port", 0, "node.admin_port"),
    ("node.api_key", "1-abc", "node.api_key"),
    ("node.password", "hunter2", "node.password"),
    ("site.region", "nyc3", "site.region"),
    ("site.droplet_size", "s-4vcpu-8gb", "site.droplet_size"),
    ("image", {"name": "x", "url": "https://h.test/x.qcow2"}, "image"),
    ("volumes", [{"name": "pool-a", "size_gigabytes": 10}] * 2, "volumes"),
])
def test_a_node_site_mistake_is_refused_naming_its_field(field: str, value: object,
                                                         named: str) -> None:
    with pytest.raises(SiteFileError) as refused:
        parse_site(set_field(_own_example(), field, value))
    assert any(p.startswith(named) for p in refused.value.problems), refused.value.problems
    assert "1-abc" not in str(refused.value.problems) and "hunter2" not in str(
        refused.value.problems)


@pytest.mark.parametrize("dropped", ["site.region", "site.droplet_size", "image", "volumes"])
def test_a_droplet_site_still_needs_what_its_droplet_needs(dropped: str) -> None:
    with pytest.raises(SiteFileError) as refused:
        parse_site(set_field(site_data("a-site"), dropped, ...))
    assert f"{dropped}: is required" in refused.value.problems
