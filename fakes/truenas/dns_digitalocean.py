"""The `digitalocean` ACME DNS authenticator of a fake TrueNAS node.

Facts followed (middleware 25.10 plugins/acme_protocol_/authenticators/digitalocean.py
and base.py; certbot-dns-digitalocean's `_DigitalOceanClient`, which middleware
calls; reference/truenas-api.md §4 Certificates and ACME):
- perform: find the domain's zone by listing the account's domains and taking the
  first of the name's suffixes, longest first, that is a domain
  ("Unable to determine base domain for www.example.test using names:
  ['www.example.test', 'example.test', 'test']."), then create a TXT record named
  relative to the zone (`_acme-challenge.www`) with TTL 600; a 401 becomes "Error
  finding domain using the DigitalOcean API: Unable to authenticate you (Did you
  provide a valid API token?)"; any failure is wrapped as "Failed to perform
  digitalocean challenge for 'www.example.test' domain: ...";
- then wait PROPAGATION_DELAY = 60 seconds (here on the virtual clock);
- cleanup: delete the TXT records of that name whose data is that value; failures
  are logged, never raised.
The real authenticator calls https://api.digitalocean.com/v2; this one calls the
world's DigitalOcean endpoint, trusting the world's CA bundle. The token is sent
only in the Authorization header and never logged or put in an error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import requests

log = logging.getLogger(__name__)

NAME = "digitalocean"
PROPAGATION_DELAY = 60
TXT_TTL = 600
TIMEOUT_SECONDS = 10.0
PER_PAGE = 200


class AuthenticatorError(Exception):
    """A perform/cleanup failure, worded as middleware's CallError."""


class _ApiError(Exception):
    pass


def base_domain_name_guesses(domain: str) -> list[str]:
    """certbot dns_common: 'a.b.c' -> ['a.b.c', 'b.c', 'c']."""
    fragments = domain.split(".")
    return [".".join(fragments[i:]) for i in range(len(fragments))]


@dataclass
class DigitalOceanAuthenticator:
    endpoint: str                     # the API's base URL, without /v2
    ca_bundle: str
    token: str = field(repr=False)

    def perform(self, domain: str, validation_name: str, validation: str) -> None:
        try:
            zone = self._find_domain(domain)
            self._request("POST", f"/v2/domains/{zone}/records",
                          json={"type": "TXT", "name": _relative(validation_name, zone),
                                "data": validation, "ttl": TXT_TTL})
        except (_ApiError, requests.RequestException) as exc:
            raise AuthenticatorError(
                f"Failed to perform {NAME} challenge for {domain!r} domain: {exc}") from None

    def cleanup(self, domain: str, validation_name: str, validation: str) -> None:
        try:
            zone = self._find_domain(domain)
            name = _relative(validation_name, zone)
            for record in self._all(f"/v2/domains/{zone}/records", "domain_records"):
                if (record.get("type") == "TXT" and record.get("name") == name
                        and record.get("data") == validation):
                    self._request("DELETE", f"/v2/domains/{zone}/records/{record['id']}")
        except (_ApiError, requests.RequestException) as exc:
            log.warning("Failed to cleanup %s challenge for %r domain: %s", NAME, domain, exc)

    # --- the API ---------------------------------------------------------------------
    def _find_domain(self, domain: str) -> str:
        guesses = base_domain_name_guesses(domain)
        try:
            names = {d["name"] for d in self._all("/v2/domains", "domains")}
        except _ApiError as exc:
            hint = (" (Did you provide a valid API token?)"
                    if str(exc).startswith("Unable to authenticate") else "")
            raise _ApiError(f"Error finding domain using the DigitalOcean API: {exc}{hint}") \
                from None
        for guess in guesses:
            if guess in names:
                return guess
        raise _ApiError(f"Unable to determine base domain for {domain} using names: {guesses}.")

    def _all(self, path: str, key: str) -> list[dict]:
        items: list[dict] = []
        url: str | None = f"{self.endpoint}{path}?per_page={PER_PAGE}"
        while url:
            body = self._request("GET", url)
            items.extend(body.get(key) or [])
            url = ((body.get("links") or {}).get("pages") or {}).get("next")
        return items

    def _request(self, method: str, path_or_url: str, json: dict | None = None) -> dict:
        url = path_or_url if path_or_url.startswith("http") else f"{self.endpoint}{path_or_url}"
        response = requests.request(
            method, url, json=json, timeout=TIMEOUT_SECONDS, verify=self.ca_bundle,
            headers={"Authorization": f"Bearer {self.token}",
                     "Content-Type": "application/json"})
        if response.status_code >= 400:
            try:
                message = response.json().get("message") or response.reason
            except ValueError:
                message = response.reason
            raise _ApiError(message)
        return response.json() if response.content else {}


def _relative(validation_name: str, zone: str) -> str:
    """certbot's _compute_record_name: the name without the zone."""
    return validation_name.rpartition("." + zone)[0]
