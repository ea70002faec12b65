"""Fake DigitalOcean API v2: `models/` hold state and rules, `routes/` speak HTTP."""
