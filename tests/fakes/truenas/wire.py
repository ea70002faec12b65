"""Bare wire helpers for the fake TrueNAS transport tests (deliberately not infra/'s
client: these tests check what goes over the wire themselves)."""

from __future__ import annotations

import ssl

from requests.adapters import HTTPAdapter


class PinnedAdapter(HTTPAdapter):
    """requests over TLS to a node reached by IP, trusting only its pinned certificate."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__()

    def init_poolmanager(self, *args, **kwargs) -> None:
        kwargs["ssl_context"] = self._context
        kwargs["assert_hostname"] = False
        super().init_poolmanager(*args, **kwargs)
