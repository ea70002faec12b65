"""Rebuild digitalocean-openapi-subset.json from a digitalocean/openapi checkout.

    python reference/regenerate_openapi.py /path/to/openapi [--out FILE] [--check]

Reads `specification/DigitalOcean-public.v2.yaml` of the checkout, keeps the document's
top level (info, servers, tags, x-tagGroups, security, components.securitySchemes) and
the paths listed in PATHS (the ones the project uses), and inlines every `$ref` (each
relative to the file it appears in, with an optional JSON-pointer fragment), so the
result is one self-contained JSON document.

The YAML is read with YAML 1.2's booleans (only true/false): under YAML 1.1, which
PyYAML follows, the droplet status `off` (and any `on`, `yes`, `no`) would load as a
boolean; timestamps stay the strings they are written as. `--check` compares with
the vendored file and exits 1 if they differ.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
VENDORED = HERE / "digitalocean-openapi-subset.json"
ROOT_FILE = Path("specification") / "DigitalOcean-public.v2.yaml"

PATHS = [
    "/v2/account",
    "/v2/account/keys",
    "/v2/account/keys/{ssh_key_identifier}",
    "/v2/actions",
    "/v2/actions/{action_id}",
    "/v2/domains",
    "/v2/domains/{domain_name}",
    "/v2/domains/{domain_name}/records",
    "/v2/domains/{domain_name}/records/{domain_record_id}",
    "/v2/droplets",
    "/v2/droplets/{droplet_id}",
    "/v2/droplets/{droplet_id}/backups",
    "/v2/droplets/{droplet_id}/backups/policy",
    "/v2/droplets/backups/policies",
    "/v2/droplets/backups/supported_policies",
    "/v2/droplets/{droplet_id}/snapshots",
    "/v2/droplets/{droplet_id}/actions",
    "/v2/droplets/actions",
    "/v2/droplets/{droplet_id}/actions/{action_id}",
    "/v2/droplets/{droplet_id}/kernels",
    "/v2/droplets/{droplet_id}/firewalls",
    "/v2/droplets/{droplet_id}/neighbors",
    "/v2/droplets/{droplet_id}/destroy_with_associated_resources",
    "/v2/droplets/{droplet_id}/destroy_with_associated_resources/selective",
    "/v2/droplets/{droplet_id}/destroy_with_associated_resources/dangerous",
    "/v2/droplets/{droplet_id}/destroy_with_associated_resources/status",
    "/v2/droplets/{droplet_id}/destroy_with_associated_resources/retry",
    "/v2/droplets/autoscale",
    "/v2/droplets/autoscale/{autoscale_pool_id}",
    "/v2/droplets/autoscale/{autoscale_pool_id}/dangerous",
    "/v2/droplets/autoscale/{autoscale_pool_id}/members",
    "/v2/droplets/autoscale/{autoscale_pool_id}/history",
    "/v2/firewalls",
    "/v2/firewalls/{firewall_id}",
    "/v2/firewalls/{firewall_id}/droplets",
    "/v2/firewalls/{firewall_id}/tags",
    "/v2/firewalls/{firewall_id}/rules",
    "/v2/images",
    "/v2/images/{image_id}",
    "/v2/images/{image_id}/account_transfer",
    "/v2/images/{image_id}/account_transfer/accept",
    "/v2/images/{image_id}/account_transfer/cancel",
    "/v2/images/{image_id}/account_transfer/decline",
    "/v2/images/{image_id}/actions",
    "/v2/images/{image_id}/actions/{action_id}",
    "/v2/regions",
    "/v2/reserved_ips",
    "/v2/reserved_ips/{reserved_ip}",
    "/v2/reserved_ips/{reserved_ip}/actions",
    "/v2/reserved_ips/{reserved_ip}/actions/{action_id}",
    "/v2/sizes",
    "/v2/snapshots",
    "/v2/snapshots/{snapshot_id}",
    "/v2/tags",
    "/v2/tags/{tag_id}",
    "/v2/tags/{tag_id}/resources",
    "/v2/volumes",
    "/v2/volumes/actions",
    "/v2/volumes/snapshots/{snapshot_id}",
    "/v2/volumes/{volume_id}",
    "/v2/volumes/{volume_id}/actions",
    "/v2/volumes/{volume_id}/actions/{action_id}",
    "/v2/volumes/{volume_id}/snapshots",
]


class Yaml12Loader(yaml.SafeLoader):
    """SafeLoader whose booleans are YAML 1.2's (`off` stays the string "off") and whose
    timestamps stay strings, as JSON has no dates (`2020-07-21T18:37:44Z` as written)."""


_DROPPED = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp"}
Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"),
                                   list("tf"))


class Inliner:
    def __init__(self) -> None:
        self._files: dict[Path, Any] = {}

    def load(self, path: Path) -> Any:
        path = path.resolve()
        if path not in self._files:
            self._files[path] = yaml.load(path.read_text(), Loader=Yaml12Loader)
        return self._files[path]

    def resolve(self, node: Any, base: Path, stack: tuple[str, ...] = ()) -> Any:
        """`node` with every $ref replaced by what it points at; `base` is the file the
        node came from. A $ref that points back into itself raises (none does today)."""
        if isinstance(node, list):
            return [self.resolve(item, base, stack) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            target, where = self._target(node["$ref"], base)
            key = f"{where}#{node['$ref'].partition('#')[2]}"
            if key in stack:
                raise ValueError(f"circular $ref {node['$ref']} in {base}")
            return self.resolve(target, where, (*stack, key))
        return {key: self.resolve(value, base, stack) for key, value in node.items()}

    def _target(self, ref: str, base: Path) -> tuple[Any, Path]:
        file_part, _, pointer = ref.partition("#")
        where = (base.parent / file_part).resolve() if file_part else base
        node = self.load(where)
        for token in [t for t in pointer.split("/") if t]:
            token = token.replace("~1", "/").replace("~0", "~")
            node = node[int(token)] if isinstance(node, list) else node[token]
        return node, where


def build(checkout: Path) -> dict:
    root = checkout / ROOT_FILE
    inliner = Inliner()
    document = inliner.load(root)
    missing = [p for p in PATHS if p not in document["paths"]]
    if missing:
        raise SystemExit(f"paths not in {root}: {', '.join(missing)}")
    subset = {key: document[key] for key in ("openapi", "info", "servers", "tags",
                                              "x-tagGroups")}
    subset["paths"] = {path: document["paths"][path] for path in PATHS}
    subset["components"] = {"securitySchemes": document["components"]["securitySchemes"]}
    subset["security"] = document["security"]
    return inliner.resolve(subset, root.resolve())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkout", type=Path, help="a digitalocean/openapi checkout")
    parser.add_argument("--out", type=Path, default=VENDORED)
    parser.add_argument("--check", action="store_true",
                        help="compare with the vendored file instead of writing")
    args = parser.parse_args(argv)
    subset = build(args.checkout)
    text = json.dumps(subset)  # the vendored file's own form: byte for byte comparable
    if args.check:
        same = json.loads(VENDORED.read_text()) == subset
        print("identical to the vendored subset" if same else "differs from the vendored subset")
        return 0 if same else 1
    args.out.write_text(text)
    print(f"wrote {args.out} ({len(subset['paths'])} paths, {len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
