"""Where the vendored evidence lives: `reference/` at the repository root (see its README
for each file's upstream, commit and licence). Tests load it from here and never skip
for want of it: a clone of the repository carries it."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

REFERENCE = Path(__file__).resolve().parents[1] / "reference"
OPENAPI_SUBSET = REFERENCE / "digitalocean-openapi-subset.json"
TRUENAS_SCHEMAS = REFERENCE / "truenas-schemas"


def truenas_schema(method: str, key: str = "result") -> dict:
    """The vendored JSON Schema of a TrueNAS 25.10 method's `key` (`result`, `args`,
    `params_schema`, `item`). A method with no vendored schema is a test error, not a skip."""
    path = TRUENAS_SCHEMAS / f"{method}.json"
    assert path.is_file(), f"no vendored schema for {method} at {path}"
    return json.loads(path.read_text())[key]


def openapi_subset() -> dict:
    """DigitalOcean's OpenAPI subset, vendored with the repository."""
    return json.loads(OPENAPI_SUBSET.read_text())


@functools.cache
def openapi_subset_spec() -> Any:
    """The subset as openapi-core's `OpenAPI`, built once per process and without
    checking the document again (2 s of CPU per build): tests/test_reference_documents.py
    checks it, once."""
    from openapi_core import Config, OpenAPI

    return OpenAPI.from_dict(openapi_subset(), config=Config(spec_validator_cls=None))
