"""The vendored documents are what they claim to be, checked once here rather than on
every load (tests/reference.py builds them without checking them again)."""

from __future__ import annotations

import jsonschema
import pytest
from openapi_core import OpenAPI

from tests.reference import openapi_subset


def test_the_vendored_openapi_subset_is_a_valid_openapi_document() -> None:
    OpenAPI.from_dict(openapi_subset())      # openapi-core checks the document by default


def test_the_check_refuses_a_broken_document() -> None:
    broken = openapi_subset()
    first = next(iter(broken["paths"].values()))
    next(iter(first.values()))["responses"] = "not a mapping"
    # openapi-spec-validator's error is a jsonschema ValidationError
    with pytest.raises(jsonschema.ValidationError, match="is not of type"):
        OpenAPI.from_dict(broken)
