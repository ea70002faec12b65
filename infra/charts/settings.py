"""Chart settings: what a chart declares (`[settings.<name>]`) and how a site file's
`[apps.<chart>]` values are checked against it.

Types:
- string, integer, boolean;
- port (1-65535), hostname (a DNS name, lowercase), image (a pinned image reference);
- memory: a Compose byte value such as 256m or 1g (units b, k, kb, m, mb, g, gb as the
  Compose specification's "byte value" format), at least Docker's minimum of 6 MiB.
Optional constraints: `choices`, `minimum`/`maximum` (integers and ports), `pattern`
(strings). A setting is either `required` (no default: the site file must give it)
or has a default that obeys its own type. A hostname setting may instead default to
one of the site's public hostnames, `default_dns_hostname = <index>` into
dns.hostnames (the charts cannot know a site's names in advance).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from infra.charts.images import check_pinned

if TYPE_CHECKING:
    from infra.charts.catalog import Catalog

SettingType = Literal["string", "integer", "boolean", "port", "hostname", "image", "memory"]
MEMORY = re.compile(r"^(?P<amount>[0-9]+)(?P<unit>b|k|kb|m|mb|g|gb)?$", re.IGNORECASE)
MEMORY_UNITS = {"b": 1, "k": 2**10, "kb": 2**10, "m": 2**20, "mb": 2**20,
                "g": 2**30, "gb": 2**30}
DOCKER_MIN_MEMORY = 6 * 2**20  # docker run refuses a smaller --memory
HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# Keys of an `[apps.<chart>]` table that are not settings.
SECRET_FILES_KEY = "secret_files"


def memory_bytes(value: str | int) -> int:
    """A Compose byte value in bytes; ValueError when it is not one."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = MEMORY.match(str(value).strip())
    if match is None:
        raise ValueError(f"{value!r} is not a memory size such as 256m or 1g")
    return int(match["amount"]) * MEMORY_UNITS[(match["unit"] or "b").lower()]


class SettingSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str
    type: SettingType = "string"
    default: Any = None
    required: bool = False
    choices: list[Any] | None = None
    minimum: int | None = None
    maximum: int | None = None
    pattern: str | None = None
    default_dns_hostname: int | None = None  # index into the site's dns.hostnames

    @model_validator(mode="after")
    def _default(self) -> SettingSpec:
        dynamic = self.default_dns_hostname
        if dynamic is not None and (self.type != "hostname" or dynamic < 0
                                    or self.default is not None):
            raise ValueError("default_dns_hostname is an index (0, 1, ...) into dns.hostnames, "
                             "for a hostname setting without a default")
        if self.required and (self.default is not None or dynamic is not None):
            raise ValueError("a required setting has no default (drop one of them)")
        if not self.required and self.default is None and dynamic is None:
            raise ValueError("give a default, or mark the setting required = true")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern is not a regular expression ({exc})") from None
        if self.default is not None:
            try:
                coerce(self, self.default)
            except ValueError as exc:
                raise ValueError(f"default {self.default!r}: {exc}") from None
        return self


def coerce(spec: SettingSpec, value: Any) -> Any:
    """`value` checked against `spec` (and normalised); ValueError saying why not."""
    kind = spec.type
    if kind in ("integer", "port"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be an integer, not {value!r}")
        low = spec.minimum if spec.minimum is not None else (1 if kind == "port" else None)
        high = spec.maximum if spec.maximum is not None else (65535 if kind == "port" else None)
        if low is not None and value < low:
            raise ValueError(f"must be at least {low}, not {value}")
        if high is not None and value > high:
            raise ValueError(f"must be at most {high}, not {value}")
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, not {value!r}")
    else:
        if not isinstance(value, str):
            raise ValueError(f"must be a string, not {value!r}")
        if kind == "hostname":
            value = value.lower().rstrip(".")
            if "." not in value or not all(HOST_LABEL.match(p) for p in value.split(".")):
                raise ValueError(f"{value!r} is not a hostname such as app.example.com")
        elif kind == "image":
            check_pinned(value)
        elif kind == "memory" and memory_bytes(value) < DOCKER_MIN_MEMORY:
            raise ValueError(f"{value!r} is below Docker's minimum memory limit of 6m")
        if spec.pattern is not None and not re.fullmatch(spec.pattern, value):
            raise ValueError(f"{value!r} does not match {spec.pattern}")
    if spec.choices is not None and value not in spec.choices:
        raise ValueError(f"{value!r} is not one of {', '.join(map(repr, spec.choices))}")
    return value


def check_apps(raw: object, catalog: Catalog) -> tuple[dict[str, dict], list[str]]:
    """A site file's `apps` table checked against the charts.

    Returns the normalised tables (`{chart: {"settings": {...}, "secret_files": {...}}}`)
    and the problems, each naming its field as `apps.<chart>.<setting>`.
    """
    if not isinstance(raw, dict):
        return {}, ["apps: must be a table of [apps.<chart>] tables"]
    problems: list[str] = []
    normalised: dict[str, dict] = {}
    for chart_name, table in raw.items():
        where = f"apps.{chart_name}"
        chart = catalog.get(chart_name)
        if chart is None:
            known = ", ".join(catalog.names()) or "none"
            problems.append(f"{where}: no chart named {chart_name!r} (charts: {known})")
            continue
        if not isinstance(table, dict):
            problems.append(f"{where}: must be a table of settings")
            continue
        settings, files = {}, {}
        for key, value in table.items():
            if key == SECRET_FILES_KEY:
                files = _secret_files(chart, value, f"{where}.{SECRET_FILES_KEY}", problems)
                continue
            spec = chart.settings.get(key)
            if spec is None:
                known = ", ".join(sorted(chart.settings)) or "none"
                problems.append(f"{where}.{key}: is not a setting of chart {chart_name} "
                                f"(settings: {known})")
                continue
            try:
                settings[key] = coerce(spec, value)
            except ValueError as exc:
                problems.append(f"{where}.{key}: {exc}")
        for key, spec in chart.settings.items():
            if spec.required and key not in table:
                problems.append(f"{where}.{key}: is required ({spec.description})")
        normalised[chart_name] = {"settings": settings, "secret_files": files}
    return normalised, problems


def _secret_files(chart: Any, value: object, where: str, problems: list[str]) -> dict[str, str]:
    if not isinstance(value, dict):
        problems.append(f"{where}: must be a table of secret name = \"path of its file\"")
        return {}
    files = {}
    for name, path in value.items():
        if name not in chart.secrets:
            known = ", ".join(sorted(chart.secrets)) or "none"
            problems.append(f"{where}.{name}: chart {chart.name} has no such secret "
                            f"(secrets: {known})")
        elif not isinstance(path, str) or not path.strip():
            problems.append(f"{where}.{name}: must be the path of a file holding the secret")
        else:
            files[name] = path
    return files
