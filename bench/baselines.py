"""Baselines on the same machine and the same data: what the broker, the database and the tenant allow
without any of the project's code in the way."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from bench import data
from bench.common import BenchError, rate

from cte_common.events import IndicatorSighting, encode
from cte_common.indicators import IndicatorType, Severity
from cte_common.topics import INDICATOR_EVENTS

CHUNK = 100_000  # events serialized (untimed) per chunk, to bound memory at a million


def sighting_events(start: int, stop: int, now: datetime) -> list[tuple[bytes, bytes]]:
    """(key, value) of the IndicatorSighting the API publishes for each item, serialized the same way."""
    out = []
    expires = now + timedelta(days=90)
    for i in data.items(start, stop):
        ev = IndicatorSighting(
            occurred_at=now,
            value=i.value,
            type=IndicatorType(i.type),
            source=i.source,
            reputation=i.reputation,
            severity=Severity(i.severity),
            tags=list(i.tags),
            first_seen=i.first_seen,
            last_seen=i.last_seen,
            expires_at=expires,
            from_api=True,
        )
        out.append((i.value.encode(), encode(ev)))
    return out


# --- Kafka ---------------------------------------------------------------------------------------------


async def kafka(bootstrap: str, topic: str, n: int, concurrency: int) -> dict[str, Any]:
    """Raw produce (the services' producer settings: idempotent, acks=all, keyed; ``concurrency`` senders
    of 1,000-event requests like the API's), then raw consume of the same topic with getmany."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, num_partitions=INDICATOR_EVENTS.partitions, replication_factor=1,
                      topic_configs=INDICATOR_EVENTS.configs)]
        )  # fmt: skip
    finally:
        await admin.close()

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="bench-raw",
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024,
        request_timeout_ms=30_000,
    )
    await producer.start()
    produce_seconds = 0.0
    produce_cpu = 0.0
    payload_bytes = 0
    now = datetime.now(UTC)
    try:
        for start in range(0, n, CHUNK):
            events = sighting_events(start, min(n, start + CHUNK), now)
            payload_bytes += sum(len(v) for _, v in events)
            batches = [events[k : k + data.BATCH] for k in range(0, len(events), data.BATCH)]
            queue: asyncio.Queue[list[tuple[bytes, bytes]]] = asyncio.Queue()
            for b in batches:
                queue.put_nowait(b)

            async def sender(q: asyncio.Queue[list[tuple[bytes, bytes]]] = queue) -> None:
                while not q.empty():
                    batch = q.get_nowait()
                    futures = [await producer.send(topic, value=v, key=k) for k, v in batch]
                    await asyncio.gather(*futures)

            cpu0, t0 = time.process_time(), time.perf_counter()
            await asyncio.gather(*(sender() for _ in range(concurrency)))
            produce_seconds += time.perf_counter() - t0
            produce_cpu += time.process_time() - cpu0
            del events, batches
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(INDICATOR_EVENTS.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        got = 0
        cpu0, t0 = time.process_time(), time.perf_counter()
        deadline = time.monotonic() + 120 + n / 2000
        while got < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            got += sum(len(records) for records in batch.values())
            if time.monotonic() > deadline:
                raise BenchError(f"raw consume: only {got} of {n} events read back")
        consume_seconds = time.perf_counter() - t0
        consume_cpu = time.process_time() - cpu0
    finally:
        await consumer.stop()
    return {
        "produce": {
            "events": n,
            "seconds": round(produce_seconds, 2),
            "per_second": rate(n, produce_seconds),
            "client_cpu_seconds": round(produce_cpu, 2),
            "bytes_per_event": round(payload_bytes / n),
            "concurrency": concurrency,
        },
        "consume": {
            "events": n,
            "seconds": round(consume_seconds, 2),
            "per_second": rate(n, consume_seconds),
            "client_cpu_seconds": round(consume_cpu, 2),
        },
    }


# --- PostgreSQL ------------------------------------------------------------------------------------------

INDICATOR_COLUMNS = [
    "value", "type", "test", "safe", "active", "expires_at", "source", "first_seen", "last_seen",
    "reputation", "severity", "comments", "extended_information", "internal_hits", "external_hits", "shared_with",
]  # fmt: skip
SOURCE_COLUMNS = [
    "value", "source", "internal_hits", "external_hits", "first_seen", "last_seen", "reputation", "severity",
    "comments", "extended_information", "tags", "retracted",
]  # fmt: skip

UPSERT_INDICATORS = """
INSERT INTO raw_indicators AS i (value, type, test, active, expires_at, source, first_seen, last_seen,
                                 reputation, severity, comments, extended_information, internal_hits, external_hits)
SELECT * FROM unnest($1::text[], $2::text[], $3::bool[], $4::bool[], $5::timestamptz[], $6::text[],
                     $7::timestamptz[], $8::timestamptz[], $9::int[], $10::text[], $11::text[], $12::text[],
                     $13::bigint[], $14::bigint[])
ON CONFLICT (value) DO UPDATE SET
    active = EXCLUDED.active, expires_at = EXCLUDED.expires_at,
    first_seen = LEAST(i.first_seen, EXCLUDED.first_seen), last_seen = GREATEST(i.last_seen, EXCLUDED.last_seen),
    internal_hits = i.internal_hits + EXCLUDED.internal_hits, external_hits = i.external_hits + EXCLUDED.external_hits,
    updated_at = now()
"""
UPSERT_SOURCES = """
INSERT INTO raw_indicator_sources AS s (value, source, internal_hits, external_hits, first_seen, last_seen,
                                        reputation, severity, comments, extended_information, tags, retracted)
SELECT v, src, ih, eh, fs, ls, rep, sev, com, ext, ARRAY(SELECT jsonb_array_elements_text(tg::jsonb)), ret
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::timestamptz[], $6::timestamptz[],
            $7::int[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bool[])
     AS x(v, src, ih, eh, fs, ls, rep, sev, com, ext, tg, ret)
ON CONFLICT (value, source) DO UPDATE SET
    internal_hits = s.internal_hits + EXCLUDED.internal_hits, external_hits = s.external_hits + EXCLUDED.external_hits,
    first_seen = LEAST(s.first_seen, EXCLUDED.first_seen), last_seen = GREATEST(s.last_seen, EXCLUDED.last_seen),
    reputation = EXCLUDED.reputation, severity = EXCLUDED.severity, tags = EXCLUDED.tags
"""


def _indicator_row(i: data.Item, expires: datetime) -> tuple[Any, ...]:
    return (i.value, i.type, False, False, True, expires, i.source, i.first_seen, i.last_seen, i.reputation,
            i.severity, "", "", 0, 1, [])  # fmt: skip


def _upsert_row(i: data.Item, expires: datetime) -> tuple[Any, ...]:
    return (i.value, i.type, False, True, expires, i.source, i.first_seen, i.last_seen, i.reputation, i.severity,
            "", "", 0, 1)  # fmt: skip


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [[r[k] for r in rows] for k in range(width)]


def _batches(n: int) -> Iterator[list[data.Item]]:
    for start in range(0, n, data.BATCH):
        yield list(data.items(start, min(n, start + data.BATCH)))


async def postgres(url: str, n: int) -> dict[str, Any]:
    """COPY of the indicator rows (one per distinct value) into a table shaped like ``indicators`` (same
    columns and indexes); then set-wise upserts of all n rows in 1,000-row batches, one transaction each:
    into that shape alone, and into it and a table shaped like ``indicator_sources`` together (what the
    rule-engine writes per batch)."""
    conn = await asyncpg.connect(url)
    expires = datetime.now(UTC) + timedelta(days=90)
    try:

        async def fresh_tables() -> None:
            await conn.execute("DROP TABLE IF EXISTS raw_indicators, raw_indicator_sources")
            await conn.execute("CREATE TABLE raw_indicators (LIKE indicators INCLUDING ALL)")
            await conn.execute("CREATE TABLE raw_indicator_sources (LIKE indicator_sources INCLUDING ALL)")

        # COPY: the first sighting of every value.
        await fresh_tables()
        seen: set[str] = set()
        rows = []
        for i in data.items(0, n):
            if i.value not in seen:
                seen.add(i.value)
                rows.append(_indicator_row(i, expires))
        del seen
        t0 = time.perf_counter()
        await conn.copy_records_to_table("raw_indicators", records=rows, columns=INDICATOR_COLUMNS)
        copy_seconds = time.perf_counter() - t0
        copied = len(rows)
        del rows

        # Upsert into the indicators shape, then into both shapes.
        results: dict[str, Any] = {}
        for name, both in (("upsert", False), ("upsert_with_sources", True)):
            await fresh_tables()
            elapsed = 0.0
            for batch in _batches(n):
                ind = _columns([_upsert_row(i, expires) for i in batch], 14)
                src = None
                if both:
                    # One row per (value, source) in a statement: ON CONFLICT cannot touch a row twice.
                    last: dict[tuple[str, str], data.Item] = {(i.value, i.source): i for i in batch}
                    src = _columns(
                        [(i.value, i.source, 0, 1, i.first_seen, i.last_seen, i.reputation, i.severity, "", "",
                          json.dumps(list(i.tags)), False) for i in last.values()],
                        12,
                    )  # fmt: skip
                # One row per value in a statement, for the same reason (the rule-engine merges them first).
                keep: dict[str, int] = {}
                for k, v in enumerate(ind[0]):
                    keep[v] = k
                if len(keep) != len(ind[0]):
                    idx = sorted(keep.values())
                    ind = [[col[k] for k in idx] for col in ind]
                t0 = time.perf_counter()
                async with conn.transaction():
                    await conn.execute(UPSERT_INDICATORS, *ind)
                    if src is not None:
                        await conn.execute(UPSERT_SOURCES, *src)
                elapsed += time.perf_counter() - t0
            results[name] = {"rows": n, "seconds": round(elapsed, 2), "per_second": rate(n, elapsed)}
        await conn.execute("DROP TABLE IF EXISTS raw_indicators, raw_indicator_sources")
    finally:
        await conn.close()
    return {
        "copy": {"rows": copied, "seconds": round(copy_seconds, 2), "per_second": rate(copied, copy_seconds)},
        **results,
    }


# --- the fake tenant ----------------------------------------------------------------------------------


def url_entries(n: int, max_entries: int = 290_000, max_bytes: int = 6_800_000) -> list[str]:
    """The generated URL-list entries (as the sink writes them: no scheme, no IPv6), within the caps."""
    out: list[str] = []
    used = 1
    seen: set[str] = set()
    for i in data.items(0, n):
        if i.type in ("ipv6", "md5", "sha256") or i.value in seen:
            continue
        seen.add(i.value)
        entry = i.value.split("://", 1)[-1]
        cost = len(json.dumps(entry)) + 3
        if len(out) >= max_entries or used + cost > max_bytes:
            break
        out.append(entry)
        used += cost
    return out


async def tenant(base_url: str, v2_token: str, n: int, chunk: int = 25_000) -> dict[str, Any]:
    """The fake tenant's raw URL-list rates: a list created and grown with large appends, deployed, then
    replaced whole and deployed again."""
    entries = url_entries(n)
    headers = {"Netskope-Api-Token": v2_token}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=300) as client:

        async def call(method: str, path: str, **kw: Any) -> Any:
            r = await client.request(method, path, **kw)
            if r.status_code not in (200, 201):
                raise BenchError(f"fake tenant: {method} {path} answered {r.status_code}: {r.text[:300]}")
            return r.json()

        t0 = time.perf_counter()
        created = await call(
            "POST",
            "/api/v2/policy/urllist",
            json={"name": "bench-raw", "data": {"urls": entries[:chunk], "type": "exact"}},
        )
        list_id = created[0]["id"]
        for k in range(chunk, len(entries), chunk):
            await call(
                "PATCH", f"/api/v2/policy/urllist/{list_id}/append", json={"data": {"urls": entries[k : k + chunk]}}
            )
        append_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        await call("POST", "/api/v2/policy/urllist/deploy")
        deploy_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        await call(
            "PATCH", f"/api/v2/policy/urllist/{list_id}/replace", json={"data": {"urls": entries, "type": "exact"}}
        )
        replace_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        await call("POST", "/api/v2/policy/urllist/deploy")
        redeploy_seconds = time.perf_counter() - t0
        (await client.post("/_sim/reset")).raise_for_status()
    return {
        "entries": len(entries),
        "append_requests": -(-len(entries) // chunk),
        "append_seconds": round(append_seconds, 3),
        "append_per_second": rate(len(entries), append_seconds),
        "deploy_seconds": round(deploy_seconds, 3),
        "replace_seconds": round(replace_seconds, 3),
        "replace_per_second": rate(len(entries), replace_seconds),
        "redeploy_seconds": round(redeploy_seconds, 3),
    }
