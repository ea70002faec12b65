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

from infra import desired
from infra.errors import InfraError
from infra.node import open_node
from infra.operation import SiteOperation
from infra.resources import droplet, image, pool, snapshot, ssh_key, volume
from infra.resources.droplet import public_ipv4


@dataclass
class DrillReport:
    snapshot: str
    importable: list[dict] = field(default_factory=list)
    scratch: dict = field(default_factory=dict)
    cleaned: bool = False

    def found(self, pool: str) -> bool:
        return any(p.get("name") == pool for p in self.importable)


class Backup(SiteOperation):
    def snapshot_volume(self, name: str, snapshot_name: str) -> dict:
        """A DigitalOcean snapshot of one of the site's volumes (crash-consistent)."""
        found = volume.find_site_volume(self.do, self.site, f"{self.site.name}-{name}")
        tags = desired.tags_for(self.site, self.state.run_id())
        return snapshot.create(self.do, found, snapshot_name, tags, self.reporter)

    def drill(self, taken: dict) -> DrillReport:
        report = DrillReport(taken["id"])
        do = self.do
        site_image = image.find(do, self.site)
        if site_image is None:
            raise InfraError("the site has no TrueNAS image to boot a scratch droplet from")
        tags = [*desired.tags_for(self.site, self.state.run_id()), "truenas-backup-drill"]
        name = f"{self.site.name}-drill"
        try:
            scratch_volume = volume.create(do, self.site,
                                           volume.from_snapshot(self.site, name, taken, tags),
                                           self.reporter)
            report.scratch["volume"] = scratch_volume
            scratch = droplet.create(do, droplet.desired(
                self.site, name, site_image["id"], [scratch_volume["id"]], tags,
                ssh_key.ensure(do, self.site, self.state, self.reporter)),
                self.reporter, lambda: droplet.find_named(do, name, self.tag))
            report.scratch["droplet"] = scratch
            booted = droplet.wait(do, scratch, self.reporter)
            with open_node(self.site, do.target, self.state, public_ipv4(booted),
                           reporter=self.reporter, repin=True) as node:
                report.importable = pool.importable(node)
        finally:
            self._clean(report)
        report.scratch = {kind: found["id"] for kind, found in report.scratch.items()}
        return report

    def _clean(self, report: DrillReport) -> None:
        scratch = report.scratch.get("droplet")
        if scratch is not None:
            droplet.destroy(self.do, [scratch], self.reporter)
        scratch_volume = report.scratch.get("volume")
        if scratch_volume is not None:
            volume.destroy(self.do, scratch_volume, self.reporter)
        report.cleaned = True
