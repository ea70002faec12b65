"""`[[replication]]` on a receiving site: valid sections load, and every mistake is
refused naming its field, before any request (the source's file is read, nothing
else)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from infra.errors import SiteFileError
from infra.site import load_site, parse_site
from steps.common import to_toml
from steps.sites import set_field, site_data


def _write(path: Path, data: dict) -> Path:
    path.write_text(to_toml(data))
    return path


def _pair(tmp_path: Path, replication: dict, **staging_fields: object) -> Path:
    _write(tmp_path / "production.toml", site_data("prod"))
    staging = site_data("staging")
    staging["snapshots"] = []
    for field, value in staging_fields.items():
        staging = set_field(staging, field, value)
    staging["replication"] = [replication]
    return _write(tmp_path / "staging.toml", staging)


def test_a_receiving_site_names_its_source_and_datasets(tmp_path: Path) -> None:
    site = load_site(_pair(tmp_path, {"source": "production.toml", "datasets": ["data"]}))
    spec = site.replication[0]
    assert Path(spec.source) == tmp_path / "production.toml"   # made absolute
    assert spec.readonly is True and spec.retention == "source"
    assert spec.schedule is None and spec.cron()["minute"] == "0"


def test_a_production_site_file_needs_no_change() -> None:
    assert parse_site(site_data("prod")).replication == []


@pytest.mark.parametrize(
    ("replication", "named"),
    [
        ({"source": "production.toml", "datasets": []}, "replication[0].datasets"),
        ({"source": "production.toml", "datasets": ["/data"]}, "replication[0].datasets"),
        ({"source": "production.toml", "datasets": ["data", "data"]},
         "replication[0].datasets"),
        ({"source": "production.toml", "datasets": ["data"], "readonly": "yes"},
         "replication[0].readonly"),
        ({"source": "production.toml", "datasets": ["data"], "schedule": {"minute": "61"}},
         "replication[0].schedule"),
        ({"source": "production.toml", "datasets": ["data"], "schedule": {"second": "1"}},
         "replication[0].schedule"),
        ({"source": "production.toml", "datasets": ["data"], "retention": "forever"},
         "replication[0].retention"),
        ({"source": "production.toml", "datasets": ["data"], "retention": "custom"},
         "replication[0]"),
        ({"source": "production.toml", "datasets": ["data"], "lifetime_value": 3},
         "replication[0]"),
        ({"source": "production.toml", "datasets": ["data"], "retention": "custom",
          "lifetime_value": 2, "lifetime_unit": "FORTNIGHT"}, "replication[0].lifetime_unit"),
        ({"source": "production.toml"}, "replication[0].datasets"),
        ({"datasets": ["data"]}, "replication[0].source"),
        ({"source": "production.toml", "datasets": ["data"], "speed_limit": 0},
         "replication[0].speed_limit"),
        ({"source": "production.toml", "datasets": ["data"], "colour": "blue"},
         "replication[0].colour"),
    ],
)
def test_each_mistake_is_named(tmp_path: Path, replication: dict, named: str) -> None:
    with pytest.raises(SiteFileError) as refused:
        load_site(_pair(tmp_path, replication))
    assert any(p.startswith(named) for p in refused.value.problems), refused.value.problems


def test_the_source_must_load_and_snapshot_each_dataset(tmp_path: Path) -> None:
    with pytest.raises(SiteFileError) as refused:
        load_site(_pair(tmp_path, {"source": "missing.toml", "datasets": ["data"]}))
    assert refused.value.problems[0].startswith("replication[0].source: ")
    assert "no such site file" in refused.value.problems[0]
    with pytest.raises(SiteFileError) as refused:
        load_site(_pair(tmp_path, {"source": "production.toml", "datasets": ["apps"]}))
    assert refused.value.problems == [
        f"replication[0].datasets: 'apps' has no periodic snapshot task in "
        f"{tmp_path / 'production.toml'} (add a [[snapshots]] with dataset = 'apps' there)"]


def test_a_site_is_not_its_own_source(tmp_path: Path) -> None:
    staging = site_data("staging")
    staging["snapshots"] = []
    staging["replication"] = [{"source": "staging.toml", "datasets": ["data"]}]
    with pytest.raises(SiteFileError) as refused:
        load_site(_write(tmp_path / "staging.toml", staging))
    assert "is this site (staging)" in refused.value.problems[0]


def test_a_received_dataset_takes_no_snapshot_task_of_the_copy(tmp_path: Path) -> None:
    data = site_data("staging")
    data["replication"] = [{"source": "production.toml", "datasets": ["data"]}]
    with pytest.raises(SiteFileError) as refused:
        parse_site(data)
    assert refused.value.problems == [
        "snapshots[0].dataset: 'data' is received by [[replication]]; its snapshots "
        "come from the source site"]


def test_a_dataset_comes_from_one_source_only() -> None:
    data = site_data("staging")
    data["snapshots"] = []
    data["replication"] = [{"source": "a.toml", "datasets": ["data"]},
                           {"source": "b.toml", "datasets": ["data"]}]
    with pytest.raises(SiteFileError) as refused:
        parse_site(data)
    assert "replication[1].datasets: 'data' is already received by replication[0]" in \
        refused.value.problems


def test_the_documented_example_parses_with_its_replication_uncommented() -> None:
    """site.example.toml documents [[replication]] in comments: uncommented, it is a
    valid section (against a source that snapshots the datasets)."""
    text = (Path(__file__).resolve().parents[2] / "site.example.toml").read_text()
    block = [line[2:] for line in text.splitlines() if line.startswith("# ") and (
        line.startswith("# [[replication]]") or line[2:].split(" ")[0] in (
            "source", "datasets", "recursive", "retention", "readonly", "schedule",
            "speed_limit"))]
    assert block and block[0] == "[[replication]]", "site.example.toml documents it"
    spec = tomllib.loads("\n".join(block))["replication"][0]
    data = site_data("staging")
    data["snapshots"] = []
    data["replication"] = [spec]
    assert parse_site(data).replication[0].datasets
