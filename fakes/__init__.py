"""The fake world: protocol-faithful fakes of DigitalOcean (and later TrueNAS) on loopback.

Nothing here imports `infra/`; the two meet only over the wire.
"""
