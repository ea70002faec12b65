"""DigitalOcean's error body `{id, message, request_id}` and the canned messages.

Ids and messages follow `shared/responses/*.yml` in digitalocean/openapi
(reference: reference/digitalocean-api.md §3); 422 texts for volume attachment follow the
messages csi-digitalocean matches on (§5).
"""

from __future__ import annotations


class ApiError(Exception):
    def __init__(self, status: int, error_id: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_id = error_id
        self.message = message

    def body(self) -> dict:
        return {"id": self.error_id, "message": self.message}


class TagServiceError(ApiError):
    """`POST /v2/tags` refusing a name: 400 `{error, messages, root_causes}`.

    The only evidence is the OpenAPI document: tags_create.yml lists a 400 with
    shared/responses/bad_request_tag.yml (its example: an InvalidArgument from the tag
    service, the name quoted) and no 422 (reference/digitalocean-openapi-subset.json,
    `/v2/tags` post). The exact wording for each kind of bad name is unknown; these
    texts follow the example's form.
    """

    def __init__(self, problem: str) -> None:
        super().__init__(400, "bad_request", problem)

    def body(self) -> dict:
        error = f"Error validating resource tag: {self.message}"
        return {"error": error, "messages": None,
                "root_causes": [f"rpc error: code = InvalidArgument desc = {error}"]}


def bad_request(message: str = "error parsing request body") -> ApiError:
    return ApiError(400, "bad_request", message)


def unauthorized() -> ApiError:
    return ApiError(401, "unauthorized", "Unable to authenticate you.")


def forbidden() -> ApiError:
    return ApiError(403, "forbidden", "You do not have permission to perform this action.")


def not_found(message: str = "The resource you requested could not be found.") -> ApiError:
    return ApiError(404, "not_found", message)


def conflict(message: str) -> ApiError:
    return ApiError(409, "conflict", message)


def unprocessable(message: str) -> ApiError:
    return ApiError(422, "unprocessable_entity", message)


def too_many_requests() -> ApiError:
    return ApiError(429, "too_many_requests", "API rate limit exceeded.")


def server_error() -> ApiError:
    return ApiError(500, "server_error", "Unexpected server-side error")


CANNED = {
    400: ("bad_request", "error parsing request body"),
    401: ("unauthorized", "Unable to authenticate you."),
    403: ("forbidden", "You do not have permission to perform this action."),
    404: ("not_found", "The resource you requested could not be found."),
    409: ("conflict", "The request could not be completed due to a conflict."),
    422: ("unprocessable_entity", "request payload validation failed"),
    429: ("too_many_requests", "API rate limit exceeded."),
    500: ("server_error", "Unexpected server-side error"),
    502: ("bad_gateway", "Bad gateway"),
    503: ("service_unavailable", "Service unavailable"),
    504: ("gateway_timeout", "Gateway timeout"),
}


def canned(status: int) -> ApiError:
    error_id, message = CANNED.get(status, ("server_error", "Unexpected server-side error"))
    return ApiError(status, error_id, message)
