"""Authentication tokens and pending downloads of one node (in memory, lost on reboot).

Facts followed (middleware 25.10 `service/core_service.py` `_download`,
`apps/file_app.py`, `restful.py`):
- `core.download` runs the job with an output pipe, then makes a single-use token
  with a TTL of 300 s bound to `{"filename", "job"}` and returns
  `[job_id, "/_download/<job_id>?auth_token=<token>"]`;
- `/_download` answers 401 without a valid token or when the token is for another
  job, 404 for an unknown job, and 410 once the job is no longer registered for
  download (already downloaded, or not fetched within 60 s, 3600 s if buffered);
- `auth.generate_token(ttl=600, attrs={}, match_origin=true, single_use=false)`
  tokens authenticate `/_upload` through `?auth_token=` or `Authorization: Token`.

Deadlines are wall time, not virtual time: they bound how long a client takes to
come back, not work the server models, and at the clock's default speed 300
virtual seconds would be 0.6 s of wall time.

Origin (plugins/auth.py `TokenManager.get`, utils/origin.py `match` @ af2c5ab): a
token made with `match_origin` (the default since 25.04) is good only from the
remote address of the connection that asked for it; from elsewhere it is as if it
did not exist (and a single-use one is not used up). What matters for a token that
another machine will use (keychaincredential's semi-automatic setup): it must be
made with `match_origin=false`. `core.download`'s tokens carry no origin here.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

DOWNLOAD_TOKEN_TTL = 300.0
DOWNLOAD_WINDOW = 60.0
DOWNLOAD_WINDOW_BUFFERED = 3600.0


@dataclass
class Token:
    value: str
    username: str
    attributes: dict
    expires_at: float
    single_use: bool
    origin: str | None = None       # the remote address it must be used from


@dataclass
class TokenStore:
    tokens: dict[str, Token] = field(default_factory=dict)
    # job id -> wall-clock deadline by which the download must start
    downloads: dict[int, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def generate(self, username: str, ttl: float, attributes: dict | None = None,
                 single_use: bool = False, origin: str | None = None) -> str:
        # Real tokens are opaque strings; the exact length was not checked [I].
        value = secrets.token_urlsafe(48)
        with self._lock:
            self._expire()
            self.tokens[value] = Token(value, username, dict(attributes or {}),
                                       time.monotonic() + ttl, single_use, origin)
        return value

    def take(self, value: str, origin: str | None = None) -> Token | None:
        """The live token (consumed if single-use), or None; None too when it must be
        used from another address than `origin`."""
        with self._lock:
            self._expire()
            token = self.tokens.get(value)
            if token is not None and token.origin is not None and token.origin != origin:
                return None
            if token is not None and token.single_use:
                del self.tokens[value]
            return token

    def register_download(self, job_id: int, buffered: bool) -> None:
        window = DOWNLOAD_WINDOW_BUFFERED if buffered else DOWNLOAD_WINDOW
        with self._lock:
            self.downloads[job_id] = time.monotonic() + window

    def claim_download(self, job_id: int) -> bool:
        """True once for a registered download still within its window."""
        with self._lock:
            deadline = self.downloads.pop(job_id, None)
            return deadline is not None and time.monotonic() <= deadline

    def _expire(self) -> None:
        now = time.monotonic()
        for value in [v for v, t in self.tokens.items() if t.expires_at < now]:
            del self.tokens[value]

