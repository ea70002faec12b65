"""TrueNAS's error envelopes (reference/truenas-api.md §3).

- `ValidationErrors` -> JSON-RPC -32602 "Invalid params", `data.error` 22 (EINVAL),
  `data.reason` lines like "[EINVAL] pool_create.name: ...", and `data.extra` the
  list of `[attribute, message, errno]` triples;
- `CallError` -> -32001 "Method call error" with its errno (default EFAULT 14);
- `MethodNotFound` -> -32601 "Method does not exist";
- not logged in -> CallError('Not authenticated', 207 ENOTAUTHENTICATED).
"""

from __future__ import annotations

import errno as errnos

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
                "reason": f"[{errname}] {self.message}", "trace": None, "extra": self.extra}


class ValidationErrors(RpcError):
    """One or more `[attribute, message, errno]` problems."""

    code = -32602

    def __init__(self, errors: list[tuple[str, str, int]] | None = None) -> None:
        self.errors: list[tuple[str, str, int]] = list(errors or [])
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
                "trace": None, "extra": [list(error) for error in self.errors]}


def validation(attribute: str, message: str, errno: int = errnos.EINVAL) -> ValidationErrors:
    return ValidationErrors([(attribute, message, errno)])


class MethodNotFound(RpcError):
    code = -32601

    def __init__(self, method: str) -> None:
        super().__init__("Method does not exist")
        self.method = method

    def data(self) -> dict:
        return {"error": ENOMETHOD, "errname": "ENOMETHOD",
                "reason": f"Method {self.method!r} not found", "trace": None, "extra": None}


MESSAGES = {-32001: "Method call error", -32601: "Method does not exist",
            -32602: "Invalid params", -32600: "Invalid Request", -32700: "Parse error"}


def not_authenticated() -> CallError:
    return CallError("Not authenticated", ENOTAUTHENTICATED)
