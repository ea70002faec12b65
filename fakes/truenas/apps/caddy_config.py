"""Caddy 2.8.4's JSON config, the subset the fake emulates: parsed and judged as Caddy would.

What Caddy does with a config is documented at caddyserver.com/docs/json/ and in its
source (v2.8.4, the image the ingress chart pins); each rule below names the place it
follows. The result is an immutable `Config` (servers by container port, routes,
certificates), so a reload can swap the whole of it at once.

Strictness: Caddy decodes every module strictly (an unknown field fails the load:
`json: unknown field "x"`), so the fake does too. A field or module that real Caddy
knows but the fake does not emulate also fails the load, with a message that says so:
the fake never silently ignores configuration that would change behaviour. Fields that
change nothing the fake can show (timeouts, logs, metrics) are accepted and ignored.

Error messages paraphrase Caddy's error chains ("loading new config: ...: unknown
module: http.handlers.x"); they are not copies of Caddy's text.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID


class CaddyConfigError(Exception):
    """A config Caddy 2.8.4 would refuse to load (start fails; a reload keeps the old one)."""


class NotEmulated(CaddyConfigError):
    """Valid Caddy config that the fake does not emulate (refused rather than ignored)."""


# ---------------------------------------------------------------------------------------
# Known fields and modules of Caddy v2.8.4 (json tags of the structs named; module IDs
# registered under modules/). "known" = real Caddy accepts it; "emulated" = the fake
# honours it (or it has no effect the fake could show).

_TOP = frozenset({"admin", "logging", "storage", "apps"})
_TOP_OK = frozenset({"admin", "logging", "storage", "apps"})  # admin API, logs: nothing to see

_APPS = frozenset({"http", "tls", "pki", "events"})

_HTTP_APP = frozenset({"http_port", "https_port", "grace_period", "shutdown_delay", "servers"})

_SERVER = frozenset({
    "listen", "listener_wrappers", "read_timeout", "read_header_timeout", "write_timeout",
    "idle_timeout", "keepalive_interval", "max_header_bytes", "enable_full_duplex", "routes",
    "errors", "named_routes", "tls_connection_policies", "automatic_https", "strict_sni_host",
    "trusted_proxies", "client_ip_headers", "trusted_proxies_strict", "logs", "protocols",
    "metrics",
})
_SERVER_OK = frozenset({
    "listen", "routes", "tls_connection_policies", "automatic_https", "strict_sni_host",
    # no observable effect in the fake (it has no slow clients, logs or metrics):
    "read_timeout", "read_header_timeout", "write_timeout", "idle_timeout",
    "keepalive_interval", "max_header_bytes", "enable_full_duplex", "logs", "metrics",
    "protocols",
})

_AUTO_HTTPS = frozenset({"disable", "disable_redirects", "disable_certificates", "skip",
                         "skip_certificates", "ignore_loaded_certificates"})

_ROUTE = frozenset({"group", "match", "handle", "terminal"})

_HANDLERS = frozenset({
    "acme_server", "authentication", "copy_response", "copy_response_headers", "encode",
    "error", "file_server", "headers", "intercept", "invoke", "log_append", "map", "metrics",
    "push", "request_body", "reverse_proxy", "rewrite", "static_response", "subroute",
    "templates", "tracing", "vars",
})
_MATCHERS = frozenset({
    "client_ip", "expression", "file", "header", "header_regexp", "host", "method", "not",
    "path", "path_regexp", "protocol", "query", "remote_ip", "tls", "vars", "vars_regexp",
})

_STATIC = frozenset({"handler", "status_code", "headers", "body", "close", "abort"})

_FILE_SERVER = frozenset({"handler", "fs", "root", "hide", "index_names", "browse",
                          "canonical_uris", "status_code", "pass_thru", "precompressed",
                          "precompressed_order", "etag_file_extensions"})
_FILE_SERVER_OK = frozenset({"handler", "root", "index_names", "canonical_uris", "pass_thru",
                             "etag_file_extensions"})

_PROXY = frozenset({"handler", "transport", "circuit_breaker", "load_balancing",
                    "health_checks", "upstreams", "dynamic_upstreams", "flush_interval",
                    "trusted_proxies", "headers", "request_buffers", "response_buffers",
                    "stream_timeout", "stream_close_delay", "rewrite", "handle_response",
                    "verbose_logs"})
_PROXY_OK = frozenset({"handler", "transport", "upstreams", "flush_interval", "verbose_logs"})
_UPSTREAM = frozenset({"dial", "max_requests"})

# modules/caddyhttp/rewrite/rewrite.go Rewrite; only strip_path_prefix is emulated
_REWRITE = frozenset({"handler", "method", "uri", "strip_path_prefix", "strip_path_suffix",
                      "uri_substring", "path_regexp", "query", "force_modify_query"})
_REWRITE_OK = frozenset({"handler", "strip_path_prefix"})

_TLS_APP = frozenset({"certificates", "automation", "session_tickets", "cache",
                      "disable_ocsp_stapling"})
_TLS_APP_OK = frozenset({"certificates", "session_tickets", "cache", "disable_ocsp_stapling"})
_CERT_LOADERS = frozenset({"automate", "load_files", "load_folders", "load_pem",
                           "load_storage"})
_FILE_PAIR = frozenset({"certificate", "key", "format", "tags"})
_PEM_PAIR = frozenset({"certificate", "key", "tags"})

_CONN_POLICY = frozenset({"match", "certificate_selection", "cipher_suites", "curves", "alpn",
                          "protocol_min", "protocol_max", "drop", "client_authentication",
                          "default_sni", "fallback_sni", "insecure_secrets_log"})
_CONN_POLICY_OK = frozenset({"protocol_min", "protocol_max", "default_sni", "fallback_sni",
                             "alpn"})

# caddytls/values.go SupportedProtocols: only these two; any other protocol_min value maps
# to 0 there, and setDefaultTLSParams then falls back to TLS 1.2 (min) / 1.3 (max).
PROTOCOLS = {"tls1.2": (1, 2), "tls1.3": (1, 3)}

CONTAINER_WORKDIR = "/srv"      # the caddy image's WORKDIR: where a relative root points


# ---------------------------------------------------------------------------------------
# The parsed config


@dataclass(frozen=True)
class Certificate:
    """One loaded certificate (`apps.tls.certificates`), with the names certmagic indexes
    it by: the subject CN, DNS SANs and IP SANs, lower-cased (certmagic fillCertFromLeaf)."""

    names: tuple[str, ...]
    chain_pem: bytes = field(repr=False)
    key_pem: bytes = field(repr=False)     # never in a repr or a message
    source: str = ""                        # the container path it came from


@dataclass(frozen=True)
class TlsPolicy:
    min_version: tuple[int, int] = (1, 2)
    max_version: tuple[int, int] = (1, 3)
    default_sni: str = ""
    fallback_sni: str = ""


@dataclass(frozen=True)
class StaticResponse:
    status_code: str | None            # Caddy's WeakString: number or string, placeholders
    headers: tuple[tuple[str, tuple[str, ...]], ...]
    body: str
    close: bool
    abort: bool


@dataclass(frozen=True)
class FileServer:
    root: str
    index_names: tuple[str, ...]
    pass_thru: bool


@dataclass(frozen=True)
class ReverseProxy:
    dials: tuple[str, ...]


@dataclass(frozen=True)
class Rewrite:
    """http.handlers.rewrite: mutates the request, then the chain goes on."""

    strip_path_prefix: str


Handler = StaticResponse | FileServer | ReverseProxy | Rewrite


@dataclass(frozen=True)
class MatcherSet:
    """One object of a route's `match` list: all its matchers must match (AND)."""

    hosts: tuple[str, ...] | None = None
    paths: tuple[str, ...] | None = None
    methods: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Route:
    match: tuple[MatcherSet, ...]     # any set matching (OR); empty = every request
    handle: tuple[Handler, ...]
    terminal: bool = False
    group: str = ""


@dataclass(frozen=True)
class Server:
    name: str
    routes: tuple[Route, ...]
    tls: TlsPolicy | None             # None: plain HTTP on this port


@dataclass(frozen=True)
class Config:
    raw: bytes = field(repr=False)
    servers: Mapping[int, Server]     # container port -> server
    certificates: tuple[Certificate, ...] = ()

    @property
    def ports(self) -> frozenset[int]:
        return frozenset(self.servers)


EMPTY = Config(raw=b"", servers={})


# ---------------------------------------------------------------------------------------
# Parsing


ReadFile = Callable[[str], bytes | None]     # container path -> bytes (None: no such file)


def decode_json(raw: bytes) -> Any:
    """The check `caddy run` makes before loading (cmd/main.go: the config must be valid
    JSON, else the start fails / the watcher gives up)."""
    try:
        return json.loads(raw.decode("utf-8")) if raw.strip() else None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CaddyConfigError(
            f"config is not valid JSON: {exc}; did you mean to use a config adapter "
            "(the --adapter flag)?") from None


def parse_config(raw: bytes, read_file: ReadFile,
                 environment: Mapping[str, str] | None = None) -> Config:
    """Judge and provision a config the way `caddy.Load` does; raise CaddyConfigError."""
    document = decode_json(raw)
    if document is None:
        return Config(raw=raw, servers={})
    env = dict(environment or {})
    top = _object(document, "config")
    _fields(top, "config", _TOP, _TOP_OK)
    apps = _object(top.get("apps") or {}, "apps")
    for name in apps:
        if name not in _APPS:
            raise CaddyConfigError("loading new config: loading app module: unknown module: "
                                   f"{name}")
        if name not in ("http", "tls"):
            raise NotEmulated(f"loading new config: app {name!r}: the fake Caddy does not "
                              "emulate this app")
    certificates = _tls_app(apps.get("tls"), read_file) if "tls" in apps else ()
    servers = _http_app(apps.get("http"), env) if "http" in apps else {}
    return Config(raw=raw, servers=servers, certificates=certificates)


def _where(*parts: object) -> str:
    return ": ".join(str(p) for p in parts)


def _go_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _object(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise CaddyConfigError(f"{where}: json: cannot unmarshal {_go_type(value)} into an object")
    return value


def _list(value: Any, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise CaddyConfigError(f"{where}: json: cannot unmarshal {_go_type(value)} into an array")
    return value


def _string(value: Any, where: str, default: str = "") -> str:
    if value is None:
        return default
    if not isinstance(value, str):
        raise CaddyConfigError(f"{where}: json: cannot unmarshal {_go_type(value)} into a string")
    return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    return tuple(_string(v, where) for v in _list(value, where))


def _bool(value: Any, where: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise CaddyConfigError(f"{where}: json: cannot unmarshal {_go_type(value)} into a bool")
    return value


def _fields(obj: dict, where: str, known: frozenset[str], emulated: frozenset[str]) -> None:
    for key in obj:
        if key not in known:
            raise CaddyConfigError(f'{where}: json: unknown field "{key}"')
        if key not in emulated and obj[key] not in (None, False, [], {}):
            raise NotEmulated(f"{where}: {key!r} is valid Caddy config, but the fake Caddy "
                              "does not emulate it")


# --- the http app (modules/caddyhttp/app.go) --------------------------------------------


def _http_app(value: Any, env: Mapping[str, str]) -> dict[int, Server]:
    where = "loading new config: loading http app module: provision http"
    app = _object(value or {}, where)
    _fields(app, where, _HTTP_APP, _HTTP_APP)
    http_port = _port_number(app.get("http_port", 80), _where(where, "http_port"))
    _port_number(app.get("https_port", 443), _where(where, "https_port"))
    servers: dict[int, Server] = {}
    claimed: dict[int, str] = {}
    for name, raw_server in _object(app.get("servers") or {}, where).items():
        swhere = _where(where, f"server {name}")
        srv = _object(raw_server, swhere)
        _fields(srv, swhere, _SERVER, _SERVER_OK)
        if _bool(srv.get("strict_sni_host"), _where(swhere, "strict_sni_host")):
            raise NotEmulated(f"{swhere}: strict_sni_host is not emulated by the fake Caddy")
        protocols = _strings(srv.get("protocols"), _where(swhere, "protocols"))
        if protocols and "h1" not in protocols:
            raise NotEmulated(f"{swhere}: the fake Caddy serves HTTP/1.1 only (protocols "
                              f"{list(protocols)})")
        ports = []
        for addr in _strings(srv.get("listen"), _where(swhere, "listen")):
            ports.extend(_listen_ports(_replace_env(addr, env), swhere))
        _check_auto_https(srv, swhere, ports, http_port)
        policies = _conn_policies(srv.get("tls_connection_policies"),
                                  _where(swhere, "tls_connection_policies"))
        routes = _routes(srv.get("routes"), _where(swhere, "setting up route handlers"))
        for port in ports:
            if port in claimed:
                raise CaddyConfigError(
                    f"{swhere}: listener address repeated: tcp/:{port} (already claimed by "
                    f"server '{claimed[port]}')")
            claimed[port] = name
            # app.go Start: a listener is TLS when the server has connection policies and
            # the port is not the http app's http_port
            tls = policies if policies is not None and port != http_port else None
            servers[port] = Server(name=name, routes=routes, tls=tls)
    return servers


def _port_number(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise CaddyConfigError(f"{where}: invalid port {value!r}")
    return value


_WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]"}


def _listen_ports(addr: str, where: str) -> list[int]:
    """caddy.ParseNetworkAddress: `[network/]host:port[-port]`. Only listeners on every
    interface are reachable through Docker's port publishing: one bound to a specific
    address inside the container (say 127.0.0.1) is not, so it yields no port here."""
    network, _, rest = addr.rpartition("/") if "/" in addr else ("tcp", "", addr)
    if network in ("unix", "unixgram", "unixpacket", "udp", "udp4", "udp6", "fd", "fdgram"):
        return []               # a socket file or HTTP/3: nothing a TCP client can reach
    if network not in ("tcp", "tcp4", "tcp6"):
        raise CaddyConfigError(f"{where}: parsing listener address '{addr}': unsupported "
                               f"network type {network!r}")
    host, sep, ports = rest.rpartition(":")
    if not sep:
        raise CaddyConfigError(f"{where}: parsing listener address '{addr}': missing port "
                               "in address")
    start, _, end = ports.partition("-")
    try:
        first, last = int(start), int(end or start)
    except ValueError:
        raise CaddyConfigError(f"{where}: parsing listener address '{addr}': invalid port "
                               f"{ports!r}") from None
    if not 0 < first <= last < 65536:
        raise CaddyConfigError(f"{where}: parsing listener address '{addr}': invalid port "
                               f"range {ports!r}")
    if host not in _WILDCARD_HOSTS:
        return []
    return list(range(first, last + 1))


def _check_auto_https(srv: dict, where: str, ports: list[int], http_port: int) -> None:
    """autohttps.go phase 1: a server that does not disable automatic HTTPS and listens on
    any port other than http_port gets certificates managed (ACME) and redirects added.
    The fake has no ACME client inside Caddy, so that is refused as not emulated."""
    auto = _object(srv.get("automatic_https") or {}, _where(where, "automatic_https"))
    _fields(auto, _where(where, "automatic_https"), _AUTO_HTTPS, _AUTO_HTTPS)
    if _bool(auto.get("disable"), _where(where, "automatic_https", "disable")):
        return
    if any(port != http_port for port in ports):
        raise NotEmulated(f"{where}: automatic HTTPS (Caddy's own ACME and redirects) is not "
                          'emulated by the fake Caddy; set "automatic_https": {"disable": '
                          "true}")


def _conn_policies(value: Any, where: str) -> TlsPolicy | None:
    if value is None:
        return None
    policies = _list(value, where)
    if not policies:
        return None           # app.go: TLS only with len(tls_connection_policies) > 0
    if len(policies) > 1:
        raise NotEmulated(f"{where}: the fake Caddy emulates one connection policy")
    pwhere = _where(where, "policy 0")
    policy = _object(policies[0], pwhere)
    _fields(policy, pwhere, _CONN_POLICY, _CONN_POLICY_OK)
    alpn = _strings(policy.get("alpn"), _where(pwhere, "alpn"))
    if alpn and "http/1.1" not in alpn:
        raise NotEmulated(f"{pwhere}: the fake Caddy serves HTTP/1.1 only (alpn {list(alpn)})")
    low = _string(policy.get("protocol_min"), _where(pwhere, "protocol_min"))
    high = _string(policy.get("protocol_max"), _where(pwhere, "protocol_max"))
    # connpolicy.go compares the two strings before mapping them
    if low and high and low > high:
        raise CaddyConfigError(f"{pwhere}: protocol min ({low}) cannot be greater than "
                               f"protocol max ({high})")
    return TlsPolicy(
        min_version=PROTOCOLS.get(low, (1, 2)),
        max_version=PROTOCOLS.get(high, (1, 3)),
        default_sni=_string(policy.get("default_sni"), _where(pwhere, "default_sni")),
        fallback_sni=_string(policy.get("fallback_sni"), _where(pwhere, "fallback_sni")),
    )


def _routes(value: Any, where: str) -> tuple[Route, ...]:
    routes = []
    for index, raw_route in enumerate(_list(value, where)):
        rwhere = _where(where, f"route {index}")
        route = _object(raw_route, rwhere)
        _fields(route, rwhere, _ROUTE, _ROUTE)
        sets = tuple(_matcher_set(ms, _where(rwhere, "loading matcher modules", f"set {i}"))
                     for i, ms in enumerate(_list(route.get("match"), rwhere)))
        handlers = tuple(_handler(h, _where(rwhere, "loading handler modules", f"position {i}"))
                         for i, h in enumerate(_list(route.get("handle"), rwhere)))
        routes.append(Route(match=sets, handle=handlers,
                            terminal=_bool(route.get("terminal"), _where(rwhere, "terminal")),
                            group=_string(route.get("group"), _where(rwhere, "group"))))
    return tuple(routes)


def _matcher_set(value: Any, where: str) -> MatcherSet:
    matchers = _object(value, where)
    found: dict[str, tuple[str, ...]] = {}
    for name, arg in matchers.items():
        mwhere = _where(where, f"loading module '{name}'")
        if name not in _MATCHERS:
            raise CaddyConfigError(f"{mwhere}: unknown module: http.matchers.{name}")
        if name not in ("host", "path", "method"):
            raise NotEmulated(f"{mwhere}: the fake Caddy does not emulate matcher "
                              f"http.matchers.{name}")
        found[name] = _strings(arg, mwhere)
    hosts = found.get("host")
    if hosts is not None:
        # matchers.go MatchHost.Provision: duplicates are an error (case-insensitive)
        seen: dict[str, int] = {}
        for i, host in enumerate(hosts):
            if host.lower() in seen:
                raise CaddyConfigError(f"{where}: host at index {seen[host.lower()]} is "
                                       f"repeated at index {i}: {host}")
            seen[host.lower()] = i
    paths = found.get("path")
    return MatcherSet(
        hosts=hosts,
        # MatchPath.Provision lower-cases the patterns (matching is case-insensitive)
        paths=tuple(p.lower() for p in paths) if paths is not None else None,
        methods=tuple(m.upper() for m in found["method"]) if "method" in found else None,
    )


def _handler(value: Any, where: str) -> Handler:
    obj = _object(value, where)
    name = _string(obj.get("handler"), where)
    hwhere = _where(where, f"loading module '{name}'")
    if not name:
        raise CaddyConfigError(f"{where}: module name not specified with key 'handler'")
    if name not in _HANDLERS:
        raise CaddyConfigError(f"{hwhere}: unknown module: http.handlers.{name}")
    if name == "static_response":
        return _static_response(obj, hwhere)
    if name == "file_server":
        return _file_server(obj, hwhere)
    if name == "reverse_proxy":
        return _reverse_proxy(obj, hwhere)
    if name == "rewrite":
        _fields(obj, hwhere, _REWRITE, _REWRITE_OK)
        return Rewrite(_string(obj.get("strip_path_prefix"), _where(hwhere,
                                                                     "strip_path_prefix")))
    raise NotEmulated(f"{hwhere}: the fake Caddy does not emulate handler "
                      f"http.handlers.{name}")


def _static_response(obj: dict, where: str) -> StaticResponse:
    _fields(obj, where, _STATIC, _STATIC)
    status = obj.get("status_code")
    if status is not None and (isinstance(status, bool) or
                               not isinstance(status, (int, str))):
        raise CaddyConfigError(f"{where}: status_code: json: cannot unmarshal "
                               f"{_go_type(status)} into a string or number")
    headers = []
    for name, values in _object(obj.get("headers") or {}, _where(where, "headers")).items():
        headers.append((name, _strings(values, _where(where, "headers", name))))
    return StaticResponse(
        status_code=None if status is None else str(status),
        headers=tuple(headers),
        body=_string(obj.get("body"), _where(where, "body")),
        close=_bool(obj.get("close"), _where(where, "close")),
        abort=_bool(obj.get("abort"), _where(where, "abort")),
    )


def _file_server(obj: dict, where: str) -> FileServer:
    _fields(obj, where, _FILE_SERVER, _FILE_SERVER_OK)
    index = _strings(obj.get("index_names"), _where(where, "index_names"))
    return FileServer(
        root=_string(obj.get("root"), _where(where, "root")),
        # staticfiles.go defaultIndexNames
        index_names=index if "index_names" in obj else ("index.html", "index.txt"),
        pass_thru=_bool(obj.get("pass_thru"), _where(where, "pass_thru")),
    )


def _reverse_proxy(obj: dict, where: str) -> ReverseProxy:
    _fields(obj, where, _PROXY, _PROXY_OK)
    transport = obj.get("transport")
    if transport is not None:
        transport = _object(transport, _where(where, "transport"))
        if transport.get("protocol") != "http" or set(transport) - {"protocol"}:
            raise NotEmulated(f"{where}: transport: the fake Caddy emulates only the plain "
                              'http transport ({"protocol": "http"})')
    dials = []
    for i, raw in enumerate(_list(obj.get("upstreams"), _where(where, "upstreams"))):
        uwhere = _where(where, f"upstream {i}")
        upstream = _object(raw, uwhere)
        _fields(upstream, uwhere, _UPSTREAM, _UPSTREAM)
        dial = _string(upstream.get("dial"), _where(uwhere, "dial"))
        if "{" not in dial:
            _check_dial(dial, uwhere)
        dials.append(dial)
    return ReverseProxy(dials=tuple(dials))


def _check_dial(dial: str, where: str) -> None:
    host, sep, port = dial.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CaddyConfigError(f"{where}: parsing dial address '{dial}': missing or invalid "
                               "port in address")


# --- the tls app (modules/caddytls) ------------------------------------------------------


def _tls_app(value: Any, read_file: ReadFile) -> tuple[Certificate, ...]:
    where = "loading new config: loading tls app module: provision tls"
    app = _object(value or {}, where)
    _fields(app, where, _TLS_APP, _TLS_APP_OK)
    loaders = _object(app.get("certificates") or {}, _where(where, "certificates"))
    certs: list[Certificate] = []
    for name, arg in loaders.items():
        lwhere = _where(where, f"loading certificate loader module '{name}'")
        if name not in _CERT_LOADERS:
            raise CaddyConfigError(f"{lwhere}: unknown module: tls.certificates.{name}")
        if name == "load_files":
            certs.extend(_load_files(arg, lwhere, read_file))
        elif name == "load_pem":
            certs.extend(_load_pem(arg, lwhere))
        else:
            raise NotEmulated(f"{lwhere}: the fake Caddy does not emulate "
                              f"tls.certificates.{name}")
    return tuple(certs)


def _load_files(value: Any, where: str, read_file: ReadFile) -> list[Certificate]:
    """fileloader.go: read both files (os.ReadFile), then tls.X509KeyPair."""
    certs = []
    for i, raw in enumerate(_list(value, where)):
        pwhere = _where(where, f"pair {i}")
        pair = _object(raw, pwhere)
        _fields(pair, pwhere, _FILE_PAIR, _FILE_PAIR)
        fmt = _string(pair.get("format"), _where(pwhere, "format"))
        if fmt not in ("", "pem"):
            raise CaddyConfigError(f"{where}: loading certificates: unrecognized "
                                   f"certificate/key encoding format: {fmt}")
        cert_path = _string(pair.get("certificate"), _where(pwhere, "certificate"))
        key_path = _string(pair.get("key"), _where(pwhere, "key"))
        blobs = []
        for path in (cert_path, key_path):
            data = read_file(path)
            if data is None:
                raise CaddyConfigError(f"{where}: loading certificates: open {path}: no such "
                                       "file or directory")
            blobs.append(data)
        certs.append(_certificate(blobs[0], blobs[1], cert_path, where))
    return certs


def _load_pem(value: Any, where: str) -> list[Certificate]:
    certs = []
    for i, raw in enumerate(_list(value, where)):
        pwhere = _where(where, f"pair {i}")
        pair = _object(raw, pwhere)
        _fields(pair, pwhere, _PEM_PAIR, _PEM_PAIR)
        chain = _string(pair.get("certificate"), _where(pwhere, "certificate")).encode()
        key = _string(pair.get("key"), _where(pwhere, "key")).encode()
        certs.append(_certificate(chain, key, f"load_pem[{i}]", where))
    return certs


_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def _certificate(chain_pem: bytes, key_pem: bytes, source: str, where: str) -> Certificate:
    """tls.X509KeyPair's checks (a certificate, a key, and they match) happen when the
    SSL contexts are built (caddy_tls.py); here: the names the leaf answers to."""
    first = _PEM_CERT.search(chain_pem)
    if first is None:
        raise CaddyConfigError(f"{where}: loading certificates: tls: failed to find any PEM "
                               f"data in certificate input ({source})")
    try:
        leaf = x509.load_pem_x509_certificate(first.group(0))
    except ValueError:
        raise CaddyConfigError(f"{where}: loading certificates: tls: failed to parse "
                               f"certificate ({source})") from None
    names: list[str] = []
    common = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if common:
        names.append(str(common[0].value).lower())
    try:
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        sans = None
    if sans is not None:
        for dns in sans.get_values_for_type(x509.DNSName):
            names.append(dns.lower())
        for ip in sans.get_values_for_type(x509.IPAddress):
            names.append(str(ipaddress.ip_address(ip)).lower())
    unique = tuple(dict.fromkeys(names))
    return Certificate(names=unique, chain_pem=chain_pem, key_pem=key_pem, source=source)


# --- placeholders (replacer.go) ----------------------------------------------------------


def _replace_env(text: str, env: Mapping[str, str]) -> str:
    return replace(text, lambda key: env.get(key[4:]) if key.startswith("env.") else None,
                   unknown_as_empty=False)


def replace(text: str, lookup: Callable[[str], str | None], *, unknown_as_empty: bool) -> str:
    """Caddy's Replacer: `{key}` is replaced by its value; `\\{` and `\\}` are literal
    braces. ReplaceAll (unknown_as_empty) drops unknown placeholders, ReplaceKnown keeps
    them as written."""
    if "{" not in text and "}" not in text:
        return text
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n and text[i + 1] in "{}":
            out.append(text[i + 1])
            i += 2
            continue
        if ch != "{":
            out.append(ch)
            i += 1
            continue
        end = text.find("}", i + 1)
        if end < 0:
            out.append(text[i:])
            break
        key = text[i + 1:end]
        value = lookup(key)
        if value is None and not unknown_as_empty:
            out.append(text[i:end + 1])
        elif value is not None:
            out.append(value)
        i = end + 1
    return "".join(out)
