"""The provisioning layer: brings a TrueNAS site up from a site file, checks it, tears it down.

It talks to DigitalOcean through pydo and never imports `fakes/`: a target is just
endpoints, credentials and a CA bundle, so the fake and real paths are one code path.
"""
