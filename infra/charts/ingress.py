"""The ingress chart's Caddy config (JSON), built from the site's public hostnames
and the routes other charts declare; and where its files live on the pool.

The config is the subset of Caddy's JSON config agreed in the issue-4 contract:
- before the first certificate exists (`tls_ready` false): only the http server on
  :80, so http-01 challenges can be answered first;
- once `certs/fullchain.pem` is there: the `tls` app loading it, and the https server
  on :443 (TLS 1.2 at least), one route per routed hostname, then a 404 page that
  names the unknown host.
On :80, /healthz answers 200 (the container's health check: it must not depend on
the certificate), ACME tokens are served from /srv/acme, everything else is a 308
redirect to https.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

CONFIG_DIR = "/etc/caddy"
CERTS_DIR = "/certs"
ACME_DIR = "/srv/acme"
HEALTH_PATH = "/healthz"
CHALLENGE_PREFIX = "/.well-known/acme-challenge/"


@dataclass(frozen=True)
class IngressRoute:
    hostname: str
    dial: str          # service:port, resolved in the app network by Caddy
    setting: str = ""  # where the hostname came from: apps.<chart>.<setting>
    strip_path_prefix: str | None = None  # removed from the path before proxying


@dataclass(frozen=True)
class IngressPaths:
    """Host paths (on the node) of the ingress app's directories."""
    app: str

    @property
    def config(self) -> str:
        return f"{self.app}/config"

    @property
    def certs(self) -> str:
        return f"{self.app}/certs"

    @property
    def fullchain(self) -> str:
        return f"{self.app}/certs/fullchain.pem"

    @property
    def privkey(self) -> str:
        return f"{self.app}/certs/privkey.pem"

    @property
    def acme(self) -> str:
        return f"{self.app}/acme"

    def challenge_file(self, token: str) -> str:
        """Where an http-01 token's key authorization goes to be served on :80."""
        return f"{self.app}/acme{CHALLENGE_PREFIX}{token}"


def ingress_paths(pool: str, apps_dataset: str = "apps", app: str = "ingress") -> IngressPaths:
    return IngressPaths(f"/mnt/{pool}/{apps_dataset}/{app}")


def _not_found() -> dict:
    return {"handle": [{"handler": "static_response", "status_code": 404,
                        "headers": {"Content-Type": ["text/plain; charset=utf-8"]},
                        "body": "no service is published at {http.request.host}\n"}]}


def http_server() -> dict:
    return {
        "listen": [":80"], "automatic_https": {"disable": True},
        "routes": [
            {"match": [{"path": [HEALTH_PATH]}],
             "handle": [{"handler": "static_response", "status_code": 200, "body": "ok\n"}]},
            {"match": [{"path": [CHALLENGE_PREFIX + "*"]}],
             "handle": [{"handler": "file_server", "root": ACME_DIR}]},
            {"handle": [{"handler": "static_response", "status_code": 308,
                         "headers": {"Location": [
                             "https://{http.request.host}{http.request.uri}"]}}]},
        ],
    }


def https_server(routes: list[IngressRoute], tls_min_version: str) -> dict:
    ordered = sorted(routes, key=lambda r: r.hostname)
    return {
        "listen": [":443"], "automatic_https": {"disable": True},
        "tls_connection_policies": [{"protocol_min": tls_min_version}],
        "routes": [*(_proxy_route(route) for route in ordered), _not_found()],
    }


def _proxy_route(route: IngressRoute) -> dict:
    """One hostname's route. With a prefix to strip, a `rewrite` handler runs first:
    Caddy's http.handlers.rewrite `strip_path_prefix` (what the Caddyfile's
    `handle_path` compiles to) removes it when the path starts with it, and the
    reverse_proxy then sends the rewritten path upstream."""
    handle: list[dict] = []
    if route.strip_path_prefix:
        handle.append({"handler": "rewrite", "strip_path_prefix": route.strip_path_prefix})
    handle.append({"handler": "reverse_proxy", "upstreams": [{"dial": route.dial}]})
    return {"match": [{"host": [route.hostname]}], "handle": handle}


def caddy_config(routes: list[IngressRoute], *, tls_ready: bool,
                 tls_min_version: str = "tls1.2", certificate_tag: str | None = None) -> dict:
    """`certificate_tag` (e.g. the certificate's SHA-256): Caddy reads load_files only
    when its config loads, and --watch reloads only when the config's bytes change, so a
    renewed certificate must change the config: the tag does (Caddy keeps `tags` as
    labels of a loaded certificate and does nothing else with them)."""
    servers: dict = {}
    config: dict = {"admin": {"disabled": True}, "apps": {}}
    if tls_ready:
        pair: dict = {"certificate": f"{CERTS_DIR}/fullchain.pem",
                      "key": f"{CERTS_DIR}/privkey.pem"}
        if certificate_tag:
            pair["tags"] = [certificate_tag]
        config["apps"]["tls"] = {"certificates": {"load_files": [pair]}}
        servers["https"] = https_server(routes, tls_min_version)
    servers["http"] = http_server()
    config["apps"]["http"] = {"servers": servers}
    return config


def caddy_file(routes: list[IngressRoute], *, tls_ready: bool, tls_min_version: str,
               certificate_tag: str | None = None) -> bytes:
    """caddy.json's bytes: stable key order, so equal configs are equal files."""
    config = caddy_config(routes, tls_ready=tls_ready, tls_min_version=tls_min_version,
                          certificate_tag=certificate_tag)
    return (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()


RELOAD_SECONDS = 30.0   # Caddy's --watch polls its config every second; a load takes ms


def wait_until_served(fullchain: bytes, probe: Callable[[], Any], *, deadline: float,
                      poll: float, clock: Callable[[], float] = time.monotonic) -> None:
    """Return once `probe()` (a TlsProbe of 443) presents the leaf of `fullchain`.

    Caddy applies a rewritten caddy.json by itself, up to a second later (its --watch
    polls the file: caddyserver/caddy v2.8.4 cmd/commandfuncs.go watchConfigFile), so
    `up` waits for the new certificate to be served before it says the site is done.
    WaitTimeout (naming what is served instead) after `deadline` (a clock() value)."""
    from infra.errors import WaitTimeout

    leaf = x509.load_pem_x509_certificates(fullchain)[0]
    wanted = leaf.fingerprint(hashes.SHA256()).hex(":").upper()
    while True:
        found = probe()
        served = found.certificate.fingerprint if found.certificate else None
        if served == wanted:
            return
        if clock() > deadline:
            raise WaitTimeout(f"the ingress did not serve the new certificate within "
                              f"{RELOAD_SECONDS:.0f} s: {found.describe()}")
        time.sleep(poll)
