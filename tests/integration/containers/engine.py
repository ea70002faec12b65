"""Whether @containers tests can run here: a Docker client, a reachable engine,
testcontainers, and an image registry. Each answer says what is missing."""

from __future__ import annotations

import shutil
import subprocess
from functools import cache

import requests

# Docker Hub's registry API answers 401 to an anonymous GET: reachable.
REGISTRY = "https://registry-1.docker.io/v2/"
ENGINE_SECONDS = 20


@cache
def containers_unavailable() -> str | None:
    """None when the charts' projects can run here; otherwise why not (a skip reason)."""
    docker = shutil.which("docker")
    if docker is None:
        return "no docker client on PATH, so no local Docker engine to run the charts on"
    try:
        info = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"],
                              capture_output=True, text=True, timeout=ENGINE_SECONDS,
                              check=False)
    except subprocess.TimeoutExpired:
        return f"no reachable Docker engine: `docker info` did not answer in {ENGINE_SECONDS} s"
    if info.returncode != 0:
        said = (info.stderr.strip() or info.stdout.strip()).splitlines()
        return ("no reachable Docker engine: `docker info` failed"
                + (f" ({said[-1]})" if said else ""))
    try:
        import testcontainers.compose  # noqa: F401
    except ImportError:
        return "testcontainers is not installed (pip install -e '.[containers]')"
    session = requests.Session()
    session.trust_env = False   # the real registry, not a proxy or the fake world's CA
    try:
        answer = session.get(REGISTRY, timeout=10, verify=True)
    except requests.RequestException as error:
        return f"the image registry is unreachable ({REGISTRY}: {type(error).__name__})"
    finally:
        session.close()
    if answer.status_code not in (200, 401):
        return f"the image registry answered {answer.status_code} ({REGISTRY})"
    return None
