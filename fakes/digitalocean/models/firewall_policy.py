"""What a droplet's cloud firewalls let in: a pure, immutable inbound policy.

Built under the world's lock from the firewalls and droplets of one account, then
read without any lock by the node's listeners (fakes/truenas/server.py), so it
holds only immutable values.

Facts followed:
- "Cloud firewalls block all traffic that isn't expressly permitted by a rule";
  "if no inbound rules are configured, no incoming traffic is permitted"
  (docs.digitalocean.com, firewalls/how-to/configure-rules). A droplet that no
  firewall covers is not filtered at all.
- A firewall covers a droplet listed in its `droplet_ids` or carrying one of its
  `tags`; several firewalls on one droplet act as the union of their rules
  (firewalls/how-to/manage-droplets: "the union of all of the Firewalls' rules").
- A rule is `{protocol: tcp|udp|icmp, ports, sources}`; `ports` is one port, a
  range "8000-9000", or "0" for every port of the protocol, and ICMP rules always
  answer "0" (firewall_rule.yml). `sources.addresses` holds IPv4/IPv6 addresses
  and CIDRs; `droplet_ids` and `tags` name droplets (reference/digitalocean-api.md §2).
- "Firewalls affect both public and VPC network traffic" (firewalls/details/
  limits), so a droplet named as a source stands for both its public and its
  private address.

Not modelled, or not known:
- "all" as `ports`: the evidence conflicts (see firewalls.py: terraform says the
  API answers "0" for "all", doctl/terraform issues quote a 422). The store
  accepts both and keeps "0"; this module reads "0" and "all" alike as every port.
- `load_balancer_uids` and `kubernetes_ids`: the fake has no load balancers or
  clusters, so these sources match nothing.
- Reserved IPs: a droplet's outbound traffic leaves from its own public address
  (a reserved IP is inbound only unless the anchor IP is used, which the fake
  lacks), so a reserved IP is not counted as a droplet's source address.
- The rollout delay: DigitalOcean shows a change as `waiting` for a few seconds
  (firewalls.py APPLY_SECONDS); how soon packets follow the change is not
  documented. The policy follows the model at once.
- Every address in the fake world is 127.x.y.z; they are read as ordinary IPv4
  addresses (0.0.0.0/0 holds them all).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ALL_PORTS = ("0", "all")
MAX_PORT = 65535


class RuleView(Protocol):
    """What this module reads of a rule (fakes/digitalocean/models/firewalls.Rule)."""

    protocol: str
    ports: str
    addresses: list[str]
    droplet_ids: list[int]
    tags: list[str]


class FirewallView(Protocol):
    """What this module reads of a firewall (firewalls.Firewall)."""

    name: str
    inbound_rules: list
    droplet_ids: list[int]
    tags: list[str]


class DropletView(Protocol):
    """What this module reads of a droplet (droplets.Droplet)."""

    id: int
    tags: list[str]
    public_ipv4: str | None
    private_ipv4: str | None


@dataclass(frozen=True)
class InboundRule:
    protocol: str
    low: int
    high: int
    sources: tuple[IPNetwork, ...]

    def matches(self, source: ipaddress.IPv4Address | ipaddress.IPv6Address,
                port: int, protocol: str) -> bool:
        return (protocol == self.protocol and self.low <= port <= self.high
                and any(source in network for network in self.sources))


@dataclass(frozen=True)
class InboundPolicy:
    """`guarded`: at least one firewall covers the droplet. `firewalls`: their names
    (for messages). `rules`: every inbound rule of those firewalls, sources resolved
    to networks."""

    guarded: bool = False
    firewalls: tuple[str, ...] = ()
    rules: tuple[InboundRule, ...] = ()

    def allows(self, source_ip: str, port: int, protocol: str = "tcp") -> bool:
        """Whether a connection from `source_ip` to the droplet's `port` gets in.

        Never raises: the node's accept loop calls it for every connection, and a
        source that is not an IP address cannot match any rule."""
        if not self.guarded:
            return True
        source = _address(source_ip)
        if source is None:
            return False
        protocol = protocol.lower()
        return any(rule.matches(source, port, protocol) for rule in self.rules)


OPEN = InboundPolicy()


def covers(firewall: FirewallView, droplet_id: int, droplet_tags: Iterable[str]) -> bool:
    """A firewall applies to a droplet named in its droplet_ids or carrying one of its tags."""
    return droplet_id in firewall.droplet_ids or bool(set(droplet_tags) & set(firewall.tags))


def build_inbound_policy(droplet_id: int, droplet_tags: Iterable[str],
                         firewalls: Iterable[FirewallView],
                         droplets: Iterable[DropletView]) -> InboundPolicy:
    """The inbound policy of droplet `droplet_id` (carrying `droplet_tags`), given the
    account's `firewalls` and `droplets` (to resolve droplet and tag sources)."""
    droplet_tags = tuple(droplet_tags)
    applying = [fw for fw in firewalls if covers(fw, droplet_id, droplet_tags)]
    if not applying:
        return OPEN
    droplets = list(droplets)
    rules = tuple(
        _inbound_rule(rule, droplets) for firewall in applying for rule in firewall.inbound_rules
    )
    return InboundPolicy(guarded=True, firewalls=tuple(fw.name for fw in applying),
                         rules=tuple(rule for rule in rules if rule is not None))


def _inbound_rule(rule: RuleView, droplets: Sequence[DropletView]) -> InboundRule | None:
    span = port_span(rule.ports)
    if span is None:
        return None
    sources: list[IPNetwork] = []
    for address in rule.addresses:
        try:
            sources.append(ipaddress.ip_network(address, strict=False))
        except ValueError:
            continue  # the store refuses these; a rule built by hand may still hold one
    wanted_ids = set(rule.droplet_ids)
    wanted_tags = set(rule.tags)
    for droplet in droplets:
        if droplet.id in wanted_ids or wanted_tags & set(droplet.tags):
            for address in (droplet.public_ipv4, droplet.private_ipv4):
                if address:
                    sources.append(ipaddress.ip_network(address))
    # load_balancer_uids / kubernetes_ids: nothing to resolve them to in the fake.
    return InboundRule(protocol=rule.protocol.lower(), low=span[0], high=span[1],
                       sources=tuple(sources))


def port_span(ports: str) -> tuple[int, int] | None:
    """"80" -> (80, 80); "8000-9000" -> (8000, 9000); "0"/"all" -> every port.
    None for anything else (the store refuses it before it gets here)."""
    ports = ports.strip()
    if ports.lower() in ALL_PORTS:
        return (0, MAX_PORT)
    low, _, high = ports.partition("-")
    try:
        span = (int(low), int(high or low))
    except ValueError:
        return None
    return span if 0 < span[0] <= span[1] <= MAX_PORT else None


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone
    except (ValueError, AttributeError):
        return None
    # A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
