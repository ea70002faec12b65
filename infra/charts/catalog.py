"""Loading charts: `charts/<app>/chart.toml` + `compose.yaml` into typed models.

Every problem names the file and the field (`charts/ingress/chart.toml: images.caddy:
...`), all problems at once, as ChartError (exit 2 in the CLI). Loading also checks
the template against the metadata: every `${...}` in compose.yaml and in the file
templates is declared, every image the services use is one of `[images]`, every
route's service exists.
"""

from __future__ import annotations

import os
import re
import tomllib
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from infra.charts.errors import ChartError
from infra.charts.images import check_pinned
from infra.charts.settings import SettingSpec
from infra.charts.template import TemplateError, names_in, walk_strings

CHARTS_DIR = Path(__file__).resolve().parents[2] / "charts"
# Another charts directory in place of the repository's (the spec renders a copy with
# a bumped chart_version to exercise an upgrade; an operator can try local charts).
CHARTS_ENV = "TRUENAS_SITE_CHARTS"
# truenas-schemas/app.create.json: app_name pattern and maxLength
APP_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
RELATIVE_PATH = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


def _owner(value: str | None) -> str | None:
    if value is not None and not re.match(r"^\d{1,10}:\d{1,10}$", value):
        raise ValueError(f"{value!r} is not uid:gid such as 1000:0")
    return value


def _uid_gid(owner: str | None) -> tuple[int, int] | None:
    if owner is None:
        return None
    uid, gid = owner.split(":")
    return int(uid), int(gid)


# "uid:gid", such as 1000:0
Owner = Annotated[str | None, AfterValidator(_owner)]
BUILTINS = frozenset({"site.name", "site.pool", "site.domain", "app.name", "app.dataset",
                      "app.path"})
GENERATORS = frozenset({"caddy"})  # files built in code (infra/charts/ingress.py)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Health(_Strict):
    """Where a running app answers: `check` and the fake runtime probe it."""
    service: str
    port: Annotated[int, Field(ge=1, le=65535)]
    path: str = "/"
    status: Annotated[int, Field(ge=100, le=599)] = 200

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with /")
        return value


class SecretSpec(_Strict):
    description: str
    generate: bool = False
    length: Annotated[int, Field(ge=16, le=256)] = 32


class FileSpec(_Strict):
    """A file written into the app's dataset before the app is created or updated."""
    path: str
    description: str = ""
    template: str | None = None   # a file in the chart directory, with ${...}
    generator: str | None = None  # or built in code (GENERATORS)
    mode: Annotated[int, Field(ge=0, le=0o777)] = 0o644
    # reload: the service watches the file (Caddy --watch): a change is only uploaded.
    # redeploy: a change is part of the app's hash, so the app is updated too.
    # create: written only when absent, never overwritten and not in the hash: a seed
    # the service owns afterwards (GoCD rewrites its cruise-config.xml itself).
    on_change: Literal["reload", "redeploy", "create"] = "redeploy"
    # "uid:gid" of the file and of the directories `filesystem.put` makes for it, when
    # the service must write there: TrueNAS writes them as root (middleware
    # plugins/filesystem.py put), whoever owns the dataset.
    owner: Owner = None

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not RELATIVE_PATH.match(value) or ".." in value.split("/"):
            raise ValueError(f"{value!r} must be a relative path inside the app's dataset")
        return value

    @property
    def uid_gid(self) -> tuple[int, int] | None:
        return _uid_gid(self.owner)

    @model_validator(mode="after")
    def _source(self) -> FileSpec:
        if (self.template is None) == (self.generator is None):
            raise ValueError("give exactly one of template or generator")
        if self.generator is not None and self.generator not in GENERATORS:
            raise ValueError(f"unknown generator {self.generator!r} "
                             f"(known: {', '.join(sorted(GENERATORS))})")
        return self


class DatasetSpec(_Strict):
    """A dataset under the app's own (`<pool>/apps/<app>/<path>`)."""
    path: str
    description: str = ""
    # "uid:gid" the service runs as, when not root: a fresh dataset belongs to root,
    # and a service running as another user cannot write to it (GoCD runs as 1000).
    owner: Owner = None

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not re.match(r"^[a-zA-Z0-9_.:-]+(/[a-zA-Z0-9_.:-]+)*$", value) \
                or ".." in value.split("/"):
            raise ValueError(f"{value!r} is not a dataset path such as data or db/wal")
        return value

    @property
    def uid_gid(self) -> tuple[int, int] | None:
        return _uid_gid(self.owner)


class Route(_Strict):
    """A public hostname the ingress sends to one of this chart's services.

    `strip_path_prefix`: removed from the start of a request's path before it is
    proxied (Caddy's rewrite handler; what a Caddyfile's `handle_path /api/v1/*`
    does), so uro's `/health` answers at `https://<host>/api/v1/health`. A path
    without the prefix is proxied unchanged."""
    hostname_setting: str
    service: str
    port: Annotated[int, Field(ge=1, le=65535)]
    strip_path_prefix: str | None = None

    @field_validator("strip_path_prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", value):
            raise ValueError(f"{value!r} must be a path such as /api/v1 (no trailing /)")
        return value


class Chart(_Strict):
    name: str
    chart_version: str
    app_version: str
    description: str
    images: dict[str, str]
    health: Health
    settings: dict[str, SettingSpec] = Field(default_factory=dict)
    secrets: dict[str, SecretSpec] = Field(default_factory=dict)
    files: list[FileSpec] = Field(default_factory=list)
    datasets: list[DatasetSpec] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)
    # Port settings whose host port only the site's admin CIDRs may reach: the cloud
    # firewall opens each to access.admin_cidrs and to nobody else (infra/desired.py).
    admin_ports: list[str] = Field(default_factory=list)
    # Filled by the loader, not read from chart.toml:
    directory: Path = Path(".")
    template: dict[str, Any] = Field(default_factory=dict)
    file_templates: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not APP_NAME.match(value) or len(value) > 40:
            raise ValueError("must be a TrueNAS app name: lowercase letters, digits and "
                             "dashes, starting with a letter, at most 40 characters")
        return value

    @field_validator("chart_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not re.match(r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$", value):
            raise ValueError(f"{value!r} is not a semantic version such as 1.0.0")
        return value

    @field_validator("images")
    @classmethod
    def _images(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("name at least one image")
        for key, reference in value.items():
            if not NAME.match(key):
                raise ValueError(f"{key!r} is not a lowercase name")
            try:
                check_pinned(reference)
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None
        return value

    @field_validator("settings", "secrets")
    @classmethod
    def _names(cls, value: dict) -> dict:
        for key in value:
            if not NAME.match(key):
                raise ValueError(f"{key!r} is not a lowercase name (letters, digits, _)")
        return value

    @model_validator(mode="after")
    def _cross(self) -> Chart:
        for index, route in enumerate(self.routes):
            spec = self.settings.get(route.hostname_setting)
            if spec is None or spec.type != "hostname":
                raise ValueError(f"routes[{index}].hostname_setting: {route.hostname_setting!r}"
                                 " is not a setting of type hostname")
        for index, name in enumerate(self.admin_ports):
            spec = self.settings.get(name)
            if spec is None or spec.type != "port":
                raise ValueError(f"admin_ports[{index}]: {name!r} is not a setting of type port")
        paths = [f.path for f in self.files]
        if len(set(paths)) != len(paths):
            raise ValueError("files: a path is listed twice")
        return self

    def placeholder_known(self, name: str) -> bool:
        kind, _, key = name.partition(".")
        return (name in BUILTINS or (kind == "settings" and key in self.settings)
                or (kind == "secrets" and key in self.secrets)
                or (kind == "image" and key in self.images))

    @property
    def services(self) -> list[str]:
        return sorted((self.template.get("services") or {}).keys())

    def __repr__(self) -> str:
        return f"Chart({self.name!r}, chart_version={self.chart_version!r})"


def _location(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else ("." if text else "") + str(part)
    return text


def _problems(exc: ValidationError, where: str) -> list[str]:
    problems = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "is required"
        elif error["type"] == "extra_forbidden":
            message = "is not a known field (check its spelling)"
        field = _location(error["loc"])
        problems.append(f"{where}: {field}: {message}" if field else f"{where}: {message}")
    return problems


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(CHARTS_DIR.parent))
    except ValueError:
        return str(path)


def load_chart(directory: Path) -> Chart:
    """The chart in `directory`; ChartError naming every problem."""
    directory = Path(directory)
    meta_path, compose_path = directory / "chart.toml", directory / "compose.yaml"
    meta_name, compose_name = _display(meta_path), _display(compose_path)
    try:
        data = tomllib.loads(meta_path.read_text())
    except FileNotFoundError:
        raise ChartError([f"{meta_name}: no such file"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ChartError([f"{meta_name}: not valid TOML ({exc})"]) from None
    try:
        template = yaml.safe_load(compose_path.read_text())
    except FileNotFoundError:
        raise ChartError([f"{compose_name}: no such file"]) from None
    except yaml.YAMLError as exc:
        raise ChartError([f"{compose_name}: not valid YAML ({exc})"]) from None
    if not isinstance(template, dict) or not isinstance(template.get("services"), dict):
        raise ChartError([f"{compose_name}: must be a Compose project with a services map"])
    try:
        chart = Chart.model_validate({**data, "directory": directory, "template": template})
    except ValidationError as exc:
        raise ChartError(_problems(exc, meta_name)) from None
    problems = []
    if chart.name != directory.name:
        problems.append(f"{meta_name}: name: {chart.name!r} must be the directory's name "
                        f"({directory.name!r})")
    problems += _check_template(chart, compose_name)
    file_templates, file_problems = _file_templates(chart, meta_name)
    problems += file_problems
    if problems:
        raise ChartError(problems)
    return chart.model_copy(update={"file_templates": file_templates})


def _check_template(chart: Chart, compose_name: str) -> list[str]:
    problems = []
    for where, text in walk_strings(chart.template):
        try:
            for name in names_in(text, where):
                if not chart.placeholder_known(name):
                    problems.append(f"{compose_name}: {where}: unknown placeholder ${{{name}}}")
        except TemplateError as exc:
            problems.append(f"{compose_name}: {exc}")
    services = chart.template["services"]
    allowed = {f"${{image.{key}}}" for key in chart.images} | {
        f"${{settings.{key}}}" for key, spec in chart.settings.items() if spec.type == "image"}
    for service, body in services.items():
        image = body.get("image") if isinstance(body, dict) else None
        if image not in allowed:
            problems.append(f"{compose_name}: services.{service}.image: must be one of the "
                            "chart's pinned images, written ${image.<name>}, or a setting of "
                            "type image, ${settings.<name>}")
    if chart.health.service not in services:
        problems.append(f"{_display(chart.directory / 'chart.toml')}: health.service: "
                        f"{chart.health.service!r} is not a service of {compose_name}")
    published = {text for where, text in walk_strings(chart.template)
                 if ".ports" in where}
    for index, name in enumerate(chart.admin_ports):
        if not any(f"${{settings.{name}}}" in text for text in published):
            problems.append(f"{_display(chart.directory / 'chart.toml')}: admin_ports[{index}]:"
                            f" no service publishes ${{settings.{name}}} in its ports")
    for index, route in enumerate(chart.routes):
        if route.service not in services:
            problems.append(f"{_display(chart.directory / 'chart.toml')}: routes[{index}]."
                            f"service: {route.service!r} is not a service of {compose_name}")
    return problems


def _file_templates(chart: Chart, meta_name: str) -> tuple[dict[str, str], list[str]]:
    templates, problems = {}, []
    for index, spec in enumerate(chart.files):
        if spec.template is None:
            continue
        source = chart.directory / spec.template
        where = f"{_display(source)}"
        try:
            text = source.read_text()
        except OSError:
            problems.append(f"{meta_name}: files[{index}].template: no file {spec.template}")
            continue
        try:
            for name in names_in(text, where):
                if not chart.placeholder_known(name):
                    problems.append(f"{where}: unknown placeholder ${{{name}}}")
        except TemplateError as exc:
            problems.append(str(exc))
        templates[spec.path] = text
    return templates, problems


class Catalog:
    """Every chart under a directory (default: the repository's charts/)."""

    def __init__(self, charts: dict[str, Chart]) -> None:
        self.charts = dict(sorted(charts.items()))

    @classmethod
    def load(cls, root: Path | None = None) -> Catalog:
        root = Path(root) if root is not None else CHARTS_DIR
        charts, problems = {}, []
        for directory in sorted(p for p in root.iterdir() if (p / "chart.toml").exists()):
            try:
                chart = load_chart(directory)
            except ChartError as exc:
                problems += exc.problems
                continue
            charts[chart.name] = chart
        if problems:
            raise ChartError(problems)
        return cls(charts)

    def get(self, name: str) -> Chart | None:
        return self.charts.get(name)

    def __getitem__(self, name: str) -> Chart:
        return self.charts[name]

    def names(self) -> list[str]:
        return list(self.charts)


@cache
def _catalog_at(root: Path) -> Catalog:
    return Catalog.load(root)


def default_catalog() -> Catalog:
    """The repository's charts (or those under $TRUENAS_SITE_CHARTS), each directory
    loaded once per process."""
    return _catalog_at(Path(os.environ.get(CHARTS_ENV) or CHARTS_DIR).resolve())
