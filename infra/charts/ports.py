"""The host ports a Compose service publishes (short and long `ports` syntax, as the
Compose specification's services.ports section defines them)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# [HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/PROTOCOL]; HOST_IP may be [v6]
SHORT = re.compile(
    r"^(?:(?P<ip>\[[0-9a-fA-F:.]+\]|\d{1,3}(?:\.\d{1,3}){3}):)?"
    r"(?:(?P<published>\d+(?:-\d+)?)?:)?(?P<target>\d+(?:-\d+)?)(?:/(?P<protocol>tcp|udp|sctp))?$"
)


@dataclass(frozen=True)
class Published:
    port: int
    protocol: str
    host_ip: str | None   # None: every address
    service: str

    def overlaps(self, other: Published) -> bool:
        if (self.port, self.protocol) != (other.port, other.protocol):
            return False
        wildcard = {None, "0.0.0.0", "::", "[::]"}
        return self.host_ip in wildcard or other.host_ip in wildcard \
            or self.host_ip == other.host_ip


def _range(text: str) -> range:
    start, _, end = text.partition("-")
    return range(int(start), int(end or start) + 1)


def _short(entry: str, service: str) -> list[Published]:
    match = SHORT.match(entry.strip())
    if match is None:
        raise ValueError(f"{entry!r} is not a port mapping such as 8080:80 or "
                         "127.0.0.1:8080:80/tcp")
    if match["published"] is None:
        return []  # only a container port: Docker picks an ephemeral host port
    ip = match["ip"] or None
    protocol = match["protocol"] or "tcp"
    return [Published(port, protocol, ip, service) for port in _range(match["published"])]


def _long(entry: dict, service: str) -> list[Published]:
    published = entry.get("published")
    if published in (None, ""):
        return []
    protocol = str(entry.get("protocol") or "tcp")
    ip = entry.get("host_ip") or None
    text = str(published)
    if not re.fullmatch(r"\d+(-\d+)?", text):
        raise ValueError(f"published {published!r} is not a port or a range of ports")
    return [Published(port, protocol, ip, service) for port in _range(text)]


def published_ports(compose: dict[str, Any]) -> list[Published]:
    """Every host port the project's services publish; ValueError for a bad entry."""
    found: list[Published] = []
    for service, body in (compose.get("services") or {}).items():
        for entry in (body or {}).get("ports") or []:
            if isinstance(entry, dict):
                found += _long(entry, service)
            elif isinstance(entry, int) and not isinstance(entry, bool):
                continue  # a bare container port
            else:
                found += _short(str(entry), service)
    return found
