"""Get a certificate from an ACME server (Let's Encrypt, or the fake world's pebble).

Built on the `acme` library (the one TrueNAS middleware and certbot use) for the
protocol messages, but it polls by itself: acme's `poll_and_finalize` sleeps whole
seconds between polls (reference/this-machine.md §1: 2 s of a 0.08 s issuance), and a fake
target wants its own interval. Every wait has a deadline from the target's Timing,
so a challenge that cannot succeed fails with the domain, the challenge type and the
server's problem document, never a hang.

Publishing the challenge (a file under /.well-known/acme-challenge/ on port 80, or
a TXT record) is the caller's `ChallengeSolver`; whatever it published is removed
afterwards, success or not.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import josepy as jose
import requests
from acme import challenges, client, crypto_util, errors, messages
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from infra.errors import InfraError
from infra.secrets import Secret
from infra.wait import Pending, wait_for

if TYPE_CHECKING:
    from infra.target import Target, Timing

log = logging.getLogger(__name__)

CHALLENGE_TYPES = ("http-01", "dns-01")
USER_AGENT = "truenas-site-spec"
# Real-world bounds (scaled by Timing.deadline): Let's Encrypt validates in seconds, but
# a DNS change may take a minute to reach every authoritative server.
VALIDATION_SECONDS = 300.0
FINALIZATION_SECONDS = 120.0
REQUEST_SECONDS = 45.0


class AcmeError(InfraError):
    """The ACME server could not be reached, refused a request, or failed the order."""


class AcmeChallengeFailed(AcmeError):
    """A domain's challenge turned invalid or was not validated before the deadline."""

    def __init__(self, domain: str, challenge: str, problem: str) -> None:
        self.domain = domain
        self.challenge = challenge
        self.problem = problem
        super().__init__(f"{challenge} challenge for {domain} failed: {problem}")


class ChallengeSolver(Protocol):
    """Makes a challenge answerable, and takes it down again.

    http-01: `name_or_path` is `/.well-known/acme-challenge/<token>` and `value` the key
    authorization to serve there as the body, on the domain's port 80.
    dns-01: `name_or_path` is `_acme-challenge.<domain>` and `value` the TXT record's
    content. Several values may be published at one name (a domain and its wildcard).
    `publish` returns once the server can see the value (a real DNS provider may need
    to wait for its nameservers)."""

    def publish(self, domain: str, challenge_type: str, name_or_path: str, value: str) -> None:
        ...

    def remove(self, domain: str, challenge_type: str, name_or_path: str, value: str) -> None:
        ...


@dataclass(frozen=True)
class IssuedCertificate:
    fullchain_pem: str
    key_pem: Secret = field(repr=False)
    not_after: datetime
    domains: tuple[str, ...]
    # The account the order was placed with, to reuse it next time (renewals).
    account_key_pem: Secret = field(repr=False)


@dataclass(frozen=True)
class _Published:
    domain: str
    challenge_type: str
    name_or_path: str
    value: str


def issue_certificate(directory: str, root_ca: str | None, domains: list[str], challenge: str,
                      solver: ChallengeSolver, timing: Timing, *,
                      ca_bundle: str | None = None, account_key: Secret | str | None = None,
                      key: Secret | str | None = None, email: str | None = None,
                      key_type: str = "ec") -> IssuedCertificate:
    """Order a certificate for `domains` from the ACME server at `directory`.

    `ca_bundle` verifies the ACME server's own HTTPS (a fake target's `ca_bundle`; None:
    the system trust store). `root_ca` is the issuing root the returned chain must verify
    to (the target's `acme_root_ca`; None: not checked here, e.g. Let's Encrypt staging,
    whose root no trust store holds). `account_key`/`key`: PEM of an existing account key
    or certificate key to reuse; new ones (EC P-256, or RSA 2048 with key_type="rsa")
    are generated otherwise.
    """
    if challenge not in CHALLENGE_TYPES:
        raise AcmeError(f"unknown ACME challenge {challenge!r}; use one of "
                        f"{', '.join(CHALLENGE_TYPES)}")
    if not domains:
        raise AcmeError("a certificate needs at least one domain")
    account_pem = _pem(account_key) if account_key else _new_key("ec")
    cert_pem = _pem(key) if key else _new_key(key_type)
    jwk, alg = _account_jwk(account_pem)
    net = client.ClientNetwork(jwk, alg=alg, verify_ssl=ca_bundle or True,
                               user_agent=USER_AGENT,
                               timeout=max(1, round(timing.deadline(REQUEST_SECONDS))))
    try:
        with _protocol_errors(directory):
            server = client.ClientV2(client.ClientV2.get_directory(directory, net), net)
            _register(server, email)
            order = server.new_order(crypto_util.make_csr(cert_pem, list(domains)))
            _authorize(server, jwk, order, challenge, solver, timing)
            fullchain = _finalize(server, order, timing)
    finally:
        net.session.close()
    if root_ca:
        _verify_chain(fullchain, root_ca, domains)
    leaf = x509.load_pem_x509_certificate(fullchain.encode())
    return IssuedCertificate(fullchain_pem=fullchain, key_pem=Secret(cert_pem.decode()),
                             not_after=leaf.not_valid_after_utc, domains=tuple(domains),
                             account_key_pem=Secret(account_pem.decode()))


def issue_for_target(target: Target, domains: list[str], challenge: str,
                     solver: ChallengeSolver, *, directory: str | None = None,
                     **options) -> IssuedCertificate:
    """`issue_certificate` with the target's directory, trust and timing; a directory
    given here (the site's `[tls] directory`) wins, and then the target's root is not
    assumed to apply."""
    if directory is None and target.acme_directory is None:
        raise AcmeError(target.acme_unavailable or "this target has no ACME directory")
    root_ca = target.acme_root_ca if directory in (None, target.acme_directory) else None
    return issue_certificate(directory or target.acme_directory, root_ca, domains, challenge,
                             solver, target.timing, ca_bundle=target.ca_bundle, **options)


# --- the protocol steps -------------------------------------------------------------

def _register(server: client.ClientV2, email: str | None) -> None:
    registration = messages.NewRegistration.from_data(email=email,
                                                      terms_of_service_agreed=True)
    try:
        server.new_account(registration)
    except errors.ConflictError as exists:
        # RFC 8555 §7.3.1: the key already has an account; its URL is in Location.
        server.net.account = messages.RegistrationResource(uri=exists.location,
                                                         body=messages.Registration())


def _authorize(server: client.ClientV2, jwk: jose.JWK, order: messages.OrderResource,
               challenge: str, solver: ChallengeSolver, timing: Timing) -> None:
    pending = [authz for authz in order.authorizations
               if authz.body.status != messages.STATUS_VALID]
    published: list[_Published] = []
    try:
        answers = []
        for authz in pending:
            domain = authz.body.identifier.value
            challb = _challenge_of(authz, challenge)
            response, validation = challb.response_and_validation(jwk)
            if isinstance(challb.chall, challenges.HTTP01):
                where = challb.chall.path
            else:
                where = challb.chall.validation_domain_name(domain)
            item = _Published(domain, challenge, where, validation)
            try:
                solver.publish(item.domain, item.challenge_type, item.name_or_path, item.value)
            except Exception as exc:
                raise AcmeError(f"could not publish the {challenge} challenge for {domain} "
                                f"at {where}: {exc}") from exc
            published.append(item)
            answers.append((challb, response))
        for challb, response in answers:
            server.answer_challenge(challb, response)
        _wait_valid(server, pending, challenge, timing)
    finally:
        for item in published:
            try:
                solver.remove(item.domain, item.challenge_type, item.name_or_path, item.value)
            except Exception as exc:  # a leftover record must not hide the real outcome
                log.warning("could not remove the %s challenge for %s at %s: %s",
                            item.challenge_type, item.domain, item.name_or_path, exc)


def _challenge_of(authz: messages.AuthorizationResource,
                  challenge: str) -> messages.ChallengeBody:
    for challb in authz.body.challenges:
        if challb.chall.typ == challenge:
            return challb
    offered = ", ".join(c.chall.typ for c in authz.body.challenges) or "none"
    raise AcmeChallengeFailed(authz.body.identifier.value, challenge,
                              f"the server does not offer it (offered: {offered})")


def _wait_valid(server: client.ClientV2, pending: list[messages.AuthorizationResource],
                challenge: str, timing: Timing) -> None:
    """Every authorization valid, within one deadline for them all."""
    waiting = list(pending)
    last: dict[str, str] = {}

    def all_valid() -> bool | Pending:
        for authz in list(waiting):
            domain = authz.body.identifier.value
            authz, _response = server.poll(authz)
            status = authz.body.status
            if status == messages.STATUS_VALID:
                waiting[:] = [a for a in waiting if a.body.identifier.value != domain]
                continue
            if status not in (messages.STATUS_PENDING, messages.STATUS_PROCESSING):
                raise AcmeChallengeFailed(domain, challenge, _problem(authz, challenge, status))
            last[domain] = str(status)
        if not waiting:
            return True
        return Pending(waiting[0].body.identifier.value)

    def timed_out(limit: float, domain: str) -> Exception:
        return AcmeChallengeFailed(domain, challenge, f"not validated within {limit:g} s "
                                   f"(authorization still {last.get(domain)})")

    wait_for(f"the ACME server to validate by {challenge}", all_valid, timing,
             VALIDATION_SECONDS, timeout=timed_out)


def _finalize(server: client.ClientV2, order: messages.OrderResource, timing: Timing) -> str:
    try:
        order = server.begin_finalization(order)
    except messages.Error as exc:
        if exc.code != "orderNotReady":
            raise
    current = [order]

    def issued() -> str | Pending:
        # acme has no public "poll this order once" (poll_finalization sleeps first).
        body = messages.Order.from_json(server._post_as_get(current[0].uri).json())
        if body.status == messages.STATUS_VALID and body.certificate:
            return server._post_as_get(body.certificate).text
        if body.status == messages.STATUS_INVALID:
            raise AcmeError(f"the ACME server refused to issue the certificate: "
                            f"{_describe(body.error) if body.error else 'no reason given'}")
        if body.status == messages.STATUS_READY:
            current[0] = server.begin_finalization(current[0])
        return Pending(str(body.status))

    return wait_for("the ACME server to issue the certificate", issued, timing,
                    FINALIZATION_SECONDS,
                    timeout=lambda limit, status: AcmeError(
                        f"the certificate was not issued within {limit:g} s "
                        f"(order still {status})"))


def _problem(authz: messages.AuthorizationResource, challenge: str, status) -> str:
    for challb in authz.body.challenges:
        if challb.chall.typ == challenge and challb.error is not None:
            return _describe(challb.error)
    return f"authorization is {status} (the server gave no problem document)"


def _describe(problem: messages.Error) -> str:
    text = problem.typ
    if problem.detail:
        text += f": {problem.detail}"
    return text


@contextmanager
def _protocol_errors(directory: str) -> Iterator[None]:
    """The transport's and the acme library's exceptions, as AcmeError."""
    try:
        yield
    except requests.RequestException as exc:
        raise AcmeError(f"cannot reach the ACME server at {directory}: "
                        f"{type(exc).__name__}: {exc}") from exc
    except messages.Error as exc:
        raise AcmeError(f"the ACME server at {directory} refused a request: "
                        f"{_describe(exc)}") from exc
    except errors.Error as exc:
        raise AcmeError(f"ACME exchange with {directory} failed: {exc}") from exc


# --- keys and the chain --------------------------------------------------------------

def _new_key(key_type: str) -> bytes:
    if key_type == "ec":
        private = ec.generate_private_key(ec.SECP256R1())
    elif key_type == "rsa":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        raise AcmeError(f"unknown key type {key_type!r}; use 'ec' or 'rsa'")
    return private.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())


def _account_jwk(pem: bytes) -> tuple[jose.JWK, jose.JWASignature]:
    private = serialization.load_pem_private_key(pem, password=None)
    if isinstance(private, rsa.RSAPrivateKey):
        return jose.JWKRSA(key=private), jose.RS256
    if isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name == "secp256r1":
        return jose.JWKEC(key=private), jose.ES256
    raise AcmeError("an ACME account key must be RSA or EC P-256")


def _pem(key: Secret | str) -> bytes:
    text = key.reveal() if isinstance(key, Secret) else key
    return text.encode()


def _verify_chain(fullchain: str, root_ca: str, domains: list[str]) -> None:
    """The chain must lead to the server's root and name the first domain (a wildcard is
    checked with a name it covers)."""
    chain = x509.load_pem_x509_certificates(fullchain.encode())
    roots = x509.load_pem_x509_certificates(Path(root_ca).read_bytes())
    name = domains[0].replace("*.", "wildcard-check.", 1)
    verifier = (PolicyBuilder().store(Store(roots)).time(datetime.now(UTC))
                .build_server_verifier(x509.DNSName(name)))
    try:
        verifier.verify(chain[0], chain[1:])
    except VerificationError as exc:
        leaf = chain[0].fingerprint(hashes.SHA256()).hex()[:16]
        raise AcmeError(f"the issued certificate (sha256 {leaf}...) does not verify to "
                        f"the ACME root in {root_ca}: {exc}") from None
