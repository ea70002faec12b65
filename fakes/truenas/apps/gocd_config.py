"""GoCD's configuration file, /godata/config/cruise-config.xml: the part the fake reads and writes.

Facts followed (gocd/gocd config/config-api cruise-config.xsd and the server's first start;
docs.gocd.org "Configuration reference"):
- the root element is `<cruise>` with a `schemaVersion` attribute; `<server>` carries the
  server's identity and secrets as attributes: `serverId`, `agentAutoRegisterKey`,
  `webhookSecret`, `tokenGenerationKey`; pipeline groups are `<pipelines group="NAME">`
  children of `<cruise>`, placed after `<server>` and the other top-level sections the
  schema lists before them, and before `<templates>`, `<environments>`, `<agents>`;
- on its first start GoCD writes a default file with a generated serverId and
  auto-register key; a file that lacks the generated attributes gets them added and is
  written back (the server owns the file);
- group names are compared case-insensitively (PipelineGroupsControllerV1.findPipelineGroup
  uses equalsIgnoreCase).
Chosen, not known [I]: the schemaVersion a v25.3.0 server writes (SCHEMA_VERSION below is a
guess; the fake keeps whatever a file already says); the exact attribute order and
formatting GoCD writes. Elements the fake does not model (pipelines inside groups,
templates, environments, security) are kept as they are, untouched.
"""

from __future__ import annotations

import secrets
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass

SCHEMA_VERSION = "139"          # [I] a guess for GoCD 25.3; kept from the file when present
# top-level sections the xsd puts before <pipelines> (a new group goes after them)
BEFORE_PIPELINES = ("server", "scms", "config-repos", "elastic", "artifactStores",
                    "secretConfigs", "repositories", "pipelines")
XSI = "http://www.w3.org/2001/XMLSchema-instance"
ET.register_namespace("xsi", XSI)      # written back as xsi:, as GoCD writes it
GENERATED = ("serverId", "agentAutoRegisterKey", "webhookSecret", "tokenGenerationKey")


class ConfigInvalid(Exception):
    """The file cannot be used: GoCD would refuse to start with it."""


class GroupExists(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class GroupNotFound(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class GroupNotEmpty(Exception):
    """GoCD refuses to delete a group that still has pipelines."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class ConfigNotSaved(Exception):
    """The server could not write its config file (the change is not made)."""


def _generated(attribute: str) -> str:
    if attribute == "serverId":
        return str(uuid.uuid4())
    if attribute == "agentAutoRegisterKey":
        return str(uuid.uuid4())
    return secrets.token_hex(32)


@dataclass(frozen=True)
class Group:
    name: str
    pipelines: tuple[str, ...]


class CruiseConfig:
    """One cruise-config.xml, as an element tree the fake edits in place."""

    def __init__(self, root: ET.Element) -> None:
        self.root = root

    # --- reading ----------------------------------------------------------------------
    @classmethod
    def parse(cls, data: bytes) -> CruiseConfig:
        try:
            root = ET.fromstring(data)
        except ET.ParseError as exc:
            raise ConfigInvalid(f"cruise-config.xml is not well-formed XML: {exc}") from exc
        if root.tag != "cruise":
            raise ConfigInvalid(f"cruise-config.xml: the root element is <{root.tag}>, "
                                "not <cruise>")
        return cls(root)

    @classmethod
    def default(cls) -> CruiseConfig:
        """What a first start writes: an empty config with a fresh identity."""
        root = ET.Element("cruise", {f"{{{XSI}}}noNamespaceSchemaLocation": "cruise-config.xsd",
                                     "schemaVersion": SCHEMA_VERSION})
        ET.SubElement(root, "server")
        config = cls(root)
        config.complete()
        return config

    @property
    def server(self) -> ET.Element:
        server = self.root.find("server")
        if server is None:
            server = ET.Element("server")
            self.root.insert(0, server)
        return server

    def complete(self) -> bool:
        """Add what the server generates when missing; True if anything was added."""
        server = self.server
        added = False
        for attribute in GENERATED:
            if not server.get(attribute):
                server.set(attribute, _generated(attribute))
                added = True
        return added

    @property
    def server_id(self) -> str:
        return self.server.get("serverId", "")

    @property
    def agent_auto_register_key(self) -> str:
        return self.server.get("agentAutoRegisterKey", "")

    def groups(self) -> list[Group]:
        return [Group(el.get("group", ""),
                      tuple(p.get("name", "") for p in el.findall("pipeline")))
                for el in self.root.findall("pipelines")]

    def find_group(self, name: str) -> Group | None:
        return next((g for g in self.groups() if g.name.lower() == name.lower()), None)

    # --- changing ---------------------------------------------------------------------
    def add_group(self, name: str) -> Group:
        if self.find_group(name) is not None:
            raise GroupExists(name)
        children = list(self.root)
        position = 0
        for i, child in enumerate(children):
            if child.tag in BEFORE_PIPELINES:
                position = i + 1
        element = ET.Element("pipelines", {"group": name})
        self.root.insert(position, element)
        return Group(name, ())

    def remove_group(self, name: str) -> Group:
        for element in self.root.findall("pipelines"):
            if element.get("group", "").lower() == name.lower():
                group = Group(element.get("group", ""),
                              tuple(p.get("name", "") for p in element.findall("pipeline")))
                self.root.remove(element)
                return group
        raise GroupNotFound(name)

    # --- writing ----------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        tree = ET.ElementTree(self.root)
        ET.indent(tree, space="  ")
        body = ET.tostring(self.root, encoding="unicode")
        return ('<?xml version="1.0" encoding="utf-8"?>\n' + body + "\n").encode()
