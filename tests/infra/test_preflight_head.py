"""The image URL check of infra/preflight.py: DigitalOcean fails an import when the
host refuses HEAD (reference/digitalocean-api.md §5), so a URL that does not answer
HEAD with success is a problem naming image.url. Against a local HTTP server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from infra.preflight import image_url_problem


class _Handler(BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
        self.send_response(200 if self.path.endswith(".img.gz") else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_an_image_that_answers_head_is_fine(server: str) -> None:
    assert image_url_problem(f"{server}/truenas.img.gz") is None


def test_an_image_that_is_not_there_names_the_field_and_status(server: str) -> None:
    problem = image_url_problem(f"{server}/gone.img")
    assert problem is not None and problem.startswith("image.url:") and "404" in problem


def test_a_host_that_does_not_answer_names_the_field() -> None:
    problem = image_url_problem("http://127.0.0.1:9/truenas.img")
    assert problem is not None and problem.startswith("image.url:")
