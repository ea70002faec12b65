"""HTTPS to a node's /_upload and /_download, trusting exactly the pinned certificate.

requests verifies against a CA bundle path and checks the hostname; neither fits a
node reached by IP whose self-signed certificate names `truenas.local`. Turning
verification off is not an option, so `PinnedAdapter` hands urllib3 the pinned
SSLContext (the pin as only trust anchor, CERT_REQUIRED) with
`assert_hostname=False` and, when known, `assert_fingerprint` (urllib3 then compares
the peer's exact certificate too). The adapter ignores any CA bundle requests would
load: a Session-level `verify` is overridden by REQUESTS_CA_BUNDLE /
CURL_CA_BUNDLE, and `cert_verify` would otherwise add that bundle to the context. The
session also has `trust_env = False`, so no environment proxy, netrc credentials
(which would replace our Authorization header) or bundle applies. `verify=False`
is refused outright.
"""

from __future__ import annotations

import logging
import re
import ssl
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from infra.truenas.errors import InsecureTransport

_TOKEN_IN_URL = re.compile(r"(auth_token=)[^&\s\"']+")


class _RedactDownloadTokens(logging.Filter):
    """urllib3 logs every request line at DEBUG, and a `/_download` URL carries its
    one-time token in the query (reference/truenas-api.md §4 Files: core.download returns it
    so): the token is blanked before any handler sees the line."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if "auth_token=" in text:
            record.msg, record.args = _TOKEN_IN_URL.sub(r"\1********", text), None
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_RedactDownloadTokens())


class PinnedAdapter(HTTPAdapter):
    def __init__(self, ssl_context: ssl.SSLContext, fingerprint: str | None = None,
                 **kwargs: Any) -> None:
        if ssl_context.verify_mode != ssl.CERT_REQUIRED:
            raise InsecureTransport("refusing an SSL context that does not verify the "
                                    "node's certificate")
        self._tls: dict[str, Any] = {"ssl_context": ssl_context, "cert_reqs": "CERT_REQUIRED",
                                     "assert_hostname": False}
        if fingerprint:
            self._tls["assert_fingerprint"] = fingerprint.replace(":", "").lower()
        super().__init__(**kwargs)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False,
                         **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs, **self._tls)

    def build_connection_pool_key_attributes(self, request: requests.PreparedRequest,
                                             verify: Any, cert: Any = None
                                             ) -> tuple[dict[str, Any], dict[str, Any]]:
        if verify is False:
            raise InsecureTransport("refusing verify=False: the node's certificate is pinned")
        host_params, _ = super().build_connection_pool_key_attributes(request, True, cert)
        return host_params, dict(self._tls)

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        # Trust comes from the pinned context alone, never from a bundle on disk.
        conn.cert_reqs = "CERT_REQUIRED"
        conn.ca_certs = None
        conn.ca_cert_dir = None


def pinned_session(ssl_context: ssl.SSLContext, fingerprint: str | None = None
                   ) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    adapter = PinnedAdapter(ssl_context, fingerprint, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", _RefusePlainHTTP())
    return session


class _RefusePlainHTTP(HTTPAdapter):
    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        raise InsecureTransport("refusing plain http:// to a TrueNAS node: the API key "
                                "would travel in the clear")
