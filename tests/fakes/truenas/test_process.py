"""Children of the fake node (fakes/truenas/apps/process.py) never outlive the world:
PR_SET_PDEATHSIG kills them when the process that runs the world dies, even by SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fakes.truenas.apps.process import ChildProcess

WORLD = """
import sys, time
from pathlib import Path
from fakes.truenas.apps.process import ChildProcess
child = ChildProcess(["sleep", "300"], Path(sys.argv[1]) / "sleep.log", {"PATH": "/usr/bin:/bin"},
                     Path(sys.argv[1])).start()
print(child.process.pid, flush=True)
time.sleep(300)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_a_child_dies_with_the_process_that_runs_the_world(tmp_path: Path) -> None:
    world = subprocess.Popen([sys.executable, "-c", WORLD, str(tmp_path)],
                             stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).resolve().parents[3])
    try:
        child = int(world.stdout.readline())
        assert _alive(child)
        os.kill(world.pid, signal.SIGKILL)          # no cleanup code runs
        world.wait(10)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _alive(child)
    finally:
        if world.poll() is None:
            world.kill()
            world.wait(10)


def test_stop_ends_the_child_and_reports_its_code(tmp_path: Path) -> None:
    child = ChildProcess(["sleep", "300"], tmp_path / "log", {"PATH": "/usr/bin:/bin"},
                         tmp_path).start()
    assert child.exit_code is None
    assert child.stop() == -signal.SIGTERM
