"""The small grammars inside a Compose file, judged as Docker's own parsers do.

Facts followed (read from source; wording of errors as those parsers print them):
- durations: Go's `time.ParseDuration` (compose-go parses healthcheck and
  stop_grace_period durations with it): an optionally signed sequence of decimal
  numbers, each with an optional fraction and a unit of ns, us (µs, μs), ms, s, m
  or h, like "300ms", "1m30s", "1.5h"; "0" alone needs no unit. Errors:
  `time: invalid duration "x"`, `time: missing unit in duration "10"`,
  `time: unknown unit "x" in duration "10x"`;
- sizes (deploy.resources.limits.memory, mem_limit): docker/go-units
  `RAMInBytes`, `^(\\d+(\\.\\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$`, binary multiples
  ("512M" = 512 MiB); error `invalid size: '...'`;
- image references: distribution/reference's grammar (`name[:tag][@digest]`, a
  lowercase path of components joined by `.`, `_`, `__` or dashes, an optional
  registry domain with port, a tag of at most 128 word characters, dots and
  dashes, a digest `algorithm:hex{32,}`) and `ParseNormalizedNamed`'s rules (a
  first component is a registry when it has a `.` or `:` or is "localhost";
  Docker Hub names get "library/"); errors `invalid reference format` and
  `invalid reference format: repository name (library/X) must be lowercase`;
- port specs: docker/go-connections `nat.ParsePortSpec`:
  `[ip:][hostPort:]containerPort[/proto]`, ranges `8000-8010`, an IPv6 host ip in
  brackets; errors `invalid containerPort: x`, `invalid hostPort: x`,
  `invalid proto: x`, `invalid IP address: x`, `invalid ranges specified for
  container and host Ports: ...`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass


class SyntaxProblem(ValueError):
    """A value a Compose/Docker parser rejects; str() is that parser's message."""


# --- durations -----------------------------------------------------------------
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
          "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d*)(?:\.(\d*))?([^\d.]*)")


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration, in seconds."""
    original = text
    if not isinstance(text, str):
        raise SyntaxProblem(f"time: invalid duration {_go_quote(str(text))}")
    sign = 1.0
    if text[:1] in "+-" and text:
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    if not text:
        raise SyntaxProblem(f"time: invalid duration {_go_quote(original)}")
    total = 0.0
    while text:
        match = _DURATION_PART.match(text)
        whole, fraction, unit = match.group(1), match.group(2), match.group(3)
        if not whole and not fraction:
            raise SyntaxProblem(f"time: invalid duration {_go_quote(original)}")
        if not unit:
            raise SyntaxProblem(f"time: missing unit in duration {_go_quote(original)}")
        if unit not in _UNITS:
            raise SyntaxProblem(f"time: unknown unit {_go_quote(unit)} in duration "
                                f"{_go_quote(original)}")
        value = float(f"{whole or '0'}.{fraction or '0'}")
        total += value * _UNITS[unit]
        text = text[match.end():]
    return sign * total


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- sizes ---------------------------------------------------------------------
_SIZE = re.compile(r"^(\d+(\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_MULTIPLIERS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40, "p": 2**50}


def parse_bytes(value: str | int) -> int:
    """go-units RAMInBytes (binary multiples)."""
    if isinstance(value, bool):
        raise SyntaxProblem(f"invalid size: '{value}'")
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value))
    if match is None or match.group(1).count(".") > 1:
        raise SyntaxProblem(f"invalid size: '{value}'")
    return int(float(match.group(1)) * _MULTIPLIERS[(match.group(3) or "").lower()])


# --- image references ----------------------------------------------------------
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = (rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
           r"(?::[0-9]+)?")
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    rf"^((?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    rf"(?::({_TAG}))?(?:@({_DIGEST}))?$")
_HEX64 = re.compile(r"^[a-f0-9]{64}$")
DOCKER_HUB = "docker.io"
MAX_NAME = 255


@dataclass(frozen=True)
class ImageReference:
    domain: str            # "docker.io" for Docker Hub
    path: str              # "library/caddy"
    tag: str | None
    digest: str | None

    @property
    def repository(self) -> str:
        """The familiar repository name: "caddy", "gocd/gocd-server", "ghcr.io/x/y"."""
        if self.domain == DOCKER_HUB:
            return self.path.removeprefix("library/")
        return f"{self.domain}/{self.path}"

    @property
    def complete(self) -> str:
        """The fully qualified reference, with "latest" when no tag or digest is given."""
        text = f"{self.domain}/{self.path}"
        if self.tag or not self.digest:
            text += f":{self.tag or 'latest'}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_image_reference(text: str) -> ImageReference:
    """ParseNormalizedNamed: a Docker Hub short name gains docker.io/library/."""
    if not isinstance(text, str) or not text:
        raise SyntaxProblem("invalid reference format")
    if _HEX64.match(text):
        raise SyntaxProblem(f"invalid repository name ({text}), cannot specify 64-byte "
                            "hexadecimal strings")
    slash = text.find("/")
    first = text[:slash] if slash >= 0 else ""
    if slash < 0 or (not any(c in first for c in ".:") and first != "localhost"
                     and first.lower() == first):
        domain, remainder = DOCKER_HUB, text
    else:
        domain, remainder = first, text[slash + 1:]
    if domain == DOCKER_HUB and "/" not in remainder:
        remainder = "library/" + remainder
    name_part = remainder.split(":", 1)[0]
    if name_part.lower() != name_part:
        raise SyntaxProblem(f"invalid reference format: repository name ({name_part}) must "
                            "be lowercase")
    match = _REFERENCE.match(f"{domain}/{remainder}")
    if match is None:
        raise SyntaxProblem("invalid reference format")
    if len(match.group(1)) > MAX_NAME:
        raise SyntaxProblem(f"repository name must not be more than {MAX_NAME} characters")
    return ImageReference(domain, match.group(1)[len(domain) + 1:], match.group(2),
                          match.group(3))


# --- port specs ----------------------------------------------------------------
@dataclass(frozen=True)
class PortBinding:
    """One published (or merely exposed) container port.

    host_port None: Docker picks a free ephemeral host port. host_ip "" means every
    address (Docker reports it as 0.0.0.0)."""

    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""
    host_port: int | None = None
    host_port_range: tuple[int, int] | None = None   # "8000-8010:80": any free one


PROTOCOLS = ("tcp", "udp", "sctp")


def _port_range(text: str, what: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    try:
        start = int(low, 10)
        end = int(high, 10) if sep else start
    except ValueError:
        raise SyntaxProblem(f"invalid {what}: {text}") from None
    if not (0 <= start <= 65535 and 0 <= end <= 65535) or end < start:
        raise SyntaxProblem(f"invalid {what}: {text}")
    return start, end


def _split_ip(spec: str) -> tuple[str, str]:
    """Take a leading host IP (IPv6 in brackets) off `ip:hostPort:containerPort`."""
    if spec.startswith("["):
        end = spec.find("]")
        if end < 0 or spec[end + 1:end + 2] != ":":
            raise SyntaxProblem(f"invalid IP address: {spec}")
        return spec[1:end], spec[end + 2:]
    parts = spec.split(":")
    if len(parts) == 3:
        return parts[0], ":".join(parts[1:])
    if len(parts) > 3:
        # an IPv6 address without brackets: all but the last two fields
        return ":".join(parts[:-2]), ":".join(parts[-2:])
    return "", spec


def parse_port_spec(spec: str | int) -> list[PortBinding]:
    """Compose's short port syntax, one binding per container port."""
    text = str(spec)
    proto = "tcp"
    if "/" in text:
        text, proto = text.rsplit("/", 1)
        if proto.lower() not in PROTOCOLS:
            raise SyntaxProblem(f"invalid proto: {proto}")
        proto = proto.lower()
    host_ip, rest = _split_ip(text)
    if host_ip:
        try:
            ipaddress.ip_address(host_ip)
        except ValueError:
            raise SyntaxProblem(f"invalid IP address: {host_ip}") from None
    host_text, sep, container_text = rest.rpartition(":")
    if not sep:
        host_text, container_text = "", rest
    if not container_text:
        raise SyntaxProblem(f"no port specified: {spec}<empty>")
    c_start, c_end = _port_range(container_text, "containerPort")
    if not host_text:
        return [PortBinding(p, proto, host_ip) for p in range(c_start, c_end + 1)]
    h_start, h_end = _port_range(host_text, "hostPort")
    if c_end - c_start != h_end - h_start:
        if c_end != c_start:
            raise SyntaxProblem(f"invalid ranges specified for container and host Ports: "
                                f"{container_text} and {host_text}")
        return [PortBinding(c_start, proto, host_ip, None, (h_start, h_end))]
    return [PortBinding(c, proto, host_ip, h_start + i)
            for i, c in enumerate(range(c_start, c_end + 1))]


def port_number(value: object, what: str) -> int:
    """A long-syntax `target` / `published` that must be one port."""
    if isinstance(value, bool):
        raise SyntaxProblem(f"invalid {what}: {value}")
    start, end = _port_range(str(value), what)
    if start != end:
        raise SyntaxProblem(f"invalid {what}: {value}")
    return start
