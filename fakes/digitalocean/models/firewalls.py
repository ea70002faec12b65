"""Cloud firewalls: rules, the droplets and tags they apply to, and their rollout.

Facts followed (reference/digitalocean-api.md §2 and §5, firewall.yml / firewall_rule.yml):
- create needs `name` (pattern `^[a-zA-Z0-9][a-zA-Z0-9\\.-]+$`) and at least one
  inbound or outbound rule; a rule is `{protocol: tcp|udp|icmp, ports, sources}`
  (inbound) or `{..., destinations}` (outbound), and a target lists addresses,
  droplet_ids, load_balancer_uids, kubernetes_ids and/or tags;
- `ports` is one port, a range like "8000-9000", or "0" for every port; ICMP rules
  always return "0" (firewall_rule.yml);
- the object adds `id` (uuid), `status` waiting|succeeded|failed, `created_at`
  and `pending_changes[{droplet_id, removing, status}]`, empty once applied;
- PUT takes a full representation: whatever is left out is reset (firewalls_update);
- droplets/tags/rules sub-resources answer 204 with no body.

What the real API does is not known for:
- "all": the evidence conflicts. terraform's `flattenFirewallInboundRules` says
  "The API returns 0 when the port range was specified as all"; doctl #247 and
  terraform PR #39 (2017) quote 422 "You must specify a positive value for
  ports" for "all" and "0", and patoroco/doorkeeper PR #17 (2021) a 422 "you must
  specify a valid range for ports" for "all". This fake accepts "all" and "0" and
  answers "0" for both;
- whether ICMP `ports` is checked (ignored here; doctl PR #278 omits it);
- the exact 422 texts; how long a rollout takes (APPLY_SECONDS); whether tags a
  firewall names must already exist (created here, as for droplets); what
  happens to rules naming a droplet that is later destroyed (left as they are).
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fakes.clock import iso
from fakes.digitalocean.errors import not_found, unprocessable
from fakes.digitalocean.models import validation as v

if TYPE_CHECKING:
    from fakes.digitalocean.models.backend import DigitalOceanBackend
    from fakes.digitalocean.models.droplets import Droplet

NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9.\-]+$")
PORTS = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?$")
PROTOCOLS = ("tcp", "udp", "icmp")
ALL_PORTS = "0"
# How long a change takes to reach the droplets (status waiting -> succeeded).
# Not documented anywhere we have read; a few seconds is a guess.
APPLY_SECONDS = 5.0

INBOUND, OUTBOUND = "inbound_rules", "outbound_rules"
SIDE = {INBOUND: "sources", OUTBOUND: "destinations"}
TARGET_KEYS = ("addresses", "droplet_ids", "load_balancer_uids", "kubernetes_ids", "tags")


@dataclass
class Rule:
    protocol: str
    ports: str
    addresses: list[str] = field(default_factory=list)
    droplet_ids: list[int] = field(default_factory=list)
    load_balancer_uids: list[str] = field(default_factory=list)
    kubernetes_ids: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)

    def key(self) -> tuple:
        """What makes two rules the same rule (order inside a target is irrelevant)."""
        return (self.protocol, self.ports,
                *(frozenset(getattr(self, name)) for name in TARGET_KEYS))

    def to_dict(self, side: str) -> dict:
        # The published examples leave out the target lists that are empty.
        targets = {name: list(getattr(self, name)) for name in TARGET_KEYS
                   if getattr(self, name)}
        return {"protocol": self.protocol, "ports": self.ports, side: targets}


@dataclass
class Firewall:
    id: str
    name: str
    created_at: float
    inbound_rules: list[Rule]
    outbound_rules: list[Rule]
    droplet_ids: list[int]
    tags: list[str]
    status: str = "waiting"
    # droplet id -> removing, for the droplets the current change still has to reach
    pending: dict[int, bool] = field(default_factory=dict)
    generation: int = 0

    def rules(self, kind: str) -> list[Rule]:
        return self.inbound_rules if kind == INBOUND else self.outbound_rules

    def to_dict(self) -> dict:
        pending = [] if self.status != "waiting" else [
            {"droplet_id": droplet_id, "removing": removing, "status": "waiting"}
            for droplet_id, removing in self.pending.items()
        ]
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "inbound_rules": [r.to_dict("sources") for r in self.inbound_rules],
            "outbound_rules": [r.to_dict("destinations") for r in self.outbound_rules],
            "created_at": iso(self.created_at),
            "droplet_ids": list(self.droplet_ids),
            "tags": list(self.tags),
            "pending_changes": pending,
        }


@dataclass
class _Spec:
    """A validated request body, not yet applied to anything."""

    name: str | None = None
    inbound_rules: list[Rule] = field(default_factory=list)
    outbound_rules: list[Rule] = field(default_factory=list)
    droplet_ids: list[int] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)

    def all_tags(self) -> list[str]:
        tags = list(self.tags)
        for rule in (*self.inbound_rules, *self.outbound_rules):
            tags.extend(rule.tags)
        return tags


class FirewallStore:
    def __init__(self, backend: DigitalOceanBackend) -> None:
        self.backend = backend
        self.firewalls: dict[str, Firewall] = {}
        backend.droplet_gone_hooks.append(self._droplet_gone)

    # --- queries -----------------------------------------------------------
    def all(self) -> list[Firewall]:
        return list(self.firewalls.values())

    def get(self, firewall_id: str) -> Firewall:
        firewall = self.firewalls.get(firewall_id)
        if firewall is None:
            raise not_found()
        return firewall

    def applies_to(self, droplet: Droplet) -> list[Firewall]:
        """The firewalls that cover a droplet, by its id or by any of its tags."""
        tags = set(droplet.tags)
        return [fw for fw in self.all()
                if droplet.id in fw.droplet_ids or tags.intersection(fw.tags)]

    def for_droplet(self, droplet_id: int) -> list[Firewall]:
        droplet = self.backend.droplets.get(droplet_id)
        return self.applies_to(droplet)

    # --- create / replace / delete -------------------------------------------
    def create(self, body: Any) -> Firewall:
        spec = self._parse(body, need_rules=True)
        self.backend.tags.ensure(spec.all_tags())
        firewall = Firewall(
            id=str(uuid.uuid4()), name=spec.name, created_at=self.backend.clock.now(),
            inbound_rules=spec.inbound_rules, outbound_rules=spec.outbound_rules,
            droplet_ids=spec.droplet_ids, tags=spec.tags,
        )
        self.firewalls[firewall.id] = firewall
        self._changed(firewall, before=set())
        return firewall

    def replace(self, firewall_id: str, body: Any) -> Firewall:
        """PUT: a full representation; anything left out goes back to its default.

        firewalls_update only says "full representation"; whether it, like
        create, insists on at least one rule is not documented, so it does not.
        """
        firewall = self.get(firewall_id)
        spec = self._parse(body, need_rules=False)
        self.backend.tags.ensure(spec.all_tags())
        before = self._reached(firewall)
        firewall.name = spec.name
        firewall.inbound_rules = spec.inbound_rules
        firewall.outbound_rules = spec.outbound_rules
        firewall.droplet_ids = spec.droplet_ids
        firewall.tags = spec.tags
        self._changed(firewall, before)
        return firewall

    def delete(self, firewall_id: str) -> None:
        firewall = self.get(firewall_id)
        del self.firewalls[firewall.id]
        self.backend.notify_firewall_changed()

    # --- sub-resources: droplets, tags, rules --------------------------------
    def add_droplets(self, firewall_id: str, body: Any) -> None:
        firewall = self.get(firewall_id)
        droplet_ids = self._droplet_ids(v.as_object(body), "droplet_ids", required=True)
        before = self._reached(firewall)
        for droplet_id in droplet_ids:
            if droplet_id not in firewall.droplet_ids:
                firewall.droplet_ids.append(droplet_id)
        self._changed(firewall, before)

    def remove_droplets(self, firewall_id: str, body: Any) -> None:
        firewall = self.get(firewall_id)
        droplet_ids = _int_list(v.as_object(body), "droplet_ids", required=True)
        before = self._reached(firewall)
        # Removing a droplet the firewall does not hold: real answer unknown; a no-op.
        firewall.droplet_ids = [d for d in firewall.droplet_ids if d not in droplet_ids]
        self._changed(firewall, before)

    def add_tags(self, firewall_id: str, body: Any) -> None:
        firewall = self.get(firewall_id)
        tags = _tags(v.as_object(body), "tags", required=True)
        self.backend.tags.ensure(tags)
        before = self._reached(firewall)
        for tag in tags:
            if tag not in firewall.tags:
                firewall.tags.append(tag)
        self._changed(firewall, before)

    def remove_tags(self, firewall_id: str, body: Any) -> None:
        firewall = self.get(firewall_id)
        tags = _tags(v.as_object(body), "tags", required=True)
        before = self._reached(firewall)
        firewall.tags = [t for t in firewall.tags if t not in tags]
        self._changed(firewall, before)

    def add_rules(self, firewall_id: str, body: Any) -> None:
        firewall = self.get(firewall_id)
        spec = self._rules_only(body)
        self.backend.tags.ensure(spec.all_tags())
        before = self._reached(firewall)
        for kind in (INBOUND, OUTBOUND):
            existing = firewall.rules(kind)
            known = {rule.key() for rule in existing}
            for rule in getattr(spec, kind):
                # Adding a rule the firewall already has: real answer unknown; kept once.
                if rule.key() not in known:
                    existing.append(rule)
                    known.add(rule.key())
        self._changed(firewall, before)

    def remove_rules(self, firewall_id: str, body: Any) -> None:
        firewall = self.get(firewall_id)
        spec = self._rules_only(body)
        before = self._reached(firewall)
        for kind in (INBOUND, OUTBOUND):
            doomed = {rule.key() for rule in getattr(spec, kind)}
            # A rule that matches nothing: real answer unknown; ignored.
            kept = [rule for rule in firewall.rules(kind) if rule.key() not in doomed]
            setattr(firewall, kind, kept)
        self._changed(firewall, before)

    # --- rollout -------------------------------------------------------------
    def _reached(self, firewall: Firewall) -> set[int]:
        """The droplets the firewall currently applies to."""
        droplets = self.backend.droplets.droplets
        reached = {d for d in firewall.droplet_ids if d in droplets}
        if firewall.tags:
            tags = set(firewall.tags)
            reached |= {d.id for d in droplets.values() if tags.intersection(d.tags)}
        return reached

    def _changed(self, firewall: Firewall, before: set[int]) -> None:
        after = self._reached(firewall)
        for droplet_id in sorted(after):
            firewall.pending[droplet_id] = False
        for droplet_id in sorted(before - after):
            firewall.pending[droplet_id] = True
        firewall.status = "waiting"
        firewall.generation += 1
        generation = firewall.generation
        self.backend.clock.call_later(APPLY_SECONDS, lambda: self._applied(firewall, generation))
        # Enforcement follows at once (firewall_policy.py: the real delay is unknown).
        self.backend.notify_firewall_changed()

    def _applied(self, firewall: Firewall, generation: int) -> None:
        if firewall.generation != generation or firewall.id not in self.firewalls:
            return  # a later change is still rolling out, or the firewall is gone
        firewall.status = "succeeded"
        firewall.pending.clear()

    # --- droplets going away -------------------------------------------------
    def _droplet_gone(self, droplet: Droplet) -> None:
        for firewall in self.all():
            if droplet.id in firewall.droplet_ids:
                firewall.droplet_ids.remove(droplet.id)
            firewall.pending.pop(droplet.id, None)

    # --- request parsing -----------------------------------------------------
    def _parse(self, body: Any, need_rules: bool) -> _Spec:
        body = v.as_object(body)
        v.require(body, "name")
        name = v.string(body, "name")
        if not NAME.match(name):
            raise unprocessable(
                f"name {name!r} is invalid: start with a letter or number, then use "
                "letters, numbers, dots and dashes (at least two characters)"
            )
        spec = _Spec(name=name)
        spec.inbound_rules = self._rules(body, INBOUND)
        spec.outbound_rules = self._rules(body, OUTBOUND)
        if need_rules and not spec.inbound_rules and not spec.outbound_rules:
            raise unprocessable("inbound_rules or outbound_rules is required: "
                                "a firewall needs at least one rule")
        spec.droplet_ids = self._droplet_ids(body, "droplet_ids")
        spec.tags = _tags(body, "tags")
        return spec

    def _rules_only(self, body: Any) -> _Spec:
        body = v.as_object(body)
        spec = _Spec(inbound_rules=self._rules(body, INBOUND),
                     outbound_rules=self._rules(body, OUTBOUND))
        if not spec.inbound_rules and not spec.outbound_rules:
            raise unprocessable("inbound_rules or outbound_rules is required")
        return spec

    def _rules(self, body: dict, kind: str) -> list[Rule]:
        raw = body.get(kind)
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise unprocessable(f"{kind} must be a list of rules")
        return [self._rule(item, f"{kind}[{index}]", SIDE[kind])
                for index, item in enumerate(raw)]

    def _rule(self, raw: Any, where: str, side: str) -> Rule:
        if not isinstance(raw, dict):
            raise unprocessable(f"{where} must be an object with protocol, ports and {side}")
        protocol = raw.get("protocol")
        if protocol not in PROTOCOLS:
            raise unprocessable(f"{where}.protocol must be tcp, udp or icmp")
        ports = _ports(protocol, raw.get("ports"), f"{where}.ports")
        targets = raw.get(side)
        if targets is None:
            raise unprocessable(f"{where}.{side} is required")
        if not isinstance(targets, dict):
            raise unprocessable(f"{where}.{side} must be an object")
        at = f"{where}.{side}"
        rule = Rule(
            protocol=protocol, ports=ports,
            addresses=_addresses(targets, at),
            droplet_ids=self._droplet_ids(targets, "droplet_ids", at),
            load_balancer_uids=_strings(targets, "load_balancer_uids", at),
            kubernetes_ids=_strings(targets, "kubernetes_ids", at),
            tags=_tags(targets, "tags", at=at),
        )
        # Load balancers and Kubernetes clusters are not modelled: their ids are
        # kept as given, unchecked.
        if not any(getattr(rule, name) for name in TARGET_KEYS):
            raise unprocessable(f"{at} needs at least one of {', '.join(TARGET_KEYS)}")
        return rule

    def _droplet_ids(self, body: dict, name: str, at: str = "",
                     required: bool = False) -> list[int]:
        droplet_ids = _int_list(body, name, at, required)
        droplets = self.backend.droplets.droplets
        for droplet_id in droplet_ids:
            droplet = droplets.get(droplet_id)
            if droplet is None or droplet.deleting:
                raise unprocessable(f"{_field(at, name)}: Droplet {droplet_id} does not exist")
        return droplet_ids


def _field(at: str, name: str) -> str:
    return f"{at}.{name}" if at else name


def _ports(protocol: str, raw: Any, where: str) -> str:
    if protocol == "icmp":
        return ALL_PORTS  # ICMP has no ports; the API always answers "0"
    if raw in (None, ""):
        raise unprocessable(f"{where} is required for {protocol} rules")
    if not isinstance(raw, str):
        raise unprocessable(f"{where} must be a string such as \"22\" or \"8000-9000\"")
    if raw in ("0", "all"):
        return ALL_PORTS
    match = PORTS.match(raw)
    if match is None:
        raise unprocessable(
            f"{where} {raw!r} is invalid: use a port, a range like \"8000-9000\", "
            "or \"0\" (or \"all\") for every port"
        )
    low = int(match.group(1))
    high = int(match.group(2) or low)
    if not (1 <= low <= 65535 and 1 <= high <= 65535):
        raise unprocessable(f"{where} {raw!r} is invalid: ports are 1 to 65535")
    if low > high:
        raise unprocessable(f"{where} {raw!r} is invalid: a range goes from low to high")
    return str(low) if match.group(2) is None else f"{low}-{high}"


def _addresses(targets: dict, at: str) -> list[str]:
    addresses = _strings(targets, "addresses", at)
    for address in addresses:
        try:
            # Host bits set in a CIDR ("10.0.0.1/8"): real answer unknown; accepted.
            ipaddress.ip_network(address, strict=False)
        except ValueError:
            raise unprocessable(
                f"{at}.addresses: {address!r} is not an IPv4/IPv6 address or CIDR"
            ) from None
    return addresses


def _strings(body: dict, name: str, at: str = "") -> list[str]:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise unprocessable(f"{_field(at, name)} must be a list of strings")
    return list(value)


def _int_list(body: dict, name: str, at: str = "", required: bool = False) -> list[int]:
    value = body.get(name)
    if value is None or value == []:
        if required:
            raise unprocessable(f"{_field(at, name)} is required")
        return []
    if not isinstance(value, list) or not all(
        isinstance(item, int) and not isinstance(item, bool) for item in value
    ):
        raise unprocessable(f"{_field(at, name)} must be a list of Droplet ids (integers)")
    return list(value)


def _tags(body: dict, name: str, required: bool = False, at: str = "") -> list[str]:
    # The shared `tags` attribute says tag names "must exist"; droplet creation
    # creates them (as this fake does everywhere), which this store follows too.
    tags = _strings(body, name, at)
    if required and not tags:
        raise unprocessable(f"{_field(at, name)} is required")
    for tag in tags:
        v.check_tag_name(tag)
    return tags
