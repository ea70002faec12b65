"""Static account data: regions, sizes (with prices) and public base images.

Slugs and price shapes follow the `/v2/sizes` and `/v2/regions` schemas in
digitalocean-openapi-subset.json. Prices are DigitalOcean's published list prices
for these basic/general-purpose slugs as far as we know them; a real account may
differ, which is why infra/ always reads prices from `/v2/sizes`.
"""

from __future__ import annotations

REGIONS: dict[str, dict] = {
    # slug: (name, available)
    slug: {"name": name, "available": available}
    for slug, name, available in [
        ("nyc1", "New York 1", True),
        ("nyc2", "New York 2", False),
        ("nyc3", "New York 3", True),
        ("ams2", "Amsterdam 2", False),
        ("ams3", "Amsterdam 3", True),
        ("sfo2", "San Francisco 2", True),
        ("sfo3", "San Francisco 3", True),
        ("sgp1", "Singapore 1", True),
        ("lon1", "London 1", True),
        ("fra1", "Frankfurt 1", True),
        ("tor1", "Toronto 1", True),
        ("blr1", "Bangalore 1", True),
        ("syd1", "Sydney 1", True),
    ]
}

REGION_FEATURES = ["backups", "ipv6", "metadata", "install_agent", "storage", "image_transfer"]

# slug: (memory MiB, vcpus, disk GB, transfer TB, price_monthly, description)
_SIZES = [
    ("s-1vcpu-1gb", 1024, 1, 25, 1.0, 6.0, "Basic"),
    ("s-1vcpu-2gb", 2048, 1, 50, 2.0, 12.0, "Basic"),
    ("s-2vcpu-4gb", 4096, 2, 80, 4.0, 24.0, "Basic"),
    ("s-4vcpu-8gb", 8192, 4, 160, 5.0, 48.0, "Basic"),
    ("s-8vcpu-16gb", 16384, 8, 320, 6.0, 96.0, "Basic"),
    ("g-2vcpu-8gb", 8192, 2, 25, 4.0, 63.0, "General Purpose"),
    ("m-2vcpu-16gb", 16384, 2, 50, 4.0, 84.0, "Memory-Optimized"),
]

SIZES: dict[str, dict] = {
    slug: {
        "slug": slug,
        "memory": memory,
        "vcpus": vcpus,
        "disk": disk,
        "transfer": transfer,
        "price_monthly": monthly,
        # DigitalOcean bills hourly up to 672 hours a month
        "price_hourly": round(monthly / 672, 5),
        "regions": sorted(slug for slug, r in REGIONS.items() if r["available"]),
        "available": True,
        "description": description,
        "disk_info": [{"type": "local", "size": {"amount": disk, "unit": "gib"}}],
    }
    for slug, memory, vcpus, disk, transfer, monthly, description in _SIZES
}

# Volumes cost $0.10 per GiB per month (DigitalOcean's published block storage price).
VOLUME_PRICE_PER_GIB_MONTH = 0.10

# Public base images: (id, slug, name, distribution)
BASE_IMAGES = [
    (129211873, "ubuntu-24-04-x64", "24.04 (LTS) x64", "Ubuntu"),
    (130254894, "debian-12-x64", "12 x64", "Debian"),
    (131356060, "rockylinux-9-x64", "9 x64", "Rocky Linux"),
]

DISTRIBUTIONS = {
    "Arch Linux", "CentOS", "CoreOS", "Debian", "Fedora", "Fedora Atomic", "FreeBSD",
    "Gentoo", "openSUSE", "RancherOS", "Rocky Linux", "Ubuntu", "Unknown",
}

# The enum of regions a custom image may be imported into (images_create_custom.yml).
IMAGE_IMPORT_REGIONS = {
    "ams2", "ams3", "blr1", "fra1", "lon1", "nyc1", "nyc2", "nyc3", "sfo1", "sfo2",
    "sfo3", "sgp1", "tor1", "syd1", "ams1",
}


def region_dict(slug: str) -> dict:
    region = REGIONS[slug]
    return {
        "name": region["name"],
        "slug": slug,
        "features": list(REGION_FEATURES),
        "available": region["available"],
        "sizes": sorted(SIZES) if region["available"] else [],
    }
