"""reference/regenerate_openapi.py on a made-up checkout: $refs inlined relative to the
file they appear in (with JSON-pointer fragments), only the listed paths kept, and YAML
1.2 booleans (a droplet status `off` stays a string)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from tests.reference import REFERENCE


def _script():
    spec = importlib.util.spec_from_file_location("regenerate_openapi",
                                                  REFERENCE / "regenerate_openapi.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_refs_are_inlined_and_off_stays_a_string(tmp_path: Path, monkeypatch) -> None:
    regenerate = _script()
    spec_dir = tmp_path / "specification"
    (spec_dir / "resources" / "droplets" / "models").mkdir(parents=True)
    (spec_dir / "DigitalOcean-public.v2.yaml").write_text(
        "openapi: '3.0.0'\ninfo: {title: t, version: '2.0'}\nservers: []\ntags: []\n"
        "x-tagGroups: []\nsecurity: [{bearer_auth: []}]\n"
        "components: {securitySchemes: {bearer_auth: {type: http, scheme: bearer}}}\n"
        "paths:\n"
        "  /v2/droplets:\n    get:\n      $ref: 'resources/droplets/list.yml'\n"
        "  /v2/not-used:\n    get: {operationId: skipped}\n")
    (spec_dir / "resources" / "droplets" / "list.yml").write_text(
        "operationId: droplets_list\nresponses:\n  '200':\n"
        "    $ref: 'models/droplet.yml#/responses/all'\n")
    (spec_dir / "resources" / "droplets" / "models" / "droplet.yml").write_text(
        "status: {type: string, enum: [new, active, off, archive]}\n"
        "created: 2020-07-21T18:37:44Z\n"
        "responses:\n  all:\n    description: ok\n    status:\n      $ref: '#/status'\n"
        "    when:\n      $ref: '#/created'\n")
    monkeypatch.setattr(regenerate, "PATHS", ["/v2/droplets"])
    built = regenerate.build(tmp_path)
    assert list(built["paths"]) == ["/v2/droplets"]
    ok = built["paths"]["/v2/droplets"]["get"]["responses"]["200"]
    assert ok["status"]["enum"] == ["new", "active", "off", "archive"]
    assert ok["when"] == "2020-07-21T18:37:44Z"
    assert "$ref" not in json.dumps(built)
