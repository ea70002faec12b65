"""The site file (TOML), validated into typed models.

Every invalid input yields one clear message per problem naming the field
(`volumes[1].size_gigabytes: ...`); callers turn `SiteFileError` into exit code 2.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from infra.charts.catalog import Catalog, default_catalog
from infra.charts.settings import check_apps
from infra.errors import SiteFileError

# Regions a custom image can be imported into (images_create_custom.yml's enum).
REGIONS = {
    "ams1", "ams2", "ams3", "blr1", "fra1", "lon1", "nyc1", "nyc2", "nyc3",
    "sfo1", "sfo2", "sfo3", "sgp1", "tor1", "syd1",
}
SITE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,28}[a-z0-9]$")
VOLUME_NAME = re.compile(r"^[a-z][a-z0-9-]{0,20}[a-z0-9]$")
TAG = re.compile(r"^[a-zA-Z0-9_\-:]{1,255}$")
HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
MIN_TRUENAS_MEMORY_MB = 8192


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteSection(_Strict):
    name: str = Field(description="short lowercase name; prefixes every resource")
    region: str
    droplet_size: str
    tags: list[str] = Field(default_factory=list)
    # The cost guard (infra/cost.py): `up` refuses to create anything when the run's
    # estimate for `expected_hours` exceeds `max_cost_usd` (no limit when unset).
    max_cost_usd: float | None = None
    expected_hours: float = 3.0

    @field_validator("max_cost_usd", "expected_hours", mode="before")
    @classmethod
    def _a_number(cls, value: Any) -> Any:
        # TOML has real numbers: `true` or "2.50" is a mistake, not a price.
        if isinstance(value, bool | str):
            raise ValueError(f"must be a number, not {value!r}")
        return value

    @field_validator("max_cost_usd")
    @classmethod
    def _max_cost(cls, value: float | None) -> float | None:
        if value is not None and not (0 < value < float("inf")):
            raise ValueError("must be a number of US dollars above 0, such as 2.50")
        return value

    @field_validator("expected_hours")
    @classmethod
    def _hours(cls, value: float) -> float:
        # Up to a year: a longer run is a typo, and DigitalOcean caps a month at 672 hours.
        if not (0 < value <= 8760):
            raise ValueError("must be the run's expected duration in hours, above 0 "
                             "(at most 8760)")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not SITE_NAME.match(value):
            raise ValueError("must be 2-30 lowercase letters, digits or dashes, "
                             "starting with a letter")
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if value not in REGIONS:
            raise ValueError(f"unknown region {value!r}; one of {', '.join(sorted(REGIONS))}")
        return value

    @field_validator("droplet_size")
    @classmethod
    def _size(cls, value: str) -> str:
        if not re.match(r"^[a-z0-9-]+$", value):
            raise ValueError(f"{value!r} is not a size slug such as s-4vcpu-8gb")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        for tag in value:
            if not TAG.match(tag):
                raise ValueError(f"tag {tag!r} may only hold letters, digits, ':', '-', '_'")
        return value


class ImageSection(_Strict):
    name: str
    url: str
    distribution: str = "Unknown"

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+/\S+$", value):
            raise ValueError("must be an http(s) URL of the image file")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


class VolumeSpec(_Strict):
    name: str
    size_gigabytes: Annotated[int, Field(ge=1, le=16384)]

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not VOLUME_NAME.match(value):
            raise ValueError("must be 2-22 lowercase letters, digits or dashes, "
                             "starting with a letter")
        return value


class DnsSection(_Strict):
    domain: str
    hostnames: list[str]
    ttl: Annotated[int, Field(ge=30, le=86400)] = 300

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        value = value.lower().rstrip(".")
        if "." not in value or not all(HOST_LABEL.match(p) for p in value.split(".")):
            raise ValueError(f"{value!r} is not a domain name")
        return value

    @field_validator("hostnames")
    @classmethod
    def _hostnames(cls, value: list[str], info: ValidationInfo) -> list[str]:
        domain = info.data.get("domain")
        if not value:
            raise ValueError("name at least one public hostname")
        for host in value:
            host_l = host.lower().rstrip(".")
            if not all(HOST_LABEL.match(p) for p in host_l.split(".")):
                raise ValueError(f"{host!r} is not a valid hostname")
            if domain and host_l != domain and not host_l.endswith("." + domain):
                raise ValueError(f"{host!r} is not inside the domain {domain}")
        if len({h.lower().rstrip(".") for h in value}) != len(value):
            raise ValueError("a hostname is listed twice")
        return [h.lower().rstrip(".") for h in value]


class AccessSection(_Strict):
    admin_cidrs: list[str]
    truenas_admin_port: Annotated[int, Field(ge=1, le=65535)] = 8443

    @field_validator("admin_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one CIDR the admins connect from")
        for cidr in value:
            try:
                network = ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"{cidr!r} is not an IP network such as 203.0.113.0/24") \
                    from None
            if network.prefixlen == 0:
                raise ValueError(f"{cidr} would open the admin ports to the whole internet")
        return value

    @field_validator("truenas_admin_port")
    @classmethod
    def _port(cls, value: int) -> int:
        if value in (80, 443):
            raise ValueError("80 and 443 are the public ports; pick another for the admin UI")
        return value


POOL_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_.:-]{0,49}$")
# zpool refuses these as pool names (zpool-create(8)); TrueNAS adds its own boot pool.
RESERVED_POOL_NAMES = {"mirror", "raidz", "raidz1", "raidz2", "raidz3", "draid", "spare",
                       "log", "cache", "special", "dedup", "boot-pool"}
DATASET_NAME = re.compile(r"^[a-zA-Z0-9_.:-]+(/[a-zA-Z0-9_.:-]+)*$")
LIFETIME_UNITS = ("HOUR", "DAY", "WEEK", "MONTH", "YEAR")
CRON_FIELD = re.compile(r"^(\*|\*/\d+|\d+(-\d+)?(,\d+(-\d+)?)*)$")


class TrueNASSection(_Strict):
    username: str = "truenas_admin"
    # A file holding the node's API key (relative to the site file, mode 0600);
    # without it the key comes from the environment variable TRUENAS_API_KEY.
    api_key_file: str | None = None
    pool: str = "tank"
    datasets: list[str] = Field(default_factory=lambda: ["apps", "data"])

    @field_validator("pool")
    @classmethod
    def _pool(cls, value: str) -> str:
        if not POOL_NAME.match(value) or value.lower() in RESERVED_POOL_NAMES:
            raise ValueError(f"{value!r} is not a usable ZFS pool name")
        return value

    @field_validator("datasets")
    @classmethod
    def _datasets(cls, value: list[str]) -> list[str]:
        for name in value:
            if not DATASET_NAME.match(name):
                raise ValueError(f"{name!r} is not a dataset path such as apps or data/media")
        if len(set(value)) != len(value):
            raise ValueError("a dataset is listed twice")
        return value


class SnapshotPolicy(_Strict):
    dataset: str
    minute: str = "0"
    hour: str = "*"
    dom: str = "*"
    month: str = "*"
    dow: str = "*"
    lifetime_value: Annotated[int, Field(ge=1, le=10000)] = 2
    lifetime_unit: str = "WEEK"
    naming_schema: str = "auto-%Y-%m-%d_%H-%M"
    recursive: bool = False

    @field_validator("minute", "hour", "dom", "month", "dow")
    @classmethod
    def _cron(cls, value: str) -> str:
        if not CRON_FIELD.match(value):
            raise ValueError(f"{value!r} is not a cron field such as *, 0, */4 or 1,15")
        return value

    @field_validator("lifetime_unit")
    @classmethod
    def _unit(cls, value: str) -> str:
        if value not in LIFETIME_UNITS:
            raise ValueError(f"must be one of {', '.join(LIFETIME_UNITS)}")
        return value

    @field_validator("naming_schema")
    @classmethod
    def _schema(cls, value: str) -> str:
        # TrueNAS needs %Y %m %d %H %M in a naming schema to order snapshots by time.
        missing = [f for f in ("%Y", "%m", "%d", "%H", "%M") if f not in value]
        if missing:
            raise ValueError(f"must contain {' '.join(missing)}")
        return value


LETSENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
LETSENCRYPT_PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory"
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class TlsSection(_Strict):
    """How the site certificate is obtained (ACME, issue 4)."""
    # http-01: the ingress answers on port 80; dns-01: TXT records through DigitalOcean
    challenge: Literal["dns-01", "http-01"] = "http-01"
    # An ACME directory URL; by default the target's (the fake world's pebble), else
    # Let's Encrypt: staging, or production when `production` is true.
    directory: str | None = None
    email: str | None = None
    renew_days: Annotated[int, Field(ge=1, le=30)] = 30
    # Strict: TOML has real booleans, so "yes" is a mistake rather than a yes.
    production: StrictBool = False

    @field_validator("directory")
    @classmethod
    def _directory(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https://[^/\s]+(/\S*)?$", value):
            raise ValueError("must be the https:// URL of an ACME directory")
        return value

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not EMAIL.match(value):
            raise ValueError(f"{value!r} is not an email address")
        return value

    @field_validator("production")
    @classmethod
    def _production(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("directory") is not None:
            raise ValueError("applies only when tls.directory is not set (drop one of them)")
        return value

    def directory_for(self, target_directory: str | None) -> str:
        """The directory to use: the site's, else the target's, else Let's Encrypt."""
        if self.directory:
            return self.directory
        if target_directory:
            return target_directory
        return LETSENCRYPT_PRODUCTION if self.production else LETSENCRYPT_STAGING


class AppConfig(_Strict):
    """One `[apps.<chart>]` table: the chart's settings (checked against the chart by
    parse_site) and `[apps.<chart>.secret_files]`."""
    settings: dict[str, Any] = Field(default_factory=dict)
    secret_files: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_toml(cls, data: Any) -> Any:
        # The file's form is flat (`memory_limit = "256m"` beside `[...secret_files]`).
        if isinstance(data, dict) and set(data) - {"settings", "secret_files"}:
            rest = {k: v for k, v in data.items() if k != "secret_files"}
            return {"settings": rest, "secret_files": data.get("secret_files", {})}
        return data


class Site(_Strict):
    site: SiteSection
    image: ImageSection
    volumes: list[VolumeSpec]
    dns: DnsSection
    access: AccessSection
    truenas: TrueNASSection = Field(default_factory=TrueNASSection)
    snapshots: list[SnapshotPolicy] = Field(default_factory=list)
    # Without [tls] the site has no front door yet: no ingress, no certificate, and
    # the TrueNAS UI stays where a fresh node has it.
    tls: TlsSection | None = None
    apps: dict[str, AppConfig] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _apps_need_tls(self) -> Site:
        if self.apps and self.tls is None:
            raise ValueError("apps: apps are served through the ingress on 443, which needs a "
                             "[tls] section")
        return self

    @model_validator(mode="after")
    def _snapshot_datasets(self) -> Site:
        for index, policy in enumerate(self.snapshots):
            if policy.dataset not in self.truenas.datasets:
                raise ValueError(f"snapshots[{index}].dataset: {policy.dataset!r} is not one of "
                                 "truenas.datasets")
        return self

    @field_validator("volumes")
    @classmethod
    def _two_volumes(cls, value: list[VolumeSpec]) -> list[VolumeSpec]:
        if len(value) != 2:
            raise ValueError(f"the pool is a mirror of exactly two volumes; found {len(value)}")
        if value[0].name == value[1].name:
            raise ValueError("the two volumes need different names")
        return value

    @property
    def name(self) -> str:
        return self.site.name


def _location(loc: tuple) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text


def parse_site(data: dict, catalog: Catalog | None = None) -> Site:
    """The site in `data`; SiteFileError listing every problem.

    `[apps.<chart>]` tables are checked against the charts (`catalog`, by default the
    repository's charts/), each problem named `apps.<chart>.<setting>`.
    """
    problems: list[str] = []
    if isinstance(data, dict) and "apps" in data:
        apps, problems = check_apps(data["apps"], catalog or default_catalog())
        data = {**data, "apps": apps}
    try:
        site = Site.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            where = _location(error["loc"]) or "site file"
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "missing":
                message = "is required"
            elif error["type"] == "extra_forbidden":
                message = "is not a known field (check its spelling)"
            if not error["loc"] and ": " in message:
                problems.append(message)  # a rule across fields names its own field
            else:
                problems.append(f"{where}: {message}")
        raise SiteFileError(problems) from None
    if problems:
        raise SiteFileError(problems)
    return site


def load_site(path: Path) -> Site:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise SiteFileError([f"{path}: no such site file"]) from None
    except OSError as exc:
        raise SiteFileError([f"{path}: cannot read ({exc.strerror})"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SiteFileError([f"{path}: not valid TOML ({exc})"]) from None
    return parse_site(data)
