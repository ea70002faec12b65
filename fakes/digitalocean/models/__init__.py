"""State and rules of the fake DigitalOcean account (no HTTP here)."""

from fakes.digitalocean.models.backend import DigitalOceanBackend

__all__ = ["DigitalOceanBackend"]
