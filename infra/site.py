"""The site file (TOML), validated into typed models.

Every invalid input yields one clear message per problem naming the field
(`volumes[1].size_gigabytes: ...`), every problem of the file at once; callers turn
`SiteFileError` into exit code 2. What DigitalOcean or TrueNAS would refuse and the
file alone can tell is refused here (each rule cites its source), so that `plan` and
`up` refuse it before any request; what needs the cloud is infra/preflight.py.
Types are strict: TOML has real numbers and booleans, so `size_gigabytes = "10"` is
a mistake, not ten.
"""

from __future__ import annotations

import ipaddress
import re
import stat
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

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
IMAGE_FORMAT = re.compile(r"\.(img|raw|qcow2|vhdx|vdi|vmdk)(\.(gz|bz2))?$", re.IGNORECASE)
DISTRIBUTIONS = ("Arch Linux", "CentOS", "CoreOS", "Debian", "Fedora", "Fedora Atomic",
                 "FreeBSD", "Gentoo", "openSUSE", "RancherOS", "Rocky Linux", "Ubuntu",
                 "Unknown")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class SiteSection(_Strict):
    name: str = Field(description="short lowercase name; prefixes every resource")
    # A droplet site's (required then, cross_field_problems); a site on a node of your
    # own has neither.
    region: str | None = None
    droplet_size: str | None = None
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
    def _region(cls, value: str | None) -> str | None:
        if value is not None and value not in REGIONS:
            raise ValueError(f"unknown region {value!r}; one of {', '.join(sorted(REGIONS))}")
        return value

    @field_validator("droplet_size")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[a-z0-9-]+$", value):
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
        # DigitalOcean imports raw .img, qcow2, vhdx, vdi or vmdk, optionally gzip or
        # bzip2, never xz (reference/digitalocean-api.md §5 Custom images).
        path = urlparse(value).path
        if not IMAGE_FORMAT.search(path):
            raise ValueError(f"{path.rsplit('/', 1)[-1]!r} is not an image DigitalOcean "
                             "imports: raw .img, .qcow2, .vhdx, .vdi or .vmdk, optionally "
                             ".gz or .bz2 (not .xz)")
        return value

    @field_validator("distribution")
    @classmethod
    def _distribution(cls, value: str) -> str:
        # Anything else is stored as Unknown (reference/digitalocean-api.md §1 item 4).
        if value not in DISTRIBUTIONS:
            raise ValueError(f"must be one of DigitalOcean's labels: {', '.join(DISTRIBUTIONS)}")
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
        if _is_ip(value):
            raise ValueError(f"{value!r} is an IP address; DNS records need a domain name")
        if "." not in value or not all(HOST_LABEL.match(p) for p in value.split(".")):
            raise ValueError(f"{value!r} is not a domain name")
        if value.rsplit(".", 1)[1].isdigit():
            # RFC 3696 §2: a top-level domain is never all digits.
            raise ValueError(f"{value!r} has a numeric top-level domain; no such domain exists")
        if len(value) > 253:
            raise ValueError("is longer than the 253 characters a DNS name may have")
        return value

    @field_validator("hostnames")
    @classmethod
    def _hostnames(cls, value: list[str], info: ValidationInfo) -> list[str]:
        domain = info.data.get("domain")
        if not value:
            raise ValueError("name at least one public hostname")
        for host in value:
            host_l = host.lower().rstrip(".")
            if not all(HOST_LABEL.match(p) for p in host_l.split(".")) or len(host_l) > 253:
                raise ValueError(f"{host!r} is not a valid hostname")
            if domain and host_l != domain and not host_l.endswith("." + domain):
                raise ValueError(f"{host!r} is not inside the domain {domain}")
        if len({h.lower().rstrip(".") for h in value}) != len(value):
            raise ValueError("a hostname is listed twice")
        return [h.lower().rstrip(".") for h in value]


class AccessSection(_Strict):
    admin_cidrs: list[str]
    truenas_admin_port: Annotated[int, Field(ge=1, le=65535)] = 8443
    # Keys already on the account, by fingerprint, sent with the droplet; without any
    # the site registers a key of its own (infra/resources/ssh_key.py).
    ssh_key_fingerprints: list[
        Annotated[str, Field(pattern=r"^[0-9a-f]{2}(:[0-9a-f]{2}){15}$")]] = []

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
        if value == 22:
            raise ValueError("22 is SSH's port; pick another for the admin UI, such as 8443")
        return value


POOL_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_.:-]{0,49}$")
# zpool refuses these as pool names (zpool-create(8)); TrueNAS adds its own boot pool.
RESERVED_POOL_NAMES = {"mirror", "raidz", "raidz1", "raidz2", "raidz3", "draid", "spare",
                       "log", "cache", "special", "dedup", "boot-pool"}
# libzfs (zpool_name_valid) also refuses names that start with these when a pool is
# created, and pool_namecheck refuses c followed by a digit (a Solaris disk name).
RESERVED_POOL_PREFIXES = ("mirror", "raidz", "draid", "spare")
# ZFS dataset names (zfs_namecheck.c, and the fake's fakes/truenas/models/datasets.py):
# components of letters, digits, `_ - . :` and space, never "." or "..", the whole
# name (pool/dataset) at most 255 characters. Chosen stricter: no space, since the
# mount path (/mnt/<pool>/<dataset>) goes unquoted into paths the charts build.
DATASET_COMPONENT = re.compile(r"^[a-zA-Z0-9_.:-]+$")
MAX_DATASET_NAME = 255
LIFETIME_UNITS = ("HOUR", "DAY", "WEEK", "MONTH", "YEAR")
# Cron fields as TrueNAS's periodic snapshot tasks take them (pool.snapshottask.create
# schedule; reference/truenas-api.md §4): `*`, numbers, a-b ranges, /N steps, comma
# lists; dow 0-7 (0 and 7 both Sunday), plus month and day names.
CRON_RANGES = {"minute": (0, 59), "hour": (0, 23), "dom": (1, 31), "month": (1, 12),
               "dow": (0, 7)}
CRON_NAMES = {
    "month": {m: i + 1 for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul",
                                              "aug", "sep", "oct", "nov", "dec"))},
    "dow": {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))},
}


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def cron_problem(field: str, text: str) -> str | None:
    """Why `text` is not a cron `field` TrueNAS takes, or None."""
    low, high = CRON_RANGES[field]
    names = CRON_NAMES.get(field, {})
    example = "such as *, 0, */4, 1-5 or 1,15"
    if not text.strip():
        return f"is empty; use a cron field {example}"

    def number(part: str) -> int | None:
        if part.lower() in names:
            return names[part.lower()]
        return int(part) if part.isdigit() else None

    for item in text.split(","):
        base, slash, step = item.partition("/")
        if slash and (not step.isdigit() or int(step) < 1):
            return f"{text!r}: the step after / must be a number of at least 1"
        if base == "*":
            continue
        first, dash, last = base.partition("-")
        bounds = [number(first)] + ([number(last)] if dash else [])
        if any(b is None for b in bounds):
            return f"{text!r} is not a cron field {example}"
        if any(not (low <= b <= high) for b in bounds):  # type: ignore[operator]
            return f"{text!r} is out of range: {field} goes from {low} to {high}"
        if dash and bounds[0] > bounds[1]:  # type: ignore[operator]
            return f"{text!r}: the range runs backwards"
    return None


def dataset_problem(name: str, pool: str = "tank") -> str | None:
    """Why `name` (relative to the pool) is not a dataset TrueNAS would create, or None."""
    if not name:
        return "is empty; name a dataset such as apps or data/media"
    if name.startswith("/") or name.endswith("/"):
        return f"{name!r} must not start or end with '/': a path inside the pool, such as data"
    for component in name.split("/"):
        if not component:
            return f"{name!r} has an empty component ('//')"
        if component in (".", ".."):
            return f"{name!r}: a dataset name has no '.' or '..' components"
        if not DATASET_COMPONENT.match(component):
            return (f"{name!r} may hold only letters, digits, '_', '-', '.' and ':' "
                    "(ZFS's dataset name rules, without spaces)")
    if len(pool) + 1 + len(name) > MAX_DATASET_NAME:
        return f"{name!r}: with the pool, longer than ZFS's {MAX_DATASET_NAME} characters"
    return None


class TrueNASSection(_Strict):
    username: str = "truenas_admin"
    # A file holding the node's API key (relative to the site file, mode 0600);
    # without it the key comes from the environment variable TRUENAS_API_KEY.
    api_key_file: str | None = None
    # A fresh node has only truenas_admin's password: a file holding it (mode 0600;
    # else env TRUENAS_ADMIN_PASSWORD) lets `up` create the site's API key once.
    admin_password_file: str | None = None
    pool: str = "tank"
    datasets: list[str] = Field(default_factory=lambda: ["apps", "data"])

    @field_validator("pool")
    @classmethod
    def _pool(cls, value: str) -> str:
        if (not POOL_NAME.match(value) or value.lower() in RESERVED_POOL_NAMES
                or value.startswith(RESERVED_POOL_PREFIXES) or re.match(r"^c[0-9]", value)):
            raise ValueError(f"{value!r} is not a usable ZFS pool name")
        return value

    @field_validator("datasets")
    @classmethod
    def _datasets(cls, value: list[str], info: ValidationInfo) -> list[str]:
        pool = info.data.get("pool") or "tank"
        problems = [p for name in value if (p := dataset_problem(name, pool))]
        if problems:
            raise ValueError("; ".join(problems))
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
    recursive: StrictBool = False

    def covers(self, dataset: str) -> bool:
        """Whether the task's snapshots include `dataset` (relative to the pool): its
        own dataset, or one below it when recursive. A replication of a child binds to
        a recursive task of an ancestor (zettarepl replication/task/task.py: a bound
        task covers each source dataset that `is_child` of its dataset; middleware
        plugins/replication.py: "recursive snapshots of the dataset being replicated
        (or its ancestor)")."""
        return dataset == self.dataset or (self.recursive
                                           and dataset.startswith(self.dataset + "/"))

    @field_validator("minute", "hour", "dom", "month", "dow")
    @classmethod
    def _cron(cls, value: str, info: ValidationInfo) -> str:
        problem = cron_problem(info.field_name or "minute", value)
        if problem:
            raise ValueError(problem)
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


# Keys a forker might put in [node] that hold a secret: refused by name, since the
# site file is meant to be shared (it is in the fork's repository).
NODE_SECRET_KEYS = ("api_key", "password", "admin_password", "token")
DISK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$")


class NodeSection(_Strict):
    """A TrueNAS node you already run (a site on your own hardware): no droplet, no
    image, no volumes; the pool is made from `disks` on this node. Its API key or
    admin password never goes here: `truenas.api_key_file` / `admin_password_file`
    (0600) or env TRUENAS_API_KEY / TRUENAS_ADMIN_PASSWORD."""
    # Where the node's API answers: an IP address or a DNS name.
    address: str
    # The HTTPS port its UI (and API) answers on now; a fresh install uses 443. With
    # [tls], `up` moves the UI to access.truenas_admin_port, and `down` moves it back.
    admin_port: Annotated[int, Field(ge=1, le=65535)] = 443
    # The disks the site's pool mirrors, by name as `disk.query` gives it (sdb) or by
    # serial (stable across reboots: preferred). At least two, none twice.
    disks: list[str]

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, data: Any) -> Any:
        # A secret never reaches the model; cross_field_problems names the field.
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in NODE_SECRET_KEYS}
        return data

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        text = value.strip().lower().rstrip(".")
        if _is_ip(text):
            return text
        if not text or "/" in text or ":" in text or len(text) > 253 or \
                not all(HOST_LABEL.match(p) for p in text.split(".")):
            raise ValueError(f"{value!r} is not an IP address or a host name (no scheme, "
                             "port or path: the port is node.admin_port)")
        return text

    @field_validator("disks")
    @classmethod
    def _disks(cls, value: list[str]) -> list[str]:
        if len(value) < 2:
            raise ValueError(f"the pool is a mirror: name at least two disks; found "
                             f"{len(value)}")
        for disk in value:
            if not DISK_NAME.match(disk):
                raise ValueError(f"{disk!r} is not a disk name (sdb) or serial")
        if len(set(value)) != len(value):
            raise ValueError("a disk is named twice")
        return value


RETENTIONS = ("source", "custom", "none")


class ReplicationSpec(_Strict):
    """One `[[replication]]` on the RECEIVING site: the source site's datasets pushed
    to this site's pool by a TrueNAS replication task on the source node (middleware
    25.10 `replication.create`, direction PUSH over SSH; reference/truenas-api.md
    "Replication"). Each dataset lands at the same path on this site's pool."""
    # The source site's file (relative to this file); its state directory (default
    # .truenas-site/<source name>, relative to this file when given) holds the
    # source node's API key and certificate pin.
    source: str
    source_state_dir: str | None = None
    datasets: list[str]
    # Child datasets too (zettarepl's `recursive`).
    recursive: StrictBool = False
    # When to run: after each of the source's periodic snapshot tasks of the dataset
    # (None), or on a cron schedule of its own (the snapshots sent are still those
    # tasks' snapshots: a PUSH task names its periodic snapshot tasks).
    schedule: dict[str, str] | None = None
    # What the target keeps: what the source keeps ("source"), everything ("none"),
    # or `lifetime_value` `lifetime_unit`s ("custom").
    retention: Literal["source", "custom", "none"] = "source"
    lifetime_value: Annotated[int, Field(ge=1, le=10000)] | None = None
    lifetime_unit: str | None = None
    # The copy stays read-only (readonly=on on the target) until `promote`.
    readonly: StrictBool = True
    # At most this many bytes per second (zettarepl's speed_limit); None: no limit.
    speed_limit: Annotated[int, Field(ge=1)] | None = None

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("name the source site's file, such as production.toml")
        return value

    @field_validator("datasets")
    @classmethod
    def _datasets(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one dataset of the source site, such as data")
        problems = [p for name in value if (p := dataset_problem(name))]
        if problems:
            raise ValueError("; ".join(problems))
        if len(set(value)) != len(value):
            raise ValueError("a dataset is listed twice")
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return value
        unknown = sorted(set(value) - set(CRON_RANGES))
        if unknown:
            raise ValueError(f"{', '.join(unknown)}: not a cron field; use "
                             f"{', '.join(CRON_RANGES)}")
        for field_name, text in value.items():
            if (problem := cron_problem(field_name, text)) is not None:
                raise ValueError(f"{field_name}: {problem}")
        return value

    @field_validator("lifetime_unit")
    @classmethod
    def _unit(cls, value: str | None) -> str | None:
        if value is not None and value not in LIFETIME_UNITS:
            raise ValueError(f"must be one of {', '.join(LIFETIME_UNITS)}")
        return value

    @model_validator(mode="after")
    def _lifetime(self) -> ReplicationSpec:
        given = self.lifetime_value is not None or self.lifetime_unit is not None
        if self.retention == "custom" and (self.lifetime_value is None
                                           or self.lifetime_unit is None):
            raise ValueError("retention: \"custom\" needs lifetime_value and lifetime_unit")
        if self.retention != "custom" and given:
            raise ValueError("lifetime_value: applies only with retention = \"custom\"")
        return self

    def cron(self) -> dict[str, str]:
        """The schedule's five fields, `*` where not given (minute 0)."""
        given = self.schedule or {}
        return {"minute": given.get("minute", "0"),
                **{k: given.get(k, "*") for k in ("hour", "dom", "month", "dow")}}


class Site(_Strict):
    site: SiteSection
    # A droplet site has image and volumes; a site on your own node has `node` instead.
    image: ImageSection | None = None
    volumes: list[VolumeSpec] = Field(default_factory=list)
    node: NodeSection | None = None
    # A droplet site's, and any site with [tls] (its hostnames are what the front door
    # serves); a site on your own node without [tls] may leave it out (_dns_problems).
    dns: DnsSection | None = None
    access: AccessSection
    truenas: TrueNASSection = Field(default_factory=TrueNASSection)
    snapshots: list[SnapshotPolicy] = Field(default_factory=list)
    # Without [tls] the site has no front door yet: no ingress, no certificate, and
    # the TrueNAS UI stays where a fresh node has it.
    tls: TlsSection | None = None
    apps: dict[str, AppConfig] = Field(default_factory=dict)
    # Datasets this site receives from another site (issue 16); none on a production
    # site.
    replication: list[ReplicationSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _across_fields(self) -> Site:
        # parse_site reports these beside every field problem; this keeps a Site built
        # any other way to the same rules.
        problems = cross_field_problems(self.model_dump())
        if problems:
            raise ValueError(problems[0])
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

    @property
    def on_own_node(self) -> bool:
        """A site on a TrueNAS node you already run: no droplet, nothing in the cloud
        (unless dns-01, whose TXT records TrueNAS itself writes)."""
        return self.node is not None


def _table(data: Any, key: str) -> dict:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, dict) else {}


def cross_field_problems(data: Any) -> list[str]:
    """Rules across sections, each naming its field. Run on the raw file too, so that
    they are reported beside the field problems rather than after they are fixed."""
    problems: list[str] = []
    if not isinstance(data, dict):
        return problems
    problems += _shape_problems(data)
    problems += _dns_problems(data)
    if data.get("apps") and data.get("tls") is None:
        problems.append("apps: apps are served through the ingress on 443, which needs a "
                        "[tls] section")
    datasets = _table(data, "truenas").get("datasets", ["apps", "data"])
    snapshots = data.get("snapshots")
    if isinstance(datasets, list) and isinstance(snapshots, list):
        for index, policy in enumerate(snapshots):
            dataset = policy.get("dataset") if isinstance(policy, dict) else None
            if isinstance(dataset, str) and dataset not in datasets:
                problems.append(f"snapshots[{index}].dataset: {dataset!r} is not one of "
                                "truenas.datasets")
    problems += _replication_problems(data)
    return problems


def _replication_problems(data: dict) -> list[str]:
    """A dataset is received from one source only, and takes no snapshot task of this
    site's (its snapshots come from the source; more of them on the copy would part
    it from the source's history)."""
    entries = data.get("replication")
    if not isinstance(entries, list):
        return []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        names = entry.get("datasets") if isinstance(entry, dict) else None
        for name in names if isinstance(names, list) else []:
            if isinstance(name, str) and name in seen and seen[name] != index:
                problems.append(f"replication[{index}].datasets: {name!r} is already "
                                f"received by replication[{seen[name]}]")
            elif isinstance(name, str):
                seen[name] = index
    snapshots = data.get("snapshots")
    for index, policy in enumerate(snapshots if isinstance(snapshots, list) else []):
        dataset = policy.get("dataset") if isinstance(policy, dict) else None
        if isinstance(dataset, str) and any(
                dataset == name or dataset.startswith(name + "/") for name in seen):
            problems.append(f"snapshots[{index}].dataset: {dataset!r} is received by "
                            "[[replication]]; its snapshots come from the source site")
    return problems


# What only a droplet site has, and what a site on your own node must leave out.
DROPLET_ONLY = (("site", "region"), ("site", "droplet_size"), ("image", None),
                ("volumes", None), ("access", "ssh_key_fingerprints"))


def _shape_problems(data: dict) -> list[str]:
    """A droplet site needs its region, size, image and volumes; a site on your own
    node (`[node]`) has none of them: there is no droplet to give them to."""
    problems = []
    own = data.get("node") is not None
    for key in NODE_SECRET_KEYS:
        if key in _table(data, "node"):
            problems.append(f"node.{key}: a secret never goes in the site file; put it in a "
                            "file (chmod 600) named by truenas.api_key_file or "
                            "truenas.admin_password_file, or export TRUENAS_API_KEY or "
                            "TRUENAS_ADMIN_PASSWORD")
    for section, key in DROPLET_ONLY:
        holder = data if key is None else _table(data, section)
        present = holder.get(key or section) not in (None, [], {})
        where = section if key is None else f"{section}.{key}"
        if own and present:
            problems.append(f"{where}: a site on your own node ([node]) has no droplet; "
                            f"drop {where}")
        elif not own and not present and key != "ssh_key_fingerprints" and \
                (key is None or isinstance(data.get(section), dict)):
            problems.append(f"{where}: is required")
    return problems


def _dns_problems(data: dict) -> list[str]:
    """[dns] names the hostnames the front door serves and a droplet's A records: a
    droplet site needs it; a site on your own node only with [tls]."""
    if data.get("dns") is not None:
        return []
    if data.get("node") is None:
        return ["dns: is required"]
    if data.get("tls") is not None:
        return ["dns: [tls] serves the site's public hostnames: add [dns] with the domain "
                "and the hostnames (or drop [tls])"]
    return []


def _location(loc: tuple) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text


# Strict types: what pydantic says, in the file's words.
TYPE_NAMES = {"int_type": "a whole number", "float_type": "a number", "bool_type":
              "true or false", "string_type": "a string in quotes", "list_type": "a list "
              "such as [\"a\", \"b\"]", "dict_type": "a table", "model_type": "a table",
              "int_from_float": "a whole number"}


def _message(error: dict) -> str:
    kind = error["type"]
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field (check its spelling)"
    if kind in TYPE_NAMES:
        given = error.get("input")
        hint = " (drop the quotes)" if isinstance(given, str) and kind in (
            "int_type", "float_type", "int_from_float") else ""
        return f"must be {TYPE_NAMES[kind]}, not {given!r}{hint}"
    return error["msg"].removeprefix("Value error, ")


def parse_site(data: dict, catalog: Catalog | None = None) -> Site:
    """The site in `data`; SiteFileError listing every problem.

    `[apps.<chart>]` tables are checked against the charts (`catalog`, by default the
    repository's charts/), each problem named `apps.<chart>.<setting>`.
    """
    problems: list[str] = []
    if not isinstance(data, dict):
        raise SiteFileError(["site file: is not a table of sections"])
    if "apps" in data and isinstance(data["apps"], dict):
        apps, problems = check_apps(data["apps"], catalog or default_catalog())
        data = {**data, "apps": apps}
    across = cross_field_problems(data)
    try:
        site = Site.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            where = _location(error["loc"]) or "site file"
            message = _message(error)
            if not error["loc"] and ": " in message:
                if message not in across:
                    problems.append(message)  # a rule across fields names its own field
            else:
                problems.append(f"{where}: {message}")
        raise SiteFileError(problems + across) from None
    if problems or across:   # across: a secret in [node], which never reaches the model
        raise SiteFileError(problems + across)
    received = received_app_problems(site, catalog or default_catalog())
    if received:
        raise SiteFileError(received)
    return site


# --- apps on a receiving site (issue 16 item 4) -----------------------------------------
def _charts_run(site: Site) -> set[str]:
    """The charts a site runs: its [apps], and the ingress with any front door."""
    from infra.charts.render import ALWAYS

    return set(site.apps) | (set(ALWAYS) if site.tls is not None else set())


def _received_app(site: Site, name: str) -> str | None:
    """The app whose own dataset `name` (relative to the pool) is, `apps/<app>`, or None."""
    from infra.charts.render import APPS_DATASET

    parts = name.split("/")
    return parts[1] if len(parts) == 2 and parts[0] == APPS_DATASET else None


def received_app_problems(site: Site, catalog: Catalog) -> list[str]:
    """What a receiving site's `[[replication]]` may not receive beside the charts it
    runs, each naming its field: an app's data is received as one copy, its own
    dataset `apps/<app>` with everything below it, and the charts' deploy waits for
    `promote` before writing there (infra/front_door.py). So:
    - not `apps` whole, nor anything of the ingress's (`apps/ingress`): the front
      door's config, certificate and private key are this site's own, written by
      every `up`; production's would arrive read-only over them;
    - not a part of an app's datasets (`apps/gocd/godata`): GoCD's config names agents
      whose identity is in another of its datasets; half a copy is no copy;
    - `apps/<app>` of an app with datasets of its own only with `recursive = true`."""
    from infra.charts.render import APPS_DATASET

    if not site.replication:
        return []
    problems: list[str] = []
    run = _charts_run(site)
    for index, spec in enumerate(site.replication):
        where = f"replication[{index}]"
        for name in spec.datasets:
            parts = name.split("/")
            if parts[0] != APPS_DATASET or not run:
                continue
            if len(parts) == 1:
                problems.append(
                    f"{where}.datasets: {name!r} holds this site's front door (apps/ingress: "
                    "its certificate, key and routes, written by every up) beside the apps' "
                    "data; name each app's own dataset instead, such as "
                    + ", ".join(f'"{APPS_DATASET}/{a}"' for a in sorted(run - {"ingress"})
                                or ["apps/gocd"]))
            elif parts[1] in ("ingress",) and site.tls is not None:
                problems.append(f"{where}.datasets: {name!r} is the front door's own data "
                                "(the site certificate, its key and routes, written by "
                                "every up): it is never received")
            elif len(parts) > 2 and parts[1] in run:
                problems.append(f"{where}.datasets: {name!r} is a part of the app "
                                f"{parts[1]}'s datasets; receive \"{APPS_DATASET}/{parts[1]}\" "
                                "whole (with recursive = true): an app's datasets are one copy")
            elif len(parts) == 2 and parts[1] in run and not spec.recursive:
                chart = catalog.charts.get(parts[1])
                inside = [d.path for d in chart.datasets] if chart else []
                if inside:
                    problems.append(f"{where}.recursive: {name!r} holds the app {parts[1]}'s "
                                    f"datasets ({', '.join(inside)}): set recursive = true")
    return problems


def key_file_problems(site: Site, site_dir: Path) -> list[str]:
    """Why `truenas.api_key_file` (relative to the site file's directory) is no key
    file `up` could use: missing, not a file, readable by others, empty, or outside
    the site's directory through `..`. Checked with the file, before any request."""
    name = site.truenas.api_key_file
    if name is None:
        return []
    where = "truenas.api_key_file"
    if ".." in Path(name).parts:
        return [f"{where}: {name!r} leads out of the site file's directory through '..'; "
                "name a file beside the site file or an absolute path"]
    path = Path(name) if Path(name).is_absolute() else site_dir / name
    try:
        info = path.stat()
    except FileNotFoundError:
        return [f"{where}: no file at {path} (create it holding the TrueNAS API key, "
                "chmod 600)"]
    except OSError as exc:
        return [f"{where}: cannot read {path} ({exc.strerror})"]
    if stat.S_ISDIR(info.st_mode):
        return [f"{where}: {path} is a directory; name the file holding the API key"]
    if not stat.S_ISREG(info.st_mode):
        return [f"{where}: {path} is not a regular file"]
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        return [f"{where}: {path} is readable by others (mode "
                f"{stat.S_IMODE(info.st_mode):o}); chmod 600 it"]
    try:
        empty = not path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        return [f"{where}: cannot read {path} ({getattr(exc, 'strerror', None) or exc})"]
    if empty:
        return [f"{where}: {path} is empty"]
    return []


def _decode(raw: bytes) -> str:
    """The file's text: TOML is UTF-8 (toml.io, spec 1.0 §Spec), without a BOM."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raise SiteFileError(["starts with a UTF-8 byte-order mark; save it as UTF-8 without "
                             "BOM"])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SiteFileError([f"line {line}: byte 0x{raw[exc.start]:02x} is not UTF-8 (a TOML "
                             "file is UTF-8; re-save it, e.g. from Latin-1)"]) from None


def replication_source(spec: ReplicationSpec, site_dir: Path | None = None) -> Path:
    """The source site's file of a `[[replication]]` (relative to `site_dir`)."""
    path = Path(spec.source)
    return path if path.is_absolute() or site_dir is None else site_dir / path


def source_problems(site: Site, site_dir: Path) -> list[str]:
    """What the source sites of the file's `[[replication]]` refuse, read from their
    files only (before any request): a file that does not load, the site itself as
    its source, a dataset the source does not snapshot (a PUSH task sends the
    snapshots of the source's periodic snapshot tasks)."""
    problems: list[str] = []
    for index, spec in enumerate(site.replication):
        where = f"replication[{index}]"
        path = replication_source(spec, site_dir)
        try:
            source = load_site(path, follow_replication=False)
        except SiteFileError as exc:
            problems += [f"{where}.source: {path}: {p}" for p in exc.problems]
            continue
        if source.name == site.name:
            problems.append(f"{where}.source: {path} is this site ({site.name}); name the "
                            "site the datasets come from")
            continue
        for name in spec.datasets:
            if not any(policy.covers(name) for policy in source.snapshots):
                problems.append(f"{where}.datasets: {name!r} has no periodic snapshot task "
                                f"in {path} (add a [[snapshots]] with dataset = {name!r} "
                                "there)")
            app = _received_app(site, name)
            if app is not None and app not in _charts_run(source):
                problems.append(f"{where}.datasets: {name!r} is the app {app}'s data, and "
                                f"{path} runs no app {app} (its [apps] has no {app})")
    return problems


def load_site(path: Path, *, follow_replication: bool = True) -> Site:
    """The site in the file at `path`, its key file (`truenas.api_key_file`, relative
    to the site file) made absolute and checked; `truenas.admin_password_file` made
    absolute too (infra/truenas/credentials.py checks it when a fresh node needs it).
    Problems do not repeat the path (the CLI puts it in front)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SiteFileError(["no such site file"]) from None
    except IsADirectoryError:
        raise SiteFileError(["is a directory, not a site file"]) from None
    except OSError as exc:
        raise SiteFileError([f"cannot read ({exc.strerror})"]) from None
    try:
        data = tomllib.loads(_decode(raw))
    except tomllib.TOMLDecodeError as exc:
        raise SiteFileError([f"not valid TOML ({exc})"]) from None
    site = parse_site(data)
    site_dir = path.resolve().parent
    problems = key_file_problems(site, site_dir)
    if problems:
        raise SiteFileError(problems)
    for field_name in ("api_key_file", "admin_password_file"):
        name = getattr(site.truenas, field_name)
        if name is not None and not Path(name).is_absolute():
            truenas = site.truenas.model_copy(update={field_name: str(site_dir / name)})
            site = site.model_copy(update={"truenas": truenas})
    if site.replication and follow_replication:
        problems = source_problems(site, site_dir)
        if problems:
            raise SiteFileError(problems)
    if site.replication:
        # The source's paths made absolute, as the key files are.
        specs = []
        for spec in site.replication:
            update = {"source": str(replication_source(spec, site_dir))}
            if spec.source_state_dir is not None:
                update["source_state_dir"] = str(site_dir / spec.source_state_dir)
            specs.append(spec.model_copy(update=update))
        site = site.model_copy(update={"replication": specs})
    return site
