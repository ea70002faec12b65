"""`truenas-site image build`: the command around infra/image/build.py."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console

from infra.console import RichReporter, safe
from infra.errors import InfraError, SiteFileError
from infra.image.build import (
    ADMIN_USER,
    MIN_DISK_GIB,
    PASSWORD_ENV,
    BuildOptions,
    ImageBuild,
    admin_password,
    store_password,
)
from infra.image.machine import INSTALL_HINT, QEMU, QEMU_IMG, missing_tools, qemu_launcher
from infra.image.output import FORMATS, ImageFile
from infra.site import Site, load_site
from infra.state import StateDir

image_app = typer.Typer(add_completion=False, no_args_is_help=True,
                        help="Build the TrueNAS SCALE custom image a site boots from.")
console = Console()
errors = Console(stderr=True, soft_wrap=True)


def _fail(code: int, message: str) -> None:
    errors.print(f"[bold red]error:[/] {safe(message)}", highlight=False)
    raise typer.Exit(code)


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{size} B"
        value /= 1024
    return f"{size} B"


def next_steps(image: ImageFile, site: Site, site_path: Path) -> list[str]:
    return [
        f"1. Host {image.path.name} at an HTTPS URL that answers HEAD requests and has no "
        "query string (DigitalOcean fetches it once, when `up` imports the image).",
        f"2. In {site_path}, set [image] url = \"https://<host>/<path>/{image.path.name}\" "
        f"(the image is named {site.name}-{site.image.name}).",
        "3. The image holds the admin password's hash: take the file down once the "
        "image is imported.",
        f"4. `truenas-site plan --site {site_path}`, then `up`.",
    ]


@image_app.command("build")
def build(
    iso: Path = typer.Option(..., "--iso", help="the official TrueNAS SCALE 25.10 ISO"),
    site: Path = typer.Option(Path("site.toml"), "--site", "-s", help="the site file (TOML)"),
    password_file: Path | None = typer.Option(
        None, "--password-file",
        help=f"file holding the admin password (mode 0600); else env {PASSWORD_ENV}"),
    output_path: Path | None = typer.Option(
        None, "--output", "-o", help="the image file (default: <image.name>.qcow2 here)"),
    fmt: str = typer.Option("qcow2", "--format", help=f"one of {', '.join(FORMATS)}"),
    disk_gib: int = typer.Option(MIN_DISK_GIB, "--disk-gib",
                                 help=f"boot disk size, at least {MIN_DISK_GIB}"),
    memory_mib: int = typer.Option(4096, "--memory-mib", help="the build machine's memory"),
    cpus: int = typer.Option(2, "--cpus", help="the build machine's CPUs"),
    iso_sha256: str | None = typer.Option(None, "--iso-sha256",
                                          help="refuse an ISO with another SHA-256"),
    state_dir: Path | None = typer.Option(None, "--state-dir",
                                          help="state directory (default .truenas-site/<site>)"),
) -> None:
    """Install TrueNAS from the ISO onto a blank disk in QEMU, and write it as an image."""
    try:
        loaded = load_site(site)
    except SiteFileError as exc:
        _fail(2, "; ".join(f"{site}: {p}" for p in exc.problems))
        raise
    if fmt not in FORMATS:
        _fail(2, f"--format {fmt!r}: one of {', '.join(FORMATS)}")
    missing = missing_tools((QEMU, QEMU_IMG) if fmt == "qcow2" else (QEMU,))
    if missing:
        _fail(2, f"{' and '.join(missing)} not found: {INSTALL_HINT}")
    try:
        password = admin_password(password_file, os.environ)
    except InfraError as exc:
        _fail(2, str(exc))
        raise
    target = output_path or Path(f"{loaded.image.name}{FORMATS[fmt]}")
    options = BuildOptions(iso=iso, output=target.resolve(), disk_gib=disk_gib, fmt=fmt,
                           memory_mib=memory_mib, cpus=cpus, iso_sha256=iso_sha256)
    try:
        image = ImageBuild(options, password, qemu_launcher, RichReporter(console)).run()
    except InfraError as exc:
        _fail(1, str(exc))
        raise
    state = StateDir(state_dir) if state_dir else StateDir.for_site(loaded.name)
    stored = store_password(state, password)
    console.print(f"image   {safe(image.path)}", highlight=False)
    console.print(f"format  {image.format}, {image.size_bytes} bytes "
                  f"({_human(image.size_bytes)}); {image.virtual_bytes} bytes uncompressed "
                  "(DigitalOcean's limit: 100 GB)", highlight=False)
    console.print(f"sha256  {image.sha256}", highlight=False)
    console.print(f"login   {ADMIN_USER}, password kept in {safe(stored)} (0600)",
                  highlight=False)
    console.print("next:", highlight=False)
    for line in next_steps(image, loaded, site):
        console.print(f"  {safe(line)}", highlight=False)
