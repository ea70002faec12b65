"""A /_download URL carries a one-time token (reference/truenas-api.md §4 Files); urllib3 logs
request lines at DEBUG, so the token must be blanked before any handler sees it."""

from __future__ import annotations

import logging

import infra.truenas.transfer  # noqa: F401 - installs the filter


def test_urllib3_request_lines_never_show_a_download_token(caplog) -> None:
    logger = logging.getLogger("urllib3.connectionpool")
    with caplog.at_level(logging.DEBUG, logger="urllib3.connectionpool"):
        logger.debug('%s://%s:%s "%s %s %s" %s', "https", "127.10.0.2", 443, "GET",
                     "/_download/7?auth_token=tok-3a9f1c", "HTTP/1.1", 200)
    assert caplog.records, "nothing was logged"
    text = caplog.text
    assert "tok-3a9f1c" not in text
    assert "/_download/7?auth_token=********" in text
