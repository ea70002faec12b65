"""Talking to TrueNAS nodes: JSON-RPC 2.0 over WSS with a pinned certificate.

- `pinning`: trust on first use of a node's self-signed certificate;
- `client`: `TrueNASClient` (calls, jobs, file transfer), errors mapped;
- `connect`: `connect_node` (pin, connect, log in) and `wait_until_ready`;
- `transfer`: HTTPS for /_upload and /_download against the pinned certificate;
- `rpc`, `ejson`, `calllog`, `errors`: the wire format and the vocabulary.
"""

from infra.truenas.calllog import CallLog
from infra.truenas.client import TrueNASClient
from infra.truenas.connect import api_url, connect_node, wait_until_ready
from infra.truenas.errors import (
    AuthenticationFailed,
    CertificateChanged,
    InsecureTransport,
    JobFailed,
    MethodNotFound,
    NotAuthenticated,
    TransferFailed,
    TrueNASCallError,
    TrueNASError,
    TrueNASTLSError,
    TrueNASUnavailable,
    TrueNASValidationError,
)
from infra.truenas.pinning import CertificatePins, fetch_certificate, ssl_context_for

__all__ = [
    "AuthenticationFailed", "CallLog", "CertificateChanged", "CertificatePins",
    "InsecureTransport", "JobFailed", "MethodNotFound", "NotAuthenticated",
    "TransferFailed", "TrueNASCallError", "TrueNASClient", "TrueNASError",
    "TrueNASTLSError", "TrueNASUnavailable", "TrueNASValidationError", "api_url",
    "connect_node", "fetch_certificate", "ssl_context_for", "wait_until_ready",
]
