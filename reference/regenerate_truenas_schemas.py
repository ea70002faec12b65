"""Regenerate reference/truenas-schemas/ from a truenas/middleware checkout.

Usage (a throwaway virtualenv, never the project's: the middleware tree needs its own
pydantic and a few small libraries; nothing here is imported by the project):

    python3 -m venv /tmp/regen && /tmp/regen/bin/pip install \\
        'pydantic==2.14.4' websocket-client croniter email-validator dns-lexicon jsonschema
    git -C middleware checkout stable/goldeye     # truenas/middleware
    git -C api_client checkout stable/goldeye     # truenas/api_client (middleware imports it)
    /tmp/regen/bin/python reference/regenerate_truenas_schemas.py \\
        --middleware middleware --api-client api_client [METHOD ...]

Without METHOD names it regenerates every `<method>.json` already in the output
directory; `--list-missing NAME...` prints which of NAME have no schema file.

How (the "import route", reference/truenas-schemas/INDEX.md): every plugin module is
imported and each public service method is read the way middleware's own
`core.get_methods` reads it (service/core_service.py): CRUD `create`/`update`/`delete`
from `do_*`, Config `update` from `do_update`, the `new_style_accepts` and
`new_style_returns` models its `@api_method` decorator (or the CRUD/Config
metaclass, or `@filterable_api_method`) attached, and `_job` for the job flag.
Modules that need system libraries this machine cannot install (ZFS, PAM, Samba,
...) import against placeholders that stand in only for a fixed list of module
names and only when the module is truly absent (STUBS); the schemas come from the
pydantic models in `middlewared/api/`, which import no such library. A plugin that
still fails to import is reported, and its methods cannot be regenerated.

Each file holds `method`, `job`, `args` (validation-mode schema of the Args model),
`result` (serialization-mode schema of the Result model, as middleware's APIDumper
emits it), `params_schema` (the args as the positional JSON-RPC `params` array),
`item` (query methods, `core.get_jobs` too: the full Entry or Item), `models`,
`source`/`result_source`/`plugin_source`/`service_source` (file[:line]@commit),
`how_resolved` and `notes`. Every `maxLength: 1024` is dropped: middleware caps
plain strings so, but long-text fields accept more at run time, and the vendored
schemas must not refuse valid long values.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.abc
import importlib.machinery
import inspect
import json
import pathlib
import subprocess
import sys
import types
import warnings

# Modules that cannot be installed here (system libraries, C extensions, large SDKs);
# each is replaced by a placeholder only when it cannot be found.
STUBS = frozenset([
    "acme", "aiohttp", "aiorwlock", "apps_ci", "apps_schema", "apps_validation", "asyncssh",
    "aws_requests_auth", "bidict", "boto3", "botocore", "catalog_reader", "certbot",
    "certbot_dns_cloudflare", "certbot_dns_digitalocean", "certbot_dns_ovh",
    "certbot_dns_route53", "cryptit", "Cryptodome", "docker", "fenced", "google",
    "google_auth_httplib2", "googleapiclient", "gssapi", "html2text", "httplib2", "httpx",
    "humanfriendly", "isodate", "ixdiagnose", "ixhardware", "josepy", "jwt", "kmip", "ldap",
    "libsg3", "libsgio", "libvirt", "libzfs", "licenselib", "mako", "markdown", "middlewared_sed",
    "netif", "OpenSSL", "pam", "paramiko", "prctl", "psutil", "pyinotify", "pyroute2",
    "pysss_nss_idmap", "pystemd", "pytz", "pyudev", "pyVim", "pyVmomi", "remote_pdb", "samba",
    "sedutils", "setproctitle", "sqlalchemy", "systemd", "tdb", "truenas_acme_utils",
    "truenas_connect_utils", "truenas_crypto_utils", "truenas_os", "truenas_pylibzfs",
    "truenas_pypam", "truenas_pyscstadm", "truenas_verify", "wbclient", "ws4py", "zettarepl",
    "zmq",
])
# libwbclient's enum values: `IDType(IntEnum)` needs real integers at import time.
STUB_VALUES = {"wbclient": {"ID_TYPE_UID": 1, "ID_TYPE_GID": 2, "ID_TYPE_BOTH": 3}}
NOTES = [
    "args = <Args>.model_json_schema() (validation mode); an object keyed by parameter name.",
    "params_schema = the same parameters as the positional JSON-RPC params array.",
    "result = <Result>.model_json_schema(mode='serialization'); the method returns the value "
    "of its single property 'result'.",
]


class _PlaceholderType(type):
    def __getattr__(cls, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return Placeholder

    def __call__(*args, **kwargs):
        args = args[1:]
        if len(args) == 1 and callable(args[0]) and not kwargs:
            return args[0]          # used as a decorator: the function, unchanged
        return Placeholder


class Placeholder(metaclass=_PlaceholderType):
    """Any attribute of a stubbed module: callable, a decorator, a base class."""


class _StubModule(types.ModuleType):
    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return Placeholder


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] not in STUBS:
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            try:
                if finder.find_spec(name, path, target) is not None:
                    return None      # the real module exists: use it
            except (ImportError, ValueError):
                continue
        return importlib.machinery.ModuleSpec(name, self, is_package=True)

    def create_module(self, spec):
        module = _StubModule(spec.name)
        module.__path__ = []
        for key, value in STUB_VALUES.get(spec.name, {}).items():
            setattr(module, key, value)
        return module

    def exec_module(self, module) -> None:
        pass


def _strip_max_length(schema):
    if isinstance(schema, dict):
        return {k: _strip_max_length(v) for k, v in schema.items()
                if not (k == "maxLength" and v == 1024)}
    if isinstance(schema, list):
        return [_strip_max_length(v) for v in schema]
    return schema


def _params_schema(args_schema: dict) -> dict:
    properties = args_schema.get("properties", {})
    required = set(args_schema.get("required", []))
    names = list(properties)
    minimum = max((i + 1 for i, n in enumerate(names) if n in required), default=0)
    params: dict = {"type": "array", "items": False, "minItems": minimum,
                    "maxItems": len(names)}
    if names:
        params["prefixItems"] = [{**properties[n], "title": n} for n in names]
    if "$defs" in args_schema:
        params["$defs"] = args_schema["$defs"]
    return params


def _where(obj, root: pathlib.Path, commit: str) -> str:
    """file[:line]@commit; a model made by create_model (query_result, config_result,
    ...) names the module of the Entry it was made from."""
    try:
        path = pathlib.Path(inspect.getsourcefile(obj)).resolve().relative_to(root)
        line = inspect.getsourcelines(obj)[1]
    except (TypeError, OSError, ValueError):
        module = sys.modules.get(getattr(obj, "__module__", ""), None)
        if module is None or not getattr(module, "__file__", None):
            return f"(unknown)@{commit}"
        path = pathlib.Path(module.__file__).resolve().relative_to(root)
        return f"{path}@{commit}"
    return f"{path}:{line}@{commit}" if inspect.isfunction(obj) else f"{path}@{commit}"


def _bare_query_result_annotation() -> None:
    """CRUDServiceMetabase reads `query_result(entry).__annotations__["result"].__args__[1]`,
    which expects the bare union; pydantic 2.11+ keeps the `Annotated[...]` wrapper
    there (2.10 did not), and 2.10 in turn emits a different schema for some models
    (a `default` leaks into `api_key.create`'s `name`). So the models are built with
    2.14.4, as the vendored files were, and only the annotation the metaclass reads is
    unwrapped: the model, its fields and its schema are untouched."""
    import typing

    from middlewared.api.base import model

    real = model.query_result

    def query_result(item, name=None):
        result = real(item, name)
        annotation = result.__annotations__.get("result")
        if typing.get_origin(annotation) is typing.Annotated:
            result.__annotations__["result"] = typing.get_args(annotation)[0]
        return result

    model.query_result = query_result


def collect(middleware: pathlib.Path) -> tuple[dict, dict]:
    """{method name: (service class, function)} for every public method, and the
    plugin modules that failed to import."""
    package = middleware / "src" / "middlewared"
    sys.path[:0] = [str(package)]
    _bare_query_result_annotation()
    from middlewared.service import ConfigService, CRUDService, Service

    plugins = package / "middlewared" / "plugins"
    failed = {}
    modules = ["middlewared.service.core_service"]
    for file in sorted(plugins.rglob("*.py")):
        parts = list(file.relative_to(package).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules.append(".".join(parts))
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - reported; other plugins go on
            failed[name] = f"{type(exc).__name__}: {exc}"

    methods = {}
    seen = set()
    stack = [Service]
    while stack:
        klass = stack.pop()
        for sub in klass.__subclasses__():
            stack.append(sub)
            if sub in seen or not hasattr(sub, "_config") or sub._config.private:
                continue
            seen.add(sub)
            namespace = sub._config.namespace
            for attr in dir(sub):
                if attr.startswith("_"):
                    continue
                if issubclass(sub, CRUDService):
                    if attr in ("do_create", "do_update", "do_delete"):
                        continue
                    attr_source = f"do_{attr}" if attr in ("create", "update", "delete") else attr
                elif issubclass(sub, ConfigService) and attr == "update":
                    attr_source = "do_update" if hasattr(sub, "do_update") else attr
                elif attr == "do_update":
                    continue
                else:
                    attr_source = attr
                function = getattr(sub, attr_source, None)
                if not callable(function) or getattr(function, "_private", False):
                    continue
                if not hasattr(function, "new_style_accepts"):
                    continue
                methods.setdefault(f"{namespace}.{attr}", (sub, function))
    return methods, failed


def describe(name: str, service, function, middleware: pathlib.Path, commit: str) -> dict:
    accepts, returns = function.new_style_accepts, function.new_style_returns
    args = _strip_max_length(accepts.model_json_schema())
    result = _strip_max_length(returns.model_json_schema(mode="serialization"))
    job = getattr(function, "_job", None)
    root = middleware.resolve()
    entry: dict = {
        "method": name, "job": job is not None,
        "args": args, "result": result, "params_schema": _params_schema(args),
        "models": {"args": accepts.__name__, "result": returns.__name__},
        "source": _where(accepts, root, commit), "result_source": _where(returns, root, commit),
        "plugin_source": _where(inspect.unwrap(function), root, commit),
        "service_source": _where(service, root, commit),
        "how_resolved": "new_style_accepts/new_style_returns of the imported service method"
                        + (f", job(pipes={job['pipes']})" if job else ""),
        "notes": NOTES,
    }
    annotation = returns.model_fields["result"].annotation
    members = getattr(annotation, "__args__", ())
    if len(members) == 3 and members[2] is int:      # query_result: list[X] | X | int
        item = members[1].__mro__[1]       # the QueryResultItem's base: the full Entry
        entry["item"] = _strip_max_length(item.model_json_schema(mode="serialization"))
        entry["models"]["item"] = item.__name__
        entry["notes"] = [*NOTES, "item = one element of the query result (the full entry, as "
                          "returned without `select`; result also allows list[item] | item | "
                          "int for count/get)."]
    return entry


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--middleware", type=pathlib.Path, required=True,
                        help="a truenas/middleware checkout (stable/goldeye)")
    parser.add_argument("--api-client", type=pathlib.Path, required=True,
                        help="a truenas/api_client checkout (stable/goldeye)")
    parser.add_argument("--out", type=pathlib.Path,
                        default=pathlib.Path(__file__).parent / "truenas-schemas")
    parser.add_argument("--list-missing", action="store_true",
                        help="only say which of METHOD have no schema in the middleware tree")
    parser.add_argument("methods", nargs="*")
    options = parser.parse_args()

    warnings.simplefilter("ignore")
    sys.meta_path.append(_StubFinder())
    sys.path[:0] = [str(options.api_client)]
    commit = subprocess.run(["git", "-C", str(options.middleware), "rev-parse", "HEAD"],
                            capture_output=True, text=True, check=True).stdout.strip()
    wanted = options.methods or sorted(p.stem for p in options.out.glob("*.json"))
    methods, failed = collect(options.middleware)
    missing = [name for name in wanted if name not in methods]
    if options.list_missing:
        print("\n".join(missing))
        return 0
    for name in wanted:
        if name in methods:
            text = json.dumps(describe(name, *methods[name], options.middleware, commit),
                              indent=1, sort_keys=True)
            (options.out / f"{name}.json").write_text(text + "\n")
    print(f"{len(wanted) - len(missing)} schemas written to {options.out} "
          f"(middleware @ {commit})")
    for name in missing:
        print(f"not found: {name}", file=sys.stderr)
    for module, problem in sorted(failed.items()):
        print(f"plugin not imported: {module}: {problem}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
