"""Domains and domain records, which the fake DNS server answers from.

Facts followed (reference/digitalocean-api.md §2): `POST /v2/domains {name, ip_address?}`
(ip_address makes an apex A record); records have type, name (`@` or relative),
data, ttl (default 1800), priority, port, weight, flags, tag; the list filter
`name` is fully qualified. A new domain gets DigitalOcean's three NS records and
an SOA, as the real zone file shows. TTL minimum 30 [inferred from DO's docs].
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fakes.digitalocean.errors import not_found, unprocessable
from fakes.digitalocean.models import validation as v

if TYPE_CHECKING:
    from fakes.digitalocean.models.backend import DigitalOceanBackend

RECORD_TYPES = {"A", "AAAA", "CAA", "CNAME", "MX", "NS", "SOA", "SRV", "TXT"}
NAMESERVERS = ["ns1.digitalocean.com", "ns2.digitalocean.com", "ns3.digitalocean.com"]
LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
DEFAULT_TTL = 1800
MIN_TTL = 30


def valid_hostname(name: str) -> bool:
    name = name.rstrip(".")
    return 0 < len(name) <= 253 and all(LABEL.match(part) for part in name.split("."))


@dataclass
class Record:
    id: int
    type: str
    name: str
    data: str
    ttl: int
    priority: int | None = None
    port: int | None = None
    weight: int | None = None
    flags: int | None = None
    tag: str | None = None

    def to_dict(self) -> dict:
        return {
            "id": self.id, "type": self.type, "name": self.name, "data": self.data,
            "priority": self.priority, "port": self.port, "ttl": self.ttl,
            "weight": self.weight, "flags": self.flags, "tag": self.tag,
        }


@dataclass
class Domain:
    name: str
    ttl: int = DEFAULT_TTL
    records: dict[int, Record] = field(default_factory=dict)

    def fqdn(self, record: Record) -> str:
        return self.name if record.name == "@" else f"{record.name}.{self.name}"

    def zone_file(self) -> str:
        lines = [f"$ORIGIN {self.name}.", f"$TTL {self.ttl}"]
        for record in self.records.values():
            owner = "@" if record.name == "@" else record.name
            lines.append(f"{owner} {record.ttl} IN {record.type} {record.data}")
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict:
        return {"name": self.name, "ttl": self.ttl, "zone_file": self.zone_file()}


class DomainStore:
    def __init__(self, backend: DigitalOceanBackend) -> None:
        self.backend = backend
        self.domains: dict[str, Domain] = {}
        self._record_ids = itertools.count(3_352_001)

    def all(self) -> list[Domain]:
        return list(self.domains.values())

    def get(self, name: str) -> Domain:
        domain = self.domains.get(name.lower().rstrip("."))
        if domain is None:
            raise not_found()
        return domain

    def create(self, body: dict) -> Domain:
        body = v.as_object(body)
        v.require(body, "name")
        name = v.string(body, "name").lower().rstrip(".")
        if not valid_hostname(name) or "." not in name:
            raise unprocessable(f"Name {name!r} is not a valid domain name")
        if name in self.domains:
            raise unprocessable("Name already in use")
        domain = Domain(name)
        self.domains[name] = domain
        soa = f"{NAMESERVERS[0]}. hostmaster.{name}. 1 10800 3600 604800 1800"
        self._add(domain, Record(next(self._record_ids), "SOA", "@", soa, 1800))
        for ns in NAMESERVERS:
            self._add(domain, Record(next(self._record_ids), "NS", "@", ns, 1800))
        ip_address = v.string(body, "ip_address")
        if ip_address:
            self.create_record(name, {"type": "A", "name": "@", "data": ip_address})
        return domain

    def delete(self, name: str) -> None:
        domain = self.get(name)
        del self.domains[domain.name]

    # --- records -----------------------------------------------------------
    def list_records(self, domain_name: str, fqdn: str | None = None,
                     type_: str | None = None) -> list[Record]:
        domain = self.get(domain_name)
        found = list(domain.records.values())
        if fqdn:
            wanted = fqdn.lower().rstrip(".")
            found = [r for r in found if domain.fqdn(r) == wanted]
        if type_:
            found = [r for r in found if r.type == type_]
        return found

    def get_record(self, domain_name: str, record_id: int) -> Record:
        record = self.get(domain_name).records.get(record_id)
        if record is None:
            raise not_found()
        return record

    def create_record(self, domain_name: str, body: dict) -> Record:
        domain = self.get(domain_name)
        body = v.as_object(body)
        record = Record(next(self._record_ids), "", "", "", DEFAULT_TTL)
        self._apply(domain, record, body, partial=False)
        self._add(domain, record)
        return record

    def update_record(self, domain_name: str, record_id: int, body: dict,
                      partial: bool) -> Record:
        domain = self.get(domain_name)
        record = self.get_record(domain_name, record_id)
        candidate = Record(**record.__dict__)
        self._apply(domain, candidate, v.as_object(body), partial=partial)
        domain.records[record_id] = candidate
        return candidate

    def delete_record(self, domain_name: str, record_id: int) -> None:
        domain = self.get(domain_name)
        if record_id not in domain.records:
            raise not_found()
        del domain.records[record_id]

    def _add(self, domain: Domain, record: Record) -> None:
        domain.records[record.id] = record

    def _apply(self, domain: Domain, record: Record, body: dict, partial: bool) -> None:
        if not partial:
            v.require(body, "type")
        record_type = v.string(body, "type") or record.type
        if record_type not in RECORD_TYPES:
            raise unprocessable(f"type {record_type!r} is not a valid record type")
        if partial and "type" in body and body["type"] != record.type:
            raise unprocessable("the type of a record cannot be changed")
        name = v.string(body, "name", record.name or None)
        if name is None:
            raise unprocessable("name is required")
        name = self._relative(domain, name)
        data = v.string(body, "data", record.data or None)
        if data is None:
            raise unprocessable("data is required")
        ttl = v.integer(body, "ttl", record.ttl)
        if ttl is None:
            ttl = DEFAULT_TTL
        if ttl < MIN_TTL:
            raise unprocessable(f"ttl must be at least {MIN_TTL}")
        record.type, record.name, record.data, record.ttl = record_type, name, data, ttl
        for attribute in ("priority", "port", "weight", "flags"):
            if attribute in body:
                setattr(record, attribute, v.integer(body, attribute))
        if "tag" in body:
            record.tag = v.string(body, "tag")
        self._check_data(record)

    @staticmethod
    def _relative(domain: Domain, name: str) -> str:
        name = name.lower().rstrip(".")
        if name in ("@", domain.name, ""):
            return "@"
        suffix = "." + domain.name
        if name.endswith(suffix):
            name = name[: -len(suffix)]
        if not all(LABEL.match(part) or part == "*" for part in name.split(".")):
            raise unprocessable(f"name {name!r} is not a valid record name")
        return name

    @staticmethod
    def _check_data(record: Record) -> None:
        data = record.data
        if record.type == "A":
            try:
                ipaddress.IPv4Address(data)
            except ValueError:
                raise unprocessable(f"data {data!r} is not an IPv4 address") from None
        elif record.type == "AAAA":
            try:
                ipaddress.IPv6Address(data)
            except ValueError:
                raise unprocessable(f"data {data!r} is not an IPv6 address") from None
        elif record.type in ("CNAME", "NS", "MX", "SRV"):
            if data != "@" and not valid_hostname(data):
                raise unprocessable(f"data {data!r} is not a hostname")
            if record.type in ("MX", "SRV") and record.priority is None:
                raise unprocessable("priority is required")
            if record.type == "SRV" and (record.port is None or record.weight is None):
                raise unprocessable("port and weight are required")
        elif record.type == "CAA":
            if record.tag not in ("issue", "issuewild", "iodef"):
                raise unprocessable("tag must be issue, issuewild or iodef")
            if record.flags is None or not 0 <= record.flags <= 255:
                raise unprocessable("flags must be between 0 and 255")
        elif record.type == "TXT" and not data:
            raise unprocessable("data is required")
