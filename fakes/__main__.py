"""`python -m fakes --state-dir DIR`: run the fake world until interrupted."""

from __future__ import annotations

import argparse
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
    args = parser.parse_args(argv)
    if args.speed <= 0:
        parser.error("--speed must be positive")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with World(args.state_dir, speed=args.speed, port=args.port) as world:
        print(f"fake world ready: {world.world_file}", flush=True)
        print(f"  DigitalOcean API  {world.endpoint}/v2", flush=True)
        print(f"  DNS               {world.host}:{world.dns.port} (UDP and TCP)", flush=True)
        stop.wait()
    print("fake world stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
