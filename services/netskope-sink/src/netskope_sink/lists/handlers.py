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

Only our entries are touched (list_pushed says which entries the sink put on each list): a URL list
is read back before its first push, after a call whose answer was lost and every
``list_read_back_interval_seconds``; our entries it lacks are restored, the others are foreign, kept,
and counted against the cap. The tenant's limits across its URL lists are planned by priority. A list
the tenant refuses is "failed" and retried with a backoff of at most ``refused_backoff_max_seconds``
(at once when its content or configuration changes); a tenant answering 401/403 gets nothing more
until its credentials change.
Before anything is pushed, each member taken from an intent is pre-checked against Netskope's URL-list
grammar (domain.refused_by_pre_check): a member its list cannot hold is never a candidate (never sent, no
room under the cap; left out as invalid, tagged "Invalid host"). The tenant's per-entry refusals (a 400
naming entries) remain for anything that slips through.
What the cap left out, what the pre-check and what the tenant refused are read from the list state when
indicators are read (the view ``list_value_status``): nothing is written back into the read model.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from faststream.kafka import KafkaBroker

from cte_common.consumer import Record, apply_exactly_once
from cte_common.db import Connection, Pool
from cte_common.envelope import SHARE_INTENT_RECORDS, decode_records_or_park
from cte_common.metrics import CONSUMER_BATCH_SECONDS, CONSUMER_BATCH_SIZE, CONSUMER_RECORDS
from cte_common.sharing import (
    MAX_PUSH_ENTRIES,
    FileTarget,
    UrlTarget,
    cost_bytes,
    parse_target,
    split_list_key,
)
from cte_common.topics import Topics
from netskope_sink.lists import repository
from netskope_sink.lists.domain import (
    DUPLICATE_REQUEST,
    CapReserve,
    failure_kind,
    file_push_needed,
    latest_intents,
    plan_url_push,
    refused_backoff,
    rejected_entries,
    replaced_entries,
    split_left_out,
    tenant_message,
    v1_errors,
)
from netskope_sink.metrics import (
    CREDENTIALS_REJECTED,
    DEPLOYS,
    FOREIGN_ADDED,
    INTENTS,
    INVALID,
    LIST_BYTES,
    LIST_CAP_BYTES,
    LIST_ENTRIES,
    LIST_FAILED,
    LIST_FOREIGN,
    LIST_RESTORED,
    PUSH_SECONDS,
    PUSH_STEP_SECONDS,
    PUSHES,
    TENANT_LIMIT_LEFT_OUT,
    UNSHARED,
)
from netskope_sink.settings import Settings
from netskope_sink.tenant import repository as tenant_repository
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
        applied = adds = removes = 0

        async def apply(conn: Connection, fresh: list[Record]) -> None:
            nonlocal applied, adds, removes
            decoded = await decode_records_or_park(
                self.broker, self.topics.dead_letter, CONSUMER, fresh, SHARE_INTENT_RECORDS
            )
            intents = latest_intents([d.event for d in decoded])
            await repository.apply_intents(conn, intents)
            applied, adds = len(decoded), sum(i.add for i in intents)
            removes = len(intents) - adds

        fresh = await apply_exactly_once(self.pool, CONSUMER, records, apply)
        # Counted once committed: what a dashboard (or the benchmark) sees applied is in list_members.
        INTENTS.labels("add").inc(adds)
        INTENTS.labels("remove").inc(removes)
        CONSUMER_RECORDS.labels(CONSUMER, "applied").inc(applied)
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
    fit: int | None = None  # candidates its own cap keeps, when the tenant's limits were planned across lists
    tenant_bound: bool = False  # the tenant's limits, not the cap, ended the list
    again: bool = False  # pushed within what other lists still hold: push again once they gave it up


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
        self.reserve = CapReserve(settings.cap_reserve_seconds, settings.cap_reserve_max_share)
        self.shown_failed: set[str] = set()
        self.shown_rejected: set[str] = set()
        # ``transport``: how tenants are reached; None is the network (see TenantClients).
        self.tenants = TenantClients(
            settings, pool, self.limiters, timeout=settings.request_timeout_seconds, transport=transport
        )

    async def run_forever(self) -> None:
        while True:
            # Cleared before the round looks for due lists, not after it: intents applied while it runs
            # (after it looked) wake the next round instead of waiting for the interval.
            self.wake.clear()
            pushed = 0
            wait = self.settings.flush_interval_seconds
            try:
                _, pushed = await self._flush_round()
                if not pushed:
                    # A list that changed but waits (a backoff, a pacing, a reserve's settling) is pushed
                    # when its wait ends, not at the next interval: no intent may come to wake the flusher.
                    async with self.pool.acquire() as conn:
                        wait = min(wait, await repository.next_attempt_in(conn) or wait)
            except Exception:  # a failed round is retried; nothing was recorded for the failed lists
                log.exception("flush round failed")
            # After a round that pushed, the next starts at once: lists that changed meanwhile are pushed
            # by the process holding their lock, though the intents may have woken another replica (whose
            # flusher found the list locked). No wait to gather a burst after a wake either: what arrives
            # while a push runs is gathered by then, and a lone change is pushed at once.
            if pushed:
                # The round's tenant answers and request bodies (up to a whole list each) sit in httpx's
                # reference cycles, so only a collection frees them: the young generations' now, where
                # they are, rather than when the batch thresholds (settle_heap) come round.
                gc.collect(1)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=wait)

    async def flush_due(self) -> int:
        """Push every due list this process can lock; returns how many lists were due."""
        due, _ = await self._flush_round()
        return due

    async def _flush_round(self) -> tuple[int, int]:
        """(lists due, lists this process locked and pushed or tried to)."""
        async with self.pool.acquire() as conn:
            await repository.schedule_read_backs(conn, self.settings.list_read_back_interval_seconds)
            due = await repository.due_lists(conn, 100)
        # A tenant's URL lists and its file hash lists are two streams, pushed side by side (and so are
        # tenants): nothing is shared between them but the credentials. They use different APIs with
        # budgets of their own (v2, v1), and the tenant's entry limits are planned across its URL lists
        # only, which stay one after another. A file hash list is replaced whole at each push (the only
        # call v1 has): one after the other, the URL lists' appends would wait for it every round.
        streams: dict[tuple[str, str], list[str]] = {}
        for key in due:
            tenant, action, _ = split_list_key(key)
            streams.setdefault((tenant, action), []).append(key)
        slots = asyncio.Semaphore(self.settings.flush_concurrency)

        async def in_slot(tenant: str, keys: list[str]) -> int:
            async with slots:
                return await self._flush_stream(tenant, keys)

        # Every stream runs to its end even if another fails (it records its own lists' failures).
        results = await asyncio.gather(
            *(in_slot(tenant, keys) for (tenant, _), keys in streams.items()), return_exceptions=True
        )
        failed = next((r for r in results if isinstance(r, BaseException)), None)
        if failed is not None:
            raise failed
        await self._show_stuck()
        return len(due), sum(r for r in results if isinstance(r, int))

    async def _show_stuck(self) -> None:
        """The failed lists and rejected tenants as gauges, from the stored state: a restarted sink, or a
        replica that pushed none of them, shows them too."""
        async with self.pool.acquire() as conn:
            failed, rejected = await repository.stuck(conn)
        for key in self.shown_failed - failed:
            LIST_FAILED.labels(key).set(0)
        for tenant in self.shown_rejected - rejected:
            CREDENTIALS_REJECTED.labels(tenant).set(0)
        for key in failed:
            LIST_FAILED.labels(key).set(1)
        for tenant in rejected:
            CREDENTIALS_REJECTED.labels(tenant).set(1)
        self.shown_failed, self.shown_rejected = failed, rejected

    async def _flush_stream(self, tenant: str, keys: list[str]) -> int:
        """Push a stream (the tenant's due lists of one kind) one after another, those this process can
        lock; returns how many it locked."""
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
                        with _step("deploy"):
                            await needs_deploy.deploy()
                        DEPLOYS.labels(tenant, "ok").inc()
                    except Exception as exc:
                        DEPLOYS.labels(tenant, "failed").inc()
                        for p in pushed:
                            await self._failed(p.list_key, exc)
                        return len(locked)
                    for p in pushed:
                        await self._record(conn, p)
            finally:
                for key in locked:
                    await repository.forget_push(conn, key)
                    await repository.unlock_list(conn, key)
        return len(locked)

    async def _push(self, conn: Connection, tenant: str, key: str) -> tuple[Pushed, TenantClient]:
        started = time.perf_counter()
        _, action, name = split_list_key(key)
        with _step("start"):
            version = await repository.list_version(conn, key)
            dest = await repository.destination(conn, tenant, key)
            if dest is None:
                raise TenantError(None, f"no tenant named '{tenant}'")
            params = dest["parameters"] or ({"list": name} if action == "url" else {"file_list": name})
            target = parse_target(action, params)
            client = self.tenants.get(TenantConnection.from_row(dest))
            # A changing call whose answer was lost (a crash, a timeout) may have been applied or not:
            # until a push is recorded, what the tenant holds is unknown. A URL list is then read back; a
            # file hash list (which cannot be read) is rewritten whole.
            uncertain = await repository.mark_uncertain(conn, key)
        if isinstance(target, UrlTarget):
            pushed = await self._push_url(conn, client, tenant, key, name, target, version, uncertain, started)
        else:
            prepared = await repository.prepare_push(
                conn,
                key,
                cap_bytes=target.cap_bytes,
                max_entries=MAX_PUSH_ENTRIES,
                url_list=False,
                uncertain=uncertain,
            )
            await self._push_file(conn, client, key, name, target, prepared, uncertain)
            pushed = Pushed(key, version, prepared, uncertain, {}, target.cap_bytes, started)
        LIST_CAP_BYTES.labels(key).set(target.cap_bytes)
        return pushed, client

    async def _read_back(
        self, conn: Connection, client: TenantClient, tenant: str, key: str, target: UrlTarget, uncertain: bool
    ) -> tuple[dict[str, int], list[str] | None]:
        """Every URL list of the tenant with its entries (``field=id,name,data``): this list's entries
        against ours (our missing entries forgotten, so the push restores them; the rest foreign), and
        the entries of the tenant's other lists for its limits. Returns name -> id and this list's
        entries (None: no such list)."""
        listing = await client.url_lists_with_data()
        ours = await repository.tenant_usage(conn, tenant)
        our_names = {split_list_key(r["list_key"])[2] for r in ours.lists}
        other_url = sum(len(lst.urls) for n, lst in listing.items() if n not in our_names)
        other_regex = sum(len(lst.urls) for n, lst in listing.items() if n not in our_names and lst.type == "regex")
        await repository.record_other_lists(conn, tenant, other_url, other_regex)
        name = split_list_key(key)[2]
        current = listing.get(name)
        entries = list(current.urls) if current else []
        found = await repository.reconcile(
            conn, key, entries, uncertain=uncertain, placeholder=target.default_url, costs=cost_bytes
        )
        LIST_FOREIGN.labels(key).set(len(found.foreign))
        FOREIGN_ADDED.labels(key).inc(found.foreign_added)
        LIST_RESTORED.labels(key).inc(found.missing)
        if found.missing or found.foreign_added:
            log.info(
                "read back %s: %d entries of ours missing (restored), %d foreign entries (%d new)",
                key,
                found.missing,
                len(found.foreign),
                found.foreign_added,
            )
        return {n: lst.id for n, lst in listing.items()}, (entries if current else None)

    async def _entry_limit(
        self,
        conn: Connection,
        tenant: str,
        key: str,
        target: UrlTarget,
        facts: repository.ListFacts,
        on_tenant: Collection[str],
    ) -> tuple[int, int | None, bool, bool]:
        """How many entries this list may hold now: (limit, fit, tenant_bound, again). The tenant allows
        ``tenant_url_entries_max`` URL-list entries across its lists (``tenant_regex_entries_max`` in
        regex lists); what other lists and foreign entries hold is taken off, and when several of our
        lists compete the rest is planned by priority across them (repository.tenant_quotas)."""
        s = self.settings
        own = max(0, MAX_PUSH_ENTRIES - facts.foreign_entries)
        usage = await repository.tenant_usage(conn, tenant)
        foreign = sum(r["foreign_entries"] for r in usage.lists)
        # A list of ours left without members holds the default placeholder on the tenant, which counts
        # like any entry. (One with members is in the plan below: its entries replace the placeholder.)
        placeholders = [
            r
            for r in usage.lists
            if r["list_key"] != key
            and not r["has_members"]
            and r["entries"] == 0
            and r["foreign_entries"] == 0
            and split_list_key(r["list_key"])[2] in on_tenant
        ]
        url_budget = s.tenant_url_entries_max - usage.other_url - foreign - len(placeholders)
        regex_budget = (
            s.tenant_regex_entries_max
            - usage.other_regex
            - sum(1 for r in placeholders if _url_target(r).url_list_type == "regex")
        )
        keys, caps, limits, regex = [], [], [], []
        for r in usage.lists:
            if not r["has_members"] and r["list_key"] != key:
                continue
            t = _url_target(r)
            if t.url_list_type == "regex":
                regex_budget -= r["foreign_entries"]
            keys.append(r["list_key"])
            caps.append(t.cap_bytes - r["foreign_bytes"])
            limits.append(max(0, MAX_PUSH_ENTRIES - r["foreign_entries"]))
            regex.append(t.url_list_type == "regex")
        is_regex = target.url_list_type == "regex"
        budget = min(url_budget, regex_budget) if is_regex else url_budget
        if len(keys) <= 1:
            limit = max(0, min(own, budget))
            return limit, None, limit < own, False
        quotas = await repository.tenant_quotas(conn, keys, caps, limits, regex, url_budget, regex_budget)
        held = {r["list_key"]: r["entries"] for r in usage.lists}
        # Lists holding more than their share give it up first (pushed again now); this one takes
        # its share only as far as the others' current holdings leave room, and is pushed again later.
        over = [k for k in keys if k != key and held.get(k, 0) > quotas[k][1]]
        if over:
            await repository.make_due(conn, over)
        others = sum(held.get(k, 0) for k in keys if k != key)
        fit, quota = quotas[key]
        room = max(0, url_budget - others)
        limit = min(quota, room, own)
        return limit, fit, limit < own, limit < quota

    async def _push_url(
        self,
        conn: Connection,
        client: TenantClient,
        tenant: str,
        key: str,
        name: str,
        target: UrlTarget,
        version: int,
        uncertain: bool,
        started: float,
    ) -> Pushed:
        s = self.settings
        read = uncertain or await repository.read_back_due(conn, key, s.list_read_back_interval_seconds)
        tenant_holds: list[str] | None = None
        if read:
            with _step("read back"):
                lists, tenant_holds = await self._read_back(conn, client, tenant, key, target, uncertain)
        else:
            with _step("list names"):
                lists = await client.url_lists()
        with _step("limits"):
            facts = await repository.list_facts(conn, key)
            limit, fit, tenant_bound, again = await self._entry_limit(conn, tenant, key, target, facts, lists)
        cap = max(1, target.cap_bytes - facts.foreign_bytes)  # foreign entries count against the cap
        with _step("prepare"):
            prepared = await repository.prepare_push(
                conn,
                key,
                cap_bytes=cap,
                max_entries=limit,
                url_list=True,
                uncertain=False,
                whole=read,
                reserve=self.reserve,
            )
        pushed = Pushed(key, version, prepared, False, {}, cap, started, fit, tenant_bound, again)
        mode = plan_url_push(exists=name in lists, appends=prepared.appends, removes=prepared.removes)
        if mode == "none" or (mode == "create" and not prepared.appends and again):
            return pushed  # (a new list waits, placeholder and all, until other lists gave up their room)
        placeholder = target.default_url
        if mode == "append" and tenant_holds is not None and placeholder in tenant_holds:
            mode = "replace"  # the placeholder we left in an empty list goes once entries of ours come
        if mode == "replace" and tenant_holds is None:
            with _step("read list"):
                tenant_holds = await client.url_list_entries(lists[name])
        await repository.claim(conn, key)
        changes = await repository.push_entries(conn, key) if mode == "replace" else None
        for attempt in range(2):
            with _step("body"):
                if changes is not None:
                    assert tenant_holds is not None
                    # Built here from the list as just read: its entries are in memory already, and
                    # the change is small; PostgreSQL would have to be sent them all.
                    kept = replaced_entries(
                        tenant_holds,
                        removes=changes.removes,
                        appends=changes.appends,
                        exclude={*pushed.refused, placeholder},
                    )
                    urls = orjson.dumps(kept) if kept else b""
                else:
                    items = await repository.entries_text(
                        conn, key, whole=False, uncertain=False, exclude=list(pushed.refused), json_items=True
                    )
                    urls = b"[" + items.encode() + b"]" if items else b""
            if not urls:
                if mode == "append":
                    return pushed  # every new entry was refused
                urls = orjson.dumps([placeholder])  # an empty list holds the default placeholder
                # Read the list back before the next push: that push takes the placeholder out.
                await repository.forget_read_back(conn, key)
            if len(urls) > s.upload_max_bytes:
                raise TenantError(413, f"a call of {len(urls)} bytes passes the tenant's upload limit")
            with _step(mode):
                if mode == "create":
                    response = await client.create_url_list(name, urls, target.url_list_type)
                else:
                    response = await client.change_url_list(lists[name], mode, urls, target.url_list_type)
            if response.status_code in (200, 201):
                return pushed
            body = _json_or_none(response)
            bad = rejected_entries(body) if response.status_code == 400 else []
            if not bad or attempt == 1:
                raise TenantError(response.status_code, tenant_message(body, response.text))
            # The tenant refuses the whole call for any bad entry: drop those and try once more.
            pushed.refused.update(dict(bad))
        return pushed

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
        if not file_push_needed(appends=prepared.appends, removes=prepared.removes, holds_any=prepared.holds_any):
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
        _, by_tenant = split_left_out(p.prepared.left_out, p.prepared.kept, p.fit, p.tenant_bound)
        recording = time.perf_counter()
        async with conn.transaction():
            entries = await repository.record_push(
                conn,
                p.list_key,
                version=p.version,
                prepared=p.prepared,
                uncertain=p.uncertain,
                refused=p.refused,
                cap=p.cap,
                next_push_in_seconds=self._next_push_in(p),
                left_out_tenant=by_tenant,
                settle_in_seconds=self.settings.cap_settle_seconds,
            )
            await repository.accept_credentials(conn, split_list_key(p.list_key)[0])
            if p.again:
                await repository.make_due(conn, [p.list_key], self.settings.flush_interval_seconds)
        PUSH_STEP_SECONDS.labels("record").observe(time.perf_counter() - recording)
        UNSHARED.labels(p.list_key).inc(max(0, p.prepared.left_out - p.prepared.left_out_before))
        INVALID.labels(p.list_key).inc(len(p.refused))
        LIST_ENTRIES.labels(p.list_key).set(entries)
        LIST_BYTES.labels(p.list_key).set(p.prepared.bytes)
        LIST_FAILED.labels(p.list_key).set(0)
        TENANT_LIMIT_LEFT_OUT.labels(p.list_key).set(by_tenant)
        CREDENTIALS_REJECTED.labels(split_list_key(p.list_key)[0]).set(0)
        PUSHES.labels(p.list_key, "ok").inc()
        PUSH_SECONDS.labels(p.list_key).observe(time.perf_counter() - p.started)

    def _next_push_in(self, p: Pushed) -> float:
        """How long the list waits before its next push: a file hash list, rewritten whole at each push,
        in proportion to what this one took (settings.file_replace_pacing)."""
        wait = self.settings.push_min_interval_seconds
        if split_list_key(p.list_key)[1] == "file":
            wait = max(wait, self.settings.file_replace_pacing * (time.perf_counter() - p.started))
        return wait

    async def _failed(self, key: str, exc: BaseException) -> None:
        """A failed push: 401/403 stop every call to the tenant until its credentials change; another
        refusal puts the list in state "failed" with the tenant's message, retried with a backoff up
        to ``refused_backoff_max_seconds``; anything else is retried with the transient backoff."""
        s = self.settings
        PUSHES.labels(key, "failed").inc()
        status = exc.status if isinstance(exc, TenantError) else None
        kind = failure_kind(status)
        message = exc.message if isinstance(exc, TenantError) else f"{type(exc).__name__}: {exc}"
        async with self.pool.acquire() as conn:
            failures = await repository.failures(conn, key)
            if kind == "credentials":
                tenant = split_list_key(key)[0]
                delay = 0.0  # due again as soon as the credentials change
                await tenant_repository.reject_credentials(conn, tenant, f"HTTP {status}: {message}")
                CREDENTIALS_REJECTED.labels(tenant).set(1)
            elif kind == "refused":
                delay = refused_backoff(failures, s.refused_backoff_initial_seconds, s.refused_backoff_max_seconds)
                LIST_FAILED.labels(key).set(1)
            else:
                delay = min(s.backoff_max_seconds, 2.0 ** min(failures, 10))
            detail = message if kind != "transient" else f"{type(exc).__name__}: {exc}"
            await repository.record_failure(conn, key, detail, delay, refused=kind == "refused")
        # The exception's type too: a timeout's text is empty. Where anything but the tenant's answer
        # failed (a statement, the code), the traceback.
        log.warning(
            "push of %s failed (%s, retry in %.0f s): %s",
            key,
            kind,
            delay,
            detail,
            exc_info=None if isinstance(exc, TenantError) else exc,
        )


@contextlib.contextmanager
def _step(name: str) -> Iterator[None]:
    """Time a step of a push (cte_sink_push_step_seconds): where a push's time goes."""
    started = time.perf_counter()
    try:
        yield
    finally:
        PUSH_STEP_SECONDS.labels(name).observe(time.perf_counter() - started)


def _url_target(row: Mapping[str, Any]) -> UrlTarget:
    """The URL-list target of one of ``repository.tenant_usage``'s lists."""
    target = parse_target("url", row["parameters"] or {"list": split_list_key(row["list_key"])[2]})
    assert isinstance(target, UrlTarget)
    return target


def _json_or_none(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return None
