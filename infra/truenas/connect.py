"""Reaching a node: pin its certificate on first use, connect over WSS, log in; and
wait, bounded, until its middleware says READY."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from infra.errors import WaitTimeout
from infra.secrets import Secret
from infra.target import Timing
from infra.truenas.calllog import CallLog
from infra.truenas.client import CONNECT_SECONDS, TrueNASClient
from infra.truenas.errors import TrueNASUnavailable
from infra.truenas.pinning import CertificatePins, fetch_certificate, ssl_context_for
from infra.wait import Pending, wait_for

BOOT_SECONDS = 900.0  # a TrueNAS droplet takes minutes from power-on to READY


def api_url(address: str, port: int = 443) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"wss://{host}:{port}/api/current"


def connect_node(address: str, api_key: Secret, username: str, state_dir: Path,
                 timing: Timing, port: int = 443, repin: bool = False,
                 log: CallLog | None = None, legacy_jobs: bool = True,
                 read_only: bool = False,
                 renewal: Callable[[str], bool] | None = None) -> TrueNASClient:
    """A logged-in client for the node at address:port.

    The node's certificate is pinned in `state_dir` on first use; later it must be
    the same certificate (CertificateChanged otherwise), unless `repin` records the
    one it presents now, for a node that was legitimately rebuilt, or `renewal` says
    the new one is a legitimate renewal. `read_only`: no pin is written (a read-only
    check from a directory without them).
    """
    pins = CertificatePins(state_dir, read_only=read_only)
    presented = fetch_certificate(address, port, timeout=timing.deadline(CONNECT_SECONDS))
    pin = pins.check(address, port, presented, repin=repin, renewal=renewal)
    client = TrueNASClient(api_url(address, port), api_key, username,
                           ssl_context_for(pin.pem), timing, log,
                           fingerprint=pin.sha256, legacy_jobs=legacy_jobs)
    try:
        client.login()
    except BaseException:
        client.close()
        raise
    return client


def wait_until_ready(client_factory: Callable[[], TrueNASClient], timing: Timing,
                     real_seconds: float = BOOT_SECONDS,
                     what: str = "the TrueNAS node") -> TrueNASClient:
    """Poll `system.state` until READY and return the (open) client that saw it.

    While the node boots, connections are refused or dropped and `system.state` says
    BOOTING: both are normal and retried until the deadline. Anything else (a
    refused key, a changed certificate) is raised at once.
    """
    opened: list[TrueNASClient] = []    # the open client, kept from one poll to the next
    last = ["no answer yet"]

    def ready() -> TrueNASClient | Pending:
        try:
            if not opened:
                opened.append(client_factory())
            state = opened[0].call("system.state")
            if state == "READY":
                return opened.pop()
            last[0] = f"system.state {state}"
        except (TrueNASUnavailable, WaitTimeout) as exc:
            last[0] = str(exc)
            if opened:
                opened.pop().close()
        return Pending(last[0])

    try:
        return wait_for(what, ready, timing, real_seconds,
                        timeout=lambda limit, status: WaitTimeout(
                            f"gave up waiting for {what} to be READY after {limit:.1f} s "
                            f"(last: {status})"))
    finally:
        if opened:             # a timeout, or an error that is not a boot's
            opened.pop().close()
