"""The demo: seeds a sharing set-up against the fake Netskope tenant, streams a realistic mix of
indicators into the API with a progress bar, then shows what each Netskope list holds.

    uv run python deploy/demo/feed.py --count 2000

Seeded (idempotently): the API Source configurations demo-feed-a and demo-feed-b, the tenant "demo"
pointing at the fake tenant (with the file hash lists created), the Netskope plugin
configuration "Netskope", the business rule "Every Severity", and a sharing of each feed to its URL
list ("urls-demo-feed-a", ...) and its file hash list ("hashes-demo-feed-a", ...). The mix (URLs,
domains, hostnames, IPv4/IPv6,
MD5 and SHA-256, some repeated across both feeds) is generated from a seed, so runs are comparable.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import time
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
    parser.add_argument("--tenant-url", default=f"http://127.0.0.1:{os.environ.get('CTE_FAKE_TENANT_PORT', '8900')}")
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
        seed(client, args.tenant_url)
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
        show_lists(args.tenant_url)
        newest = client.get(
            "/api/cte/indicators/", params={"limit": 5, "sort": "sources.lastSeen", "ascending": "false"}
        )
        print(f"posted {sent} sightings; the read model holds {total} indicators. Newest:")
        for item in newest.json():
            srcs = ", ".join(s["source"] for s in item["sources"])
            print(f"  {item['type']:8} {item['value']}  [{srcs}]")
    print(f"See them in the web console: {args.api}/iocs (lists and their status: {args.api}/sharing)")
    return 0


EVERY_SEVERITY = 'sources.severity IN ("unknown","low","medium","high","critical")'


def seed(client: httpx.Client, tenant_url: str) -> None:
    """The demo's configuration; each call is accepted, or refused as already there (409/422)."""
    for source in SOURCES:
        httpx.post(f"{tenant_url}/_sim/filehashlists", json={"name": f"hashes-{source}"}, timeout=10)
    calls: list[tuple[str, dict[str, Any]]] = [
        (
            "/api/tenants",
            {"name": "demo", "tenantName": tenant_url, "v1Token": "fake-v1-token", "v2Token": "fake-v2-token"},
        ),
        *[("/api/cte/configurations", {"name": s, "plugin": "api_source", "ageAfterDays": 30}) for s in SOURCES],
        ("/api/cte/configurations", {"name": "Netskope", "plugin": "netskope", "tenant": "demo", "ageAfterDays": 30}),
        ("/api/cte/business_rules", {"name": "Every Severity", "filters": {"query": EVERY_SEVERITY}}),
    ]
    for source in SOURCES:
        # A list is the target of one sharing: each feed gets its own pair of lists.
        for action, params in (
            ("url", {"list": "create", "name": f"urls-{source}"}),
            ("file", {"file_list": f"hashes-{source}"}),
        ):
            body = {
                "sourceConfiguration": source,
                "businessRule": "Every Severity",
                "destinationConfiguration": "Netskope",
            }
            calls.append(("/api/cte/sharing", {**body, "action": action, "parameters": params}))
    for path, body in calls:
        r = client.post(path, json=body)
        if r.status_code not in (200, 201, 409, 422):
            raise SystemExit(f"seeding {path} failed: {r.status_code} {r.text}")


def show_lists(tenant_url: str, settle_seconds: float = 30.0) -> None:
    """What the fake tenant's lists hold once the sink has pushed and deployed them (the state stops
    changing), or after ``settle_seconds``."""
    deadline = time.monotonic() + settle_seconds
    previous: dict[str, Any] = {}
    while True:
        time.sleep(1.0)
        state = httpx.get(f"{tenant_url}/_sim/state", timeout=10).json()
        settled = state == previous and all(lst["pending"] == lst["deployed"] for lst in state["urllists"].values())
        if settled or time.monotonic() > deadline:
            break
        previous = state
    for name, lst in sorted(state["urllists"].items()):
        print(f"URL list {name}: {len(lst['deployed'])} deployed entries, e.g. {lst['deployed'][:3]}")
    for name, hashes in sorted(state["filehashlists"].items()):
        print(f"file hash list {name}: {len(hashes)} hashes, e.g. {hashes[:2]}")


def _post(client: httpx.Client, batch: list[dict[str, Any]], wait: bool = False) -> int:
    r = client.post("/api/cte/indicators/", params={"wait": str(wait).lower()}, json=batch)
    r.raise_for_status()
    return len(batch)


if __name__ == "__main__":
    sys.exit(main())
