"""A fake TrueNAS SCALE live ISO: the installer's JSON-RPC server over a real WebSocket
on loopback, installing onto disk image files with the real installer's layout.

`python -m fakes.installer --disk vda=PATH --port N` stands in for the QEMU machine
`truenas-site image build` boots: models.py is the machine (disks, adoption, the
install), server.py the protocol, gpt.py the partition table. Each names the upstream
file it follows.
"""
