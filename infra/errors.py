"""The project's exceptions: each carries a human sentence, and the request id when
the outside world gave one. None of them ever holds a secret."""

from __future__ import annotations


class InfraError(Exception):
    """Base of every error infra/ raises on purpose."""


class SiteFileError(InfraError):
    """The site file is invalid; `problems` has one clear message per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class TargetError(InfraError):
    """The target is not usable (missing credentials, unreadable world file...)."""


class CloudError(InfraError):
    """DigitalOcean refused or failed a request."""

    def __init__(self, operation: str, status: int | None, error_id: str | None,
                 message: str, request_id: str | None = None,
                 retry_after: float | None = None) -> None:
        self.operation = operation
        self.retry_after = retry_after
        self.status = status
        self.error_id = error_id
        self.message = message
        self.request_id = request_id
        text = f"{operation} failed"
        if status:
            text += f" ({status} {error_id or ''})".rstrip()
        text += f": {message}"
        if request_id:
            text += f" [request id {request_id}]"
        super().__init__(text)

    @property
    def transient(self) -> bool:
        return self.status is None or self.status in (408, 429, 500, 502, 503, 504)


class NotFound(CloudError):
    pass


class NodeProblem(InfraError):
    """The node is not in a state `up` can build on (a missing disk, a foreign pool, a
    droplet that vanished or failed to boot)."""


class WaitTimeout(InfraError):
    """A bounded wait ran out; the message says what it waited for."""


class ConflictError(InfraError):
    """The account holds something in the way that this site does not own."""


class TeardownIncomplete(InfraError):
    """`down` went through everything but some deletes were refused: `refused` maps
    what (`volume:<id>`, or a step such as `firewall`) to why; `report` has the rest."""

    def __init__(self, report: object, refused: dict[str, str]) -> None:
        self.report = report
        self.refused = refused
        super().__init__(f"{len(refused)} delete(s) refused: " + "; ".join(
            f"{what}: {why}" for what, why in refused.items()))
