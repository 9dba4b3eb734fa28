"""A demo feed: streams a realistic mix of indicators into the API with a progress bar, then shows
what the read model holds.

    uv run python deploy/demo/feed.py --count 2000

The mix (URLs, domains, hostnames, IPv4/IPv6, MD5 and SHA-256, some repeated across two sources)
is generated deterministically from a seed, so runs are comparable.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
from collections.abc import Iterator
from typing import Any

import httpx
from tqdm import tqdm

SOURCES = ("demo-feed-a", "demo-feed-b")
SEVERITIES = ("unknown", "low", "medium", "high", "critical")
WORDS = (
    "login",
    "secure",
    "update",
    "invoice",
    "cdn",
    "mail",
    "auth",
    "verify",
    "pay",
    "files",
    "drive",
    "support",
)
TLDS = ("com", "net", "org", "io", "xyz", "top", "info", "biz")


def indicators(count: int, seed: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)  # noqa: S311 (demo data, not security)
    for n in range(count):
        domain = f"{rng.choice(WORDS)}-{rng.choice(WORDS)}{n % 997}.{rng.choice(TLDS)}"
        kind = rng.choices(["url", "domain", "hostname", "ipv4", "ipv6", "md5", "sha256"], [30, 20, 10, 15, 5, 10, 10])[
            0
        ]
        if kind == "url":
            value = f"https://{domain}/{rng.choice(WORDS)}/{n}"
        elif kind == "domain":
            value = domain
        elif kind == "hostname":
            value = f"{rng.choice(WORDS)}.{domain}"
        elif kind == "ipv4":
            value = f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        elif kind == "ipv6":
            value = f"2001:db8:{rng.randint(0, 0xFFFF):x}::{rng.randint(1, 0xFFFF):x}"
        elif kind == "md5":
            value = hashlib.md5(f"sample-{n}".encode(), usedforsecurity=False).hexdigest()
        else:
            value = hashlib.sha256(f"sample-{n}".encode()).hexdigest()
        # About one in five indicators is reported by both feeds: they merge into one.
        sources = SOURCES if rng.random() < 0.2 else (rng.choice(SOURCES),)
        for source in sources:
            yield {
                "value": value,
                "type": kind,
                "source": source,
                "severity": rng.choice(SEVERITIES),
                "reputation": rng.randint(1, 10),
                "tags": ["demo"],
                "comments": f"demo indicator {n}",
            }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api", default=f"http://127.0.0.1:{os.environ.get('CTE_API_PORT', '8000')}")
    parser.add_argument("--client-id", default=os.environ.get("CTE_BOOTSTRAP_CLIENT_ID", "cte-bootstrap-client"))
    parser.add_argument("--client-secret", default=os.environ.get("CTE_BOOTSTRAP_CLIENT_SECRET", ""))
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    with httpx.Client(base_url=args.api, timeout=60) as client:
        auth = client.post(
            "/api/auth",
            data={
                "grant_type": "client_credentials",
                "client_id": args.client_id,
                "client_secret": args.client_secret,
            },
        )
        if auth.status_code != 200:
            print(f"authentication failed: {auth.status_code} {auth.text}", file=sys.stderr)
            return 1
        client.headers["Authorization"] = f"Bearer {auth.json()['access_token']}"
        for source in SOURCES:
            r = client.post(
                "/api/cte/configurations", json={"name": source, "plugin": "api_source", "ageAfterDays": 30}
            )
            if r.status_code not in (201, 409):
                print(f"could not create configuration {source}: {r.text}", file=sys.stderr)
                return 1
        batch: list[dict[str, Any]] = []
        sent = 0
        with tqdm(total=args.count, unit="ioc", desc="posting") as bar:
            for item in indicators(args.count, args.seed):
                batch.append(item)
                if len(batch) >= args.batch:
                    sent += _post(client, batch)
                    bar.update(min(len(batch), args.count - bar.n))
                    batch = []
            if batch:
                sent += _post(client, batch, wait=True)
                bar.update(args.count - bar.n)
        total = client.get("/api/cte/indicators/", params={"aggregate": "true"}).json()["count"]
        newest = client.get(
            "/api/cte/indicators/", params={"limit": 5, "sort": "sources.lastSeen", "ascending": "false"}
        )
        print(f"posted {sent} sightings; the read model holds {total} indicators. Newest:")
        for item in newest.json():
            srcs = ", ".join(s["source"] for s in item["sources"])
            print(f"  {item['type']:8} {item['value']}  [{srcs}]")
    return 0


def _post(client: httpx.Client, batch: list[dict[str, Any]], wait: bool = False) -> int:
    r = client.post("/api/cte/indicators/", params={"wait": str(wait).lower()}, json=batch)
    r.raise_for_status()
    return len(batch)


if __name__ == "__main__":
    sys.exit(main())
