"""What can go wrong when talking to a TrueNAS node, as the project's own exceptions.

Every message is a human sentence that names the method (and the attributes, for
validation failures). None of them ever holds the API key: the client scrubs it out
of anything the server says before building one of these.
"""

from __future__ import annotations

from infra.errors import InfraError


class TrueNASError(InfraError):
    """Base of every error about a TrueNAS node."""


class InsecureTransport(TrueNASError):
    """Refused before connecting: the URL would send the API key in the clear."""


class CertificateChanged(TrueNASError):
    """The node presents a certificate other than the one pinned on first use."""

    def __init__(self, address: str, pinned: str, presented: str) -> None:
        self.address = address
        self.pinned = pinned
        self.presented = presented
        super().__init__(
            f"the TrueNAS node at {address} presents a certificate with SHA-256 "
            f"fingerprint {presented}, but {pinned} was pinned on first use, and it is no "
            "renewal of the site certificate; if the node was legitimately rebuilt, run "
            "again with --repin (Python: repin=True), otherwise someone may be in the middle"
        )


class TrueNASTLSError(TrueNASError):
    """The TLS handshake failed against the pinned certificate."""


class TrueNASUnavailable(TrueNASError):
    """No connection (refused, reset, closed, not a WebSocket yet): the node may be
    booting. Waits retry this one; nothing else is retried."""


class AuthenticationFailed(TrueNASError):
    """auth.login_ex did not answer SUCCESS; `response_type` says what it answered."""

    def __init__(self, response_type: str, message: str) -> None:
        self.response_type = response_type
        super().__init__(message)


class TrueNASCallError(TrueNASError):
    """The node answered a call with a JSON-RPC error (-32001 CallError and the rest).

    `code` is the JSON-RPC code, `errno`/`errname` what middleware put in
    `error.data` (e.g. 14 EFAULT, 207 ENOTAUTHENTICATED), `reason` its sentence.
    """

    def __init__(self, method: str, reason: str, *, code: int | None = None,
                 errno: int | None = None, errname: str | None = None,
                 text: str | None = None) -> None:
        self.method = method
        self.reason = reason
        self.code = code
        self.errno = errno
        self.errname = errname
        if text is None:
            detail = ", ".join(part for part in (
                errname or (str(errno) if errno is not None else None),
                f"JSON-RPC {code}" if code is not None else None,
            ) if part)
            text = f"{method} failed: {reason}" + (f" ({detail})" if detail else "")
        super().__init__(text)


class MethodNotFound(TrueNASCallError):
    """-32601: this node's API has no such method (wrong version, or a typo)."""

    def __init__(self, method: str, reason: str = "Method does not exist") -> None:
        super().__init__(method, reason, code=-32601, text=(
            f"{method} does not exist on this TrueNAS node ({reason}); "
            "check the method name and the node's version"))


class NotAuthenticated(TrueNASCallError):
    """207 ENOTAUTHENTICATED: the call came before a successful login."""

    def __init__(self, method: str, reason: str = "Not authenticated") -> None:
        super().__init__(method, reason, code=-32001, errno=207, errname="ENOTAUTHENTICATED",
                         text=f"{method} was refused: the session is not logged in "
                              f"({reason}); call login() first")


class TrueNASValidationError(TrueNASCallError):
    """-32602 (or a job whose exc_info.type is VALIDATION): the arguments were refused.

    `errors` is a list of (attribute, message, errno) triples as the node sent them.
    """

    def __init__(self, method: str, errors: list[tuple[str, str, int | None]],
                 reason: str = "", job_id: int | None = None) -> None:
        self.errors = errors
        self.job_id = job_id
        reason = reason or "invalid arguments"
        where = f" (job {job_id})" if job_id is not None else ""
        if errors:
            listed = "; ".join(f"{attribute}: {message}" for attribute, message, _ in errors)
            text = f"{method}{where} refused {', '.join(self.attributes)}: {listed}"
        else:
            text = f"{method}{where} refused its arguments: {reason}"
        super().__init__(method, reason, code=-32602, errno=22, errname="EINVAL", text=text)

    @property
    def attributes(self) -> list[str]:
        return [attribute for attribute, _, _ in self.errors]


class JobFailed(TrueNASCallError):
    """A job ended FAILED or ABORTED (validation failures raise
    TrueNASValidationError instead, with the job id)."""

    def __init__(self, method: str, job_id: int, state: str, error: str,
                 errno: int | None = None, errname: str | None = None) -> None:
        self.job_id = job_id
        self.state = state
        code = f" ({errname or errno})" if (errname or errno is not None) else ""
        super().__init__(method, error, errno=errno, errname=errname,
                         text=f"{method} (job {job_id}) ended {state}: {error}{code}")


class TransferFailed(TrueNASError):
    """An /_upload or /_download HTTP request was refused."""

    def __init__(self, operation: str, status: int, message: str) -> None:
        self.operation = operation
        self.status = status
        super().__init__(f"{operation} failed (HTTP {status}): {message}")
