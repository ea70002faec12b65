"""JSON-RPC 2.0 as TrueNAS speaks it (reference/truenas-api.md §1-§3): building requests and
turning error envelopes and failed jobs into the project's exceptions.

`scrub` is applied to every text the server sends back before it goes into an
exception, so that an API key echoed by the node never reaches a message.
"""

from __future__ import annotations

import errno as errno_codes
from collections.abc import Callable
from typing import Any

from infra.truenas import ejson
from infra.truenas.errors import (
    JobFailed,
    MethodNotFound,
    NotAuthenticated,
    TrueNASCallError,
    TrueNASValidationError,
)

Scrub = Callable[[str], str]

METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
CALL_ERROR = -32001
ENOTAUTHENTICATED = 207
ENOMETHOD = 201


def _name(errno: int | None) -> str | None:
    return errno_codes.errorcode.get(errno) if errno is not None else None


def request(message_id: int, method: str, params: list) -> str:
    return ejson.dumps({"jsonrpc": "2.0", "id": message_id, "method": method,
                        "params": params})


def _triples(extra: Any, scrub: Scrub) -> list[tuple[str, str, int | None]]:
    """data.extra / exc_info.extra: [[attribute, message, errno], ...]."""
    errors = []
    for item in extra if isinstance(extra, list) else []:
        if isinstance(item, list | tuple) and len(item) >= 2:
            errno = item[2] if len(item) > 2 and isinstance(item[2], int) else None
            errors.append((scrub(str(item[0])), scrub(str(item[1])), errno))
    return errors


def error_from(method: str, error: dict, scrub: Scrub) -> TrueNASCallError:
    """The exception for a JSON-RPC `error` object answered to `method`."""
    code = error.get("code")
    data = error.get("data") if isinstance(error.get("data"), dict) else {}
    reason = scrub(str(data.get("reason") or error.get("message") or "no reason given"))
    errno = data.get("error") if isinstance(data.get("error"), int) else None
    errname = data.get("errname") if isinstance(data.get("errname"), str) else _name(errno)
    if code == METHOD_NOT_FOUND or errno == ENOMETHOD:
        return MethodNotFound(method, scrub(str(error.get("message") or reason)))
    if errno == ENOTAUTHENTICATED:
        return NotAuthenticated(method, reason)
    if code == INVALID_PARAMS:
        return TrueNASValidationError(method, _triples(data.get("extra"), scrub), reason.strip())
    return TrueNASCallError(method, reason.strip(), code=code, errno=errno, errname=errname)


def job_error(method: str, job: dict, scrub: Scrub) -> TrueNASCallError:
    """The exception for a job that ended FAILED or ABORTED."""
    job_id = job.get("id")
    exc_info = job.get("exc_info") if isinstance(job.get("exc_info"), dict) else {}
    error = scrub(str(job.get("error") or f"the job was {str(job.get('state')).lower()}"))
    if exc_info.get("type") == "VALIDATION":
        return TrueNASValidationError(method, _triples(exc_info.get("extra"), scrub),
                                      error.strip(), job_id=job_id)
    errno = exc_info.get("errno") if isinstance(exc_info.get("errno"), int) else None
    return JobFailed(method, job_id, str(job.get("state")), error.strip(), errno=errno,
                     errname=_name(errno))
