"""Fake TrueNAS SCALE 25.10 nodes: one per droplet built from a TrueNAS image.

`models/` hold a node's state and rules (disks, pools with real bytes on the
member volumes, datasets, snapshots, tasks); `methods/` map JSON-RPC method names
to the models; `rpc.py` and `server.py` speak the wire protocol (JSON-RPC 2.0 over
WSS, `/_upload`, `/_download`); `fleet.py` boots and stops nodes as droplets come
and go in the fake DigitalOcean account.
"""
