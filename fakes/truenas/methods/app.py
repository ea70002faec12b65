"""app.* (reference/truenas-api.md §4 Apps; app.create.json, app.update.json, app.delete.json,
app.query.json; middleware stable/goldeye plugins/apps/crud.py, app_scale.py).

Jobs: app.create, app.update, app.delete, app.start, app.stop, app.redeploy. The
argument models are checked before the job exists (-32602, attribute paths like
`app_create.app_name`, pydantic's wording for the name's pattern and length);
everything else happens inside the job, as in middleware, so it fails the job:
Docker not set up (CallError), a duplicate name (EEXIST), the compose file
(`app_create.custom_compose_config: ...`), an unknown app (InstanceNotFound),
compose itself. Only custom apps exist in the fake: a catalog app is refused with
a message that says so. `app.query` takes `extra.retrieve_config`,
`extra.host_ip` and `extra.include_app_schema`.
"""

from __future__ import annotations

import errno
import re

from fakes.truenas.apps import custom
from fakes.truenas.errors import CallError, ValidationErrors
from fakes.truenas.methods.common import get_instance_of, submit
from fakes.truenas.methods.params import (
    EMPTY,
    MISSING,
    Bool,
    Field,
    Obj,
    Str,
    parse,
)
from fakes.truenas.methods.query import QUERY_ARGS, QUERY_OPTIONS, filter_list

NAME_PATTERN = "^[a-z]([-a-z0-9]*[a-z0-9])?$"
NAME_MAX = 40


class AppName(Str):
    """The schema's app_name: 1..40 characters matching NAME_PATTERN."""

    def _check(self, value, path, errors):
        if not isinstance(value, str):
            errors.add(path, "Input should be a valid string")
        elif len(value) < 1:
            errors.add(path, "String should have at least 1 character")
        elif len(value) > NAME_MAX:
            errors.add(path, f"String should have at most {NAME_MAX} characters")
        elif re.match(NAME_PATTERN, value) is None:
            errors.add(path, f"String should match pattern '{NAME_PATTERN}'")
        return value


CREATE = Obj({
    "app_name": Field(AppName()),
    "custom_app": Field(Bool(), False),
    "custom_compose_config": Field(Obj(extra=True), lambda: {}),
    "custom_compose_config_string": Field(Str(), ""),
    "catalog_app": Field(Str(nullable=True), None),
    "train": Field(Str(min_length=1), "stable"),
    "version": Field(Str(min_length=1), "latest"),
    "values": Field(Obj(extra=True), lambda: {}),
})
UPDATE = Obj({
    "custom_compose_config": Field(Obj(extra=True), lambda: {}),
    "custom_compose_config_string": Field(Str(), ""),
    "values": Field(Obj(extra=True), lambda: {}),
})
DELETE = Obj({
    "remove_images": Field(Bool(), True),
    "remove_ix_volumes": Field(Bool(), False),
    "force_remove_ix_volumes": Field(Bool(), False),
    "force_remove_custom_app": Field(Bool(), False),
})
NAME_ARG = ("app_name", Str(min_length=1), MISSING)


def _entries(node, extra: dict) -> list[dict]:
    return node.apps.entries(host_ip=extra.get("host_ip") or None,
                             retrieve_config=bool(extra.get("retrieve_config")),
                             include_app_schema=bool(extra.get("include_app_schema")))


def query(node, params, ctx):
    filters, options = parse(params, QUERY_ARGS)
    return filter_list(_entries(node, options["extra"]), filters, options)


def get_instance(node, params, ctx):
    name, options = parse(params, [("id", Str(), MISSING), ("options", QUERY_OPTIONS, EMPTY)])
    return get_instance_of(_entries(node, options["extra"]), "id", name, "App", options)


def config(node, params, ctx):
    (name,) = parse(params, [NAME_ARG])
    return node.apps.get(name).config


def create(node, params, ctx):
    (data,) = parse(params, [("app_create", CREATE, MISSING)])
    name = data["app_name"]

    def start(job):
        node.apps.require_docker()
        if name in node.apps.apps:
            raise CallError(f"Application with name {name} already exists", errno.EEXIST)
        if not data["custom_app"]:
            if not data["catalog_app"]:
                raise ValidationErrors([("app_create.catalog_app", "This field is required",
                                         errno.EINVAL)])
            raise CallError("The fake TrueNAS has no app catalog: only custom apps "
                            "(custom_app true) can be created", errno.ENOTSUP)
        compose, project = custom.validate_payload(data, "app_create")
        node.apps.create(name, compose, project, job)

    return submit(node, ctx, "app.create", params, start, description=f"Creating app {name}")


def update(node, params, ctx):
    name, data = parse(params, [NAME_ARG, ("update", UPDATE, EMPTY)])
    return submit(node, ctx, "app.update", params,
                  lambda job: node.apps.update(name, data, job),
                  description=f"Updating app {name}")


def redeploy(node, params, ctx):
    (name,) = parse(params, [NAME_ARG])
    return submit(node, ctx, "app.redeploy", params,
                  lambda job: node.apps.update(name, None, job, keyword="Redeployment"),
                  description=f"Redeploying app {name}")


def delete(node, params, ctx):
    name, options = parse(params, [NAME_ARG, ("options", DELETE, EMPTY)])

    return submit(node, ctx, "app.delete", params,
                  lambda job: node.apps.delete(name, options["remove_images"], job),
                  description=f"Deleting app {name}")


def start(node, params, ctx):
    (name,) = parse(params, [NAME_ARG])
    return submit(node, ctx, "app.start", params, lambda job: node.apps.start(name, job),
                  description=f"Starting app {name}")


def stop(node, params, ctx):
    (name,) = parse(params, [NAME_ARG])
    return submit(node, ctx, "app.stop", params, lambda job: node.apps.stop(name, job),
                  description=f"Stopping app {name}")


METHODS = {
    "app.query": query,
    "app.get_instance": get_instance,
    "app.config": config,
    "app.create": create,
    "app.update": update,
    "app.redeploy": redeploy,
    "app.delete": delete,
    "app.start": start,
    "app.stop": stop,
}
