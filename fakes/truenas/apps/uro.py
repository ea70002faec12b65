"""uro (V-Sekai's Elixir/Phoenix API), as the fake runs it. Known by the image
repository's last component `uro`, whatever the registry (images.LAZY_BASENAMES).

Facts followed (V-Sekai/uro @6783075f, 2025-06-06; reference/anchors-and-vsekai.md §4):
- required env, read at runtime; a missing one makes startup raise (config/config.exs
  get_env and config/helpers.exs Helpers.get_env: `Environment variable X is required
  but not set.`): URL, ROOT_ORIGIN, FRONTEND_URL, DATABASE_URL, REDIS_URL, PORT,
  PHOENIX_KEY_BASE, JOKEN_SIGNER; for each `OAUTH2_<P>_STRATEGY`, also
  `OAUTH2_<P>_CLIENT_ID` and `OAUTH2_<P>_CLIENT_SECRET`;
- the entrypoint is `iex -S mix do ecto.migrate, phx.server` (Dockerfile line 40):
  migrations run before the server listens on PORT (4000); ecto.migrate does not
  create the database: one that does not exist fails it (Postgrex 3D000
  invalid_catalog_name) and the process exits;
- the working directory is /app (Dockerfile line 11); uploads are stored under
  ./uploads (the uploaders' storage_dir "uploads/") and served at /uploads from
  Path.expand("./uploads") (lib/uro/endpoint.ex Plug.Static): /app/uploads;
- `GET /health` -> 200 `{"services":{"uro":"healthy"}}` (lib/uro/controllers/health.ex
  answers that whatever the dependencies do).
Chosen, not known:
- the message of a missing variable is the fake's ("environment variable X is
  missing."), exit code 1;
- the migration step waits for the database: it tries every RETRY_SECONDS virtual
  seconds and gives up (exit 1, the restart policy applies) after
  MIGRATE_GIVE_UP_SECONDS; real Ecto fails its first query after its own timeouts;
- "the database answers" = the DATABASE_URL host:port accepts a connection over a
  network the container shares (the fake cockroach accepts once ready; no pgwire);
  "redis answers" = PING -> +PONG at the REDIS_URL host:port. Both are asked inside
  the model (RunningContainer.ask), resolved like Docker's DNS would;
- until the migrations are done nothing listens on PORT (a connection is accepted
  and closed, as Docker's proxy does for a port nobody listens on); the container's
  healthcheck passes once it serves and its dependencies answer (a stand-in for
  Redix and the Repo's pools staying connected);
- applied migrations are recorded in memory (the fake cockroach has no SQL), per
  node, database host and database name: a restart of uro finds them applied, a
  new world does not. MIGRATIONS lists the fake's migration versions.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

from fakes.truenas.apps.http_service import HttpRequest, HttpResponse, http_service
from fakes.truenas.apps.images import (
    ContainerFailed,
    ImageBehaviour,
    RunningContainer,
    accept_and_close,
)
from fakes.truenas.server import StreamService

REQUIRED = ("URL", "ROOT_ORIGIN", "FRONTEND_URL", "DATABASE_URL", "REDIS_URL", "PORT",
            "PHOENIX_KEY_BASE", "JOKEN_SIGNER")
BOOT_SECONDS = 3.0
RETRY_SECONDS = 2.0
MIGRATE_GIVE_UP_SECONDS = 60.0
MIGRATIONS = ("20200101000000", "20240101000000")
HEALTHY = {"services": {"uro": "healthy"}}
UPLOADS = "/app/uploads"


def missing_variable(env: dict[str, str]) -> str | None:
    for name in REQUIRED:
        if not env.get(name):
            return name
    for name in sorted(env):
        if name.startswith("OAUTH2_") and name.endswith("_STRATEGY"):
            provider = name[len("OAUTH2_"):-len("_STRATEGY")]
            for part in ("CLIENT_ID", "CLIENT_SECRET"):
                if not env.get(f"OAUTH2_{provider}_{part}"):
                    return f"OAUTH2_{provider}_{part}"
    return None


def _dial(url: str, default_port: int, name: str) -> tuple[str, str]:
    """host:port and the path of a URL (ValueError naming the variable)."""
    parts = urlsplit(url)
    try:
        port = parts.port or default_port
    except ValueError:
        raise ValueError(f"{name} has an invalid port: {url!r}") from None
    if not parts.hostname:
        raise ValueError(f"{name} has no host")
    return f"{parts.hostname}:{port}", parts.path.lstrip("/")


class Uro(ImageBehaviour):
    def __init__(self) -> None:
        self.applied: dict[tuple[str, str, str], tuple[str, ...]] = {}

    def start(self, container: RunningContainer) -> dict[int, Any]:
        env = container.environment
        name = missing_variable(env)
        if name is not None:
            raise ContainerFailed(f"** (RuntimeError) environment variable {name} is missing.")
        if not env["PORT"].isdecimal():
            raise ContainerFailed(f"** (ArgumentError) invalid PORT {env['PORT']!r}")
        try:
            db, db_name = _dial(env["DATABASE_URL"], 5432, "DATABASE_URL")
            redis, _ = _dial(env["REDIS_URL"], 6379, "REDIS_URL")
        except ValueError as exc:
            raise ContainerFailed(f"** (ArgumentError) {exc}") from None
        container.state.update(phase="migrating", started=container.now(), db=db,
                               db_name=db_name, redis=redis)
        container.call_later(BOOT_SECONDS, lambda: self._migrate(container))

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if container.state.get("phase") != "serving":
                await accept_and_close(reader, writer)       # phx.server not up yet
                return
            await web.handler(reader, writer)

        async def handle(request: HttpRequest) -> HttpResponse:
            if request.method == "GET" and request.path == "/health":
                return HttpResponse.json(200, HEALTHY)
            if request.method in ("GET", "HEAD") and request.path.startswith("/uploads/"):
                name = request.path[len("/uploads/"):]
                data = None
                if name and ".." not in name.split("/"):
                    data = await asyncio.to_thread(container.read_file, f"{UPLOADS}/{name}")
                if data is not None:
                    return HttpResponse(200, data,
                                        {"Content-Type": "application/octet-stream"})
            return HttpResponse.json(404, {"errors": {"detail": "Not Found"}})

        web = http_service(handle)
        return {int(env["PORT"]): StreamService(serve)}

    # --- dependencies ----------------------------------------------------------------
    def database_answers(self, container: RunningContainer) -> bool:
        return container.ask(container.state["db"], b"") is not None

    def redis_answers(self, container: RunningContainer) -> bool:
        return container.ask(container.state["redis"], b"PING\r\n") == b"+PONG\r\n"

    def dependencies_answer(self, container: RunningContainer) -> bool:
        return self.database_answers(container) and self.redis_answers(container)

    def _migrate(self, container: RunningContainer) -> None:
        state = container.state
        if self.database_answers(container) and container.ask(
                state["db"], f"DATABASE? {state['db_name']}".encode()) == b"no":
            container.exit(1, f"** (Postgrex.Error) FATAL 3D000 (invalid_catalog_name) "
                              f"database \"{state['db_name']}\" does not exist")
            return
        if not self.database_answers(container):
            if container.now() - state["started"] >= MIGRATE_GIVE_UP_SECONDS:
                container.exit(1, f"** (DBConnection.ConnectionError) tcp connect "
                                  f"({state['db']}): connection refused - :econnrefused")
                return
            container.call_later(RETRY_SECONDS, lambda: self._migrate(container))
            return
        key = (container.node_address, state["db"].rsplit(":", 1)[0], state["db_name"])
        self.applied[key] = MIGRATIONS
        state["migrations"] = MIGRATIONS
        state["phase"] = "serving"

    # --- health ------------------------------------------------------------------------
    def healthy(self, container: RunningContainer) -> bool:
        return (container.state.get("phase") == "serving"
                and self.dependencies_answer(container))


BEHAVIOUR = Uro()
