"""A Compose project, loaded and judged the way `docker compose config` judges it.

TrueNAS 25.10 validates a custom app's file by running `docker compose config` on it
and refuses the app with `app_create.custom_compose_config: Invalid compose
configuration: <what compose printed>` (middleware stable/goldeye
plugins/apps/custom_app_utils.py `validate_payload`, compose_utils.py
`validate_compose_config`). `load()` is that step: it interpolates (interpolation.py),
checks the document against the Compose specification's structure (the keys of
compose-go's schema/compose-spec.json; wording of compose-go's schema errors:
`services.web additional properties 'foo' not allowed`, `<path> must be a string`),
parses the short and long syntaxes (syntax.py) and checks consistency as compose-go's
loader/validate.go does (`service "web" refers to undefined volume data: invalid
compose project`, `service "web" depends on undefined service "db": invalid compose
project`, `dependency cycle detected: a -> b -> a`).

What `config` does not judge is left for the engine (runtime.py), as Docker leaves
it: an image reference is only parsed when the image is pulled ("invalid reference
format"), healthcheck durations below 1ms are refused when the container is
created, host paths and ports are only tried when the container starts.

Refused by the fake, with a message saying so (not modelled, rather than silently
ignored): `build` without an image, `extends`, `include`, `env_file`, `secrets`,
`configs`, `models`, `provider`, more than one replica (`scale`,
`deploy.replicas`). Accepted and ignored because nothing the fake serves depends on
them: labels, logging, user, capabilities, ulimits, sysctls, dns, hostname and the
like. Top-level `x-*` keys and `x-*` keys inside services are extensions, kept
(`x-portals` and `x-notes` are what TrueNAS reads for an app's portals and notes).
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from fakes.truenas.apps.interpolation import InterpolationError, interpolate
from fakes.truenas.apps.syntax import (
    PROTOCOLS,
    ImageReference,
    PortBinding,
    SyntaxProblem,
    parse_bytes,
    parse_duration,
    parse_image_reference,
    parse_port_spec,
    port_number,
)

INVALID = "invalid compose project"
TOP_LEVEL = {"version", "name", "include", "services", "networks", "volumes", "secrets",
             "configs", "models"}
SERVICE_KEYS = {
    "annotations", "attach", "blkio_config", "build", "cap_add", "cap_drop", "cgroup",
    "cgroup_parent", "command", "configs", "container_name", "cpu_count", "cpu_percent",
    "cpu_period", "cpu_quota", "cpu_rt_period", "cpu_rt_runtime", "cpu_shares", "cpus",
    "cpuset", "credential_spec", "depends_on", "deploy", "develop", "device_cgroup_rules",
    "devices", "dns", "dns_opt", "dns_search", "domainname", "entrypoint", "env_file",
    "environment", "expose", "extends", "external_links", "extra_hosts", "gpus", "group_add",
    "healthcheck", "hostname", "image", "init", "ipc", "isolation", "label_file", "labels",
    "links", "logging", "mac_address", "mem_limit", "mem_reservation", "mem_swappiness",
    "memswap_limit", "models", "network_mode", "networks", "oom_kill_disable",
    "oom_score_adj", "pid", "pids_limit", "platform", "ports", "post_start", "pre_start",
    "pre_stop", "privileged", "profiles", "provider", "pull_policy", "pull_refresh_after",
    "read_only", "restart", "runtime", "scale", "secrets", "security_opt", "shm_size",
    "stdin_open", "stop_grace_period", "stop_signal", "storage_opt", "sysctls", "tmpfs",
    "tty", "ulimits", "use_api_socket", "user", "userns_mode", "uts", "volumes",
    "volumes_from", "working_dir"}
NOT_MODELLED = ("extends", "env_file", "label_file", "secrets", "configs", "models",
                "provider")
HEALTHCHECK_KEYS = {"disable", "interval", "retries", "start_interval", "start_period",
                    "test", "timeout"}
DEPLOY_KEYS = {"endpoint_mode", "labels", "mode", "placement", "replicas", "resources",
               "restart_policy", "rollback_config", "update_config"}
LIMIT_KEYS = {"cpus", "memory", "pids"}
PORT_KEYS = {"name", "mode", "host_ip", "target", "published", "protocol", "app_protocol"}
VOLUME_MOUNT_KEYS = {"type", "source", "target", "read_only", "consistency", "bind",
                     "volume", "tmpfs", "image"}
VOLUME_KEYS = {"driver", "driver_opts", "external", "labels", "name"}
NETWORK_KEYS = {"attachable", "driver", "driver_opts", "enable_ipv4", "enable_ipv6",
                "external", "internal", "ipam", "labels", "name"}
CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")
RESTART_POLICIES = ("no", "always", "on-failure", "unless-stopped")
MOUNT_MODES = {"ro", "rw", "z", "Z", "nocopy", "consistent", "cached", "delegated", "shared",
               "slave", "private", "rshared", "rslave", "rprivate", "copy"}
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
# Docker's defaults (daemon/health.go; docker run --help)
DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
DEFAULT_START_INTERVAL = 5.0


class ComposeError(ValueError):
    """What `docker compose config` prints for a file it refuses."""


class NotModelled(ComposeError):
    """A Compose feature the fake TrueNAS does not run (says so instead of ignoring it)."""


@dataclass(frozen=True)
class Healthcheck:
    test: tuple[str, ...]
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    start_period: float = 0.0
    start_interval: float = DEFAULT_START_INTERVAL


@dataclass(frozen=True)
class Dependency:
    service: str
    condition: str = "service_started"
    required: bool = True


@dataclass(frozen=True)
class Mount:
    """A bind mount (source: host path), a volume (source: volume name, None for an
    anonymous one) or a tmpfs."""

    type: str
    target: str
    source: str | None = None
    read_only: bool = False
    create_host_path: bool = True     # short syntax creates a missing host directory
    mode: str = "rw"


@dataclass(frozen=True)
class Limits:
    memory: int | None = None         # bytes
    cpus: float | None = None


@dataclass
class Service:
    name: str
    image: str
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    environment: dict[str, str] = field(default_factory=dict)
    ports: list[PortBinding] = field(default_factory=list)
    mounts: list[Mount] = field(default_factory=list)
    depends_on: list[Dependency] = field(default_factory=list)
    healthcheck: Healthcheck | None = None
    restart: str = "no"
    limits: Limits = field(default_factory=Limits)
    networks: dict[str, list[str]] = field(default_factory=dict)   # network -> aliases
    network_mode: str | None = None
    container_name: str | None = None
    definition: str = ""              # canonical form of the service, for change detection

    @property
    def reference(self) -> ImageReference | None:
        try:
            return parse_image_reference(self.image)
        except SyntaxProblem:
            return None

    def image_problem(self) -> str | None:
        """What a pull of this image says (None: the reference is well formed)."""
        try:
            parse_image_reference(self.image)
        except SyntaxProblem as problem:
            return str(problem)
        return None

    def create_problem(self) -> str | None:
        """What the engine says when it creates this container (api/types/container)."""
        check = self.healthcheck
        if check is not None:
            for what, value in (("Interval", check.interval), ("Timeout", check.timeout),
                                ("StartPeriod", check.start_period),
                                ("StartInterval", check.start_interval)):
                if value != 0 and value < 0.001:
                    return f"{what} in Healthcheck cannot be less than 1ms"
            if check.retries < 0:
                return "Retries in Healthcheck cannot be negative"
        if self.limits.cpus is not None and self.limits.cpus < 0:
            return "Range of CPUs is from 0.01 to the number of CPUs available"
        return None


@dataclass(frozen=True)
class VolumeDef:
    name: str | None = None
    external: bool = False


@dataclass(frozen=True)
class NetworkDef:
    name: str | None = None
    external: bool = False


@dataclass
class Project:
    services: dict[str, Service]
    volumes: dict[str, VolumeDef]
    networks: dict[str, NetworkDef]
    extensions: dict[str, Any]

    def start_order(self) -> list[str]:
        """Services with their dependencies first (compose's graph order)."""
        order: list[str] = []

        def visit(name: str) -> None:
            if name in order or name not in self.services:
                return
            for dep in self.services[name].depends_on:
                visit(dep.service)
            order.append(name)

        for name in self.services:
            visit(name)
        return order


# --- entry points ------------------------------------------------------------------
def load_yaml(text: str) -> Any:
    """TrueNAS loads the string with PyYAML's safe loader (YAML 1.1: an unquoted
    `22:22` is the base-60 integer 1342, as it is for middleware)."""
    return yaml.safe_load(text)


def load(document: Any, environment: Mapping[str, str] | None = None) -> Project:
    """Interpolate, check and parse a Compose document (a dict, or YAML text)."""
    if isinstance(document, str):
        try:
            document = load_yaml(document)
        except yaml.YAMLError as exc:
            raise ComposeError(f"yaml: {exc}") from None
    if not isinstance(document, dict):
        raise ComposeError("Top-level object must be a mapping")
    try:
        document = interpolate(document, environment or {})
    except InterpolationError as exc:
        raise ComposeError(str(exc)) from None
    _keys(document, TOP_LEVEL, "")
    for key in ("include",):
        if key in document:
            raise NotModelled(f"the fake TrueNAS does not model `{key}`")
    services_doc = _mapping(document.get("services") or {}, "services")
    if not services_doc:
        raise ComposeError("no service selected")
    volumes = {name: _volume_def(name, value) for name, value in
               _mapping(document.get("volumes") or {}, "volumes").items()}
    networks = {name: _network_def(name, value) for name, value in
                _mapping(document.get("networks") or {}, "networks").items()}
    networks.setdefault("default", NetworkDef())
    services = {}
    for name, body in services_doc.items():
        if not isinstance(name, str) or not name or not set(name) <= NAME_CHARS:
            raise ComposeError(f"services additional properties '{name}' not allowed")
        if isinstance(body, dict) and body.get("profiles"):
            continue            # `up` without COMPOSE_PROFILES leaves profiled services out
        services[name] = _service(name, body, environment or {})
    project = Project(services, volumes, networks,
                      {k: v for k, v in document.items() if str(k).startswith("x-")})
    _check_consistency(project)
    return project


# --- structure -----------------------------------------------------------------------
def _keys(body: dict, allowed: set[str], path: str) -> None:
    for key in body:
        if key not in allowed and not str(key).startswith("x-"):
            where = f"{path} " if path else ""
            raise ComposeError(f"{where}additional properties '{key}' not allowed")


def _mapping(value: Any, path: str) -> dict:
    if not isinstance(value, dict):
        raise ComposeError(f"{path} must be a mapping")
    return value


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise ComposeError(f"{path} must be a string")
    return value


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _boolean(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ComposeError(f"{path} must be a boolean")


def _volume_def(name: str, value: Any) -> VolumeDef:
    if value is None:
        return VolumeDef()
    body = _mapping(value, f"volumes.{name}")
    _keys(body, VOLUME_KEYS, f"volumes.{name}")
    external = body.get("external", False)
    return VolumeDef(body.get("name"), bool(external))


def _network_def(name: str, value: Any) -> NetworkDef:
    if value is None:
        return NetworkDef()
    body = _mapping(value, f"networks.{name}")
    _keys(body, NETWORK_KEYS, f"networks.{name}")
    return NetworkDef(body.get("name"), bool(body.get("external", False)))


def _command(value: Any, path: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise ComposeError(f"{path}: {exc}") from None
    if isinstance(value, list):
        return [_scalar(item) for item in value]
    raise ComposeError(f"{path} must be a array or string")


def _environment(value: Any, path: str, shell: Mapping[str, str]) -> dict[str, str]:
    """List ("A=1", "B") or mapping form; a bare name takes the value Compose's own
    environment has, and is left out when that has none."""
    result: dict[str, str] = {}
    if value is None:
        return result
    if isinstance(value, list):
        for item in value:
            text = _string(item, f"{path}.[]")
            name, sep, val = text.partition("=")
            if sep:
                result[name] = val
            elif name in shell:
                result[name] = shell[name]
        return result
    if isinstance(value, dict):
        for name, val in value.items():
            if val is None:
                if name in shell:
                    result[str(name)] = shell[name]
            elif isinstance(val, dict | list):
                raise ComposeError(f"{path}.{name} must be a boolean, null, number or string")
            else:
                result[str(name)] = _scalar(val)
        return result
    raise ComposeError(f"{path} must be a array or mapping")


def _ports(value: Any, path: str) -> list[PortBinding]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ComposeError(f"{path} must be a array")
    bindings: list[PortBinding] = []
    for i, item in enumerate(value):
        try:
            if isinstance(item, dict):
                bindings.append(_long_port(item, f"{path}.{i}"))
            elif isinstance(item, str | int) and not isinstance(item, bool):
                bindings.extend(parse_port_spec(item))
            else:
                raise ComposeError(f"{path}.{i} must be a number, object or string")
        except SyntaxProblem as problem:
            raise ComposeError(str(problem)) from None
    return bindings


def _long_port(item: dict, path: str) -> PortBinding:
    _keys(item, PORT_KEYS, path)
    if "target" not in item:
        raise ComposeError(f"{path} missing property 'target'")
    target = port_number(item["target"], "containerPort")
    protocol = str(item.get("protocol", "tcp")).lower()
    if protocol not in PROTOCOLS:
        raise SyntaxProblem(f"invalid proto: {item.get('protocol')}")
    published = item.get("published")
    host_ip = str(item.get("host_ip", ""))
    if published in (None, ""):
        return PortBinding(target, protocol, host_ip)
    text = str(published)
    if "-" in text:
        spec = parse_port_spec(f"{text}:{target}/{protocol}")[0]
        return PortBinding(target, protocol, host_ip, spec.host_port, spec.host_port_range)
    return PortBinding(target, protocol, host_ip, port_number(published, "hostPort"))


def _is_path(source: str) -> bool:
    return source.startswith(("/", ".", "~"))


def _short_volume(text: str, path: str) -> Mount:
    parts = text.split(":")
    if len(parts) == 1:
        return Mount("volume", _target(parts[0], path))
    if len(parts) > 3:
        raise ComposeError(f"invalid spec: {text}: too many colons")
    source, target = parts[0], _target(parts[1], path)
    modes = parts[2].split(",") if len(parts) == 3 else []
    for mode in modes:
        if mode not in MOUNT_MODES:
            raise ComposeError(f"invalid spec: {text}: unknown option: {mode}")
    read_only = "ro" in modes
    mode = ",".join(modes) or "rw"
    if _is_path(source):
        return Mount("bind", target, source, read_only, True, mode)
    return Mount("volume", target, source, read_only, False, mode)


def _target(target: str, path: str) -> str:
    if not target.startswith("/"):
        raise ComposeError(f"{path}: invalid mount target, must be an absolute path: {target}")
    return target


def _long_volume(item: dict, path: str) -> Mount:
    _keys(item, VOLUME_MOUNT_KEYS, path)
    kind = item.get("type")
    if kind not in ("bind", "volume", "tmpfs", "cluster", "npipe", "image"):
        raise ComposeError(f"{path}.type value must be one of 'bind', 'volume', 'tmpfs', "
                           "'cluster', 'npipe', 'image'")
    if kind not in ("bind", "volume", "tmpfs"):
        raise NotModelled(f"the fake TrueNAS does not model {kind} mounts ({path})")
    target = _target(_string(item.get("target", ""), f"{path}.target"), path)
    read_only = _boolean(item.get("read_only", False), f"{path}.read_only")
    source = item.get("source")
    mode = "ro" if read_only else "rw"
    if kind == "bind":
        if not source:
            raise ComposeError(f"{path}: invalid mount config: field Source must not be empty")
        bind = item.get("bind") or {}
        create = _boolean(bind.get("create_host_path", False), f"{path}.bind.create_host_path")
        return Mount("bind", target, _string(source, f"{path}.source"), read_only, create, mode)
    if kind == "volume":
        return Mount("volume", target, source or None, read_only, False, mode)
    return Mount("tmpfs", target, None, read_only, False, mode)


def _volumes(value: Any, path: str) -> list[Mount]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ComposeError(f"{path} must be a array")
    mounts = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            mounts.append(_short_volume(item, f"{path}.{i}"))
        elif isinstance(item, dict):
            mounts.append(_long_volume(item, f"{path}.{i}"))
        else:
            raise ComposeError(f"{path}.{i} must be a object or string")
    return mounts


def _depends_on(value: Any, path: str) -> list[Dependency]:
    if value is None:
        return []
    if isinstance(value, list):
        return [Dependency(_string(item, f"{path}.{i}")) for i, item in enumerate(value)]
    deps = []
    for name, body in _mapping(value, path).items():
        body = _mapping(body if body is not None else {}, f"{path}.{name}")
        _keys(body, {"condition", "required", "restart"}, f"{path}.{name}")
        if "condition" not in body:
            raise ComposeError(f"{path}.{name} missing property 'condition'")
        condition = body["condition"]
        if condition not in CONDITIONS:
            raise ComposeError(f"{path}.{name}.condition value must be one of "
                               + ", ".join(f"'{c}'" for c in CONDITIONS))
        required = _boolean(body.get("required", True), f"{path}.{name}.required")
        deps.append(Dependency(name, condition, required))
    return deps


def _duration(body: dict, key: str, path: str, default: float) -> float:
    if key not in body:
        return default
    try:
        return parse_duration(_string(body[key], f"{path}.{key}"))
    except SyntaxProblem as problem:
        raise ComposeError(f"{path}.{key}: {problem}") from None


def _healthcheck(value: Any, path: str) -> Healthcheck | None:
    if value is None:
        return None
    body = _mapping(value, path)
    _keys(body, HEALTHCHECK_KEYS, path)
    if _boolean(body.get("disable", False), f"{path}.disable"):
        return None
    test = body.get("test")
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    elif isinstance(test, list):
        test = [_scalar(t) for t in test]
        if test and test[0] not in ("CMD", "CMD-SHELL", "NONE"):
            raise ComposeError('healthcheck.test must start either by "CMD", "CMD-SHELL" '
                               'or "NONE"')
    elif test is None:
        # without a test the image's own HEALTHCHECK would apply; the fake's images
        # declare none, so such a container has no healthcheck [I]
        return None
    else:
        raise ComposeError(f"{path}.test must be a array or string")
    if test and test[0] == "NONE":
        return None
    retries = body.get("retries", DEFAULT_RETRIES)
    if isinstance(retries, bool) or not isinstance(retries, int | float):
        raise ComposeError(f"{path}.retries must be a number")
    return Healthcheck(
        tuple(test),
        interval=_duration(body, "interval", path, DEFAULT_INTERVAL) or DEFAULT_INTERVAL,
        timeout=_duration(body, "timeout", path, DEFAULT_TIMEOUT) or DEFAULT_TIMEOUT,
        retries=int(retries) or DEFAULT_RETRIES,
        start_period=_duration(body, "start_period", path, 0.0),
        start_interval=(_duration(body, "start_interval", path, DEFAULT_START_INTERVAL)
                        or DEFAULT_START_INTERVAL))


def _cpus(value: Any, path: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ComposeError(f"{path}: invalid cpus value {value!r}") from None


def _limits(body: dict, path: str) -> Limits:
    deploy = _mapping(body.get("deploy") or {}, f"{path}.deploy")
    _keys(deploy, DEPLOY_KEYS, f"{path}.deploy")
    resources = _mapping(deploy.get("resources") or {}, f"{path}.deploy.resources")
    _keys(resources, {"limits", "reservations"}, f"{path}.deploy.resources")
    limits = _mapping(resources.get("limits") or {}, f"{path}.deploy.resources.limits")
    _keys(limits, LIMIT_KEYS, f"{path}.deploy.resources.limits")
    memory = cpus = None
    try:
        if "memory" in limits:
            memory = parse_bytes(limits["memory"])
        if "mem_limit" in body:
            mem_limit = parse_bytes(body["mem_limit"])
            if memory is not None and memory != mem_limit:
                raise ComposeError(f"{path}: can't set distinct values on 'mem_limit' and "
                                   f"'deploy.resources.limits.memory': {INVALID}")
            memory = mem_limit
    except SyntaxProblem as problem:
        raise ComposeError(str(problem)) from None
    if "cpus" in limits:
        cpus = _cpus(limits["cpus"], f"{path}.deploy.resources.limits.cpus")
    if "cpus" in body:
        service_cpus = _cpus(body["cpus"], f"{path}.cpus")
        if cpus is not None and cpus != service_cpus:
            raise ComposeError(f"{path}: can't set distinct values on 'cpus' and "
                               f"'deploy.resources.limits.cpus': {INVALID}")
        cpus = service_cpus
    replicas = deploy.get("replicas", body.get("scale", 1))
    if replicas not in (0, 1):
        raise NotModelled(f"the fake TrueNAS runs one container per service ({path} asks "
                          f"for {replicas})")
    return Limits(memory, cpus)


def _networks(value: Any, path: str) -> dict[str, list[str]]:
    if value is None:
        return {}
    if isinstance(value, list):
        return {_string(n, f"{path}.[]"): [] for n in value}
    result = {}
    for name, body in _mapping(value, path).items():
        aliases = body.get("aliases") if isinstance(body, dict) else None
        result[name] = [str(a) for a in aliases or []]
    return result


def _service(name: str, body: Any, shell: Mapping[str, str]) -> Service:
    path = f"services.{name}"
    body = _mapping(body if body is not None else {}, path)
    _keys(body, SERVICE_KEYS, path)
    for key in NOT_MODELLED:
        if key in body:
            raise NotModelled(f"the fake TrueNAS does not model `{key}` ({path})")
    image = body.get("image")
    if image is None:
        if "build" in body:
            raise NotModelled(f"the fake TrueNAS cannot build images ({path}.build); "
                              "give the service an image")
        raise ComposeError(f'service "{name}" has neither an image nor a build context '
                           f"specified: {INVALID}")
    _string(image, f"{path}.image")
    restart = _string(body.get("restart", "no"), f"{path}.restart")
    policy, _, count = restart.partition(":")
    if policy not in RESTART_POLICIES or (count and (policy != "on-failure"
                                                     or not count.isdecimal())):
        raise ComposeError(f"invalid restart policy: {restart}")
    service = Service(
        name=name,
        image=image,
        command=_command(body.get("command"), f"{path}.command"),
        entrypoint=_command(body.get("entrypoint"), f"{path}.entrypoint"),
        environment=_environment(body.get("environment"), f"{path}.environment", shell),
        ports=_ports(body.get("ports"), f"{path}.ports"),
        mounts=_volumes(body.get("volumes"), f"{path}.volumes"),
        depends_on=_depends_on(body.get("depends_on"), f"{path}.depends_on"),
        healthcheck=_healthcheck(body.get("healthcheck"), f"{path}.healthcheck"),
        restart=restart,
        limits=_limits(body, path),
        networks=_networks(body.get("networks"), f"{path}.networks"),
        network_mode=body.get("network_mode"),
        container_name=body.get("container_name"),
    )
    if "stop_grace_period" in body:
        _duration(body, "stop_grace_period", path, 10.0)
    if service.network_mode is not None and service.networks:
        raise ComposeError(f"service {name} declares mutually exclusive `network_mode` and "
                           f"`networks`: {INVALID}")
    if service.network_mode is None and not service.networks:
        service.networks = {"default": []}
    # compose hashes the service's configuration to decide whether to recreate it
    service.definition = hashlib.sha256(
        json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
    return service


def _check_consistency(project: Project) -> None:
    for service in project.services.values():
        for network in service.networks:
            if network not in project.networks:
                raise ComposeError(f'service "{service.name}" refers to undefined network '
                                   f"{network}: {INVALID}")
        for dep in service.depends_on:
            if dep.service not in project.services and dep.required:
                raise ComposeError(f'service "{service.name}" depends on undefined service '
                                   f'"{dep.service}": {INVALID}')
        for mount in service.mounts:
            if mount.type == "volume" and mount.source and mount.source not in project.volumes:
                raise ComposeError(f'service "{service.name}" refers to undefined volume '
                                   f"{mount.source}: {INVALID}")
        targets = [m.target for m in service.mounts]
        for target in targets:
            if targets.count(target) > 1:
                raise ComposeError(f"services.{service.name}.volumes: target {target} "
                                   "already mounted")
    _check_cycles(project)


def _check_cycles(project: Project) -> None:
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in project.services[name].depends_on:
            if dep.service not in project.services:
                continue
            if state.get(dep.service) == 1:
                cycle = path[path.index(dep.service):] + [dep.service]
                raise ComposeError("dependency cycle detected: " + " -> ".join(cycle))
            if dep.service not in state:
                visit(dep.service, path + [dep.service])
        state[name] = 2

    for name in project.services:
        if name not in state:
            visit(name, [name])
