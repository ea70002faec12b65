"""A pytest plugin for child runs: writes the node id of every collected item that
carries the marker env SPEC_MARKED_ITEMS_MARKER names (one a line) to the file env
SPEC_MARKED_ITEMS_OUT names. Loaded with `-p tests.integration.marked_items`, it lets a
test learn which scenarios are, say, destructive from the very run it judges, instead
of collecting the spec a second time; it reads markers only, never outcomes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.hookimpl(tryfirst=True)     # before -m / -k deselect anything
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    out, marker = os.environ.get("SPEC_MARKED_ITEMS_OUT"), os.environ.get(
        "SPEC_MARKED_ITEMS_MARKER")
    if out and marker:
        Path(out).write_text("".join(f"{item.nodeid}\n" for item in items
                                     if item.get_closest_marker(marker)))
