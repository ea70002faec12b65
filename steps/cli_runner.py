"""typer's CliRunner, with each app's click command built once (steps and tests use it).

typer's runner builds the click command from the app (every command's signature and
type hints read again) on each `invoke`: ~40 ms of CPU, more than a refused site file
costs to check. The command depends only on the app's registered functions, so one
built command serves every invocation; what an invocation runs and prints is the same.
"""

from __future__ import annotations

from functools import cache
from typing import Any
from unittest import mock

import typer.main
import typer.testing
from typer.testing import Result


@cache
def _command(app: typer.Typer) -> Any:
    return typer.main.get_command(app)


class CliRunner(typer.testing.CliRunner):
    def invoke(self, app: typer.Typer, *args: Any, **kwargs: Any) -> Result:
        with mock.patch.object(typer.testing, "_get_command", _command):
            return super().invoke(app, *args, **kwargs)
