"""List pushing: a consumer of share intents and a flusher that pushes lists to their tenants.

Share intents (topic ``<prefix>.share-intents.v1``, keyed by list), batch consumer, group
``netskope-sink``: at-least-once delivery with exactly-once effects (positions recorded with the
membership writes in one transaction; Kafka offsets committed after it). Replays are skipped. Each
batch makes its lists due (``list_state.version``).

The flusher pushes due lists: the top of the priority order within the cap, diffed against what the
tenant holds, as few calls as possible, one deploy per tenant per round. A session advisory lock per
list lets any number of sink processes share the work with one pusher per list. A push that fails
leaves the list due, with a growing backoff: work is never dropped. What the cap left out is tagged
"Unshared" and what the tenant refused "Invalid host", through indicator events (the read model has
one writer); only changes of those outcomes produce events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from faststream.kafka import KafkaBroker

from cte_common.consumer import Record, apply_exactly_once, decode_batch, publish_dead_letters
from cte_common.db import Connection, Pool
from cte_common.events import SHARE_INTENT_ADAPTER, IndicatorTagEditMany, encode
from cte_common.kafka import Outgoing, group_by_partition, publish_all
from cte_common.metrics import CONSUMER_BATCH_SECONDS, CONSUMER_BATCH_SIZE, CONSUMER_RECORDS
from cte_common.sharing import FileTarget, UrlTarget, parse_target, split_list_key
from cte_common.topics import Topics
from netskope_sink.lists import repository
from netskope_sink.lists.domain import (
    DUPLICATE_REQUEST,
    Selection,
    latest_intents,
    outcome_tags,
    plan_url_push,
    rejected_entries,
    select,
    to_entries,
    v1_errors,
)
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
# Values per Unshared / Invalid host tag event: about 50 KB, well under the broker's record limit.
TAG_EDIT_VALUES = 1000


class ShareIntentsHandler:
    def __init__(self, pool: Pool, broker: KafkaBroker, topics: Topics, wake: asyncio.Event) -> None:
        self.pool = pool
        self.broker = broker
        self.topics = topics
        self.wake = wake

    async def handle(self, records: Sequence[Record]) -> None:
        started = time.perf_counter()

        async def apply(conn: Connection, fresh: list[Record]) -> None:
            decoded, rejected = decode_batch(fresh, SHARE_INTENT_ADAPTER)
            if rejected:
                await publish_dead_letters(self.broker, self.topics.dead_letter, CONSUMER, rejected)
                CONSUMER_RECORDS.labels(CONSUMER, "dead_letter").inc(len(rejected))
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
    """A list pushed (but, for a URL list, not yet deployed): what to record once the round succeeds."""

    list_key: str
    version: int
    selection: Selection
    shared: list[str]  # the values now in the list
    entries: list[str]  # what the tenant holds: the values as list entries
    outcomes: dict[str, tuple[str, str]]
    before: dict[str, str]
    cap: int
    started: float
    held: set[str] | None  # the record before the push; None when it was not trusted


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
        async with self.pool.acquire() as lock_conn:
            locked = [k for k in keys if await repository.try_lock_list(lock_conn, k)]
            try:
                pushed: list[Pushed] = []
                needs_deploy: TenantClient | None = None
                for key in locked:
                    try:
                        result, client = await self._push(lock_conn, tenant, key)
                    except Exception as exc:
                        await self._failed(key, exc)
                        continue
                    if split_list_key(key)[1] == "url":
                        pushed.append(result)
                        needs_deploy = client
                    else:
                        await self._record(result)
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
                        await self._record(p)
            finally:
                for key in locked:
                    await repository.unlock_list(lock_conn, key)

    async def _push(self, conn: Connection, tenant: str, key: str) -> tuple[Pushed, TenantClient]:
        started = time.perf_counter()
        _, action, name = split_list_key(key)
        version = await repository.list_version(conn, key)
        dest = await repository.destination(conn, tenant, key)
        if dest is None:
            raise TenantError(None, f"no tenant named '{tenant}'")
        params = dest["parameters"] or ({"list": name} if action == "url" else {"file_list": name})
        target = parse_target(action, params)
        before = await repository.outcomes(conn, key)
        refused = {v: "refused by the tenant" for v, o in before.items() if o == "rejected"}
        members, kinds = await repository.candidates(conn, key)
        selection = select(members, set(refused), target.cap_bytes)
        client = self.tenants.get(TenantConnection.from_row(dest))
        # A changing call whose answer was lost (a crash, a timeout) may have been applied or not: until
        # a push is recorded, what the tenant holds is unknown, and the next push rewrites it whole.
        uncertain = await repository.mark_uncertain(conn, key)
        held = set() if uncertain else await repository.pushed(conn, key)
        outcomes = dict.fromkeys(selection.left_out, ("left_out", ""))
        if isinstance(target, UrlTarget):
            entries, unfit = to_entries(selection.selected, kinds)
            outcomes.update(dict.fromkeys(unfit, ("left_out", "URL lists cannot hold IPv6 addresses")))
            refused_entries: dict[str, str] = {}
            pushed_entries = await self._push_url(client, name, target, list(entries), held, refused_entries)
            for entry, why in refused_entries.items():
                refused.update(dict.fromkeys(entries.get(entry, []), why))
            shared = [v for e in pushed_entries for v in entries[e]]
        else:
            pushed_entries = shared = await self._push_file(client, name, target, selection.selected, held)
        if refused:
            live = set(selection.selected) | set(selection.left_out)
            outcomes.update({v: ("rejected", why) for v, why in refused.items() if v in live})
        LIST_CAP_BYTES.labels(key).set(target.cap_bytes)
        return Pushed(
            key,
            version,
            selection,
            shared,
            pushed_entries,
            outcomes,
            before,
            target.cap_bytes,
            started,
            None if uncertain else held,
        ), client

    async def _push_url(
        self,
        client: TenantClient,
        name: str,
        target: UrlTarget,
        selected: list[str],
        held: set[str],
        refused: dict[str, str],
    ) -> list[str]:
        lists = await client.url_lists()
        for attempt in range(2):
            plan = plan_url_push(selected, held, target.default_url)
            if name not in lists:
                response = await client.create_url_list(name, selected or [target.default_url], target.url_list_type)
            elif plan.mode == "none":
                return selected
            else:
                response = await client.change_url_list(lists[name], plan.mode, plan.urls, target.url_list_type)
            if response.status_code in (200, 201):
                return selected
            bad = rejected_entries(response.json()) if response.status_code == 400 else []
            if not bad or attempt == 1:
                raise TenantError(response.status_code, response.text[:500])
            # The tenant refuses the whole call for any bad entry: drop those and try once more.
            refused.update(dict(bad))
            selected = [v for v in selected if v not in refused]
        raise AssertionError("unreachable")

    async def _push_file(
        self, client: TenantClient, name: str, target: FileTarget, selected: list[str], held: set[str]
    ) -> list[str]:
        if held and set(selected) == held:
            return selected  # nothing changed: the v1 API would answer "Duplicate request" anyway
        body = await client.update_file_hash_list(name, selected or [target.default_file_hash])
        errors = v1_errors(body)
        if errors and DUPLICATE_REQUEST not in errors:
            raise TenantError(200, "; ".join(errors))
        return selected

    async def _record(self, p: Pushed) -> None:
        after = {v: o for v, (o, _) in p.outcomes.items()}
        tags = outcome_tags(p.before, after, p.shared)
        events = [
            *await self._tag_edits(tags.add, add=True),
            *await self._tag_edits(tags.remove, add=False),
        ]
        async with self.pool.acquire() as conn, conn.transaction():
            if events:
                await publish_all(self.broker, self.topics.indicator_events, events)
            await repository.record_push(
                conn,
                p.list_key,
                version=p.version,
                selected=p.entries,
                held=p.held,
                outcomes=p.outcomes,
                entries=len(p.entries),
                bytes_=p.selection.bytes,
                cap=p.cap,
                next_push_in_seconds=self.settings.push_min_interval_seconds,
            )
        UNSHARED.labels(p.list_key).inc(len(tags.add.get("Unshared", [])))
        INVALID.labels(p.list_key).inc(len(tags.add.get("Invalid host", [])))
        LIST_ENTRIES.labels(p.list_key).set(len(p.entries))
        LIST_BYTES.labels(p.list_key).set(p.selection.bytes)
        PUSHES.labels(p.list_key, "ok").inc()
        PUSH_SECONDS.labels(p.list_key).observe(time.perf_counter() - p.started)

    async def _tag_edits(self, by_tag: dict[str, list[str]], *, add: bool) -> list[Outgoing]:
        """One event per tag and partition for up to TAG_EDIT_VALUES values, not one per value: a list
        at its cap may leave most of a million candidates out. Each event goes to the partition its
        values hash to (keyed by the first), so every indicator's events stay in order."""
        out: list[Outgoing] = []
        for tag, values in by_tag.items():
            for partition, group in await group_by_partition(self.broker, self.topics.indicator_events, values):
                for i in range(0, len(group), TAG_EDIT_VALUES):
                    chunk = group[i : i + TAG_EDIT_VALUES]
                    ev = IndicatorTagEditMany(values=chunk, add=[tag] if add else [], remove=[] if add else [tag])
                    out.append(Outgoing(key=chunk[0].encode(), value=encode(ev), partition=partition))
        return out

    async def _failed(self, key: str, exc: BaseException) -> None:
        PUSHES.labels(key, "failed").inc()
        async with self.pool.acquire() as conn:
            failures = await repository.failures(conn, key)
            delay = min(self.settings.backoff_max_seconds, 2.0 ** min(failures, 10))
            await repository.record_failure(conn, key, f"{type(exc).__name__}: {exc}", delay)
        log.warning("push of %s failed (retry in %.0f s): %s", key, delay, exc)
