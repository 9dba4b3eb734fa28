"""List pushing: a consumer of share intents and a flusher that pushes lists to their tenants.

Share intents (topic ``<prefix>.share-intents.v1``, keyed by list), batch consumer, group
``netskope-sink``: at-least-once delivery with exactly-once effects (positions recorded with the
membership writes in one transaction; Kafka offsets committed after it). Replays are skipped. Each
batch makes its lists due (``list_state.version``).

The flusher pushes due lists: the top of the priority order within the cap, moved from the last
push's cut by what changed since, diffed against what the tenant holds, both set-wise in PostgreSQL
(only the changes are written, nothing is loaded), as few calls as possible, one deploy per tenant per
round. A session advisory lock per list lets any number of sink processes share the work with one
pusher per list. A push that fails leaves the list due, with a growing backoff: work is never dropped.
What the cap left out and what the tenant refused are read from the list state when indicators are
read (the view ``list_value_status``): nothing is written back into the read model.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx
from faststream.kafka import KafkaBroker

from cte_common.consumer import Record, apply_exactly_once, decode_or_park
from cte_common.db import Connection, Pool
from cte_common.events import SHARE_INTENT_ADAPTER
from cte_common.metrics import CONSUMER_BATCH_SECONDS, CONSUMER_BATCH_SIZE, CONSUMER_RECORDS
from cte_common.sharing import MAX_PUSH_ENTRIES, FileTarget, UrlTarget, parse_target, split_list_key
from cte_common.topics import Topics
from netskope_sink.lists import repository
from netskope_sink.lists.domain import DUPLICATE_REQUEST, latest_intents, plan_push, rejected_entries, v1_errors
from netskope_sink.metrics import (
    DEPLOYS,
    INTENTS,
    INVALID,
    LIST_BYTES,
    LIST_CAP_BYTES,
    LIST_ENTRIES,
    PUSH_SECONDS,
    PUSHES,
    UNSHARED,
)
from netskope_sink.settings import Settings
from netskope_sink.tenant.client import Api, RequestBudget, TenantClient, TenantClients, TenantError
from netskope_sink.tenant.schemas import TenantConnection

log = logging.getLogger(__name__)

CONSUMER = "netskope-sink.share-intents"


class ShareIntentsHandler:
    def __init__(self, pool: Pool, broker: KafkaBroker, topics: Topics, wake: asyncio.Event) -> None:
        self.pool = pool
        self.broker = broker
        self.topics = topics
        self.wake = wake

    async def handle(self, records: Sequence[Record]) -> None:
        started = time.perf_counter()

        async def apply(conn: Connection, fresh: list[Record]) -> None:
            decoded = await decode_or_park(self.broker, self.topics.dead_letter, CONSUMER, fresh, SHARE_INTENT_ADAPTER)
            intents = latest_intents([d.event for d in decoded])
            await repository.apply_intents(conn, intents)
            for i in intents:
                INTENTS.labels("add" if i.add else "remove").inc()
            CONSUMER_RECORDS.labels(CONSUMER, "applied").inc(len(decoded))

        fresh = await apply_exactly_once(self.pool, CONSUMER, records, apply)
        CONSUMER_RECORDS.labels(CONSUMER, "duplicate").inc(len(records) - len(fresh))
        CONSUMER_BATCH_SIZE.labels(CONSUMER).observe(len(records))
        CONSUMER_BATCH_SECONDS.labels(CONSUMER).observe(time.perf_counter() - started)
        if fresh:
            self.wake.set()


@dataclass
class Pushed:
    """A list pushed (but, for a URL list, not yet deployed): what to record once the round succeeds.
    Its changes wait in PostgreSQL (repository.prepare_push), on the flusher's connection."""

    list_key: str
    version: int
    prepared: repository.PreparedPush
    uncertain: bool  # the record before the push was not trusted: it is rewritten
    refused: dict[str, str]  # entry -> the tenant's reason
    cap: int
    started: float


class Flusher:
    def __init__(
        self,
        settings: Settings,
        pool: Pool,
        broker: KafkaBroker,
        topics: Topics,
        wake: asyncio.Event,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.broker = broker
        self.topics = topics
        self.wake = wake
        self.limiters: dict[str, dict[Api, RequestBudget]] = {}
        # ``transport``: how tenants are reached; None is the network (see TenantClients).
        self.tenants = TenantClients(
            settings, pool, self.limiters, timeout=settings.request_timeout_seconds, transport=transport
        )

    async def run_forever(self) -> None:
        while True:
            try:
                await self.flush_due()
            except Exception:  # a failed round is retried; nothing was recorded for the failed lists
                log.exception("flush round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=self.settings.flush_interval_seconds)
            self.wake.clear()
            # Let intents of the same burst arrive before pushing: fewer, larger pushes.
            await asyncio.sleep(min(0.2, self.settings.flush_interval_seconds))

    async def flush_due(self) -> int:
        async with self.pool.acquire() as conn:
            due = await repository.due_lists(conn, 100)
        by_tenant: dict[str, list[str]] = {}
        for key in due:
            by_tenant.setdefault(split_list_key(key)[0], []).append(key)
        for tenant, keys in by_tenant.items():
            await self._flush_tenant(tenant, keys)
        return len(due)

    async def _flush_tenant(self, tenant: str, keys: list[str]) -> None:
        # One connection for the round: it holds the lists' locks and their prepared pushes.
        async with self.pool.acquire() as conn:
            locked = [k for k in keys if await repository.try_lock_list(conn, k)]
            try:
                pushed: list[Pushed] = []
                needs_deploy: TenantClient | None = None
                for key in locked:
                    try:
                        result, client = await self._push(conn, tenant, key)
                    except Exception as exc:
                        await self._failed(key, exc)
                        continue
                    if split_list_key(key)[1] == "url":
                        pushed.append(result)
                        needs_deploy = client
                    else:
                        await self._record(conn, result)
                if needs_deploy is not None and pushed:
                    try:
                        await needs_deploy.deploy()
                        DEPLOYS.labels(tenant, "ok").inc()
                    except Exception as exc:
                        DEPLOYS.labels(tenant, "failed").inc()
                        for p in pushed:
                            await self._failed(p.list_key, exc)
                        return
                    for p in pushed:
                        await self._record(conn, p)
            finally:
                for key in locked:
                    await repository.forget_push(conn, key)
                    await repository.unlock_list(conn, key)

    async def _push(self, conn: Connection, tenant: str, key: str) -> tuple[Pushed, TenantClient]:
        started = time.perf_counter()
        _, action, name = split_list_key(key)
        version = await repository.list_version(conn, key)
        dest = await repository.destination(conn, tenant, key)
        if dest is None:
            raise TenantError(None, f"no tenant named '{tenant}'")
        params = dest["parameters"] or ({"list": name} if action == "url" else {"file_list": name})
        target = parse_target(action, params)
        client = self.tenants.get(TenantConnection.from_row(dest))
        # A changing call whose answer was lost (a crash, a timeout) may have been applied or not: until
        # a push is recorded, what the tenant holds is unknown, and the next push rewrites it whole.
        uncertain = await repository.mark_uncertain(conn, key)
        is_url = isinstance(target, UrlTarget)
        prepared = await repository.prepare_push(
            conn,
            key,
            cap_bytes=target.cap_bytes,
            max_entries=MAX_PUSH_ENTRIES,
            url_list=is_url,
            uncertain=uncertain,
        )
        refused: dict[str, str] = {}
        if isinstance(target, UrlTarget):
            await self._push_url(conn, client, key, name, target, prepared, uncertain, refused)
        else:
            await self._push_file(conn, client, key, name, target, prepared, uncertain)
        LIST_CAP_BYTES.labels(key).set(target.cap_bytes)
        return Pushed(key, version, prepared, uncertain, refused, target.cap_bytes, started), client

    async def _push_url(
        self,
        conn: Connection,
        client: TenantClient,
        key: str,
        name: str,
        target: UrlTarget,
        prepared: repository.PreparedPush,
        uncertain: bool,
        refused: dict[str, str],
    ) -> None:
        lists = await client.url_lists()
        mode = plan_push(
            exists=name in lists, appends=prepared.appends, removes=prepared.removes, holds_any=prepared.holds_any
        )
        if mode == "none":
            return
        for attempt in range(2):
            whole = mode != "append"
            items = await self._entries(conn, key, whole=whole, uncertain=uncertain, exclude=refused, json_items=True)
            if not items:
                if not whole:
                    return  # every new entry was refused
                items = json.dumps(target.default_url)  # an empty list holds the default placeholder
            urls = b"[" + items.encode() + b"]"
            if mode == "create":
                response = await client.create_url_list(name, urls, target.url_list_type)
            else:
                response = await client.change_url_list(lists[name], mode, urls, target.url_list_type)
            if response.status_code in (200, 201):
                return
            bad = rejected_entries(response.json()) if response.status_code == 400 else []
            if not bad or attempt == 1:
                raise TenantError(response.status_code, response.text[:500])
            # The tenant refuses the whole call for any bad entry: drop those and try once more.
            refused.update(dict(bad))

    async def _push_file(
        self,
        conn: Connection,
        client: TenantClient,
        key: str,
        name: str,
        target: FileTarget,
        prepared: repository.PreparedPush,
        uncertain: bool,
    ) -> None:
        mode = plan_push(exists=True, appends=prepared.appends, removes=prepared.removes, holds_any=prepared.holds_any)
        if mode == "none":
            return  # nothing changed: the v1 API would answer "Duplicate request" anyway
        hashes = await self._entries(conn, key, whole=True, uncertain=uncertain, exclude={}, json_items=False)
        body = await client.update_file_hash_list(name, json.dumps(hashes or target.default_file_hash).encode())
        errors = v1_errors(body)
        if errors and DUPLICATE_REQUEST not in errors:
            raise TenantError(200, "; ".join(errors))

    @staticmethod
    async def _entries(
        conn: Connection, key: str, *, whole: bool, uncertain: bool, exclude: Mapping[str, str], json_items: bool
    ) -> str:
        """The entries of a call, comma-separated, as PostgreSQL writes them: a JSON array's items
        (``json_items``, URL lists) or plain (file hash lists). The text is bounded by the tenant's
        cap; no entry is kept as an object."""
        return await repository.entries_text(
            conn, key, whole=whole, uncertain=uncertain, exclude=list(exclude), json_items=json_items
        )

    async def _record(self, conn: Connection, p: Pushed) -> None:
        """Record the push in one transaction; nothing is published (the read side derives the values'
        status from the list state)."""
        async with conn.transaction():
            entries = await repository.record_push(
                conn,
                p.list_key,
                version=p.version,
                prepared=p.prepared,
                uncertain=p.uncertain,
                refused=p.refused,
                cap=p.cap,
                next_push_in_seconds=self.settings.push_min_interval_seconds,
            )
        UNSHARED.labels(p.list_key).inc(max(0, p.prepared.left_out - p.prepared.left_out_before))
        INVALID.labels(p.list_key).inc(len(p.refused))
        LIST_ENTRIES.labels(p.list_key).set(entries)
        LIST_BYTES.labels(p.list_key).set(p.prepared.bytes)
        PUSHES.labels(p.list_key, "ok").inc()
        PUSH_SECONDS.labels(p.list_key).observe(time.perf_counter() - p.started)

    async def _failed(self, key: str, exc: BaseException) -> None:
        PUSHES.labels(key, "failed").inc()
        async with self.pool.acquire() as conn:
            failures = await repository.failures(conn, key)
            delay = min(self.settings.backoff_max_seconds, 2.0 ** min(failures, 10))
            await repository.record_failure(conn, key, f"{type(exc).__name__}: {exc}", delay)
        log.warning("push of %s failed (retry in %.0f s): %s", key, delay, exc)
