"""The cloud firewall as the fake's listeners enforce it: who gets into a droplet.

Unit and property tests of the pure model (fakes/digitalocean/models/firewall_policy.py),
then the same through the fake's HTTPS API with pydo: creating, replacing and deleting
a firewall, and tagging a droplet, fire `backend.firewall_changed_hooks` and change
`backend.inbound_policy(droplet_id)`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import pydo
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fakes.digitalocean.models.firewall_policy import InboundPolicy, build_inbound_policy
from fakes.digitalocean.models.firewalls import Firewall, Rule
from fakes.world import World
from tests.fake_clients import settle

INTERNET = "127.3.0.1"      # outside every admin CIDR (contract: Addresses)
ADMIN = "127.0.0.1"
ADMIN_CIDR = "127.0.0.0/24"
EVERYWHERE = ["0.0.0.0/0", "::/0"]


@dataclass
class Node:
    """Just what the policy reads of a droplet."""

    id: int
    tags: list[str] = field(default_factory=list)
    public_ipv4: str | None = None
    private_ipv4: str | None = None


def firewall(*rules: Rule, droplet_ids: tuple[int, ...] = (), tags: tuple[str, ...] = (),
             name: str = "fw") -> Firewall:
    return Firewall(id=name, name=name, created_at=0.0, inbound_rules=list(rules),
                    outbound_rules=[], droplet_ids=list(droplet_ids), tags=list(tags))


def tcp(ports: str, *addresses: str, **sources) -> Rule:
    return Rule(protocol="tcp", ports=ports, addresses=list(addresses), **sources)


SELF = Node(1, ["web"], "127.10.0.2", "127.12.0.2")


def policy(*firewalls: Firewall, node: Node = SELF, others: tuple[Node, ...] = ()) -> InboundPolicy:
    return build_inbound_policy(node.id, node.tags, firewalls, [node, *others])


# --- which firewalls apply ---------------------------------------------------------------

def test_a_droplet_no_firewall_covers_accepts_everything():
    elsewhere = firewall(tcp("443", *EVERYWHERE), droplet_ids=(99,), tags=("db",))
    open_policy = policy(elsewhere)
    assert not open_policy.guarded
    assert open_policy.allows(INTERNET, 22)
    assert open_policy.allows("::1", 8443, "udp")


def test_a_firewall_covers_a_droplet_by_id_or_by_one_of_its_tags():
    rule = tcp("443", *EVERYWHERE)
    assert policy(firewall(rule, droplet_ids=(SELF.id,))).guarded
    assert policy(firewall(rule, tags=("web",))).guarded
    assert not policy(firewall(rule, tags=("db",))).guarded


def test_a_firewall_with_only_outbound_rules_lets_nothing_in():
    # "If no inbound rules are configured, no incoming traffic is permitted" (DO docs)
    only_out = firewall(droplet_ids=(SELF.id,))
    only_out.outbound_rules = [Rule(protocol="tcp", ports="0", addresses=EVERYWHERE)]
    guarded = policy(only_out)
    assert guarded.guarded
    assert not guarded.allows(ADMIN, 443)


# --- ports, protocols, sources ----------------------------------------------------------

def test_the_ui_open_to_the_admin_cidr_only_and_the_web_open_to_all():
    fw = firewall(tcp("80", *EVERYWHERE), tcp("443", *EVERYWHERE),
                  tcp("8443", ADMIN_CIDR), tags=("web",))
    rules = policy(fw)
    assert rules.allows(INTERNET, 443) and rules.allows(INTERNET, 80)
    assert rules.allows(ADMIN, 8443)
    assert not rules.allows(INTERNET, 8443)
    assert not rules.allows(ADMIN, 22)


@pytest.mark.parametrize("ports", ["0", "all"])
def test_ports_0_and_all_mean_every_port(ports):
    # firewall_rule.yml: "0" when all ports are open; firewalls.py stores "all" as "0"
    rules = policy(firewall(tcp(ports, ADMIN_CIDR), droplet_ids=(1,)))
    assert rules.allows(ADMIN, 1) and rules.allows(ADMIN, 65535)
    assert not rules.allows(INTERNET, 443)


def test_a_port_range_includes_both_ends():
    rules = policy(firewall(tcp("8000-9000", *EVERYWHERE), droplet_ids=(1,)))
    assert rules.allows(INTERNET, 8000) and rules.allows(INTERNET, 9000)
    assert not rules.allows(INTERNET, 7999) and not rules.allows(INTERNET, 9001)


def test_a_rule_admits_only_its_protocol():
    udp = Rule(protocol="udp", ports="53", addresses=EVERYWHERE)
    icmp = Rule(protocol="icmp", ports="0", addresses=EVERYWHERE)
    rules = policy(firewall(udp, icmp, droplet_ids=(1,)))
    assert rules.allows(INTERNET, 53, "udp")
    assert not rules.allows(INTERNET, 53, "tcp")
    assert not rules.allows(INTERNET, 443)


def test_single_addresses_ipv6_and_ipv4_mapped_sources():
    rules = policy(firewall(tcp("443", "127.3.0.1", "2001:db8::/32"), droplet_ids=(1,)))
    assert rules.allows("127.3.0.1", 443)
    assert rules.allows("::ffff:127.3.0.1", 443)    # a dual-stack listener's peer name
    assert not rules.allows("127.3.0.2", 443)
    assert rules.allows("2001:db8::5", 443)
    assert not rules.allows("2001:db9::5", 443)


def test_a_source_that_is_not_an_address_is_refused_never_an_error():
    rules = policy(firewall(tcp("443", *EVERYWHERE), droplet_ids=(1,)))
    assert not rules.allows("", 443)
    assert not rules.allows("not-an-ip", 443)


def test_droplets_and_tags_as_sources_stand_for_their_public_and_private_addresses():
    # "Firewalls affect both public and VPC network traffic" (DO firewall limits)
    peer = Node(2, ["admin"], "127.10.0.3", "127.12.0.3")
    other = Node(3, [], "127.10.0.4", "127.12.0.4")
    unbooted = Node(4, ["admin"])           # no address yet: nothing to resolve
    by_tag = policy(firewall(tcp("22", tags=["admin"]), droplet_ids=(1,)),
                    others=(peer, other, unbooted))
    by_id = policy(firewall(tcp("22", droplet_ids=[2]), droplet_ids=(1,)),
                   others=(peer, other, unbooted))
    for rules in (by_tag, by_id):
        assert rules.allows("127.10.0.3", 22) and rules.allows("127.12.0.3", 22)
        assert not rules.allows("127.10.0.4", 22)
        assert not rules.allows(INTERNET, 22)


def test_load_balancer_and_kubernetes_sources_resolve_to_nothing_in_the_fake():
    rule = Rule(protocol="tcp", ports="443", load_balancer_uids=["lb"], kubernetes_ids=["k"])
    rules = policy(firewall(rule, droplet_ids=(1,)))
    assert rules.guarded and not rules.allows(INTERNET, 443)


def test_the_policy_is_an_immutable_snapshot():
    rules = policy(firewall(tcp("443", *EVERYWHERE), droplet_ids=(1,)))
    with pytest.raises(AttributeError):
        rules.guarded = False  # type: ignore[misc]
    assert isinstance(rules.rules, tuple)


# --- properties --------------------------------------------------------------------------

ports = st.integers(1, 65535)
protocols = st.sampled_from(["tcp", "udp"])
ipv4 = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))


@st.composite
def networks(draw) -> ipaddress.IPv4Network:
    prefix = draw(st.integers(0, 32))
    base = ipaddress.IPv4Address(draw(st.integers(0, 2**32 - 1)))
    return ipaddress.ip_network(f"{base}/{prefix}", strict=False)


@st.composite
def spans(draw) -> str:
    low = draw(ports)
    high = draw(st.integers(low, 65535))
    return draw(st.sampled_from([str(low), f"{low}-{high}", "0"]))


@st.composite
def rules(draw) -> Rule:
    cidrs = draw(st.lists(networks(), min_size=1, max_size=3))
    return Rule(protocol=draw(protocols), ports=draw(spans()),
                addresses=[str(c) for c in cidrs])


def span_of(text: str) -> range:
    if text == "0":
        return range(1, 65536)
    low, _, high = text.partition("-")
    return range(int(low), int(high or low) + 1)


@given(network=networks(), offset=st.integers(0, 2**32 - 1), span=spans(),
       pick=st.integers(0, 65535), protocol=protocols)
def test_a_source_inside_a_rules_cidr_on_a_listed_port_is_allowed(network, offset, span,
                                                                  pick, protocol):
    source = str(network[offset % network.num_addresses])
    listed = span_of(span)
    port = listed[pick % len(listed)]
    rule = Rule(protocol=protocol, ports=span, addresses=[str(network)])
    assert policy(firewall(rule, droplet_ids=(1,))).allows(source, port, protocol)


@given(source=ipv4, port=ports, protocol=protocols,
       rule_sets=st.lists(st.lists(rules(), max_size=3), max_size=3))
def test_without_a_firewall_that_covers_it_a_droplet_allows_everything(source, port,
                                                                      protocol, rule_sets):
    # The same firewalls, none of them on this droplet (the state after removing it).
    elsewhere = [firewall(*rs, droplet_ids=(99,), name=f"fw{i}") for i, rs in enumerate(rule_sets)]
    assert policy(*elsewhere).allows(source, port, protocol)
    assert policy().allows(source, port, protocol)


@given(rule_list=st.lists(rules(), min_size=1, max_size=5), source=ipv4, port=ports,
       protocol=protocols)
def test_a_port_outside_every_rule_is_refused(rule_list, source, port, protocol):
    if any(port in span_of(r.ports) for r in rule_list):
        return
    assert not policy(firewall(*rule_list, droplet_ids=(1,))).allows(source, port, protocol)


@given(first=st.lists(rules(), max_size=3), second=st.lists(rules(), max_size=3),
       source=ipv4, port=ports, protocol=protocols)
def test_two_firewalls_on_a_droplet_admit_the_union_of_their_rules(first, second, source,
                                                                  port, protocol):
    a = firewall(*first, droplet_ids=(1,), name="a")
    b = firewall(*second, tags=("web",), name="b")
    both = policy(a, b).allows(source, port, protocol)
    assert both == (policy(a).allows(source, port, protocol)
                    or policy(b).allows(source, port, protocol))


@given(rule_list=st.lists(rules(), max_size=4), extra=rules(), source=ipv4, port=ports,
       protocol=protocols)
def test_adding_a_rule_never_shuts_out_what_was_allowed(rule_list, extra, source, port,
                                                       protocol):
    before = policy(firewall(*rule_list, droplet_ids=(1,))).allows(source, port, protocol)
    after = policy(firewall(*rule_list, extra, droplet_ids=(1,))).allows(source, port, protocol)
    assert after or not before


@given(tag=st.sampled_from(["web", "db", "edge"]), carried=st.sets(
    st.sampled_from(["web", "db", "edge"])), port=ports)
def test_a_tag_firewall_applies_exactly_to_droplets_carrying_the_tag(tag, carried, port):
    node = Node(7, sorted(carried), "127.10.0.9")
    closed = firewall(tcp("1", "192.0.2.0/24"), tags=(tag,))
    rules = policy(closed, node=node)
    assert rules.guarded == (tag in carried)
    assert rules.allows(INTERNET, port) == (tag not in carried)


# --- through the fake's API --------------------------------------------------------------

@pytest.fixture
def calls(world: World):
    """Counts the firewall hook's calls; checks each one happens under the world's lock."""
    fired: list[bool] = []

    def hook() -> None:
        fired.append(world.backend.lock._is_owned())  # type: ignore[attr-defined]

    world.backend.firewall_changed_hooks.append(hook)
    yield fired
    world.backend.firewall_changed_hooks.remove(hook)


def _droplet(world: World, client: pydo.Client, name: str, tags: list[str]) -> dict:
    body = {"name": name, "size": "s-1vcpu-1gb", "image": "ubuntu-24-04-x64",
            "region": "nyc3", "tags": tags}
    droplet_id = client.droplets.create(body=body)["droplet"]["id"]
    settle(world)
    return client.droplets.get(droplet_id)["droplet"]


def _public(droplet: dict) -> str:
    return next(n["ip_address"] for n in droplet["networks"]["v4"] if n["type"] == "public")


def test_firewall_changes_over_the_api_fire_the_hook_and_change_the_policy(world, client,
                                                                           calls):
    node = _droplet(world, client, "policy-node", [])
    admin = _droplet(world, client, "policy-admin", ["policy-admins"])
    made = [node["id"], admin["id"]]
    try:
        assert world.backend.inbound_policy(node["id"]).allows(INTERNET, 8443)

        calls.clear()
        created = client.firewalls.create(body={
            "name": "policy-fw", "droplet_ids": [node["id"]],
            "inbound_rules": [{"protocol": "tcp", "ports": "443",
                               "sources": {"addresses": EVERYWHERE}}],
        })["firewall"]
        assert calls and all(calls)
        guarded = world.backend.inbound_policy(node["id"])
        assert guarded.allows(INTERNET, 443) and not guarded.allows(INTERNET, 8443)

        calls.clear()
        client.firewalls.update(created["id"], body={
            "name": "policy-fw", "droplet_ids": [node["id"]],
            "inbound_rules": [
                {"protocol": "tcp", "ports": "443", "sources": {"addresses": EVERYWHERE}},
                {"protocol": "tcp", "ports": "8443",
                 "sources": {"addresses": [ADMIN_CIDR], "tags": ["policy-admins"]}},
            ],
        })
        assert calls and all(calls)
        updated = world.backend.inbound_policy(node["id"])
        assert updated.allows(ADMIN, 8443) and updated.allows(_public(admin), 8443)
        assert not updated.allows(INTERNET, 8443)

        calls.clear()
        client.firewalls.delete(created["id"])
        assert calls and all(calls)
        assert world.backend.inbound_policy(node["id"]).allows(INTERNET, 8443)
    finally:
        for droplet_id in made:
            client.droplets.destroy(droplet_id)
        settle(world)


def test_tagging_a_droplet_puts_it_behind_the_tags_firewall(world, client, calls):
    node = _droplet(world, client, "tagged-node", [])
    fw = client.firewalls.create(body={
        "name": "edge-fw", "tags": ["policy-edge"],
        "inbound_rules": [{"protocol": "tcp", "ports": "80-443",
                           "sources": {"addresses": EVERYWHERE}}],
    })["firewall"]
    try:
        assert not world.backend.inbound_policy(node["id"]).guarded

        calls.clear()
        resources = {"resources": [{"resource_id": str(node["id"]),
                                    "resource_type": "droplet"}]}
        client.tags.assign_resources("policy-edge", body=resources)
        assert calls and all(calls)
        tagged = world.backend.inbound_policy(node["id"])
        assert tagged.firewalls == ("edge-fw",)
        assert tagged.allows(INTERNET, 443) and not tagged.allows(INTERNET, 8443)

        calls.clear()
        client.tags.unassign_resources("policy-edge", body=resources)
        assert calls and all(calls)
        assert world.backend.inbound_policy(node["id"]).allows(INTERNET, 8443)
    finally:
        client.firewalls.delete(fw["id"])
        client.droplets.destroy(node["id"])
        settle(world)


def test_a_droplet_source_stops_matching_once_that_droplet_is_gone(world, client, calls):
    node = _droplet(world, client, "guarded-node", [])
    peer = _droplet(world, client, "peer-node", [])
    fw = client.firewalls.create(body={
        "name": "peer-fw", "droplet_ids": [node["id"]],
        "inbound_rules": [{"protocol": "tcp", "ports": "22",
                           "sources": {"droplet_ids": [peer["id"]]}}],
    })["firewall"]
    try:
        assert world.backend.inbound_policy(node["id"]).allows(_public(peer), 22)
        calls.clear()
        client.droplets.destroy(peer["id"])
        settle(world)
        assert calls and all(calls)
        assert not world.backend.inbound_policy(node["id"]).allows(_public(peer), 22)
    finally:
        client.firewalls.delete(fw["id"])
        client.droplets.destroy(node["id"])
        settle(world)
