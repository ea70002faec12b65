"""@containers: the charts' Compose projects, rendered exactly as `up` renders them for
the spec's site apps-1, run on a local Docker engine with testcontainers, and their
real health endpoints probed (CockroachDB's /health?ready=1 on the published console
port; GoCD's /go/api/v1/health and uro's /health from inside their containers, since
the ingress and its certificate are not part of these runs).

Changed from the node, and only these: bind sources under /mnt/<pool>/ move to a
temporary directory (no pool here), and the shared `<site>-front` network, which the
ingress project creates on a node, is created by the test. Skipped, with the reason,
without a Docker engine, testcontainers or a registry (tests/integration/containers/engine.py).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from infra.charts.render import RenderedApp
from infra.charts.validate import prepare_site
from infra.state import StateDir
from steps.sites import build_site

pytestmark = [pytest.mark.containers, pytest.mark.slow]
SITE = "apps-1"


def _relocate(text: str, pool: str, root: Path) -> str:
    return text.replace(f"/mnt/{pool}/", f"{root}/")


def _write_project(app: RenderedApp, pool: str, root: Path, where: Path) -> Path:
    """The app's project and files under `root` instead of /mnt/<pool>/."""
    compose = json.loads(_relocate(json.dumps(app.compose), pool, root))
    for service in compose.get("services", {}).values():
        for entry in service.get("volumes") or []:
            source = entry.get("source") if isinstance(entry, dict) else entry.split(":")[0]
            if source and source.startswith(str(root)):
                Path(source).mkdir(parents=True, exist_ok=True)
    for rendered in app.files:
        path = Path(_relocate(rendered.path, pool, root))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rendered.content)
        path.chmod(rendered.mode)
    # as infra's deploy does after writing the files (charts' owners: GoCD runs as 1000:0)
    for dataset, (uid, gid) in app.owners.items():
        _chown_tree(root / dataset.split("/", 1)[1], uid, gid)
    for rendered in app.files:
        if rendered.owner is not None:
            _chown_tree(Path(_relocate(rendered.dataset_path, pool, root)), *rendered.owner)
    where.mkdir(parents=True, exist_ok=True)
    (where / "compose.yaml").write_text(yaml.safe_dump(compose, sort_keys=False))
    return where


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    """chown -R, with sudo when this user may not (a CI runner is not root)."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        for each in [path, *path.rglob("*")]:
            os.chown(each, uid, gid)
    except PermissionError:
        subprocess.run(["sudo", "-n", "chown", "-R", f"{uid}:{gid}", str(path)], check=True)


@pytest.fixture
def rendered(tmp_path: Path) -> dict[str, RenderedApp]:
    site = build_site(SITE)
    return {app.name: app for app in
            prepare_site(site, StateDir(tmp_path / "state"), tls_ready=True)}


@pytest.fixture
def front_network() -> Iterator[str]:
    name = f"{SITE}-front"
    subprocess.run(["docker", "network", "create", name], capture_output=True, check=False)
    yield name
    subprocess.run(["docker", "network", "rm", name], capture_output=True, check=False)


def _run(app: RenderedApp, tmp_path: Path):
    from testcontainers.compose import DockerCompose

    site = build_site(SITE)
    where = _write_project(app, site.truenas.pool, tmp_path / "mnt",
                           tmp_path / "projects" / app.name)
    # wait: `docker compose up --wait`, i.e. until every health check passes
    return DockerCompose(context=str(where), compose_file_name="compose.yaml", pull=True,
                         wait=True)


def test_cockroachdb_answers_ready(rendered, front_network, tmp_path: Path) -> None:
    app = rendered["cockroachdb"]
    with _run(app, tmp_path) as compose:
        host, port = compose.get_service_host_and_port("cockroachdb", 8080)
        answer = requests.get(f"http://{host or 'localhost'}:{port}/health?ready=1",
                              timeout=30)
        assert answer.status_code == 200, answer.text


def test_gocd_answers_healthy(rendered, front_network, tmp_path: Path) -> None:
    with _run(rendered["gocd"], tmp_path) as compose:
        out, err, code = compose.exec_in_container(
            ["curl", "-fsS", "http://localhost:8153/go/api/v1/health"], "gocd-server")
        assert code == 0, err
        assert json.loads(out) == {"health": "OK"}


@pytest.mark.skipif(not os.environ.get("SPEC_URO_IMAGE"),
                    reason="uro has no published image: set SPEC_URO_IMAGE to one")
def test_uro_answers_healthy(rendered, front_network, tmp_path: Path) -> None:
    with _run(rendered["cockroachdb"], tmp_path / "db"), _run(rendered["uro"], tmp_path) \
            as compose:
        out, err, code = compose.exec_in_container(
            ["wget", "-qO-", "http://localhost:4000/health"], "uro")
        assert code == 0, err
        assert json.loads(out)["services"]["uro"] == "healthy"
