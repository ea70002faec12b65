"""`python -m fakes.installer --disk vda=PATH [--disk vdb=PATH] --port N`: serve the fake
installer on 127.0.0.1:N/ws until a client calls `shutdown` (or SIGTERM)."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from fakes.installer.models import Disk, Machine
from fakes.installer.server import InstallerServer


def _disk(text: str) -> Disk:
    name, _, path = text.partition("=")
    if not name or not path:
        raise argparse.ArgumentTypeError("expected NAME=PATH, e.g. vda=/tmp/disk.raw")
    return Disk(name, Path(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fakes.installer", description=__doc__)
    parser.add_argument("--disk", type=_disk, action="append", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--adopted", action="store_true",
                        help="someone already adopted this installer")
    parser.add_argument("--fail-install", action="store_true",
                        help="the install fails after formatting (as a failing zpool create)")
    args = parser.parse_args(argv)
    machine = Machine(args.disk, adopted=args.adopted, fail_install=args.fail_install)

    async def run() -> None:
        server = InstallerServer(machine)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, server.powered_off.set)
        await server.serve(args.host, args.port)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
