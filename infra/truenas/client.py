"""A TrueNAS client: JSON-RPC 2.0 over WSS (reference/truenas-api.md §1-§3), jobs, file transfer.

- Only `wss://`: TrueNAS revokes an API key that arrives over plain ws://, so a
  ws:// URL is refused before any connection is attempted.
- One request at a time on one connection (a lock serialises threads). Between our
  request and its reply the node may push notifications (`collection_update`,
  `notify_unsubscribed`); the read loop records them and reads on. A reply whose id
  is not the one awaited (the late answer to a call that timed out) is dropped.
- Jobs, legacy mode by default: the call answers a job id at once and we poll
  `core.get_jobs [["id","=",N]]` every `timing.poll_interval` until SUCCESS, FAILED or
  ABORTED, bounded by `timing.deadline(real_seconds)`. Polling needs no subscription,
  survives a missed event and makes every wait bounded and visible. With
  `legacy_jobs=False` the client sets `core.set_options {"legacy_jobs": false}` and
  the node holds the reply until the job ends (the official client's mode); the
  reply's wait is then bounded by the same deadline.
- Errors become infra.truenas.errors exceptions; the API key is scrubbed out of
  anything the node sends back and is never part of a message or repr.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import ssl
import threading
import time
from collections import deque
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection

from infra.errors import WaitTimeout
from infra.secrets import Secret
from infra.target import Timing
from infra.truenas import ejson, rpc
from infra.truenas.calllog import CallLog
from infra.truenas.errors import (
    AuthenticationFailed,
    InsecureTransport,
    MethodNotFound,
    NotAuthenticated,
    TransferFailed,
    TrueNASError,
    TrueNASTLSError,
    TrueNASUnavailable,
)
from infra.truenas.pinning import fingerprint as sha256_of
from infra.truenas.transfer import pinned_session
from infra.truenas.wss import open_websocket
from infra.wait import Pending, wait_for

CALL_SECONDS = 60.0        # a plain call, in real-world seconds
CONNECT_SECONDS = 20.0     # TCP + TLS + WebSocket handshake
JOB_SECONDS = 600.0        # a job, unless the caller knows better
MAX_MESSAGE = 64 * 2**20   # catalogs and big queries exceed websockets' 1 MiB default
NOTIFICATIONS_KEPT = 1000
FINAL_JOB_STATES = ("SUCCESS", "FAILED", "ABORTED")

LOGIN_REFUSALS = {
    "AUTH_ERR": "refused the API key for user {user} (AUTH_ERR): check the key and "
                "the username it belongs to",
    "EXPIRED": "answered EXPIRED for user {user}: the API key was revoked or has "
               "expired (TrueNAS revokes a key that was ever sent over plain ws://); "
               "create a new key",
    "DENIED": "denied the login of user {user} (DENIED): the account may be locked or "
              "not allowed to use the API",
    "OTP_REQUIRED": "asks for a one-time password for user {user} (OTP_REQUIRED); "
                    "use an API key of an account without two-factor login",
}


class AdminPassword(Secret):
    """A password instead of an API key: the client logs in with `PASSWORD_PLAIN`
    (only to make the site's API key on a fresh node; infra/truenas/credentials.py)."""

    __slots__ = ()


def _where(url: str) -> str:
    """scheme://host:port/path of a URL, without credentials or query."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def check_url(url: str) -> None:
    """Refuse anything but wss://host[:port]/path, before any connection."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number
    except ValueError:
        raise InsecureTransport("not a valid TrueNAS API URL") from None
    if parts.scheme != "wss":
        raise InsecureTransport(
            f"refusing to connect to {_where(url)}: only wss:// is allowed, because "
            "TrueNAS revokes an API key that is sent over plain ws://"
        )
    if not parts.hostname:
        raise InsecureTransport(f"{_where(url)} names no host")
    if parts.username or parts.password:
        raise InsecureTransport("credentials do not belong in a TrueNAS API URL")


class TrueNASClient:
    def __init__(self, url: str, api_key: Secret, username: str,
                 ssl_context: ssl.SSLContext, timing: Timing, log: CallLog | None = None,
                 *, fingerprint: str | None = None, legacy_jobs: bool = True,
                 http_url: str | None = None) -> None:
        """Connect (not yet logged in) to the node's JSON-RPC WebSocket at `url`.

        `fingerprint`: SHA-256 of the pinned certificate; when given, the peer's
        certificate must be exactly that one (on top of `ssl_context`'s trust).
        `http_url`: where /_upload and /_download are served; by default the same
        host and port as `url`, over https (as TrueNAS's nginx does).
        """
        check_url(url)
        if ssl_context.verify_mode != ssl.CERT_REQUIRED:
            raise InsecureTransport("refusing an SSL context that does not verify the "
                                    "node's certificate")
        if not isinstance(api_key, Secret):
            raise TypeError("api_key must be a Secret")
        self.url = url
        self.where = _where(url)
        self.username = username
        self.timing = timing
        self.log = log if log is not None else CallLog()
        self.legacy_jobs = legacy_jobs
        self.fingerprint = fingerprint
        self.user_info: dict | None = None
        self.notifications: deque[dict] = deque(maxlen=NOTIFICATIONS_KEPT)
        self.stray_replies = 0
        self._api_key = api_key
        self._ssl_context = ssl_context
        self._lock = threading.RLock()
        self._next_id = 0
        self._http: requests.Session | None = None
        self._closer = contextlib.ExitStack()
        parts = urlsplit(url)
        self.http_url = (http_url or f"https://{parts.netloc}").rstrip("/")
        if urlsplit(self.http_url).scheme != "https":
            raise InsecureTransport(f"refusing {_where(self.http_url)} for file transfers: "
                                    "only https:// is allowed")
        self._ws: ClientConnection = self._open()
        try:
            if not legacy_jobs:
                self.call("core.set_options", {"legacy_jobs": False})
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"TrueNASClient({self.where!r}, username={self.username!r})"

    # --- connection ----------------------------------------------------------
    def _open(self) -> ClientConnection:
        # Entered as a context manager: websockets 17 deprecates using connect()'s
        # return value directly, and entering works the same on 15 and 16.
        stack = contextlib.ExitStack()
        try:
            connection = stack.enter_context(open_websocket(
                self.url, self._ssl_context, self.timing.deadline(CONNECT_SECONDS),
                MAX_MESSAGE))
        except ssl.SSLCertVerificationError as exc:
            raise TrueNASTLSError(
                f"{self.where} presented a certificate that does not match the pinned "
                f"one ({exc.verify_message}); refusing to talk to it"
            ) from None
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise TrueNASUnavailable(
                f"could not open {self.where} ({type(exc).__name__}: {self._scrub(str(exc))})"
            ) from None
        self._closer = stack
        if self.fingerprint:
            self._check_peer(connection)
        return connection

    def _check_peer(self, connection: ClientConnection) -> None:
        der = connection.socket.getpeercert(binary_form=True)
        presented = sha256_of(ssl.DER_cert_to_PEM_cert(der)) if der else "none"
        if presented != self.fingerprint:
            self._closer.close()
            raise TrueNASTLSError(
                f"{self.where} presented certificate {presented}, not the pinned "
                f"{self.fingerprint}; refusing to talk to it"
            )

    def close(self) -> None:
        self._closer.close()
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> TrueNASClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def scrub(self, text: str) -> str:
        """`text` without the API key (anything the node sends back, before it is
        shown)."""
        return self._scrub(text)

    def _scrub(self, text: str) -> str:
        key = self._api_key.reveal()
        return text.replace(key, "********") if key in text else text

    # --- calls ---------------------------------------------------------------
    def login(self) -> dict:
        """auth.login_ex with API_KEY_PLAIN (PASSWORD_PLAIN for an AdminPassword);
        returns the answer (with user_info)."""
        if isinstance(self._api_key, AdminPassword):
            credentials = {"mechanism": "PASSWORD_PLAIN", "username": self.username,
                           "password": self._api_key}
        else:
            credentials = {"mechanism": "API_KEY_PLAIN", "username": self.username,
                           "api_key": self._api_key}
        try:
            answer = self.call("auth.login_ex", credentials)
        except MethodNotFound:
            raise AuthenticationFailed(
                "METHOD_NOT_FOUND",
                f"{self.where} has no auth.login_ex: this client needs TrueNAS 25.04 or newer",
            ) from None
        response_type = answer.get("response_type") if isinstance(answer, dict) else None
        if response_type == "SUCCESS":
            self.user_info = answer.get("user_info")
            return answer
        template = LOGIN_REFUSALS.get(
            str(response_type), "answered {kind} to the login of user {user}")
        if isinstance(self._api_key, AdminPassword) and response_type == "AUTH_ERR":
            template = ("refused the password of user {user} (AUTH_ERR): check "
                        "TRUENAS_ADMIN_PASSWORD or the site's truenas.admin_password_file")
        raise AuthenticationFailed(
            str(response_type),
            f"TrueNAS at {self.where} "
            + template.format(user=self.username, kind=response_type),
        )

    def call(self, method: str, *params: Any, timeout: float | None = None) -> Any:
        """Call `method` and return its result (extended JSON decoded).

        `timeout` in seconds on this target; by default the deadline of a plain call.
        """
        if timeout is None:
            timeout = self.timing.deadline(CALL_SECONDS)
        return self._request(method, list(params), timeout)

    def _request(self, method: str, params: list, timeout: float) -> Any:
        with self._lock:
            self._next_id += 1
            message_id = self._next_id
            self.log.record(method)
            deadline = time.monotonic() + timeout
            try:
                self._ws.send(rpc.request(message_id, method, params))
                while True:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError
                    message = ejson.loads(self._ws.recv(timeout=remaining))
                    if not isinstance(message, dict):
                        continue
                    if "method" in message and "id" not in message:
                        self.notifications.append(message)
                        continue
                    if message.get("id") != message_id and message.get("id") is not None:
                        self.stray_replies += 1
                        continue
                    if "error" in message:
                        raise rpc.error_from(method, message["error"] or {}, self._scrub)
                    return message.get("result")
            except TimeoutError:
                raise WaitTimeout(
                    f"gave up waiting for the answer to {method} from {self.where} "
                    f"after {timeout:.1f} s"
                ) from None
            except ConnectionClosed as exc:
                raise TrueNASUnavailable(
                    f"the connection to {self.where} closed while calling {method} "
                    f"(code {exc.rcvd.code if exc.rcvd else 'none'})"
                ) from None
            except json.JSONDecodeError:
                raise TrueNASError(
                    f"{self.where} answered {method} with something that is not JSON"
                ) from None
            except OSError as exc:
                raise TrueNASUnavailable(
                    f"lost {self.where} while calling {method} ({type(exc).__name__})"
                ) from None

    # --- jobs ----------------------------------------------------------------
    def call_job(self, method: str, *params: Any, real_seconds: float = JOB_SECONDS) -> Any:
        """Start job `method`, wait until it ends, and return its result.

        FAILED/ABORTED raise JobFailed (TrueNASValidationError, with the attribute
        names, when the job failed validation); the wait is bounded by
        `timing.deadline(real_seconds)` and raises WaitTimeout naming the method.
        """
        limit = self.timing.deadline(real_seconds)
        if not self.legacy_jobs:
            return self._request(method, list(params), limit)
        job_id = self.call(method, *params)
        if not isinstance(job_id, int) or isinstance(job_id, bool):
            raise TrueNASError(f"{method} did not start a job (it answered a "
                               f"{type(job_id).__name__}, not a job id)")
        return self.wait_job(job_id, method, real_seconds)

    def job(self, job_id: int) -> dict:
        """The node's current record of one job."""
        found = self.call("core.get_jobs", [["id", "=", job_id]])
        if not found:
            raise TrueNASError(f"job {job_id} is not known to {self.where}")
        return found[0]

    def wait_job(self, job_id: int, method: str, real_seconds: float = JOB_SECONDS) -> Any:
        def ended() -> Any:
            job = self.job(job_id)
            state = job.get("state")
            if state == "SUCCESS":
                return job.get("result")
            if state in FINAL_JOB_STATES:
                raise rpc.job_error(method, job, self._scrub)
            progress = job.get("progress") or {}
            detail = f", {progress.get('percent')}%" if progress.get("percent") else ""
            return Pending(f"it was still {state}{detail}")

        return wait_for(f"{method} (job {job_id}) on {self.where} to finish", ended,
                        self.timing, real_seconds)

    # --- files ---------------------------------------------------------------
    def _session(self) -> requests.Session:
        if self._http is None:
            self._http = pinned_session(self._ssl_context, self.fingerprint)
        return self._http

    def _http_send(self, operation: str, method: str, url: str, real_seconds: float,
                   **kwargs: Any) -> requests.Response:
        limit = self.timing.deadline(real_seconds)
        try:
            return self._session().request(method, url, timeout=(limit, limit),
                                           allow_redirects=False, **kwargs)
        except requests.exceptions.SSLError as exc:
            raise TrueNASTLSError(
                f"{operation}: {self.http_url} presented a certificate that does not match "
                f"the pinned one ({self._scrub(str(exc.__context__ or exc))[:200]})"
            ) from None
        except requests.exceptions.Timeout:
            raise WaitTimeout(f"gave up waiting for {operation} on {self.http_url} after "
                              f"{limit:.1f} s") from None
        except requests.exceptions.RequestException as exc:
            raise TrueNASUnavailable(f"{operation}: could not reach {self.http_url} "
                                     f"({type(exc).__name__})") from None

    def upload(self, path: str, data: bytes, *, append: bool = False,
               mode: int | None = None, real_seconds: float = JOB_SECONDS) -> Any:
        """Write `data` to `path` on the node (filesystem.put through /_upload)."""
        options: dict[str, Any] = {}
        if append:
            options["append"] = True
        if mode is not None:
            options["mode"] = mode
        operation = f"filesystem.put {path}"
        self.log.record("filesystem.put")
        response = self._http_send(
            operation, "POST", f"{self.http_url}/_upload", real_seconds,
            headers={"Authorization": f"Bearer {self._api_key.reveal()}"},
            files=[
                ("data", (None, json.dumps({"method": "filesystem.put",
                                            "params": [path, options]}), "application/json")),
                ("file", (posixpath.basename(path) or "upload", data,
                          "application/octet-stream")),
            ],
        )
        if response.status_code == 401:
            raise NotAuthenticated("filesystem.put", "/_upload refused the API key (HTTP 401)")
        if response.status_code != 200:
            raise TransferFailed(operation, response.status_code,
                                 self._scrub(response.text[:300]) or response.reason)
        try:
            job_id = int(response.json()["job_id"])
        except (ValueError, KeyError, TypeError):
            raise TransferFailed(operation, response.status_code,
                                 "the answer carried no job id") from None
        return self.wait_job(job_id, "filesystem.put", real_seconds)

    def download(self, path: str, *, real_seconds: float = JOB_SECONDS) -> bytes:
        """The bytes of `path` on the node (filesystem.get through core.download)."""
        operation = f"filesystem.get {path}"
        answer = self.call("core.download", "filesystem.get", [path],
                           posixpath.basename(path) or "download", False)
        if not (isinstance(answer, list) and len(answer) == 2 and isinstance(answer[1], str)):
            raise TrueNASError(f"core.download for {path} did not answer [job id, link]")
        job_id, link = answer
        url = urljoin(self.http_url + "/", link)
        base, target = urlsplit(self.http_url), urlsplit(url)
        if (target.scheme, target.netloc) != (base.scheme, base.netloc):
            # the link carries a session token: it goes only where we already trust
            raise TransferFailed(operation, 0, f"the node offered a download link to "
                                               f"another place ({_where(url)})")
        response = self._http_send(operation, "GET", url, real_seconds)
        if response.status_code != 200:
            job = self.job(job_id)
            if job.get("state") in ("FAILED", "ABORTED"):
                raise rpc.job_error("filesystem.get", job, self._scrub)
            raise TransferFailed(operation, response.status_code,
                                 self._scrub(response.text[:300]) or response.reason)
        content = response.content
        self.wait_job(job_id, "filesystem.get", real_seconds)
        return content
