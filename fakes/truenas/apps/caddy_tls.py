"""TLS for the fake Caddy: server-side SSL contexts and certmagic's certificate choice.

- Certificates come from `apps.tls.certificates` (caddy_config.Certificate); every TLS
  listener may serve any of them (one certificate cache per tls app).
- Choice by SNI follows certmagic v0.21.3 `getCertificateFromCache` (the version Caddy
  2.8.4 pins): an exact name first, then the name with its labels replaced by `*` one by
  one from the left; `fallback_sni` if set. Without SNI, certmagic tries the connection's
  local IP: inside a container that is its bridge address, which no certificate names,
  so only `default_sni` can help. No certificate -> the handshake fails (Go's crypto/tls
  sends an internal_error alert when GetCertificate fails).
- Versions: `protocol_min` / `protocol_max` of the connection policy (default TLS 1.2 to
  1.3, caddytls setDefaultTLSParams); TLS 1.2 cipher suites limited to ECDHE with AEAD,
  like Go's defaults.
- ALPN: real Caddy offers h2 and http/1.1; the fake serves HTTP/1.1 only and says so.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
from collections.abc import Callable

from fakes.truenas.apps.caddy_config import CaddyConfigError, Certificate, TlsPolicy

_VERSIONS = {(1, 2): ssl.TLSVersion.TLSv1_2, (1, 3): ssl.TLSVersion.TLSv1_3}
_TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def check_key_pair(cert: Certificate) -> None:
    """tls.X509KeyPair at load: the chain and key parse and belong together."""
    _context(cert, TlsPolicy())


def server_context(policy: TlsPolicy, certs: tuple[Certificate, ...]) -> ssl.SSLContext:
    """The context a TLS listener handshakes with: it holds no certificate itself; its SNI
    callback switches each connection to the context of the chosen certificate."""
    by_name: dict[str, ssl.SSLContext] = {}
    for cert in certs:
        ctx = _context(cert, policy)
        for name in cert.names:
            by_name.setdefault(name, ctx)     # first loaded wins for a shared name
    choose = _chooser(by_name, policy)
    front = _base(policy)

    def on_sni(ssl_object: ssl.SSLObject, server_name: str | None,
               _ctx: ssl.SSLContext) -> int | None:
        chosen = choose(server_name)
        if chosen is None:
            return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
        ssl_object.context = chosen
        return None

    front.sni_callback = on_sni
    return front


def _chooser(by_name: dict[str, ssl.SSLContext],
             policy: TlsPolicy) -> Callable[[str | None], ssl.SSLContext | None]:
    def lookup(name: str) -> ssl.SSLContext | None:
        if name in by_name:
            return by_name[name]
        labels = name.split(".")
        for i in range(len(labels)):
            labels[i] = "*"
            candidate = by_name.get(".".join(labels))
            if candidate is not None:
                return candidate
        return None

    def choose(server_name: str | None) -> ssl.SSLContext | None:
        name = (server_name or "").strip().lower()
        found = None
        if name:
            found = lookup(name)
        elif policy.default_sni:
            found = lookup(policy.default_sni.lower())
        if found is None and policy.fallback_sni:
            found = lookup(policy.fallback_sni.lower())
        return found

    return choose


def _base(policy: TlsPolicy) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _VERSIONS[policy.min_version]
    ctx.maximum_version = _VERSIONS[policy.max_version]
    ctx.set_ciphers(_TLS12_CIPHERS)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def _context(cert: Certificate, policy: TlsPolicy) -> ssl.SSLContext:
    """ssl can load a key pair only from files: write both to a private temporary
    directory, load, and remove them at once."""
    ctx = _base(policy)
    with tempfile.TemporaryDirectory(prefix="fake-caddy-") as directory:
        chain_path = os.path.join(directory, "chain.pem")
        key_path = os.path.join(directory, "key.pem")
        for path, data in ((chain_path, cert.chain_pem), (key_path, cert.key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        try:
            ctx.load_cert_chain(chain_path, key_path)
        except ssl.SSLError as exc:
            # the reason names OpenSSL's check, never the key's bytes
            reason = exc.reason or "invalid certificate or key"
            raise CaddyConfigError(
                "loading new config: loading tls app module: provision tls: loading "
                f"certificates: tls: {reason.lower().replace('_', ' ')} ({cert.source})"
            ) from None
        finally:
            for path in (chain_path, key_path):
                with contextlib.suppress(OSError):
                    os.unlink(path)
    return ctx
