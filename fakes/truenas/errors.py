"""TrueNAS's error envelopes (reference/truenas-api.md §3; middleware 25.10
`api/base/server/ws_handler/rpc.py` `process_method_call`, `format_truenas_error`,
and `service_exception.py`).

- `ValidationErrors` -> JSON-RPC -32602 "Invalid params", `data.error` 22 (EINVAL),
  `data.reason` lines like "[EINVAL] pool_create.name: ...\n", and `data.extra` the
  list of `[attribute, message, errno]` triples; `InstanceNotFound` is one
  ValidationError raised alone: reason "[ENOENT] None: ..." with no newline;
- `CallError` -> -32001 "Method call error" with its errno (default EFAULT 14) and
  reason `str(CallError)` = "[ERRNAME] message";
- any other exception (`OtherError`, e.g. `MatchNotFound`, an IndexError) ->
  -32001 with errno EINVAL and reason `str(exc) or repr(exc)`, no errname prefix;
- `MethodNotFound` -> -32601 "Method does not exist";
- not logged in -> CallError('Not authenticated', 207 ENOTAUTHENTICATED).

`data.trace` is `{class, frames, formatted, repr}` of the exception as raised
(`truenas_error_traceback`, frames from `utils/debug.py` `get_frame_details`):
here the fake's own frames. Each frame has `filename`, `lineno`, `method`, `line`
and `argspec`; middleware also sends every frame's `locals` (repr'd, with only
`*args` masked), which the fake leaves out on purpose: a handler's locals hold
passwords and API keys. An error that was never raised (rebuilt from a job's
`exc_info`) has `trace: null`.
"""

from __future__ import annotations

import errno as errnos
import inspect
import linecache
import traceback
from typing import Any

ENOMETHOD = 201
EDATASETISLOCKED = 205
ENOTAUTHENTICATED = 207

ERRNAMES = {
    **{value: name for name, value in vars(errnos).items()
       if name.startswith("E") and isinstance(value, int)},
    ENOMETHOD: "ENOMETHOD",
    EDATASETISLOCKED: "EDATASETISLOCKED",
    ENOTAUTHENTICATED: "ENOTAUTHENTICATED",
}


class RpcError(Exception):
    code = -32001

    def data(self) -> dict:
        raise NotImplementedError

    def trace(self) -> dict | None:
        """`data.trace` for this exception, or None when it was never raised."""
        tb = self.__traceback__
        if tb is None:
            return None
        frames = []
        while tb is not None:
            frames.append(_frame(tb.tb_frame, tb.tb_lineno))
            tb = tb.tb_next
        return {"class": self.trace_class(), "frames": frames,
                "formatted": "".join(traceback.format_exception(type(self), self,
                                                                self.__traceback__)),
                "repr": repr(self)}

    def trace_class(self) -> str:
        return type(self).__name__


def _frame(frame: Any, lineno: int) -> dict:
    """get_frame_details without `locals` (see the module docstring)."""
    code = frame.f_code
    details = {"filename": code.co_filename, "lineno": lineno, "method": code.co_name,
               "line": linecache.getline(code.co_filename, lineno)}
    arguments = inspect.getargvalues(frame)
    if arguments.args:
        details["argspec"] = list(arguments.args)
    if arguments.varargs:
        details["varargspec"] = arguments.varargs
    if arguments.keywords:
        details["keywordspec"] = arguments.keywords
    return details


def raised(error: RpcError) -> RpcError:
    """`error` with the traceback of raising it here (so that `data.trace` has frames)."""
    try:
        raise error
    except RpcError as exc:
        return exc


class CallError(RpcError):
    code = -32001

    def __init__(self, message: str, errno: int = errnos.EFAULT, extra: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.errno = errno
        self.extra = extra

    def data(self) -> dict:
        errname = ERRNAMES.get(self.errno, "EFAULT")
        # middleware sends str(CallError), which prefixes the errno's name
        return {"error": self.errno, "errname": errname,
                "reason": f"[{errname}] {self.message}", "trace": self.trace(),
                "extra": self.extra}


class OtherError(RpcError):
    """Any exception that is not a CallError or a ValidationError: rpc.py answers
    -32001 with errno EINVAL and reason `str(error) or repr(error)`."""

    code = -32001

    def __init__(self, *args: Any, class_name: str | None = None) -> None:
        super().__init__(*args)
        self._class_name = class_name

    def data(self) -> dict:
        return {"error": errnos.EINVAL, "errname": "EINVAL", "reason": str(self) or repr(self),
                "trace": self.trace(), "extra": None}

    def trace_class(self) -> str:
        return self._class_name or type(self).__name__

    @classmethod
    def of(cls, exc: BaseException) -> OtherError:
        """A Python exception of the fake itself, answered as middleware answers any
        unexpected exception, with its class and frames."""
        error = cls(str(exc) or repr(exc), class_name=type(exc).__name__)
        return error.with_traceback(exc.__traceback__)


class MatchNotFound(OtherError):
    """service_exception.py: an IndexError raised by a query with `get` and no match;
    its str() is empty, so the reason is its repr, "MatchNotFound()"."""



class ValidationErrors(RpcError):
    """One or more `[attribute, message, errno]` problems."""

    code = -32602

    def __init__(self, errors: list[tuple[str | None, str, int]] | None = None) -> None:
        self.errors: list[tuple[str | None, str, int]] = list(errors or [])
        super().__init__(self.reason())

    def add(self, attribute: str, message: str, errno: int = errnos.EINVAL) -> None:
        self.errors.append((attribute, message, errno))

    def check(self) -> None:
        if self.errors:
            raise self

    def reason(self) -> str:
        return "".join(f"[{ERRNAMES.get(e, 'EINVAL')}] {a}: {m}\n" for a, m, e in self.errors)

    def data(self) -> dict:
        return {"error": errnos.EINVAL, "errname": "EINVAL", "reason": self.reason(),
                "trace": self.trace(), "extra": [list(error) for error in self.errors]}


class InstanceNotFound(ValidationErrors):
    """service_exception.py: a single ValidationError (attribute None, ENOENT). rpc.py
    sends `str()` of it, which, unlike ValidationErrors', has no trailing newline."""

    def __init__(self, message: str) -> None:
        super().__init__([(None, message, errnos.ENOENT)])

    def reason(self) -> str:
        return super().reason().removesuffix("\n")


def validation(attribute: str, message: str, errno: int = errnos.EINVAL) -> ValidationErrors:
    return ValidationErrors([(attribute, message, errno)])


class MethodNotFound(RpcError):
    code = -32601

    def __init__(self, method: str) -> None:
        super().__init__("Method does not exist")
        self.method = method

    def data(self) -> dict:
        return {"error": ENOMETHOD, "errname": "ENOMETHOD",
                "reason": f"Method {self.method!r} not found", "trace": self.trace(),
                "extra": None}


MESSAGES = {-32001: "Method call error", -32601: "Method does not exist",
            -32602: "Invalid params", -32600: "Invalid Request", -32700: "Parse error"}


def not_authenticated() -> CallError:
    """main.py `authorize_method_call` raises it, so it carries a trace."""
    return raised(CallError("Not authenticated", ENOTAUTHENTICATED))
