"""The fake TrueNAS node's own ACME client: a real dns-01 issuance with the `acme`
library, as middleware does it.

Facts followed (middleware 25.10 plugins/acme_protocol.py (registration),
acme_protocol_/issue_cert.py and truenas_acme_utils/issue_cert.py,
client_utils.py; reference/truenas-api.md §4 Certificates and ACME):
- registration, once per directory: GET the directory (its URI without the
  trailing "/"; failure: "Unable to retrieve directory : <error>"), refuse without
  `tos` ("acme_registration_create.tos: Please agree to the terms of service"),
  then newAccount with an RSA-2048 JWK and terms_of_service_agreed;
- issuance: a new order for the CSR ("Failed to issue a new order for Certificate
  : <error>"), then for each authorization in turn: its dns-01 challenge ("DNS
  Challenge not found for domain <d>"), the authenticator's perform (TXT record,
  then its propagation delay), answer the challenge ("Error answering challenge
  for <d> : <error>"); then poll every authorization and finalize within 10
  minutes ("Certificate request for final order timed out"); a failed
  authorization gives "Certificate request for final order failed: " plus, per
  failed identifier, "Authorization for identifier <d> failed." and the challenge
  type, ACME error type and detail; the TXT records are cleaned up whatever
  happened.
Differences, on purpose: acme's poll_and_finalize sleeps whole seconds, so this
polls every POLL_SECONDS (wall) instead; delays and the 10-minute deadline run on
the node's virtual clock (a deadline also needs MIN_WALL_SECONDS of wall time, since
the ACME server works in real time); the failure text names the identifier's
value (middleware prints the Identifier object) and lists only the dns-01
challenge (middleware lists every challenge of the authorization).

Runs on a worker thread: never call it holding the world's lock.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import josepy as jose
import requests
from acme import client, errors, messages

from fakes.truenas import keys
from fakes.truenas.errors import ValidationErrors

FINALIZE_SECONDS = 600.0        # issue_cert.py: poll_and_finalize with a 10-minute deadline
MIN_WALL_SECONDS = 20.0
POLL_SECONDS = 0.05
NETWORK_TIMEOUT_SECONDS = 10
ACCOUNT_KEY_BITS = 2048


class IssueFailed(Exception):
    """The issuance failed; the message is what the job's error says."""


class Clock(Protocol):
    speed: float

    def now(self) -> float: ...


class DnsAuthenticator(Protocol):
    PROPAGATION_DELAY: int

    def perform(self, domain: str, validation_name: str, validation: str) -> None: ...

    def cleanup(self, domain: str, validation_name: str, validation: str) -> None: ...


@dataclass
class IssueRequest:
    directory: str                                  # ends with "/"
    tos: bool
    account: dict | None = field(repr=False)        # a stored registration, with its key
    csr_pem: str
    authenticators: dict[str, Any] = field(repr=False)   # domain -> (authenticator, delay)
    ca_bundle: str
    clock: Clock
    progress: Callable[[float, str], None] = lambda percent, text: None
    on_registration: Callable[[dict], None] = lambda registration: None
    cancelled: Callable[[], bool] = lambda: False


@dataclass
class Issued:
    fullchain_pem: str
    order_uri: str


class _Timer:
    """A deadline on the virtual clock that also needs some wall time to pass."""

    def __init__(self, clock: Clock, seconds: float, cancelled: Callable[[], bool]) -> None:
        self.clock = clock
        self.virtual_end = clock.now() + seconds
        self.wall_end = time.monotonic() + MIN_WALL_SECONDS
        self.cancelled = cancelled

    def expired(self) -> bool:
        return self.clock.now() > self.virtual_end and time.monotonic() > self.wall_end

    def pause(self) -> None:
        if self.cancelled():
            raise IssueFailed("The system is shutting down")
        time.sleep(POLL_SECONDS)


def wait_virtual(clock: Clock, seconds: float, cancelled: Callable[[], bool]) -> None:
    """Sleep `seconds` of the node's time (60 s at speed 500 is 0.12 s of wall time;
    a jump of the clock ends it early)."""
    end = clock.now() + seconds
    while (remaining := end - clock.now()) > 0:
        if cancelled():
            raise IssueFailed("The system is shutting down")
        time.sleep(min(POLL_SECONDS, remaining / clock.speed))


# --- registration ----------------------------------------------------------------------
def _network(key: jose.JWKRSA, ca_bundle: str, account: Any = None) -> client.ClientNetwork:
    # verify= goes on every request (acme's _send_request), so REQUESTS_CA_BUNDLE
    # in the environment does not override the world's CA bundle.
    return client.ClientNetwork(key, account=account, verify_ssl=ca_bundle,
                                timeout=NETWORK_TIMEOUT_SECONDS)


def _register(request: IssueRequest) -> tuple[client.ClientV2, jose.JWKRSA]:
    try:
        response = requests.get(request.directory.rstrip("/"), verify=request.ca_bundle,
                                timeout=NETWORK_TIMEOUT_SECONDS)
        raw = response.json()
        directory = messages.Directory({k: raw[k] for k in
                                        ("newAccount", "newNonce", "newOrder", "revokeCert")})
    except (requests.RequestException, ValueError, KeyError) as exc:
        raise IssueFailed(f"Unable to retrieve directory : {exc}") from None
    if not request.tos:
        raise ValidationErrors([("acme_registration_create.tos",
                                 "Please agree to the terms of service", 22)])
    # A new account key per registration, from the supply (fakes/truenas/keys.py: never
    # one handed out before in this process)
    key = jose.JWKRSA(key=keys.rsa_key(ACCOUNT_KEY_BITS))
    acme = client.ClientV2(directory, _network(key, request.ca_bundle))
    try:
        regr = acme.new_account(messages.NewRegistration.from_data(
            terms_of_service_agreed=True))
    except (messages.Error, errors.Error, requests.RequestException) as exc:
        raise IssueFailed(f"Failed to register with the ACME server : {exc}") from None
    request.on_registration({
        "directory": request.directory, "uri": regr.uri, "tos": regr.terms_of_service or "",
        "new_account_uri": directory["newAccount"], "new_nonce_uri": directory["newNonce"],
        "new_order_uri": directory["newOrder"], "revoke_cert_uri": directory["revokeCert"],
        "status": regr.body.status or "valid", "key": key.json_dumps(),
    })
    return acme, key


def client_for(account: dict, ca_bundle: str) -> tuple[client.ClientV2, jose.JWKRSA]:
    """client_utils.get_acme_client_and_key over a stored registration."""
    key = jose.JWKRSA.fields_from_json(json.loads(account["key"]))
    public = key.public_key().fields_to_partial_json()
    regr = messages.RegistrationResource.from_json({
        "uri": account["uri"], "terms_of_service": account["tos"],
        "body": {"status": account["status"],
                 "key": {"e": public["e"], "kty": "RSA", "n": public["n"]}}})
    directory = messages.Directory({
        "newAccount": account["new_account_uri"], "newNonce": account["new_nonce_uri"],
        "newOrder": account["new_order_uri"], "revokeCert": account["revoke_cert_uri"]})
    return client.ClientV2(directory, _network(key, ca_bundle, regr)), key


# --- issuance --------------------------------------------------------------------------
def issue(request: IssueRequest) -> Issued:
    if request.account is None:
        acme, key = _register(request)
    else:
        acme, key = client_for(request.account, request.ca_bundle)
    try:
        order = acme.new_order(request.csr_pem.encode())
    except (messages.Error, errors.Error) as exc:
        raise IssueFailed(f"Failed to issue a new order for Certificate : {exc}") from None
    except requests.RequestException as exc:
        raise IssueFailed(str(exc)) from None
    request.progress(25, "New order for certificate issuance placed")
    performed: list[tuple[DnsAuthenticator, str, str, str]] = []
    try:
        _handle_authorizations(request, acme, key, order, performed)
        timer = _Timer(request.clock, FINALIZE_SECONDS, request.cancelled)
        _poll_authorizations(acme, order, timer)
        return _finalize(acme, order, timer)
    except (messages.Error, errors.Error, requests.RequestException) as exc:
        raise IssueFailed(str(exc)) from None
    finally:
        for authenticator, domain, name, value in performed:
            authenticator.cleanup(domain, name, value)


def _handle_authorizations(request: IssueRequest, acme: client.ClientV2, key: jose.JWKRSA,
                           order: messages.OrderResource, performed: list) -> None:
    progress = 25.0
    step = (progress * 4 - progress - progress * 4 / 5) / max(1, len(order.authorizations))
    for authzr in order.authorizations:
        domain = authzr.body.identifier.value
        done = False
        try:
            progress += step
            if authzr.body.status == messages.STATUS_VALID:
                # a reused authorization (pebble's PEBBLE_AUTHZREUSE): nothing to prove
                done = True
                continue
            challb = next((c for c in authzr.body.challenges if c.chall.typ == "dns-01"), None)
            if challb is None:
                raise IssueFailed(f"DNS Challenge not found for domain {domain}")
            authenticator, delay = _authenticator_for(request, domain)
            name, value = challb.validation_domain_name(domain), challb.validation(key)
            try:
                authenticator.perform(domain, name, value)
            finally:
                performed.append((authenticator, domain, name, value))
            wait_virtual(request.clock, delay, request.cancelled)
            try:
                acme.answer_challenge(challb, challb.response(key))
            except errors.UnexpectedUpdate as exc:
                raise IssueFailed(f"Error answering challenge for {domain} : {exc}") from None
            done = True
        finally:
            request.progress(progress, f"DNS challenge {'completed' if done else 'failed'} "
                                       f"for {domain}")


def _authenticator_for(request: IssueRequest, domain: str) -> tuple[DnsAuthenticator, float]:
    """The mapping's entry for an identifier (names in DNS are case-insensitive)."""
    for name, entry in request.authenticators.items():
        if name.lower() == domain.lower():
            return entry
    raise IssueFailed(f"No DNS authenticator is mapped to {domain}")


def _poll_authorizations(acme: client.ClientV2, order: messages.OrderResource,
                         timer: _Timer) -> None:
    failed = []
    for authzr in order.authorizations:
        while True:
            current, _ = acme.poll(authzr)
            if current.body.status != messages.STATUS_PENDING:
                break
            if timer.expired():
                raise IssueFailed("Certificate request for final order timed out")
            timer.pause()
        if current.body.status != messages.STATUS_VALID:
            failed.append(current)
    if failed:
        raise IssueFailed("Certificate request for final order failed: " + "".join(
            _failure_text(authzr) for authzr in failed))


def _failure_text(authzr: messages.AuthorizationResource) -> str:
    text = (f"\nAuthorization for identifier {authzr.body.identifier.value} failed."
            "\nHere are the challenges that were not fulfilled:")
    for challenge in authzr.body.challenges:
        if challenge.chall.typ != "dns-01":
            continue
        error = challenge.error
        text += (f"\nChallenge Type: {challenge.chall.typ}\n\nError information:"
                 f"\n- Type: {error.typ if error else 'No error type found'}"
                 f"\n- Details: {error.detail if error else 'No error details were found'}\n\n")
    return text


def _finalize(acme: client.ClientV2, order: messages.OrderResource, timer: _Timer) -> Issued:
    try:
        acme.begin_finalization(order)
    except messages.Error as exc:
        if exc.code != "orderNotReady":
            raise
    while True:
        body = messages.Order.from_json(_post_as_get(acme, order.uri).json())
        if body.status == messages.STATUS_INVALID:
            raise IssueFailed(str(errors.IssuanceError(body.error)) if body.error
                              else "The certificate order failed. No further information "
                                   "was provided by the server.")
        if body.status == messages.STATUS_READY:
            acme.begin_finalization(order)
        elif body.status == messages.STATUS_VALID and body.certificate is not None:
            fullchain = _post_as_get(acme, body.certificate).text
            return Issued(fullchain_pem=fullchain, order_uri=order.uri)
        if timer.expired():
            raise IssueFailed("Certificate request for final order timed out")
        timer.pause()


def _post_as_get(acme: client.ClientV2, url: str) -> requests.Response:
    # ClientV2._post_as_get without its private name: a POST of no payload.
    return acme.net.post(url, None, new_nonce_url=acme.directory["newNonce"])


def revoke(account: dict, ca_bundle: str, certificate_pem: str) -> None:
    """revoke_cert.py: revoke with reason 0; a failure is "Failed to revoke
    certificate: <error>"."""
    from cryptography import x509

    acme, _ = client_for(account, ca_bundle)
    try:
        acme.revoke(x509.load_pem_x509_certificate(certificate_pem.encode()), 0)
    except (errors.ClientError, messages.Error, requests.RequestException) as exc:
        raise IssueFailed(f"Failed to revoke certificate: {exc}") from None
