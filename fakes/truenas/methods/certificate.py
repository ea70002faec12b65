"""certificate.* and acme.dns.authenticator.* (reference/truenas-api.md §4 Certificates and
ACME; certificate.create.json, certificate.query.json,
acme.dns.authenticator.create.json; middleware 25.10 plugins/crypto_/certificates.py
and plugins/acme_protocol.py).

`certificate.create`, `update` and `delete` are jobs. Argument types fail at once
(-32602); the plugin's checks fail the job (exc_info.type "VALIDATION"): common
checks under `certificate_create.<field>`, each create type's own model under
`certificate_create_csr.`, `certificate_create_acme.` ..., the DNS mapping under
`acme_create.dns_mapping`. Key generation, ACME and revocation run on a worker
thread (never under the world's lock); the job finishes under the lock.
A job's `arguments` show the private key and passphrase as "********".
Not modelled: the `cert_create` job lock (creates run side by side; the name is
checked again when the row is written), country-code and extension validation,
the daily renewal of ACME certificates middleware runs within `renew_days`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from fakes.truenas import acme_issuer
from fakes.truenas.dns_digitalocean import (
    PROPAGATION_DELAY,
    AuthenticatorError,
    DigitalOceanAuthenticator,
)
from fakes.truenas.errors import CallError, RpcError, ValidationErrors
from fakes.truenas.methods.cert_specs import (
    AUTHENTICATOR_ATTRIBUTES,
    AUTHENTICATOR_CREATE,
    CERTIFICATE_CREATE,
    CERTIFICATE_UPDATE,
    without_secrets,
)
from fakes.truenas.methods.common import crud_event, instance_not_found, query_methods, submit
from fakes.truenas.methods.params import (
    EMPTY,
    MISSING,
    NOT_GIVEN,
    Bool,
    Field,
    Int,
    Obj,
    Str,
    parse,
)
from fakes.truenas.models import cert_crypto
from fakes.truenas.models.certificates import (
    CERT_TYPE_CSR,
    CERT_TYPE_EXISTING,
    NAME_MESSAGE,
    NAME_PATTERN,
    store_of,
)
from fakes.truenas.models.ui_settings import settings_of

log = logging.getLogger(__name__)
CREATE = "certificate_create"


# --- queries ---------------------------------------------------------------------------
def _entries(node, extra: dict | None = None) -> list[dict]:
    store = store_of(node)
    now = node.clock.now()
    return [store.entry(record, now) for _, record in sorted(store.certs.items())]


def _authenticator_entries(node, extra: dict | None = None) -> list[dict]:
    return [a.entry() for _, a in sorted(store_of(node).authenticators.items())]


query, get_instance = query_methods(_entries, "id", Int(), "Certificate")
auth_query, auth_get_instance = query_methods(_authenticator_entries, "id", Int(),
                                              "DNSAuthenticator")


# --- running work off the world's lock -----------------------------------------------------
def _off_lock(node, job, work: Callable[[], Any], finish: Callable[[Any], None]) -> None:
    """`work()` on a worker thread; then `finish(result)`, or the job's failure, under
    the node's lock."""

    def body() -> None:
        failure: Exception | None = None
        result = None
        try:
            result = work()
        except (acme_issuer.IssueFailed, AuthenticatorError) as exc:
            failure = CallError(str(exc))
        except RpcError as exc:
            failure = exc
        except Exception as exc:  # noqa: BLE001 - the job must end, whatever happened
            log.exception("fake TrueNAS %s: %s failed", node.address, job.method)
            failure = CallError(f"{type(exc).__name__}: {exc}")
        with node.lock:
            if failure is None and node.state == "SHUTTING_DOWN":
                failure = CallError("The system is shutting down")
            if failure is not None:
                job.fail(failure)
                return
            try:
                finish(result)
            except RpcError as exc:
                job.fail(exc)
            except Exception as exc:  # noqa: BLE001
                log.exception("fake TrueNAS %s: %s failed", node.address, job.method)
                job.fail(CallError(f"{type(exc).__name__}: {exc}"))

    threading.Thread(target=body, daemon=True,
                     name=f"truenas-{node.address}-job-{job.id}").start()


def _progress(node, job) -> Callable[[float, str], None]:
    def report(percent: float, text: str) -> None:
        with node.lock:
            if not job.finished:
                job.set_progress(percent, text)
    return report


# --- certificate.create ----------------------------------------------------------------------
def create(node, params, ctx):
    (data,) = parse(params, [(CREATE, CERTIFICATE_CREATE, MISSING)])
    _check_name(CREATE, data["name"])
    return submit(node, ctx, "certificate.create", without_secrets(params),
                  lambda job: _create(node, job, data))


def _check_name(schema: str, name: str) -> None:
    """The CERT_NAME validator runs with the argument model: an immediate -32602."""
    if not NAME_PATTERN.match(name):
        raise ValidationErrors([(f"{schema}.name", f"Value error, {NAME_MESSAGE}", 22)])


def _create(node, job, data: dict) -> None:
    store = store_of(node)
    kind = data["create_type"]
    errors = _common_problems(store, data)
    if data["add_to_trusted_store"] and kind in ("CERTIFICATE_CREATE_IMPORTED_CSR",
                                                 "CERTIFICATE_CREATE_CSR"):
        errors.add(f"{CREATE}.add_to_trusted_store", "Cannot add CSR to trusted store")
    errors.check()
    job.set_progress(10, "Initial validation complete")
    _private_model_check(data)
    if kind == "CERTIFICATE_CREATE_CSR":
        _off_lock(node, job, lambda: cert_crypto.generate_csr(data),
                  lambda pems: _insert(node, job, data, type=CERT_TYPE_CSR, CSR=pems[0],
                                       privatekey=pems[1]))
    elif kind == "CERTIFICATE_CREATE_IMPORTED_CSR":
        _insert(node, job, data, type=CERT_TYPE_CSR, CSR=data["CSR"],
                privatekey=cert_crypto.export_key(data["privatekey"], data["passphrase"]))
    elif kind == "CERTIFICATE_CREATE_IMPORTED":
        key = data["privatekey"]
        _insert(node, job, data, type=CERT_TYPE_EXISTING, certificate=data["certificate"],
                privatekey=cert_crypto.export_key(key, data["passphrase"]) if key else None)
    else:
        _create_acme(node, job, store, data)


def _common_problems(store, data: dict) -> ValidationErrors:
    """certificates.py validate_common_attributes."""
    errors = ValidationErrors()
    if problem := store.name_problem(data["name"]):
        errors.add(f"{CREATE}.name", problem)
    certificate, key, passphrase = data["certificate"], data["privatekey"], data["passphrase"]
    if certificate and not cert_crypto.is_certificate(certificate):
        errors.add(f"{CREATE}.certificate", "Not a valid certificate")
    if key and (problem := cert_crypto.private_key_problem(key, passphrase)):
        errors.add(f"{CREATE}.privatekey", problem)
    if data["CSR"] and not cert_crypto.is_csr(data["CSR"]):
        errors.add(f"{CREATE}.CSR", "Please provide a valid CSR")
    csr_id = data["csr_id"]
    if csr_id:
        record = store.get(csr_id)
        if record is None or not record.type & CERT_TYPE_CSR:
            errors.add(f"{CREATE}.csr_id", "Please provide a valid csr_id")
    if (not errors.errors and data["create_type"] == "CERTIFICATE_CREATE_IMPORTED"
            and certificate and key
            and (problem := cert_crypto.key_mismatch(certificate, key, passphrase))):
        errors.add(f"{CREATE}.privatekey", f"Private key does not match certificate: {problem}")
    if (data["create_type"] == "CERTIFICATE_CREATE_CSR" and data["key_type"] != "EC"
            and not data["key_length"]):
        errors.add(f"{CREATE}.key_length", "RSA-based keys require an entry in this field.")
    return errors


PRIVATE_MODELS = {   # private_models.py: what each create type requires
    "CERTIFICATE_CREATE_ACME": ("certificate_create_acme", [
        ("tos", bool, "Input should be a valid boolean"),
        ("csr_id", int, "Input should be a valid integer"),
        ("acme_directory_uri", str, "Input should be a valid string")]),
    "CERTIFICATE_CREATE_IMPORTED": ("certificate_create_certificate_imported", [
        ("certificate", str, "Input should be a valid string")]),
    "CERTIFICATE_CREATE_IMPORTED_CSR": ("certificate_create_csr_imported", [
        ("CSR", str, "Input should be a valid string"),
        ("privatekey", str, "Input should be a valid string")]),
}


def _private_model_check(data: dict) -> None:
    errors = ValidationErrors()
    kind = data["create_type"]
    if kind == "CERTIFICATE_CREATE_CSR" and not data["san"]:
        errors.add("certificate_create_csr.san",
                   "List should have at least 1 item after validation, not 0")
    schema, required = PRIVATE_MODELS.get(kind, ("", []))
    for name, wanted, message in required:
        if not isinstance(data[name], wanted):
            errors.add(f"{schema}.{name}", message)
    errors.check()


def _insert(node, job, data: dict, **fields: Any) -> None:
    store = store_of(node)
    job.set_progress(90, "Finalizing changes")
    if problem := store.name_problem(data["name"]):     # another create took the name
        raise ValidationErrors([(f"{CREATE}.name", problem, 22)])
    record = store.add(name=data["name"], add_to_trusted_store=data["add_to_trusted_store"],
                       **fields)
    job.set_progress(100, "Certificate created successfully")
    entry = store.entry(record, node.clock.now())
    crud_event(node, "certificate", "create", entry)
    job.succeed(entry)


# --- ACME ------------------------------------------------------------------------------------
def _create_acme(node, job, store, data: dict) -> None:
    csr = store.get(data["csr_id"])
    directory = data["acme_directory_uri"]
    directory += "" if directory.endswith("/") else "/"
    mapping = _dns_mapping(store, store.domain_names(csr), data["dns_mapping"])
    services = getattr(node, "world_services", None)
    endpoint = getattr(services, "digitalocean_endpoint", "") or ""
    ca_bundle = getattr(services, "ca_bundle", "") or True
    registration = store.registration_for(directory)

    def registered(fields: dict) -> None:
        with node.lock:
            store.add_registration(**fields)

    request = acme_issuer.IssueRequest(
        directory=directory, tos=data["tos"],
        account=asdict(registration) if registration else None, csr_pem=csr.CSR,
        authenticators={domain: _authenticator(store.authenticators[auth_id].attributes,
                                               endpoint, ca_bundle)
                        for domain, auth_id in mapping.items()},
        ca_bundle=ca_bundle, clock=node.clock, progress=_progress(node, job),
        on_registration=registered, cancelled=lambda: node.state == "SHUTTING_DOWN")

    def finish(issued: acme_issuer.Issued) -> None:
        job.set_progress(95, "Final order received from ACME server")
        account = store.registration_for(directory)
        _insert(node, job, data, type=CERT_TYPE_EXISTING, certificate=issued.fullchain_pem,
                CSR=csr.CSR, privatekey=csr.privatekey, acme_uri=issued.order_uri,
                acme=account.id if account else None,
                domains_authenticators=dict(data["dns_mapping"]),
                renew_days=data["renew_days"])

    _off_lock(node, job, lambda: acme_issuer.issue(request), finish)


def _dns_mapping(store, domains: list[str], given: dict[str, int]) -> dict[str, int]:
    """issue_cert.py: every name of the CSR ([common] + "DNS:<san>" entries) needs an
    existing authenticator; keys match with or without the "DNS:" prefix, and a key
    the CSR does not list is refused. Returns the name the ACME order uses (no
    prefix, no "*.") -> authenticator id."""
    errors = ValidationErrors()
    attribute = "acme_create.dns_mapping"
    copy = dict(given)
    for domain in given:
        if ":" in domain and domain.split(":", 1)[-1] not in copy:
            copy[domain.split(":", 1)[-1]] = copy[domain]
        elif ":" not in domain:
            kind, value = cert_crypto.normalize_san([domain])[0]
            copy.setdefault(f"{kind}:{value}", copy[domain])
    for domain in domains:
        if domain not in copy:
            errors.add(attribute, f"Please provide DNS authenticator id for {domain}")
        elif copy[domain] not in store.authenticators:
            errors.add(attribute, f"Provided DNS Authenticator id for {domain} does not exist")
        if domain.endswith("."):
            errors.add(attribute, f"Domain {domain} name cannot end with a period")
        if "*" in domain and not domain.split(":", 1)[-1].startswith("*."):
            errors.add(attribute,
                       "Wildcards must be at the start of domain name followed by a period")
    for domain in given:
        if domain not in domains:
            errors.add(attribute, f"{domain} not specified in the CSR")
    errors.check()
    mapping = {}
    for key, auth_id in copy.items():
        name = key.split(":", 1)[-1]
        mapping[name] = auth_id
        if name.startswith("*."):
            mapping[name[2:]] = auth_id
    return mapping


class _Unreachable:
    """A provider the fake world does not run: its challenge cannot be performed."""

    PROPAGATION_DELAY = 0

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def perform(self, domain: str, validation_name: str, validation: str) -> None:
        raise AuthenticatorError(f"Failed to perform {self.kind} challenge for {domain!r} "
                                 f"domain: {self.kind} is not reachable from the fake world")

    def cleanup(self, domain: str, validation_name: str, validation: str) -> None:
        return None


def _authenticator(attributes: dict, endpoint: str, ca_bundle: Any) -> tuple[Any, int]:
    if attributes["authenticator"] == "digitalocean":
        return (DigitalOceanAuthenticator(endpoint, ca_bundle, attributes["digitalocean_token"]),
                PROPAGATION_DELAY)
    return _Unreachable(attributes["authenticator"]), 0


# --- certificate.update / delete ---------------------------------------------------------
def update(node, params, ctx):
    cert_id, data = parse(params, [("id", Int(), MISSING),
                                   ("certificate_update", CERTIFICATE_UPDATE, EMPTY)])
    if "name" in data:
        _check_name("certificate_update", data["name"])

    def start(job):
        store = store_of(node)
        record = store.get(cert_id)
        if record is None:
            raise instance_not_found("Certificate", cert_id)
        errors = ValidationErrors()
        name = data.get("name", record.name)
        if name != record.name and (problem := store.name_problem(name)):
            errors.add("certificate_update.name", problem)
        if not record.acme and data.get("renew_days"):
            errors.add("certificate_update.renew_days",
                       "Certificate renewal days is only supported for ACME certificates")
        trusted = data.get("add_to_trusted_store", record.add_to_trusted_store)
        if trusted and record.type & CERT_TYPE_CSR:
            errors.add("certificate_update.add_to_trusted_store",
                       "A CSR cannot be added to the system's trusted store")
        errors.check()
        record.name, record.add_to_trusted_store = name, trusted
        if data.get("renew_days"):
            record.renew_days = data["renew_days"]
        store.save()
        job.set_progress(90, "Finalizing changes")
        entry = store.entry(record, node.clock.now())
        crud_event(node, "certificate", "update", entry, cert_id)
        job.succeed(entry)

    return submit(node, ctx, "certificate.update", params, start)


def delete(node, params, ctx):
    cert_id, force = parse(params, [("id", Int(), MISSING), ("force", Bool(), False)])

    def start(job):
        store = store_of(node)
        record = store.get(cert_id)
        if record is None:
            raise instance_not_found("Certificate", cert_id)
        _users_check(node, cert_id)
        entry = store.entry(record, node.clock.now())
        registration = store.registrations.get(record.acme) if record.acme else None
        if registration is None or entry["expired"]:
            _finish_delete(node, job, cert_id)
            return
        account = asdict(registration)
        ca_bundle = getattr(getattr(node, "world_services", None), "ca_bundle", "") or True
        certificate = record.certificate or ""

        def revoke() -> None:
            try:
                acme_issuer.revoke(account, ca_bundle, certificate)
            except acme_issuer.IssueFailed:
                if not force:
                    raise

        _off_lock(node, job, revoke, lambda _: _finish_delete(node, job, cert_id))

    return submit(node, ctx, "certificate.delete", params, start)


def _users_check(node, cert_id: int) -> None:
    """dependencies.py check_cert_deps: the UI Service attachment."""
    users = ["UI Service"] if settings_of(node).uses_certificate(cert_id) else []
    if users:
        listing = "".join(f"{i + 1}) {name}\n" for i, name in enumerate(users))
        raise CallError(f"Certificate is being used by following service(s):\n{listing}")


def _finish_delete(node, job, cert_id: int) -> None:
    _users_check(node, cert_id)
    store = store_of(node)
    if store.get(cert_id) is not None:
        store.delete(cert_id, [])
    crud_event(node, "certificate", "delete", True, cert_id)
    job.set_progress(100)
    job.succeed(True)


# --- acme.dns.authenticator.* ----------------------------------------------------------------
def auth_create(node, params, ctx):
    (data,) = parse(params, [("dns_authenticator_create", AUTHENTICATOR_CREATE, MISSING)])
    entry = store_of(node).add_authenticator(data["name"], data["attributes"]).entry()
    crud_event(node, "acme.dns.authenticator", "create", entry)
    return entry


AUTHENTICATOR_UPDATE = Obj({"attributes": Field(Obj(extra=True), NOT_GIVEN),
                            "name": Field(Str(), NOT_GIVEN)})


def auth_update(node, params, ctx):
    auth_id, data = parse(params, [("id", Int(), MISSING),
                                   ("dns_authenticator_update", AUTHENTICATOR_UPDATE, EMPTY)])
    store = store_of(node)
    current = store.authenticators.get(auth_id)
    if current is None:
        raise instance_not_found("DNSAuthenticator", auth_id)
    attributes = {**current.attributes, **data.get("attributes", {})}
    errors = ValidationErrors()
    checked = AUTHENTICATOR_ATTRIBUTES.check(attributes, "dns_authenticator_update.attributes",
                                             errors)
    name = data.get("name", current.name)
    if name != current.name and any(a.name == name for a in store.authenticators.values()):
        errors.add("dns_authenticator_update.name", "Specified name is already in use")
    if attributes.get("authenticator") != current.attributes["authenticator"]:
        errors.add("dns_authenticator_update.attributes.authenticator",
                   "Authenticator cannot be changed")
    errors.check()
    current.name, current.attributes = name, checked
    store.save()
    entry = current.entry()
    crud_event(node, "acme.dns.authenticator", "update", entry, auth_id)
    return entry


def auth_delete(node, params, ctx):
    (auth_id,) = parse(params, [("id", Int(), MISSING)])
    store = store_of(node)
    if auth_id not in store.authenticators:
        raise instance_not_found("DNSAuthenticator", auth_id)
    store.delete_authenticator(auth_id)
    crud_event(node, "acme.dns.authenticator", "delete", True, auth_id)
    return True


def acme_server_choices(node, params, ctx):
    parse(params, [])
    return {
        "https://acme-staging-v02.api.letsencrypt.org/directory":
            "Let's Encrypt Staging Directory",
        "https://acme-v02.api.letsencrypt.org/directory": "Let's Encrypt Production Directory",
    }


METHODS = {
    "certificate.query": query,
    "certificate.get_instance": get_instance,
    "certificate.create": create,
    "certificate.update": update,
    "certificate.delete": delete,
    "certificate.acme_server_choices": acme_server_choices,
    "acme.dns.authenticator.query": auth_query,
    "acme.dns.authenticator.get_instance": auth_get_instance,
    "acme.dns.authenticator.create": auth_create,
    "acme.dns.authenticator.update": auth_update,
    "acme.dns.authenticator.delete": auth_delete,
}
