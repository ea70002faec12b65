"""A node's certificates, ACME DNS authenticators and ACME registrations.

Facts followed (middleware 25.10 plugins/crypto_/certificates.py, query_utils.py,
utils.py, default_cert.py, dependencies.py, system/cert_attachments.py,
plugins/acme_protocol.py; api/v25_10_2/certificate.py, acme_dns_authenticator.py;
reference/truenas-api.md §4 Certificates and ACME; certificate.query.json):
- a row holds `type` (0x08 an existing certificate, 0x20 a CSR), `name` (unique,
  letters, digits, "-" and "_"), `certificate`, `privatekey`, `CSR`, `acme_uri`,
  `domains_authenticators`, `renew_days` (the column defaults to 10), `acme` (the
  registration) and `add_to_trusted_store`; an entry adds the parsed fields
  (cert_crypto.py) and paths under /etc/certificates;
- a fresh node has `truenas_default`, its self-signed UI certificate, as id 1;
- `acme` in an entry is the registration row (id, uri, directory, tos,
  new_account_uri, new_nonce_uri, new_order_uri, revoke_cert_uri), one per
  directory, made on first use with an RSA-2048 account key;
- deleting a certificate the UI uses fails: "Certificate is being used by
  following service(s):\\n1) UI Service\\n"; deleting an authenticator drops it
  from every certificate's domains_authenticators.
State lives on the droplet's boot disk (`<node state dir>/certificates.json`,
0600), like middleware's database, so it survives a power cycle.
"""

from __future__ import annotations

import errno
import json
import os
import re
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fakes.truenas.errors import CallError, ValidationErrors
from fakes.truenas.models import cert_crypto

CERT_TYPE_EXISTING = 0x08
CERT_TYPE_CSR = 0x20
CERT_ROOT_PATH = "/etc/certificates"
DEFAULT_CERT_NAME = "truenas_default"
DEFAULT_RENEW_DAYS = 10
NAME_PATTERN = re.compile(r"^[a-z0-9_\-]+$", re.I)
NAME_MESSAGE = "Name can only contain alphanumeric characters plus dash (-), and underscore (_)"
_STORES_GUARD = threading.Lock()


@dataclass
class CertRecord:
    id: int
    name: str
    type: int
    certificate: str | None = None
    privatekey: str | None = field(default=None, repr=False)
    CSR: str | None = None
    acme_uri: str | None = None
    domains_authenticators: dict | None = None
    renew_days: int | None = DEFAULT_RENEW_DAYS
    acme: int | None = None
    add_to_trusted_store: bool = False


@dataclass
class Authenticator:
    id: int
    name: str
    attributes: dict = field(repr=False)     # holds the provider's token

    def entry(self) -> dict:
        return {"id": self.id, "name": self.name, "attributes": dict(self.attributes)}


@dataclass
class Registration:
    id: int
    directory: str
    uri: str
    tos: str
    new_account_uri: str
    new_nonce_uri: str
    new_order_uri: str
    revoke_cert_uri: str
    status: str
    key: str = field(repr=False)            # the account's JWK, json

    def entry(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("status", "key")}


@dataclass
class CertificateStore:
    path: Path
    certs: dict[int, CertRecord] = field(default_factory=dict)
    authenticators: dict[int, Authenticator] = field(default_factory=dict)
    registrations: dict[int, Registration] = field(default_factory=dict)
    next_ids: dict[str, int] = field(default_factory=lambda: {"cert": 1, "auth": 1, "acme": 1})

    # --- persistence -------------------------------------------------------------
    @classmethod
    def load(cls, path: Path) -> CertificateStore:
        store = cls(path)
        if path.exists():
            raw = json.loads(path.read_text())
            store.certs = {c["id"]: CertRecord(**c) for c in raw["certs"]}
            store.authenticators = {a["id"]: Authenticator(**a) for a in raw["authenticators"]}
            store.registrations = {r["id"]: Registration(**r) for r in raw["registrations"]}
            store.next_ids = raw["next_ids"]
        return store

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump({"certs": [asdict(c) for c in self.certs.values()],
                       "authenticators": [asdict(a) for a in self.authenticators.values()],
                       "registrations": [asdict(r) for r in self.registrations.values()],
                       "next_ids": self.next_ids}, handle)
        partial.replace(self.path)

    def _next(self, kind: str) -> int:
        value = self.next_ids[kind]
        self.next_ids[kind] = value + 1
        return value

    # --- certificates ------------------------------------------------------------
    def name_problem(self, name: str) -> str | None:
        if not NAME_PATTERN.match(name):
            return NAME_MESSAGE
        if any(c.name == name for c in self.certs.values()):
            return "A certificate with this name already exists"
        return None

    def add(self, **fields: Any) -> CertRecord:
        record = CertRecord(id=self._next("cert"), **fields)
        self.certs[record.id] = record
        self.save()
        return record

    def get(self, cert_id: int) -> CertRecord | None:
        return self.certs.get(cert_id)

    def delete(self, cert_id: int, users: list[str]) -> None:
        """`users`: the services using it (dependencies.py check_cert_deps)."""
        if users:
            listing = "".join(f"{i + 1}) {name}\n" for i, name in enumerate(users))
            raise CallError(f"Certificate is being used by following service(s):\n{listing}")
        del self.certs[cert_id]
        self.save()

    def entry(self, record: CertRecord, now: float) -> dict:
        registration = self.registrations.get(record.acme) if record.acme else None
        return certificate_entry(record, now, registration.entry() if registration else None)

    def domain_names(self, record: CertRecord) -> list[str]:
        """cert_info.get_domain_names: the CSR's common name, then its SAN entries."""
        info = cert_crypto.csr_info(record.CSR or "") if record.CSR else {}
        names = [info["common"]] if info.get("common") else []
        return names + list(info.get("san") or [])

    # --- DNS authenticators ------------------------------------------------------
    def add_authenticator(self, name: str, attributes: dict) -> Authenticator:
        if any(a.name == name for a in self.authenticators.values()):
            raise ValidationErrors([("dns_authenticator_create.name",
                                     "Specified name is already in use", errno.EINVAL)])
        authenticator = Authenticator(self._next("auth"), name, attributes)
        self.authenticators[authenticator.id] = authenticator
        self.save()
        return authenticator

    def delete_authenticator(self, auth_id: int) -> None:
        for record in self.certs.values():
            mapping = record.domains_authenticators
            if mapping and auth_id in mapping.values():
                record.domains_authenticators = {k: v for k, v in mapping.items()
                                                 if v != auth_id}
        del self.authenticators[auth_id]
        self.save()

    # --- ACME registrations ------------------------------------------------------
    def registration_for(self, directory: str) -> Registration | None:
        return next((r for r in self.registrations.values() if r.directory == directory), None)

    def add_registration(self, **fields: Any) -> Registration:
        existing = self.registration_for(fields["directory"])
        if existing is not None:         # two orders raced to register: keep the first
            return existing
        registration = Registration(id=self._next("acme"), **fields)
        self.registrations[registration.id] = registration
        self.save()
        return registration


def certificate_entry(record: CertRecord, now: float, registration: dict | None) -> dict:
    """query_utils.normalize_cert_attrs over one row."""
    entry: dict[str, Any] = {
        "id": record.id, "type": record.type, "name": record.name,
        "certificate": record.certificate, "privatekey": record.privatekey, "CSR": record.CSR,
        "acme_uri": record.acme_uri, "domains_authenticators": record.domains_authenticators,
        "renew_days": record.renew_days, "acme": registration,
        "add_to_trusted_store": record.add_to_trusted_store,
        "root_path": CERT_ROOT_PATH,
        "certificate_path": f"{CERT_ROOT_PATH}/{record.name}.crt" if record.certificate else None,
        "privatekey_path": f"{CERT_ROOT_PATH}/{record.name}.key" if record.privatekey else None,
        "csr_path": f"{CERT_ROOT_PATH}/{record.name}.csr" if record.CSR else None,
        "cert_type": "CERTIFICATE",
        "cert_type_existing": bool(record.type & CERT_TYPE_EXISTING),
        "cert_type_CSR": bool(record.type & CERT_TYPE_CSR),
        "cert_type_CA": False,
        "chain_list": [],
        "key_length": None, "key_type": None,
    }
    parsed_fields = {key: None for key in (
        "country", "state", "city", "organization", "organizational_unit", "common", "san",
        "email", "DN", "subject_name_hash", "extensions", "digest_algorithm", "lifetime",
        "from", "until", "serial", "chain", "fingerprint", "expired")}
    entry.update(parsed_fields)
    entry["extensions"] = {}
    failed = False
    blocks = cert_crypto.split_chain(record.certificate)
    for block in blocks:
        if not cert_crypto.load_certificate(block):
            break
        entry["chain_list"].append(block)
    if blocks:
        info = cert_crypto.certificate_info(record.certificate or "", now)
        entry.update(info)
        failed = not info
        if info and "CA:TRUE" in (info.get("extensions") or {}).get("BasicConstraints", ""):
            entry["cert_type_CA"] = True
    entry["key_length"], entry["key_type"] = cert_crypto.key_info(record.privatekey)
    if entry["cert_type_CSR"]:
        info = cert_crypto.csr_info(record.CSR or "")
        entry.update(info)
        entry.update({key: None for key in ("from", "until", "digest_algorithm", "lifetime",
                                           "serial", "chain", "fingerprint", "expired")})
        failed = failed or not info
    if failed:
        entry.update(parsed_fields)
    entry["parsed"] = not failed
    return entry


def store_of(node: Any) -> CertificateStore:
    """The node's store, loaded from its boot disk on first use; a fresh node gets
    its `truenas_default` certificate as id 1 (default_cert.py)."""
    store = getattr(node, "certificate_store", None)
    if store is not None:
        return store
    with _STORES_GUARD:
        store = getattr(node, "certificate_store", None)
        if store is None:
            store = CertificateStore.load(Path(node.state_dir) / "certificates.json")
            if not store.certs and store.next_ids["cert"] == 1:
                certificate, key = default_certificate(node)
                store.add(name=DEFAULT_CERT_NAME, type=CERT_TYPE_EXISTING,
                          certificate=certificate, privatekey=key)
            node.certificate_store = store
    return store


def default_certificate(node: Any) -> tuple[str, str]:
    """The PEMs of the self-signed certificate the node's UI starts with (certs.py).

    The node's listeners make it when they start; this waits for them (briefly: they
    never need the world's lock to do it) so that both read the same files."""
    from fakes.truenas.certs import node_certificate

    network = getattr(node, "network", None)
    cert = getattr(network, "cert", None)
    if cert is None and network is not None and hasattr(network, "wait_ready"):
        network.wait_ready(10.0)
        cert = getattr(network, "cert", None)
    if cert is None:
        directory = getattr(network, "cert_dir", None) or Path(node.state_dir) / "certificate"
        cert = node_certificate(Path(directory))
    return Path(cert.cert_path).read_text(), Path(cert.key_path).read_text()
