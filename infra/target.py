"""Targets: where a run goes. Just endpoints, credentials, a CA bundle and timing.

- `fake`: read from the fake world's `world.json` (written by `python -m fakes`);
- `real`: a DigitalOcean account, credentials from the environment;
- `existing`: an already running site, read-only.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path

import requests

from infra.errors import TargetError
from infra.secrets import Secret

REAL_ENDPOINT = "https://api.digitalocean.com"
# A real account gets certificates from Let's Encrypt's staging CA unless ACME_DIRECTORY
# (or the site file) says otherwise: staging has generous rate limits.
LETSENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"

# `--target real`: what a run against a real account needs (README.md, Targets). The
# spec's site files take their image from TRUENAS_IMAGE_URL (steps/sites.py).
REAL_REQUIRED = {
    "DIGITALOCEAN_TOKEN": "a DigitalOcean API token with read and write scope, from the "
                          "control panel's API > Tokens",
    "TRUENAS_API_KEY": "the API key the TrueNAS image's admin user accepts, or "
                       "TRUENAS_ADMIN_PASSWORD: the image's admin password, with which the "
                       "first `up` creates the site's key",
    "TRUENAS_IMAGE_URL": "an http(s) URL DigitalOcean can fetch the TrueNAS SCALE image from",
}
# A requirement is met by its own variable or by any of these. A freshly built image has
# only its admin password (infra/truenas/credentials.py): `up` makes the key from it.
REAL_ALTERNATIVES = {"TRUENAS_API_KEY": ("TRUENAS_ADMIN_PASSWORD",)}
# Required by the CLI against a real account: the site file has the rest.
REAL_CLI_REQUIRED = ("DIGITALOCEAN_TOKEN",)


# `Target.now` is asked often (every certificate and age judged on a fake world's
# clock): one session per thread keeps its connections open across calls instead of a
# new TLS connection each time, as `requests.get` makes. It sends what `requests.get`
# sends: the environment is still read per request (trust_env), and no cookie is kept,
# as a fresh session would have none.
_clock_sessions = threading.local()


def _clock_session() -> requests.Session:
    session = getattr(_clock_sessions, "session", None)
    if session is None:
        session = requests.Session()
        session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        _clock_sessions.session = session
    return session


@dataclass(frozen=True)
class Timing:
    """How to wait on this target. Deadlines in infra/ are written in real-world
    seconds (how long DigitalOcean may take); `time_scale` maps them onto this
    target (a fake world runs faster), never below `min_deadline`."""

    poll_interval: float = 5.0
    time_scale: float = 1.0
    min_deadline: float = 20.0
    backoff: float = 1.0

    def deadline(self, real_seconds: float) -> float:
        return max(self.min_deadline, real_seconds * self.time_scale)


@dataclass(frozen=True)
class Target:
    kind: str
    do_endpoint: str
    do_token: Secret | None
    ca_bundle: str | None
    timing: Timing
    dns_server: tuple[str, int] | None = None
    # The target keeps time of its own (a fake world runs on a virtual clock): `now()`
    # asks its API for it. Otherwise this machine's clock is the target's.
    own_clock: bool = False
    # The TrueNAS API key the nodes accept, when the target knows it (a fake world
    # bakes one into its image; a real run reads TRUENAS_API_KEY). A site file's
    # `truenas.api_key_file` wins over this.
    truenas_api_key: Secret | None = None
    truenas_https_port: int = 443
    # Droplet port -> the host port it answers on (a fake world maps ports below
    # 1024 when it may not bind them); unlisted ports are their own number.
    port_map: tuple[tuple[int, int], ...] = ()
    # The ACME directory certificates come from, and the PEM file of its issuing root
    # (None: the system's trust store). A fake world without pebble says why instead.
    acme_directory: str | None = None
    acme_root_ca: str | None = None
    acme_unavailable: str | None = None
    # `existing` only: the site file describing the running site, and the address its
    # TrueNAS node (and its front door) answers on.
    site_file: str | None = None
    site_address: str | None = None

    @property
    def read_only(self) -> bool:
        return self.kind == "existing"

    def node_port(self, port: int) -> int:
        """Where a droplet's `port` is reached from here."""
        return dict(self.port_map).get(port, port)

    def now(self) -> float:
        """The target's clock (Unix seconds): certificate lifetimes and resource ages
        are judged on it. A target with a clock of its own is asked for it: the `Date`
        header every answer of its DigitalOcean API carries (RFC 9110 §6.6.1), read
        from a request without credentials (a refusal has one too, and costs no rate
        limit), at the whole seconds the API stamps resources with. Raises OSError
        when the API does not answer or sends no date."""
        if not self.own_clock:
            return time.time()
        url = f"{self.do_endpoint}/v2/account"
        # verify on the call: requests lets REQUESTS_CA_BUNDLE override a session's.
        response = _clock_session().get(url, timeout=10, verify=self.ca_bundle or True)
        date = response.headers.get("Date")
        if not date:
            raise ConnectionError(f"{url} sent no Date header: the target's clock is unknown")
        return parsedate_to_datetime(date).timestamp()

    @classmethod
    def from_world_file(cls, path: Path) -> Target:
        try:
            world = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise TargetError(f"no fake world description at {path}; start one with "
                              "`python -m fakes --state-dir DIR`") from None
        except ValueError as exc:
            raise TargetError(f"{path} is not valid JSON ({exc})") from None
        try:
            timing = world.get("timing", {})
            truenas = world.get("truenas", {})
            return cls(
                kind="fake",
                do_endpoint=world["digitalocean"]["endpoint"],
                do_token=Secret(world["digitalocean"]["token"]),
                ca_bundle=world["ca_bundle"],
                timing=Timing(
                    poll_interval=float(timing.get("poll_interval_seconds", 0.02)),
                    time_scale=float(timing.get("time_scale", 1 / 500)),
                    min_deadline=10.0,
                    backoff=0.05,
                ),
                dns_server=(world["dns"]["host"], int(world["dns"]["port"])),
                own_clock="clock" in world,
                truenas_api_key=Secret(truenas["api_key"]) if truenas.get("api_key") else None,
                truenas_https_port=int(truenas.get("ports", {}).get("https", 443)),
                port_map=tuple(sorted(
                    (int(port), int(host_port)) for port, host_port
                    in world.get("network", {}).get("port_map", {}).items())),
                acme_directory=(world.get("acme") or {}).get("directory"),
                acme_root_ca=(world.get("acme") or {}).get("root_ca"),
                acme_unavailable=world.get("acme_unavailable"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TargetError(f"{path} lacks a field this tool needs: {exc}") from None

    @classmethod
    def real_from_env(cls, environ: Mapping[str, str] | None = None,
                      required: Iterable[str] = tuple(REAL_REQUIRED)) -> Target:
        """A real DigitalOcean account. Every variable in `required` (by default all of
        REAL_REQUIRED: what the spec's real run needs) must be set, else one TargetError
        names each missing one and where to set it, before any request is sent. The CLI
        needs only the token: its site file names the image and may hold the key file.
        Optional: DIGITALOCEAN_API_URL, DIGITALOCEAN_CA_BUNDLE, ACME_DIRECTORY (default
        Let's Encrypt staging) and ACME_ROOT_CA."""
        env = os.environ if environ is None else environ
        missing = [f"{name} ({REAL_REQUIRED[name]})" for name in required
                   if not any(env.get(variable, "").strip()
                              for variable in (name, *REAL_ALTERNATIVES.get(name, ())))]
        if missing:
            raise TargetError(
                "the real target needs " + "; ".join(missing) + ". Export them in the "
                "shell that runs the suite, or, for the nightly workflow, add them as "
                "repository secrets (Settings > Secrets and variables > Actions)"
            )
        root_ca = env.get("ACME_ROOT_CA") or None
        if root_ca is not None and not Path(root_ca).is_file():
            raise TargetError(f"ACME_ROOT_CA: no PEM file at {root_ca} (it names the file of "
                              "the ACME server's root certificates)")
        token = env.get("DIGITALOCEAN_TOKEN")
        return cls(
            kind="real",
            do_endpoint=env.get("DIGITALOCEAN_API_URL", REAL_ENDPOINT),
            do_token=Secret(token) if token else None,
            ca_bundle=env.get("DIGITALOCEAN_CA_BUNDLE") or None,
            timing=Timing(),
            truenas_api_key=(Secret(env["TRUENAS_API_KEY"].strip())
                             if env.get("TRUENAS_API_KEY", "").strip() else None),
            acme_directory=env.get("ACME_DIRECTORY") or LETSENCRYPT_STAGING,
            acme_root_ca=root_ca,
        )

    @classmethod
    def existing_from_env(cls, environ: dict[str, str] | None = None) -> Target:
        """An already running site, read-only (see `_existing_from_env`)."""
        return _existing_from_env(environ)


# `--target existing`: what a forker who already runs the site sets (README.md, Targets).
EXISTING_REQUIRED = {
    "EXISTING_SITE_FILE": "the site file (TOML) that describes the running site",
    "EXISTING_TRUENAS_ADDRESS": "the address its TrueNAS node and public hostnames answer on",
    "TRUENAS_API_KEY": "an API key of the site's TrueNAS user (read access is enough)",
}


def _port_map(text: str) -> tuple[tuple[int, int], ...]:
    """`443=8443,80=8080`: where the site's ports are reached from here (a site
    behind port forwarding); unlisted ports are their own number."""
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        port, _, reached = item.partition("=")
        if not (port.strip().isdigit() and reached.strip().isdigit()):
            raise TargetError(f"EXISTING_PORT_MAP: {item!r} is not PORT=PORT "
                              "(e.g. 443=8443,80=8080)")
        pairs.append((int(port), int(reached)))
    return tuple(sorted(pairs))


def _existing_from_env(environ: dict[str, str] | None = None) -> Target:
    """An already running site, checked read-only. Required: EXISTING_SITE_FILE,
    EXISTING_TRUENAS_ADDRESS, TRUENAS_API_KEY; optional: DIGITALOCEAN_TOKEN (without
    it the cloud findings are skipped), DIGITALOCEAN_API_URL, DIGITALOCEAN_CA_BUNDLE,
    ACME_ROOT_CA (the PEM root the site certificate must verify to; default the
    system's trust store) and EXISTING_PORT_MAP. A missing one is refused here,
    before any request."""
    env = os.environ if environ is None else environ
    missing = [f"{name} ({why})" for name, why in EXISTING_REQUIRED.items()
               if not env.get(name)]
    if missing:
        raise TargetError("the existing target needs " + "; ".join(missing)
                          + ": export them before `--target existing` (README.md, Targets)")
    site_file = Path(env["EXISTING_SITE_FILE"])
    if not site_file.is_file():
        raise TargetError(f"EXISTING_SITE_FILE: no site file at {site_file}")
    port_map = _port_map(env.get("EXISTING_PORT_MAP", ""))
    token = env.get("DIGITALOCEAN_TOKEN")
    return Target(
        kind="existing",
        do_endpoint=env.get("DIGITALOCEAN_API_URL", REAL_ENDPOINT),
        do_token=Secret(token) if token else None,
        ca_bundle=env.get("DIGITALOCEAN_CA_BUNDLE") or None,
        timing=Timing(),
        truenas_api_key=Secret(env["TRUENAS_API_KEY"]),
        truenas_https_port=dict(port_map).get(443, 443),
        port_map=port_map,
        acme_root_ca=env.get("ACME_ROOT_CA") or None,
        site_file=str(site_file),
        site_address=env["EXISTING_TRUENAS_ADDRESS"].strip(),
    )

