"""docker.* (reference/truenas-api.md §4 Apps; docker.update.json, docker.status.json).

`docker.update` is a job (lock "docker_update"): its arguments are checked before
the job exists, the pool rules inside it (`docker_update.pool: Pool not found.`).
`docker.config` answers the DockerEntry that docker.update returns. The model is
fakes/truenas/apps/runtime.py.
"""

from __future__ import annotations

from fakes.truenas.methods.common import submit
from fakes.truenas.methods.params import (
    MISSING,
    NOT_GIVEN,
    Bool,
    Field,
    Int,
    List,
    Obj,
    Str,
    parse,
)

ADDRESS_POOL = Obj({"base": Field(Str()), "size": Field(Int(minimum=1))})
UPDATE = Obj({
    "enable_image_updates": Field(Bool(), NOT_GIVEN),
    "pool": Field(Str(nullable=True, min_length=1), NOT_GIVEN),
    "nvidia": Field(Bool(), NOT_GIVEN),
    "address_pools": Field(List(ADDRESS_POOL), NOT_GIVEN),
    "cidr_v6": Field(Str(), NOT_GIVEN),
    "migrate_applications": Field(Bool(), NOT_GIVEN),
    "secure_registry_mirrors": Field(List(Str(min_length=1)), NOT_GIVEN),
    "insecure_registry_mirrors": Field(List(Str(min_length=1)), NOT_GIVEN),
})


def config(node, params, ctx):
    parse(params, [])
    return node.apps.docker_config()


def status(node, params, ctx):
    parse(params, [])
    return node.apps.docker_status()


def update(node, params, ctx):
    (data,) = parse(params, [("docker_update", UPDATE, MISSING)])
    return submit(node, ctx, "docker.update", params,
                  lambda job: node.apps.docker_update(data, job),
                  description="Updating docker configuration")


METHODS = {
    "docker.config": config,
    "docker.status": status,
    "docker.update": update,
}
