"""An authoritative DNS server (UDP and TCP on loopback) for the fake account's domains.

It answers from the DigitalOcean fake's domain records at query time, so a record
is answerable as soon as the API created it. Inside a hosted zone an unknown name
is NXDOMAIN and a known name without the asked type is NOERROR with the zone's
SOA; a name in no hosted zone is REFUSED, as an authoritative-only server (like
DigitalOcean's nameservers) answers, unless the world knows it from elsewhere
(fakes/dns/outside.py: an A record the owner of a home node keeps at their registrar).
"""

from __future__ import annotations

import socket

from dnslib import AAAA, CAA, CNAME, MX, NS, QTYPE, RCODE, RR, SOA, SRV, TXT, A, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from fakes.digitalocean.models.backend import DigitalOceanBackend
from fakes.digitalocean.models.domains import Domain, Record
from fakes.dns.outside import OutsideNames


def _absolute(domain: Domain, target: str) -> str:
    if target == "@":
        return domain.name + "."
    if target.endswith("."):
        return target
    # DigitalOcean treats hostname data without a trailing dot as relative to the zone
    # [inferred from its control panel's behaviour].
    return f"{target}.{domain.name}." if "." not in target else target + "."


def _rdata(domain: Domain, record: Record):
    kind = record.type
    if kind == "A":
        return A(record.data)
    if kind == "AAAA":
        return AAAA(record.data)
    if kind == "CNAME":
        return CNAME(_absolute(domain, record.data))
    if kind == "NS":
        return NS(_absolute(domain, record.data))
    if kind == "MX":
        return MX(_absolute(domain, record.data), record.priority or 0)
    if kind == "TXT":
        raw = record.data
        return TXT([raw[i:i + 255] for i in range(0, len(raw), 255)] or [""])
    if kind == "CAA":
        return CAA(record.flags or 0, record.tag, record.data)
    if kind == "SRV":
        return SRV(record.priority or 0, record.weight or 0, record.port or 0,
                   _absolute(domain, record.data))
    if kind == "SOA":
        mname, rname, *times = record.data.split()
        return SOA(mname, rname, tuple(int(t) for t in times))
    raise ValueError(kind)


class AccountResolver(BaseResolver):
    def __init__(self, backend: DigitalOceanBackend, outside: OutsideNames | None = None) -> None:
        self.backend = backend
        self.outside = outside

    def _zone_for(self, name: str) -> Domain | None:
        best = None
        for domain in self.backend.domains.all():
            if (name == domain.name or name.endswith("." + domain.name)) and (
                best is None or len(domain.name) > len(best.name)
            ):
                best = domain
        return best

    def resolve(self, request: DNSRecord, handler) -> DNSRecord:
        reply = request.reply()
        reply.header.aa = 1
        reply.header.ra = 0  # authoritative only: no recursion offered
        qname = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        with self.backend.lock:
            self.backend.clock.run_due()
            zone = self._zone_for(qname)
            elsewhere = self.outside.address(qname) if self.outside is not None else None
            if zone is None and elsewhere is not None:
                if qtype in ("A", "ANY"):
                    reply.add_answer(RR(qname + ".", QTYPE.A, ttl=300, rdata=A(elsewhere)))
                return reply
            if zone is None:
                reply.header.rcode = RCODE.REFUSED
                reply.header.aa = 0
                return reply
            self._answer(reply, zone, qname, qtype, depth=0)
        return reply

    def _records_at(self, zone: Domain, name: str) -> list[Record]:
        exact = [r for r in zone.records.values() if zone.fqdn(r) == name]
        if exact:
            return exact
        # A wildcard covers names with no records of their own.
        parent = name.split(".", 1)[1] if "." in name else ""
        return [r for r in zone.records.values() if zone.fqdn(r) == f"*.{parent}"]

    def _answer(self, reply: DNSRecord, zone: Domain, name: str, qtype: str, depth: int) -> None:
        records = self._records_at(zone, name)
        if not records:
            if depth == 0:
                reply.header.rcode = RCODE.NXDOMAIN
            self._add_soa(reply, zone)
            return
        cname = [r for r in records if r.type == "CNAME"]
        if cname and qtype != "CNAME":
            record = cname[0]
            target = _absolute(zone, record.data)
            reply.add_answer(RR(name + ".", QTYPE.CNAME, ttl=record.ttl,
                                rdata=_rdata(zone, record)))
            target_zone = self._zone_for(target.rstrip("."))
            if target_zone is not None and depth < 8:
                self._answer(reply, target_zone, target.rstrip("."), qtype, depth + 1)
            return
        matching = [r for r in records if qtype in ("ANY", r.type)]
        for record in matching:
            reply.add_answer(RR(name + ".", getattr(QTYPE, record.type), ttl=record.ttl,
                                rdata=_rdata(zone, record)))
        if not matching:
            self._add_soa(reply, zone)

    @staticmethod
    def _add_soa(reply: DNSRecord, zone: Domain) -> None:
        for record in zone.records.values():
            if record.type == "SOA":
                reply.add_auth(RR(zone.name + ".", QTYPE.SOA, ttl=record.ttl,
                                  rdata=_rdata(zone, record)))


def _free_port(host: str) -> int:
    """A port free for both UDP and TCP on `host`."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no port free for both UDP and TCP")


class DnsServer:
    def __init__(self, backend: DigitalOceanBackend, host: str = "127.0.0.1",
                 port: int = 0, outside: OutsideNames | None = None) -> None:
        self.host = host
        self.port = port or _free_port(host)
        resolver = AccountResolver(backend, outside)
        quiet = DNSLogger(log="-request,-reply,-truncated,-error", prefix=False)
        self._udp = DNSServer(resolver, address=host, port=self.port, logger=quiet)
        self._tcp = DNSServer(resolver, address=host, port=self.port, tcp=True, logger=quiet)

    def start(self) -> None:
        self._udp.start_thread()
        self._tcp.start_thread()

    def stop(self) -> None:
        for server in (self._udp, self._tcp):
            server.server.shutdown()
            server.server.server_close()
