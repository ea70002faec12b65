"""Where a chart's secrets come from, in this order:

1. a file named in the site file (`[apps.<chart>.secret_files] <secret> = "path"`,
   relative to the site file's directory; it must not be readable by others);
2. the environment variable `<APP>_<SECRET>` (upper-case, `-` as `_`);
3. for a secret declared `generate = true`: generated once into the state directory
   (`<state>/secrets/<app>/<secret>`, 0600 in a 0700 directory) and reused after;
   for an app whose data the site receives from another site (`[[replication]]` of
   `apps/<app>`), the source site's generated value when its state directory holds
   one: the received data was made with it (GoCD's cruise-config.xml holds the agent
   key it was seeded with), so a value of this site's own would not match it.
Never from the repository. A secret found nowhere is a problem naming the secret and
where it may come from, never its value.
"""

from __future__ import annotations

import os
import secrets as random
import stat
import string
from collections.abc import Mapping
from pathlib import Path

from infra.charts.catalog import Chart
from infra.secrets import Secret, write_private_file
from infra.state import StateDir

ALPHABET = string.ascii_letters + string.digits  # safe in URLs, YAML, shells and DSNs


def env_name(app: str, secret: str) -> str:
    return f"{app}_{secret}".upper().replace("-", "_")


def generated_path(state: StateDir, app: str, secret: str) -> Path:
    return state.path / "secrets" / app / secret


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _generate_once(state: StateDir, app: str, name: str, length: int) -> Secret:
    path = generated_path(state, app, name)
    value = "".join(random.choice(ALPHABET) for _ in range(length))
    if getattr(state, "read_only", False):
        # A read-only run (check) writes nothing: a stand-in for this run only, which
        # is no evidence about the deployed app (front_door: `unknown_secrets`).
        return Secret(value)
    _private_dir(path.parent.parent)
    _private_dir(path.parent)
    try:
        # O_EXCL: two runs at once never overwrite each other's secret; the loser reads.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return Secret(path.read_text().strip())
    with os.fdopen(descriptor, "w") as handle:
        handle.write(value + "\n")
    return Secret(value)


def _inherit(state: StateDir, source: StateDir, app: str, name: str
             ) -> tuple[Secret | None, str | None]:
    """The source site's generated secret, kept in this site's state directory too (so
    that `check` and later runs without the source's directory see the same value)."""
    value, problem = _from_file(generated_path(source, app, name),
                                f"the source's generated secret {name}")
    if value is None or getattr(state, "read_only", False):
        return value, problem
    own = generated_path(state, app, name)
    if not own.exists() or own.read_text().strip() != value.reveal():
        _private_dir(own.parent.parent)
        _private_dir(own.parent)
        write_private_file(own, value.reveal() + "\n")
    return value, None


def _from_file(path: Path, where: str) -> tuple[Secret | None, str | None]:
    try:
        mode = path.stat().st_mode
        value = path.read_text().strip()
    except OSError as exc:
        return None, f"{where}: cannot read {path} ({exc.strerror})"
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return None, f"{where}: {path} is readable by others; chmod 600 it"
    if not value:
        return None, f"{where}: {path} is empty"
    return Secret(value), None


def unknown_secrets(chart: Chart, secret_files: Mapping[str, str], state: StateDir,
                    environ: Mapping[str, str] | None = None) -> list[str]:
    """The generated secrets of `chart` that neither a file, the environment nor the
    state directory holds: what a run in another directory would have to make up."""
    env = os.environ if environ is None else environ
    return [name for name, spec in chart.secrets.items()
            if spec.generate and name not in secret_files
            and not env.get(env_name(chart.name, name))
            and not generated_path(state, chart.name, name).exists()]


def resolve_secrets(chart: Chart, secret_files: Mapping[str, str], state: StateDir,
                    *, site_dir: Path | None = None,
                    environ: Mapping[str, str] | None = None,
                    source_state: StateDir | None = None
                    ) -> tuple[dict[str, Secret], list[str]]:
    """Every secret `chart` declares, and the problems (one per missing secret).
    `source_state`: the state directory of the site the app's data is received from."""
    env = os.environ if environ is None else environ
    found: dict[str, Secret] = {}
    problems: list[str] = []
    for name, spec in chart.secrets.items():
        where = f"apps.{chart.name}.secret_files.{name}"
        if name in secret_files:
            path = Path(secret_files[name]).expanduser()
            if not path.is_absolute() and site_dir is not None:
                path = site_dir / path
            value, problem = _from_file(path, where)
            if problem:
                problems.append(problem)
            else:
                found[name] = value
            continue
        variable = env_name(chart.name, name)
        if env.get(variable):
            found[name] = Secret(env[variable])
        elif spec.generate:
            existing = generated_path(state, chart.name, name)
            if source_state is not None and \
                    generated_path(source_state, chart.name, name).exists():
                value, problem = _inherit(state, source_state, chart.name, name)
                if problem:
                    problems.append(problem)
                else:
                    found[name] = value
            elif existing.exists():
                value, problem = _from_file(existing, f"the generated secret {name}")
                if problem:
                    problems.append(problem)
                    continue
                found[name] = value
            else:
                found[name] = _generate_once(state, chart.name, name, spec.length)
        else:
            problems.append(f"apps.{chart.name}: secret {name} ({spec.description}) is "
                            f"missing: export {variable} or name a file in "
                            f"[apps.{chart.name}.secret_files]")
    return found, problems
