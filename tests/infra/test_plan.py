"""`plan`: what up would change, from what the account holds (no requests here)."""

from __future__ import annotations

import pytest

from infra import desired
from infra.errors import ConflictError, SiteFileError
from infra.observe import Observed
from infra.plan import make_plan
from steps.sites import build_site

SITE = build_site("alpha")
TAG = desired.site_tag(SITE)
SIZES = {
    "s-4vcpu-8gb": {"slug": "s-4vcpu-8gb", "memory": 8192, "regions": ["nyc3"], "available": True},
    "s-1vcpu-1gb": {"slug": "s-1vcpu-1gb", "memory": 1024, "regions": ["nyc3"], "available": True},
}
IP = "127.10.0.9"


def converged() -> Observed:
    droplet = {"id": 1, "name": "alpha-truenas", "region": {"slug": "nyc3"},
               "networks": {"v4": [{"type": "public", "ip_address": IP}]}}
    volumes = {name: {"id": f"v{i}", "name": name, "tags": [TAG], "size_gigabytes": 50,
                      "droplet_ids": [1]}
               for i, name in enumerate(desired.volume_names(SITE))}
    firewall = {"id": "f", "name": "alpha-firewall", "tags": [TAG],
                **desired.firewall_rules(SITE)}
    return Observed(
        sizes=SIZES, image={"id": 5, "name": "alpha-img", "status": "available"},
        volumes=volumes, droplet=droplet, firewall=firewall, domain_exists=True,
        records={h: [{"id": 10 + i, "data": IP}] for i, h in enumerate(SITE.dns.hostnames)},
    )


def test_an_empty_account_needs_everything() -> None:
    empty = Observed(sizes=SIZES, image=None, volumes={}, droplet=None, firewall=None,
                     domain_exists=False)
    kinds = make_plan(SITE, empty, {}).kinds()
    assert kinds.count("create_volume") == 2
    assert {"import_image", "create_droplet", "create_firewall", "create_domain"} <= set(kinds)
    assert kinds.count("create_record") == len(SITE.dns.hostnames)


def test_a_converged_site_needs_nothing() -> None:
    assert make_plan(SITE, converged(), {}).empty


def test_a_detached_volume_is_reattached_and_changed_rules_updated() -> None:
    seen = converged()
    seen.volumes["alpha-pool-b"]["droplet_ids"] = []
    seen.firewall["inbound_rules"] = seen.firewall["inbound_rules"][:2]
    assert make_plan(SITE, seen, {}).kinds() == ["attach_volume", "update_firewall"]


def test_a_volume_without_the_site_tag_is_not_ours() -> None:
    seen = converged()
    seen.volumes["alpha-pool-a"]["tags"] = []
    with pytest.raises(ConflictError, match="not this site's"):
        make_plan(SITE, seen, {})


def test_a_hostname_pointing_elsewhere_is_left_alone_unless_ours() -> None:
    seen = converged()
    host = SITE.dns.hostnames[0]
    seen.records[host] = [{"id": 99, "data": "127.99.0.1"}]
    with pytest.raises(ConflictError, match="did not create"):
        make_plan(SITE, seen, {})
    assert make_plan(SITE, seen, {host: 99}).kinds() == ["update_record"]


def test_a_droplet_size_too_small_for_truenas_is_a_site_file_error() -> None:
    small = build_site("alpha").model_copy(
        update={"site": SITE.site.model_copy(update={"droplet_size": "s-1vcpu-1gb"})})
    with pytest.raises(SiteFileError, match="site.droplet_size: .*at least 8 GB"):
        make_plan(small, converged(), {})


def test_a_failed_image_import_is_reported_not_retried_silently() -> None:
    seen = converged()
    seen.image = {"id": 5, "status": "NEW", "error_message": "Unsupported image format"}
    with pytest.raises(ConflictError, match="Unsupported image format"):
        make_plan(SITE, seen, {})


def test_a_hostname_dropped_from_the_file_loses_the_record_the_site_made() -> None:
    seen = converged()
    seen.records["old.example.test"] = [{"id": 77, "data": IP}]
    plan = make_plan(SITE, seen, {"old.example.test": 77})
    assert [(c.kind, c.subject) for c in plan.changes] == [("delete_record", "old.example.test")]
    assert plan.changes[0].requests == ("DELETE /v2/domains/*/records/*",)


def test_a_record_the_site_did_not_make_is_never_removed() -> None:
    seen = converged()
    seen.records["old.example.test"] = [{"id": 78, "data": IP}]
    assert make_plan(SITE, seen, {"old.example.test": 77}).empty


def test_a_smaller_volume_is_what_plan_cannot_change_and_says_why() -> None:
    seen = converged()
    seen.volumes["alpha-pool-a"]["size_gigabytes"] = 80
    plan = make_plan(SITE, seen, {})
    assert plan.empty
    assert [(c.kind, c.subject) for c in plan.cannot] == [("shrink_volume", "alpha-pool-a")]
    assert "only grow" in plan.cannot[0].detail


def test_another_droplet_size_is_reported_not_changed() -> None:
    seen = converged()
    seen.droplet["size_slug"] = "s-8vcpu-16gb"
    plan = make_plan(SITE, seen, {})
    assert plan.empty
    assert [c.kind for c in plan.cannot] == ["resize_droplet"]
    assert "s-8vcpu-16gb -> s-4vcpu-8gb" in plan.cannot[0].detail


def test_a_volume_missing_beside_a_running_droplet_is_created_and_attached() -> None:
    seen = converged()
    del seen.volumes["alpha-pool-b"]
    assert make_plan(SITE, seen, {}).kinds() == ["create_volume", "attach_volume"]
