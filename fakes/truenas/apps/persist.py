"""What of Docker and the apps outlives the node object: a power cycle, a host back
from failure (the fleet builds a new TrueNASNode each boot).

Facts followed (middleware stable/goldeye plugins/docker/update.py, ix_apps/path.py,
ix_apps/metadata.py, reference/truenas-api.md §4 Apps):
- `docker.config` lives in the configuration database on the boot pool: here a
  JSON file in the node's state directory (its boot disk), like system.general
  (models/ui_settings.py);
- an app's files live on the apps pool, under the ix-apps dataset
  (`/mnt/.ix-apps/app_configs/<app>/`): `metadata.yaml` (custom_app, version,
  human_version, metadata, portals, notes, migrated) and
  `versions/<version>/user_config.yaml` (the compose configuration the user gave).
  Here they are files on `<pool>/ix-apps/app_configs` through node.storage, so they
  move with the pool's disks and are in its snapshots. The fake writes them as
  JSON, which is YAML too.
Chosen, not known: whether an app was stopped by hand (app.stop, which is `compose
down`: a real node then simply has no containers to restart) is kept in
`app_configs/<app>/fake_state.json`, a file only the fake writes.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fakes.truenas.apps import custom
from fakes.truenas.errors import CallError
from fakes.truenas.models import files

if TYPE_CHECKING:
    from fakes.truenas.node import TrueNASNode

log = logging.getLogger(__name__)

DOCKER_FILE = "docker_config.json"
APP_CONFIGS = "ix-apps/app_configs"
STATE_FILE = "fake_state.json"


# --- docker.config on the boot disk -------------------------------------------------
def docker_file(node: TrueNASNode) -> Path:
    return Path(node.state_dir) / DOCKER_FILE


def save_docker(node: TrueNASNode, settings: dict[str, Any]) -> None:
    path = docker_file(node)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(settings, handle)
    partial.replace(path)


def load_docker(node: TrueNASNode) -> dict[str, Any] | None:
    path = docker_file(node)
    return json.loads(path.read_text()) if path.exists() else None


# --- the apps on the pool's ix-apps dataset ---------------------------------------------
def app_dir(pool: str, name: str) -> str:
    return f"/mnt/{pool}/{APP_CONFIGS}/{name}"


def save_app(node: TrueNASNode, pool: str, name: str, config: dict, portals: dict,
             stopped: bool) -> None:
    """Write the app's files; a pool that cannot take them is logged, not raised
    (the app itself already runs or stopped)."""
    base = app_dir(pool, name)
    metadata = {"custom_app": True, "human_version": custom.VERSION_DETAILS["human_version"],
                "metadata": custom.METADATA, "migrated": False, "version": custom.VERSION,
                "portals": portals.get("portals", {}), "notes": portals.get("notes")}
    try:
        node.storage.write_file(f"{base}/metadata.yaml", _dump(metadata), mode=0o600)
        node.storage.write_file(f"{base}/versions/{custom.VERSION}/user_config.yaml",
                                _dump(config), mode=0o600)
        node.storage.write_file(f"{base}/{STATE_FILE}", _dump({"stopped": stopped}),
                                mode=0o600)
    except CallError as exc:
        log.warning("app %s: could not write its files on pool %s: %s", name, pool, exc)


def remove_app(node: TrueNASNode, pool: str, name: str) -> None:
    """app.delete removes `app_configs/<app>` (the fake's files API has no unlink: the
    files go from the dataset's table and the pool commits)."""
    try:
        loc = files.resolve(node.storage, app_dir(pool, name))
    except CallError:
        return
    if loc.pool is None:
        return
    gone = [key for key in loc.files if key == loc.inner or key.startswith(loc.inner + "/")]
    for key in gone:
        del loc.files[key]
    if gone:
        loc.pool.commit()


def load_apps(node: TrueNASNode, pool: str) -> list[tuple[str, dict, bool]]:
    """(name, compose config, stopped by hand) of every app with files on the pool."""
    try:
        entries = node.storage.listdir(f"/mnt/{pool}/{APP_CONFIGS}")
    except CallError:
        return []
    found = []
    for entry in entries:
        name = entry["name"]
        base = app_dir(pool, name)
        try:
            config = json.loads(node.storage.read_file(
                f"{base}/versions/{custom.VERSION}/user_config.yaml"))
            state = json.loads(node.storage.read_file(f"{base}/{STATE_FILE}"))
        except (CallError, ValueError) as exc:
            log.warning("app %s: its files on pool %s are unreadable: %s", name, pool, exc)
            continue
        found.append((name, config, bool(state.get("stopped"))))
    return sorted(found)


def _dump(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True).encode()
