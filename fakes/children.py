"""The world's child processes (pebble, and the real programs inside fake nodes): each
dies with the world, even a world killed with SIGKILL, and stops the way Docker stops a
container.

Linux's PR_SET_PDEATHSIG (prctl(2)) kills a child when the THREAD that forked it ends,
not the process: so one long-lived daemon thread forks every child, and the child
asks for SIGKILL between fork and exec.
"""

from __future__ import annotations

import ctypes
import os
import queue
import signal
import subprocess
import threading
from typing import Any

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:     # runs in the child, between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:           # the parent died before prctl: do not outlive it
        os._exit(1)


class _Spawner:
    """One daemon thread that forks every child, alive as long as the process."""

    def __init__(self) -> None:
        self._requests: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def popen(self, *args: Any, **kwargs: Any) -> subprocess.Popen:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="fake-world-spawner")
                self._thread.start()
        done: queue.Queue = queue.Queue(maxsize=1)
        self._requests.put((args, kwargs, done))
        ok, value = done.get()
        if not ok:
            raise value
        return value

    def _run(self) -> None:
        while True:
            args, kwargs, done = self._requests.get()
            try:
                done.put((True, subprocess.Popen(*args, preexec_fn=_die_with_parent,
                                                 **kwargs)))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                done.put((False, exc))


_SPAWNER = _Spawner()


def spawn(*args: Any, **kwargs: Any) -> subprocess.Popen:
    """`subprocess.Popen(*args, **kwargs)`, for a child that dies with this process."""
    return _SPAWNER.popen(*args, **kwargs)


def stop(process: subprocess.Popen, timeout: float) -> int | None:
    """SIGTERM (what `docker stop` sends), then SIGKILL after `timeout`; the exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)
    return process.returncode
