"""The output side of `image build`: DigitalOcean's custom image limits and the
raw + gzip form (the qcow2 form is exercised end to end in test_build_against_fake)."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infra.image.output import (
    MAX_UNCOMPRESSED_BYTES,
    ImageLimitError,
    convert,
    describe,
    limit_problems,
)


@given(st.integers(min_value=1, max_value=10 * MAX_UNCOMPRESSED_BYTES))
def test_100_gb_uncompressed_is_the_limit(virtual):
    problems = limit_problems(Path("x.qcow2"), "qcow2", virtual)
    assert bool(problems) == (virtual > MAX_UNCOMPRESSED_BYTES)


@pytest.mark.parametrize("name, fmt, ok", [
    ("t.qcow2", "qcow2", True), ("t.img.gz", "raw.gz", True),
    ("t.img", "qcow2", False), ("t.qcow2", "raw.gz", False), ("t.iso", "iso", False),
    ("t.img.xz", "raw.xz", False),
])
def test_formats_and_names(tmp_path, name, fmt, ok):
    assert (not limit_problems(tmp_path / name, fmt, 16 * 1024**3)) == ok


def test_raw_gzip_holds_the_disk_byte_for_byte(tmp_path):
    raw = tmp_path / "disk.raw"
    with open(raw, "wb") as handle:
        handle.truncate(64 * 1024 * 1024)
        handle.write(os.urandom(1024 * 1024))      # something besides holes
    out = tmp_path / "disk.img.gz"
    convert(raw, out, "raw.gz")
    image = describe(out, "raw.gz", raw.stat().st_size)
    with gzip.open(out, "rb") as unzipped:
        assert hashlib.sha256(unzipped.read()).digest() == hashlib.sha256(
            raw.read_bytes()).digest()
    assert image.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    assert image.size_bytes == out.stat().st_size < raw.stat().st_size
    assert not list(tmp_path.glob("*.partial"))


def test_an_image_over_the_limit_is_refused(tmp_path):
    out = tmp_path / "huge.img.gz"
    out.write_bytes(b"x")
    with pytest.raises(ImageLimitError, match="at most 100000000000"):
        describe(out, "raw.gz", MAX_UNCOMPRESSED_BYTES + 1)
