"""The site certificate: obtained, kept on TrueNAS, served by the UI and the ingress.

One certificate covers exactly the site's public hostnames (`dns.hostnames`). It is
a TrueNAS certificate entry (reference/truenas-api.md §4 "Certificates and ACME"), obtained
- by dns-01, the TrueNAS-native way: a `digitalocean` DNS authenticator holding the
  target's DigitalOcean token, a CSR with the hostnames, then `certificate.create`
  CERTIFICATE_CREATE_ACME against the site's ACME directory with a `dns_mapping`
  entry per hostname (TrueNAS writes and removes the TXT records itself);
- by http-01, through infra/acme.py: the tokens are files in the ingress's webroot on
  the pool (Caddy serves them on :80), and the certificate is then imported
  (CERTIFICATE_CREATE_IMPORTED).
Either way its `fullchain.pem`/`privkey.pem` go to the ingress's certs directory,
and `system.general.update` puts it on the TrueNAS UI, which moves to the site's
admin port (reference/truenas-api.md §4 "Web UI settings").

Renewal swaps without downtime: a new entry is made first; the ingress files and the
UI are pointed at it; only then are the old entries deleted. Nothing changes (not
one mutating call) while a valid certificate for exactly the hostnames has more
than `renew_days` left on the target's clock and is where it belongs.

The UI presents the new certificate after its restart, so the node's TOFU pin
(infra/truenas/pinning.py) is moved to it on purpose: its PEM comes from
`certificate.query` over the already pinned, logged-in connection.

Secrets (the DigitalOcean token, private keys) travel only as call parameters; they
are scrubbed out of every message this module builds and never in a repr.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from infra.acme import issue_for_target
from infra.charts.ingress import CHALLENGE_PREFIX, ingress_paths
from infra.errors import InfraError, WaitTimeout
from infra.events import Reporter
from infra.node_credentials import api_key_for
from infra.secrets import Secret
from infra.state import StateDir
from infra.target import Target
from infra.tls_probe import DAY, CertificateFacts, TlsProbe, facts_from_pem
from infra.truenas.client import CONNECT_SECONDS, TrueNASClient
from infra.truenas.connect import connect_node
from infra.truenas.errors import TrueNASError, TrueNASUnavailable
from infra.truenas.pinning import CertificatePins, fetch_certificate, fingerprint
from infra.wait import Pending, wait_for

LETSENCRYPT_PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory"
# Real-world bounds, scaled by Timing.deadline. TrueNAS's digitalocean authenticator
# alone waits 60 s for DNS propagation (reference/truenas-api.md §4) before Let's Encrypt looks.
ISSUE_SECONDS = 900.0
CSR_SECONDS = 120.0
IMPORT_SECONDS = 120.0
DELETE_SECONDS = 120.0
UI_RESTART_SECONDS = 120.0
# reference/truenas-api.md §4 example; the change applies after this many seconds.
UI_RESTART_DELAY = 3
UI_PROTOCOLS = ("TLSv1.2", "TLSv1.3")
# TrueNAS always listens on an http port too (ui_port is required, 1..65535). With
# ui_httpsredirect it only redirects; the site firewall does not open it, so it is
# reachable from nowhere outside the droplet. 8880, not 8080: later charts may publish
# 8080 (CockroachDB's console, among many), which would clash with the UI on the host.
UI_HTTP_PORT = 8880
ACME_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")  # RFC 8555 §8.1: base64url


class CertificateError(InfraError):
    """The site certificate could not be obtained or installed; the message names the
    domain(s) and the challenge."""


@dataclass(frozen=True)
class CertificateOutcome:
    changed: bool
    certificate_id: int
    name: str
    challenge: str
    hostnames: tuple[str, ...]
    fingerprint: str
    not_after: float
    days_left: float
    issued: bool = False              # a new certificate was obtained this run
    reason: str | None = None         # why it was (renewal window, hostnames changed...)
    ingress_files_changed: bool = False
    ui_moved: bool = False            # the UI restarted: a client opened before is stale
    deleted: tuple[str, ...] = ()
    actions: tuple[str, ...] = field(default_factory=tuple)


# --- small pieces ------------------------------------------------------------------
def ui_http_port(admin_port: int) -> int:
    return UI_HTTP_PORT if admin_port != UI_HTTP_PORT else UI_HTTP_PORT + 1


def acme_directory(site: Any, target: Target) -> str:
    """The site's `[tls] directory`; else Let's Encrypt production when the site asks
    for it on a real account; else the target's (pebble, or LE staging)."""
    tls = site.tls
    if getattr(tls, "directory", None):
        return tls.directory
    if target.kind != "fake" and getattr(tls, "production", False):
        return LETSENCRYPT_PRODUCTION
    if target.acme_directory:
        return target.acme_directory
    raise CertificateError(target.acme_unavailable or "this target names no ACME directory; "
                           "set [tls] directory in the site file")


def _scrub(text: str, *secrets: Secret | str | None) -> str:
    for secret in secrets:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if value:
            text = text.replace(value, "********")
    return text


def _leaf_pem(pem: str) -> str:
    begin = pem.index("-----BEGIN CERTIFICATE-----")
    end = pem.index("-----END CERTIFICATE-----", begin) + len("-----END CERTIFICATE-----")
    return pem[begin:end] + "\n"


def _fullchain(entry: dict) -> str:
    chain = entry.get("chain_list") or []
    text = "".join(c.strip() + "\n" for c in chain) if len(chain) > 1 else entry["certificate"]
    return text.strip() + "\n"


def _facts(entry: dict) -> CertificateFacts | None:
    try:
        return facts_from_pem(entry["certificate"]) if entry.get("certificate") else None
    except (ValueError, IndexError):
        return None


def needs_renewal(subject: dict | TlsProbe | CertificateFacts | None, now: float,
                  renew_days: int) -> bool:
    """True unless the certificate (a certificate.query entry, a probe, or its facts)
    has more than `renew_days` days left at `now` (the target's clock)."""
    if isinstance(subject, TlsProbe):
        facts = subject.certificate
    elif isinstance(subject, dict):
        facts = _facts(subject)
    else:
        facts = subject
    return facts is None or facts.not_after - now <= renew_days * DAY


def _ours(entry: dict, site: Any) -> bool:
    """Made by this module for this site (and not for a site named "<site>-site")."""
    pattern = rf"{re.escape(site.name)}-site-(dns01|http01|csr)-"
    return re.match(pattern, str(entry.get("name", ""))) is not None


def _csr_name(site: Any, hostnames: list[str]) -> str:
    digest = hashlib.sha256(",".join(sorted(hostnames)).encode()).hexdigest()[:8]
    return f"{site.name}-site-csr-{digest}"


def _certificate_name(site: Any, challenge: str, now: float, taken: set[str]) -> str:
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(now))
    base = f"{site.name}-site-{challenge.replace('-', '')}-{stamp}"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    return name


def _chains_to(entry: dict, roots: list[x509.Certificate]) -> bool:
    """Each certificate of the chain signed by the next, the last by one of `roots`
    (signatures and names only: lifetimes are judged on the target's clock)."""
    try:
        chain = x509.load_pem_x509_certificates(_fullchain(entry).encode())
    except ValueError:
        return False
    for child, parent in zip(chain, chain[1:], strict=False):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature):
            return False
    for root in roots:
        if chain[-1] == root:
            return True
        try:
            chain[-1].verify_directly_issued_by(root)
            return True
        except (ValueError, TypeError, InvalidSignature):
            continue
    return False


# --- the current certificate ---------------------------------------------------------
@dataclass(frozen=True)
class _Wanted:
    hostnames: list[str]
    challenge: str
    directory: str
    renew_days: int
    now: float
    roots: list[x509.Certificate]


def _problem(entry: dict, site: Any, wanted: _Wanted) -> str | None:
    """Why this entry is not (or no longer) the site certificate; None when it is."""
    tag = f"{site.name}-site-{wanted.challenge.replace('-', '')}-"
    if not str(entry.get("name", "")).startswith(tag):
        return f"{entry.get('name')} was not obtained by {wanted.challenge}"
    facts = _facts(entry)
    if facts is None:
        return f"{entry.get('name')} holds no readable certificate"
    if sorted(facts.sans) != sorted(wanted.hostnames):
        return f"{entry['name']} names {', '.join(facts.sans) or 'nothing'}"
    directory = (entry.get("acme") or {}).get("directory")
    if directory and directory.rstrip("/") != wanted.directory.rstrip("/"):
        return f"{entry['name']} comes from {directory}"
    if wanted.roots and not _chains_to(entry, wanted.roots):
        return f"{entry['name']} does not chain to the ACME server's root"
    if facts.not_before > wanted.now:
        return f"{entry['name']} is not valid yet"
    if needs_renewal(facts, wanted.now, wanted.renew_days):
        return (f"{entry['name']} has {facts.days_left(wanted.now):.1f} days left "
                f"(renewal window {wanted.renew_days} days)")
    return None


def _current(entries: list[dict], site: Any, wanted: _Wanted,
             ui_id: int | None) -> tuple[dict | None, str]:
    """The usable site certificate (the UI's when it qualifies, else the one that
    lasts longest), or None and why none is usable."""
    reasons: list[str] = []
    usable = []
    for entry in entries:
        if not _ours(entry, site) or entry.get("cert_type_CSR"):
            continue
        problem = _problem(entry, site, wanted)
        if problem is None:
            usable.append(entry)
        else:
            reasons.append(problem)
    if not usable:
        return None, "; ".join(reasons) or "the site has no certificate yet"
    usable.sort(key=lambda e: (e["id"] == ui_id, _facts(e).not_after), reverse=True)
    return usable[0], ""


# --- obtaining -----------------------------------------------------------------------
def _entry(client: TrueNASClient, result: Any) -> dict:
    """The full certificate.query entry behind a certificate.create result."""
    if isinstance(result, dict) and result.get("certificate") is not None:
        return result
    ident = result.get("id") if isinstance(result, dict) else result
    found = client.call("certificate.query", [["id", "=", ident]])
    if not found:
        raise CertificateError(f"certificate.create answered {ident!r}, which "
                               "certificate.query does not know")
    return found[0]


def authenticator_name(site: Any) -> str:
    return f"{site.name}-digitalocean"


def site_entries(client: TrueNASClient, site: Any) -> list[dict]:
    """The certificates and CSRs this module made for the site on the node."""
    return [e for e in client.call("certificate.query") if _ours(e, site)]


def _authenticator(client: TrueNASClient, site: Any, token: Secret, events: Reporter) -> int:
    name = authenticator_name(site)
    found = client.call("acme.dns.authenticator.query", [["name", "=", name]])
    if found:
        return found[0]["id"]
    events.step(f"create DNS authenticator {name} (digitalocean)")
    created = client.call("acme.dns.authenticator.create", {
        "name": name, "attributes": {"authenticator": "digitalocean",
                                     "digitalocean_token": token}})
    return created["id"]


def _csr(client: TrueNASClient, site: Any, hostnames: list[str], entries: list[dict],
         events: Reporter) -> int:
    name = _csr_name(site, hostnames)
    for entry in entries:
        if entry.get("name") == name and entry.get("cert_type_CSR"):
            return entry["id"]
    events.step(f"create CSR {name} for {', '.join(hostnames)}")
    result = client.call_job("certificate.create", {
        "name": name, "create_type": "CERTIFICATE_CREATE_CSR", "key_type": "RSA",
        "key_length": 2048, "common": hostnames[0], "san": list(hostnames),
        "digest_algorithm": "SHA256", "cert_extensions": {}}, real_seconds=CSR_SECONDS)
    return result["id"] if isinstance(result, dict) else int(result)


def _failed(wanted: _Wanted, exc: BaseException, *secrets: Secret | str | None
            ) -> CertificateError:
    return CertificateError(
        f"could not obtain a certificate for {', '.join(wanted.hostnames)} by "
        f"{wanted.challenge} from {wanted.directory}: {_scrub(str(exc), *secrets)}")


def dns_mapping(hostnames: list[str], authenticator: int) -> dict[str, int]:
    """Every name of the CSR -> the authenticator. Middleware 25.10 names the CSR's
    domains as its common name plus its SAN entries written `DNS:<name>`, and wants
    each of them mapped (acme_create.dns_mapping); the CSR's common name is the first
    hostname."""
    return {hostnames[0]: authenticator, **{f"DNS:{h}": authenticator for h in hostnames}}


def _issue_dns01(client: TrueNASClient, site: Any, target: Target, wanted: _Wanted,
                 name: str, entries: list[dict], events: Reporter) -> dict:
    token = target.do_token
    if token is None:
        raise CertificateError(f"dns-01 for {', '.join(wanted.hostnames)} needs the "
                               "DigitalOcean token (DIGITALOCEAN_TOKEN)")
    try:
        authenticator = _authenticator(client, site, token, events)
        csr = _csr(client, site, wanted.hostnames, entries, events)
        with events.waiting(f"TrueNAS to obtain {name} by dns-01"):
            result = client.call_job("certificate.create", {
                "name": name, "create_type": "CERTIFICATE_CREATE_ACME", "csr_id": csr,
                "tos": True, "acme_directory_uri": wanted.directory,
                "dns_mapping": dns_mapping(wanted.hostnames, authenticator),
                "renew_days": wanted.renew_days}, real_seconds=ISSUE_SECONDS)
        return _entry(client, result)
    except (TrueNASError, WaitTimeout) as exc:
        raise _failed(wanted, exc, token) from None


class WebrootSolver:
    """http-01 answers as files in the ingress's webroot on the pool, which Caddy
    serves on :80 at /.well-known/acme-challenge/ (charts/ingress)."""

    def __init__(self, client: TrueNASClient, pool: str) -> None:
        self.client = client
        self.paths = ingress_paths(pool)

    def path_for(self, name_or_path: str) -> str:
        token = name_or_path.removeprefix(CHALLENGE_PREFIX)
        if not name_or_path.startswith(CHALLENGE_PREFIX) or not ACME_TOKEN.match(token):
            raise CertificateError(f"refusing to write an http-01 token at {name_or_path!r}")
        return self.paths.challenge_file(token)

    def publish(self, domain: str, challenge_type: str, name_or_path: str, value: str) -> None:
        if challenge_type != "http-01":
            raise CertificateError(f"the webroot answers http-01, not {challenge_type}")
        self.client.upload(self.path_for(name_or_path), value.encode(), mode=0o644)

    def remove(self, domain: str, challenge_type: str, name_or_path: str, value: str) -> None:
        # The TrueNAS API has no call that deletes a file: the token file is emptied
        # instead. An empty answer validates nothing, and a token is never reused.
        self.client.upload(self.path_for(name_or_path), b"", mode=0o644)


def _issue_http01(client: TrueNASClient, site: Any, target: Target, wanted: _Wanted,
                  name: str, events: Reporter) -> dict:
    solver = WebrootSolver(client, site.truenas.pool)
    try:
        with events.waiting(f"the ACME server to validate {', '.join(wanted.hostnames)} "
                            "by http-01"):
            issued = issue_for_target(target, wanted.hostnames, "http-01", solver,
                                      directory=wanted.directory,
                                      email=getattr(site.tls, "email", None))
    except InfraError as exc:
        raise _failed(wanted, exc) from None
    key = issued.key_pem
    events.step(f"import certificate {name} into TrueNAS")
    try:
        result = client.call_job("certificate.create", {
            "name": name, "create_type": "CERTIFICATE_CREATE_IMPORTED",
            "certificate": issued.fullchain_pem, "privatekey": key},
            real_seconds=IMPORT_SECONDS)
        return _entry(client, result)
    except (TrueNASError, WaitTimeout) as exc:
        raise CertificateError(
            f"TrueNAS refused to import the certificate for {', '.join(wanted.hostnames)} "
            f"obtained by http-01: {_scrub(str(exc), key)}") from None


# --- installing ----------------------------------------------------------------------
def _read(client: TrueNASClient, path: str) -> bytes | None:
    try:
        return client.download(path)
    except TrueNASError:
        return None  # missing or unreadable: it gets (re)written


def install_ingress_files(client: TrueNASClient, site: Any, entry: dict,
                          events: Reporter | None = None) -> bool:
    """fullchain.pem and privkey.pem of `entry` in the ingress's certs directory;
    False (nothing written) when both already hold exactly that."""
    events = events or Reporter()
    key = entry.get("privatekey")
    if not key:
        raise CertificateError(f"TrueNAS gave no private key for certificate {entry['name']}")
    paths = ingress_paths(site.truenas.pool)
    chain, secret = _fullchain(entry).encode(), (key.strip() + "\n").encode()
    if _read(client, paths.fullchain) == chain and _read(client, paths.privkey) == secret:
        return False
    events.step(f"install certificate {entry['name']} for the ingress in {paths.certs}")
    try:
        client.upload(paths.privkey, secret, mode=0o600)
        client.upload(paths.fullchain, chain, mode=0o644)
    except (TrueNASError, WaitTimeout) as exc:
        raise CertificateError(f"could not write the certificate for "
                               f"{', '.join(site.dns.hostnames)} into {paths.certs}: "
                               f"{_scrub(str(exc), key)}") from None
    return True


def _wait_presented(address: str, port: int, expected: str, what: str, target: Target,
                    presented: Callable[[str, int, float], str]) -> None:
    def presents() -> bool | Pending:
        try:
            now_presented = fingerprint(presented(address, port,
                                                  target.timing.deadline(CONNECT_SECONDS)))
            if now_presented == expected:
                return True
            return Pending(f"it presents {now_presented}")
        except TrueNASError as exc:
            return Pending(str(exc))

    wait_for(f"the TrueNAS UI on {address}:{port} to present {what}", presents,
             target.timing, UI_RESTART_SECONDS,
             timeout=lambda limit, last: CertificateError(
                 f"the TrueNAS UI did not come back on {address}:{port} with {what} within "
                 f"{limit:.1f} s (last: {last or 'no answer yet'})"))


def _repin(state: StateDir, address: str, port: int, leaf: str) -> bool:
    pins = CertificatePins(state.path)
    pinned = pins.get(address, port)
    if pinned is not None and pinned.sha256 == fingerprint(leaf):
        return False
    # Deliberate: the PEM comes from certificate.query over the pinned, logged-in
    # connection, and the UI was just seen presenting exactly it.
    pins.pin(address, port, leaf)
    return True


def point_ui(client: TrueNASClient, site: Any, target: Target, state: StateDir, *,
             address: str, certificate: dict | None = None, events: Reporter | None = None,
             presented: Callable[[str, int, float], str] = fetch_certificate) -> bool:
    """The UI on the site's admin port (its http port redirecting), TLS 1.2/1.3 only,
    presenting `certificate` (None: keep the one it has, e.g. before the first site
    certificate exists, to free 80/443 for the ingress). Waits until the UI presents
    it on the new port and pins it there. False when nothing had to change."""
    events = events or Reporter()
    admin = site.access.truenas_admin_port
    config = client.call("system.general.config")
    ui_cert = config.get("ui_certificate") or {}
    entry = certificate or ui_cert
    if not entry.get("certificate"):
        raise CertificateError("system.general.config did not say which certificate the UI "
                               "presents")
    port = target.node_port(admin)
    leaf = _leaf_pem(entry["certificate"])
    settled = (ui_cert.get("id") == entry.get("id") and config.get("ui_httpsport") == admin
               and config.get("ui_port") == ui_http_port(admin)
               and config.get("ui_httpsredirect") is True
               and sorted(config.get("ui_httpsprotocols") or []) == sorted(UI_PROTOCOLS))
    if settled:
        # TrueNAS renews ACME certificates in place: follow that on the pin too.
        _repin(state, address, port, leaf)
        return False
    events.step(f"put certificate {entry.get('name')} on the TrueNAS UI, on port {admin} "
                f"(http {ui_http_port(admin)} redirects; TLS 1.2 and 1.3 only)")
    try:
        client.call("system.general.update", {
            "ui_certificate": entry["id"], "ui_httpsport": admin,
            "ui_port": ui_http_port(admin), "ui_httpsredirect": True,
            "ui_httpsprotocols": list(UI_PROTOCOLS), "ui_restart_delay": UI_RESTART_DELAY})
    except TrueNASUnavailable:
        # The UI restarts ui_restart_delay after saving; a reply slower than that is
        # lost with the connection (a loaded node, or a fast fake clock). Whether the
        # settings took shows below: the new port presents the certificate, or the
        # wait fails saying so.
        events.note("the connection closed as the UI restarted; checking the new port")
    except TrueNASError as exc:
        raise CertificateError(f"TrueNAS refused the UI settings: {exc}") from None
    with events.waiting(f"the TrueNAS UI to restart on port {admin}"):
        _wait_presented(address, port, fingerprint(leaf), f"certificate {entry.get('name')}",
                        target, presented)
    _repin(state, address, port, leaf)
    return True


def _default_reconnect(site: Any, target: Target, state: StateDir,
                       address: str) -> TrueNASClient:
    return connect_node(address, api_key_for(site, target, state=state), site.truenas.username,
                        state.path, target.timing,
                        port=target.node_port(site.access.truenas_admin_port))


# --- the whole thing -----------------------------------------------------------------
def certificate_due(node_client: TrueNASClient, site: Any, target: Target) -> str | None:
    """Why `ensure_certificate` would obtain a new certificate now (reads only), or
    None when the site's current one does."""
    directory = acme_directory(site, target)
    root = target.acme_root_ca if directory == target.acme_directory else None
    roots = x509.load_pem_x509_certificates(Path(root).read_bytes()) if root else []
    wanted = _Wanted(list(site.dns.hostnames), site.tls.challenge, directory,
                     site.tls.renew_days, target.now(), roots)
    entries = node_client.call("certificate.query")
    ui_cert = node_client.call("system.general.config").get("ui_certificate") or {}
    current, reason = _current(entries, site, wanted, ui_cert.get("id"))
    return None if current is not None else reason


def ensure_certificate(node_client: TrueNASClient, site: Any, target: Target, state: StateDir,
                       events: Reporter | None = None, *, address: str | None = None,
                       force_renewal: bool = False,
                       reconnect: Callable[[], TrueNASClient] | None = None,
                       presented: Callable[[str, int, float], str] = fetch_certificate,
                       ) -> CertificateOutcome:
    """Make the site certificate valid and in place (see the module docstring).

    `address`: the node's address (default: the host `node_client` talks to).
    `force_renewal`: obtain a new certificate even if the current one is fine.
    `reconnect`: a new logged-in client after the UI moved (default: connect_node
    on the admin port, through the pin just recorded); used to delete the old
    entries, and closed here. When `ui_moved`, `node_client` is stale.
    """
    events = events or Reporter()
    address = address or urlsplit(node_client.url).hostname or ""
    tls = site.tls
    hostnames = list(site.dns.hostnames)
    directory = acme_directory(site, target)
    root = target.acme_root_ca if directory == target.acme_directory else None
    roots = x509.load_pem_x509_certificates(Path(root).read_bytes()) if root else []
    wanted = _Wanted(hostnames, tls.challenge, directory, tls.renew_days, target.now(), roots)

    entries = node_client.call("certificate.query")
    ui_cert = node_client.call("system.general.config").get("ui_certificate") or {}
    current, reason = _current(entries, site, wanted, ui_cert.get("id"))
    actions: list[str] = []
    issued = current is None or force_renewal
    if issued:
        reason = "renewal forced" if current is not None else reason
        name = _certificate_name(site, tls.challenge, wanted.now,
                                 {str(e.get("name")) for e in entries})
        events.step(f"obtain certificate {name} for {', '.join(hostnames)} by "
                    f"{tls.challenge} ({reason})")
        current = (_issue_dns01(node_client, site, target, wanted, name, entries, events)
                   if tls.challenge == "dns-01"
                   else _issue_http01(node_client, site, target, wanted, name, events))
        actions.append(f"obtained certificate {name} by {tls.challenge}")

    files_changed = install_ingress_files(node_client, site, current, events)
    if files_changed:
        actions.append(f"installed certificate {current['name']} for the ingress")
    ui_moved = point_ui(node_client, site, target, state, address=address,
                        certificate=current, events=events, presented=presented)
    if ui_moved:
        actions.append(f"the TrueNAS UI presents {current['name']} on port "
                       f"{site.access.truenas_admin_port}")

    deleted = _delete_stale(node_client, site, target, state, address, current, entries,
                            ui_moved, reconnect, events)
    actions += [f"deleted old certificate {name}" for name in deleted]
    facts = _facts(current)
    return CertificateOutcome(
        changed=bool(actions), certificate_id=current["id"], name=current["name"],
        challenge=tls.challenge, hostnames=tuple(facts.sans), fingerprint=facts.fingerprint,
        not_after=facts.not_after, days_left=facts.days_left(wanted.now), issued=issued,
        reason=reason or None, ingress_files_changed=files_changed, ui_moved=ui_moved,
        deleted=tuple(deleted), actions=tuple(actions))


def _delete_stale(node_client: TrueNASClient, site: Any, target: Target, state: StateDir,
                  address: str, current: dict, entries: list[dict], ui_moved: bool,
                  reconnect: Callable[[], TrueNASClient] | None,
                  events: Reporter) -> list[str]:
    """Delete the site's other certificates and CSRs, now that neither the UI nor the
    ingress uses them (the CSR of the current hostnames stays for renewals)."""
    keep = {current["id"]}
    keep |= {e["id"] for e in entries
             if e.get("name") == _csr_name(site, list(site.dns.hostnames))}
    stale = [e for e in entries if _ours(e, site) and e["id"] not in keep]
    if not stale:
        return []
    client = (reconnect or (lambda: _default_reconnect(site, target, state, address)))() \
        if ui_moved else node_client
    deleted = []
    try:
        for entry in stale:
            events.step(f"delete old certificate {entry['name']}")
            try:
                client.call_job("certificate.delete", entry["id"], real_seconds=DELETE_SECONDS)
            except TrueNASError as exc:
                # The swap is done and serving; a leftover entry is only clutter,
                # deleted by the next run.
                events.note(f"old certificate {entry['name']} stays for now: {exc}")
                continue
            deleted.append(entry["name"])
    finally:
        if client is not node_client:
            client.close()
    return deleted
