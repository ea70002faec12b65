"""`python -m fakes --state-dir DIR`: run the fake world until interrupted."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from fakes.world import DEFAULT_SPEED, World


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fakes", description=__doc__)
    parser.add_argument("--state-dir", required=True, type=Path,
                        help="where world.json, ca.pem and volume storage go")
    parser.add_argument("--speed", type=float, default=DEFAULT_SPEED,
                        help="virtual seconds per wall second (default %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="HTTPS port (default: any free)")
    # Random unless given; a given one shows in `ps` to every user of the machine, so
    # these are for tests (distinctive values to search a run's output for).
    parser.add_argument("--token", help="the DigitalOcean API token (default: random)")
    parser.add_argument("--admin-secret", help="the admin API's secret (default: random)")
    parser.add_argument("--truenas-api-key",
                        help="the TrueNAS image's API key, `<id>-<key>` (default: random)")
    parser.add_argument("--log-level", help="log the world's activity to stderr at this level")
    args = parser.parse_args(argv)
    if args.speed <= 0:
        parser.error("--speed must be positive")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if args.log_level:
        logging.basicConfig(level=args.log_level.upper(),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with World(args.state_dir, speed=args.speed, port=args.port, token=args.token,
               admin_secret=args.admin_secret,
               truenas_api_key=args.truenas_api_key) as world:
        print(f"fake world ready: {world.world_file}", flush=True)
        print(f"  DigitalOcean API  {world.endpoint}/v2", flush=True)
        print(f"  DNS               {world.host}:{world.dns.port} (UDP and TCP)", flush=True)
        stop.wait()
    print("fake world stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
