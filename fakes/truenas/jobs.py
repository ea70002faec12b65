"""Jobs: long work that a JSON-RPC call starts (reference/truenas-api.md §2).

States WAITING -> RUNNING -> SUCCESS | FAILED | ABORTED. A handler that is a job
calls `JobManager.submit(...)` with a `start` function; `start(job)` does the work
at once, or schedules the rest on the virtual clock and finishes it later with
`job.succeed(...)` / `job.fail(...)`. Listeners (the RPC sessions) hear every
change, to push `collection_update` events for `core.get_jobs` (legacy mode) or to
release a held response (new-style mode).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fakes.clock import VirtualClock
from fakes.truenas.ejson import Timestamp
from fakes.truenas.errors import CallError, RpcError, ValidationErrors

FINAL = ("SUCCESS", "FAILED", "ABORTED")
JobListener = Callable[[str, "Job"], None]   # ("added" | "changed", job)


@dataclass
class Job:
    id: int
    method: str
    arguments: list
    description: str | None
    abortable: bool
    transient: bool
    manager: JobManager = field(repr=False)
    message_ids: list = field(default_factory=list)
    state: str = "WAITING"
    progress: dict = field(default_factory=lambda: {"percent": 0, "description": "",
                                                    "extra": None})
    result: Any = None
    error: str | None = None
    exc_info: dict | None = None
    time_started: float | None = None
    time_finished: float | None = None
    pipe_input: bytes | None = None          # filesystem.put's uploaded file
    pipe_output: bytes | None = None         # filesystem.get's download
    logs_excerpt: str | None = None          # the tail of the job's log (logs=True jobs)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)
    _on_abort: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        return self.state in FINAL

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def set_progress(self, percent: float, description: str = "", extra: Any = None) -> None:
        self.progress = {"percent": percent, "description": description, "extra": extra}
        self.manager.changed(self)

    def succeed(self, result: Any = None) -> None:
        if self.finished:
            return
        self.result = result
        self.state = "SUCCESS"
        self.progress = {**self.progress, "percent": 100}
        self._finish()

    def fail(self, error: Exception | str) -> None:
        if self.finished:
            return
        if isinstance(error, ValidationErrors):
            self.error = error.reason().strip()  # already "[EINVAL] attr: message"
            self.exc_info = {"repr": repr(error), "type": "VALIDATION", "errno": 22,
                             "extra": [list(e) for e in error.errors]}
        elif isinstance(error, CallError):
            self.error = f"[{error.data()['errname']}] {error.message}"
            self.exc_info = {"repr": repr(error), "type": "CallError", "errno": error.errno,
                             "extra": error.extra}
        else:
            self.error = str(error)
            self.exc_info = {"repr": repr(error), "type": type(error).__name__, "errno": None,
                             "extra": None}
        self.state = "FAILED"
        self._finish()

    def abort(self) -> None:
        if self.finished:
            return
        if self._on_abort:
            self._on_abort()
        self.state = "ABORTED"  # middleware sets no error on a cancelled job
        self._finish()

    def _finish(self) -> None:
        self.time_finished = self.manager.clock.now()
        self.manager.changed(self)
        self._done.set()

    def to_dict(self) -> dict:
        return {
            "id": self.id, "message_ids": list(self.message_ids), "method": self.method,
            "arguments": self.arguments, "transient": self.transient,
            "description": self.description, "abortable": self.abortable,
            "logs_path": None, "logs_excerpt": self.logs_excerpt, "progress": dict(self.progress),
            "result": self.result, "result_encoding_error": None, "error": self.error,
            "exception": None, "exc_info": self.exc_info, "state": self.state,
            "time_started": Timestamp(self.time_started) if self.time_started else None,
            "time_finished": Timestamp(self.time_finished) if self.time_finished else None,
            "credentials": None,
        }


class JobManager:
    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self._ids = itertools.count(1)
        self.jobs: dict[int, Job] = {}
        self.listeners: list[JobListener] = []

    def submit(self, method: str, arguments: list, start: Callable[[Job], None], *,
               description: str | None = None, abortable: bool = False,
               transient: bool = False, message_id: Any = None,
               pipe_input: bytes | None = None) -> Job:
        job = Job(id=next(self._ids), method=method, arguments=arguments,
                  description=description, abortable=abortable, transient=transient,
                  manager=self, pipe_input=pipe_input)
        if message_id is not None:
            job.message_ids.append(message_id)
        self.jobs[job.id] = job
        self._emit("added", job)
        job.state = "RUNNING"
        job.time_started = self.clock.now()
        self.changed(job)
        try:
            start(job)
        except RpcError as error:
            job.fail(error)
        return job

    def changed(self, job: Job) -> None:
        self._emit("changed", job)

    def _emit(self, kind: str, job: Job) -> None:
        for listener in list(self.listeners):
            listener(kind, job)

    def get(self, job_id: int) -> Job | None:
        return self.jobs.get(job_id)
