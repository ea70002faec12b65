"""A fake TrueNAS node's storage: disks, pools with real bytes, datasets, files,
snapshots and periodic snapshot tasks.

`storage.NodeStorage` is the one facade the node, the JSON-RPC methods and the
admin API use. Pool data lives on the member volumes' backing directories (see
`layout.py`), so what a detached volume held is really gone from the node, a
surviving mirror member really serves the data, and a pool whose volumes move to
another droplet really comes back there.
"""

from fakes.truenas.models.layout import inject_bit_rot

__all__ = ["inject_bit_rot"]
