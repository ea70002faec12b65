"""Off-node backups: DigitalOcean snapshots of a pool volume, and a drill that
proves one restores.

A volume snapshot lives outside the droplet and outside the volume. The drill
restores it into a fresh volume, boots a scratch droplet from the site's TrueNAS
image with that volume attached, and asks the scratch node which pools it could
import (`pool.import_find`): the site's pool must be among them. The scratch
droplet and volume carry the site's tag (so `down` finds them if the drill is
interrupted) and are deleted when the drill ends, whatever happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from infra import desired, ssh_keys
from infra.errors import InfraError, NotFound
from infra.node import IMPORT_SECONDS, open_node
from infra.observe import find_image, find_volume, public_ipv4
from infra.operation import SiteOperation


@dataclass
class DrillReport:
    snapshot: str
    importable: list[dict] = field(default_factory=list)
    scratch: dict = field(default_factory=dict)
    cleaned: bool = False

    def found(self, pool: str) -> bool:
        return any(p.get("name") == pool for p in self.importable)


class Backup(SiteOperation):
    def snapshot_volume(self, volume: str, name: str) -> dict:
        """A DigitalOcean snapshot of one of the site's volumes (crash-consistent)."""
        full = f"{self.site.name}-{volume}"
        found = find_volume(self.do, self.site, full)
        if found is None or self.tag not in found.get("tags", []):
            raise InfraError(f"the site has no volume {full}")
        self.reporter.step(f"snapshot volume {full} as {name}")
        tags = desired.tags_for(self.site, self.state.run_id())
        return self.do.call(f"snapshot volume {full}", self.do.client.volume_snapshots.create,
                            found["id"], {"name": name, "tags": tags}, retry=False)["snapshot"]

    def drill(self, snapshot: dict) -> DrillReport:
        report = DrillReport(snapshot["id"])
        do = self.do
        image = find_image(do, self.site)
        if image is None:
            raise InfraError("the site has no TrueNAS image to boot a scratch droplet from")
        tags = [*desired.tags_for(self.site, self.state.run_id()), "truenas-backup-drill"]
        name = f"{self.site.name}-drill"
        try:
            self.reporter.step(f"restore snapshot {snapshot['name']} into volume {name}")
            volume = do.call("restore volume", do.client.volumes.create, {
                "name": name, "region": self.site.site.region, "tags": tags,
                "snapshot_id": snapshot["id"], "size_gigabytes": snapshot["min_disk_size"],
            }, retry=False)["volume"]
            report.scratch["volume"] = volume["id"]
            self.reporter.step(f"boot scratch droplet {name}")
            droplet = do.call("create scratch droplet", do.client.droplets.create, {
                "name": name, "region": self.site.site.region,
                "size": self.site.site.droplet_size, "image": image["id"], "tags": tags,
                "volumes": [volume["id"]],
                "ssh_keys": ssh_keys.ensure(do, self.site, self.state, self.reporter),
            }, retry=False)["droplet"]
            report.scratch["droplet"] = droplet["id"]

            def active() -> dict | None:
                current = do.call("get droplet", do.client.droplets.get, droplet["id"])["droplet"]
                return current if current["status"] == "active" and public_ipv4(current) \
                    else None

            booted = do.wait_until(f"scratch droplet {name} to boot", active,
                                   desired.DROPLET_BOOT_SECONDS)
            with open_node(self.site, do.target, self.state, public_ipv4(booted),
                           reporter=self.reporter, repin=True) as node:
                report.importable = node.call_job("pool.import_find",
                                                  real_seconds=IMPORT_SECONDS)
        finally:
            self._clean(report)
        return report

    def _clean(self, report: DrillReport) -> None:
        do = self.do
        droplet_id = report.scratch.get("droplet")
        if droplet_id is not None:
            do.ignore_missing("delete scratch droplet", do.client.droplets.destroy, droplet_id)

            def gone() -> bool:
                try:
                    do.call("get droplet", do.client.droplets.get, droplet_id)
                    return False
                except NotFound:
                    return True

            do.wait_until("the scratch droplet to go away", gone, desired.DESTROY_SECONDS)
        volume_id = report.scratch.get("volume")
        if volume_id is not None:
            def deleted() -> bool:
                try:
                    do.call("delete scratch volume", do.client.volumes.delete, volume_id,
                            retry=False)
                except NotFound:
                    pass
                except InfraError:
                    return False  # still detaching
                return True

            do.wait_until("the scratch volume to be deleted", deleted, desired.ACTION_SECONDS)
        report.cleaned = True
