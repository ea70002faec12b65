"""filesystem.* (reference/truenas-api.md §4 Files; filesystem.put.json, filesystem.stat.json).

- `filesystem.put <path> {append, mode}` is a job with an input pipe: the bytes
  come from the `file` part of a POST to `/_upload` (the transport puts them in
  `ctx.pipe_input`); it returns true;
- `filesystem.get <path>` is a job with an output pipe: its bytes go in
  `job.pipe_output`, which `/_download/<job id>` serves (after `core.download`);
- `filesystem.stat <path>`, `filesystem.listdir <path> [filters] [options]`.
Unknown, chosen: calling filesystem.put over the websocket with no upload is a
CallError (EINVAL) saying the bytes must come through /_upload; errors reading
a file fail the filesystem.get job (the download then has nothing to serve).
"""

from __future__ import annotations

import errno

from fakes.truenas.errors import CallError
from fakes.truenas.methods.common import submit
from fakes.truenas.methods.params import EMPTY, MISSING, Bool, Field, Int, Obj, Str, parse
from fakes.truenas.methods.query import QUERY_ARGS, filter_list

PUT_OPTIONS = Obj({"append": Field(Bool(), False), "mode": Field(Int(nullable=True), None)})


def put(node, params, ctx):
    path, options = parse(params, [("path", Str(), MISSING), ("options", PUT_OPTIONS, EMPTY)])
    if ctx.pipe_input is None:
        raise CallError("filesystem.put reads the file from an input pipe: upload it with a "
                        "multipart POST to /_upload", errno.EINVAL)

    def start(job):
        node.storage.write_file(path, job.pipe_input or b"", append=options["append"],
                                mode=options["mode"])
        job.succeed(True)

    return submit(node, ctx, "filesystem.put", params, start, pipe_input=ctx.pipe_input,
                  description=f"Uploading {path}")


def get(node, params, ctx):
    path, _options = parse(params, [("path", Str(), MISSING),
                                    ("options", Obj(extra=True), lambda: {})])

    def start(job):
        job.pipe_output = node.storage.read_file(path)
        job.succeed(None)

    return submit(node, ctx, "filesystem.get", params, start, description=f"Reading {path}")


CHOWN_ARGS = Obj({
    "path": Field(Str(), MISSING),
    "uid": Field(Int(nullable=True), None),
    "gid": Field(Int(nullable=True), None),
    "options": Field(Obj({"recursive": Field(Bool(), False), "traverse": Field(Bool(), False)}),
                     EMPTY),
})


def chown(node, params, ctx):
    """filesystem.chown {path, uid, gid, options {recursive, traverse}}, a job: an
    absent or null id is left as it is (the API's own description; the `user` and
    `group` name forms are not modelled: the fake has no user database)."""
    (data,) = parse(params, [("filesystem_chown", CHOWN_ARGS, MISSING)])

    def start(job):
        options = data["options"]
        node.storage.chown(data["path"], data["uid"], data["gid"],
                           recursive=options["recursive"], traverse=options["traverse"])
        job.succeed(None)

    return submit(node, ctx, "filesystem.chown", params, start,
                  description=f"Changing the owner of {data['path']}")


def stat(node, params, ctx):
    (path,) = parse(params, [("path", Str(), MISSING)])
    return node.storage.stat(path)


def listdir(node, params, ctx):
    path, filters, options = parse(params, [("path", Str(), MISSING), *QUERY_ARGS])
    return filter_list(node.storage.listdir(path), filters, options)


METHODS = {
    "filesystem.put": put,
    "filesystem.get": get,
    "filesystem.stat": stat,
    "filesystem.chown": chown,
    "filesystem.listdir": listdir,
}
