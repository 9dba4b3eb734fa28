"""The rule-engine's consumers and its re-evaluation worker.

Indicator events (topic ``<prefix>.indicator-events.v1``), batch consumer, group ``rule-engine``:
- at-least-once delivery, exactly-once effects: positions are recorded with the writes in one
  PostgreSQL transaction (cte_common.consumer); offsets are committed to Kafka after that commit.
- idempotent: a replayed record is below the recorded position and is skipped.
- undecodable records go to the dead-letter topic with the reason.
- in the same transaction, every sharing that concerns a changed indicator is decided again, and
  each change of decision is published as a share intent (keyed by list; a batch's intents of one list
  in envelopes, cte_common.envelope) before the commit. A crash after the publish and before the commit
  replays the batch and publishes the same intents again; the sink applies intents idempotently.

Configuration changes (``<prefix>.config-changes.v1``), batch consumer, group ``rule-engine-config``:
a change of a rule, sharing, allow-list entry or configuration requests a re-evaluation (a row in
``reevaluations``, written with the consumer's positions: exactly once per change). At-least-once
delivery with exactly-once effects, as above; undecodable records go to the dead-letter topic with the
reason.

The re-evaluation worker walks every stored indicator in value order, in batches, deciding each
sharing again under the indicators' row locks; its cursor is committed with each batch, so it resumes
after a restart, and a newer request supersedes an older one (it covers everything anyway). Then it
removes the decisions the walk cannot reach: of deleted sharings, and of indicators deleted while their
sharing's rule was muted (once it is no longer muted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from uuid import UUID, uuid4

from faststream.kafka import KafkaBroker

from cte_common.catalog_lock_repository import lock_catalog_for_change, lock_catalog_for_decisions
from cte_common.consumer import Record, apply_exactly_once, decode_or_park
from cte_common.db import Connection, Pool
from cte_common.envelope import INDICATOR_RECORDS, decode_records_or_park, publish_in_envelopes
from cte_common.events import (
    CATALOG_RESOURCES,
    CONFIG_CHANGE_ADAPTER,
    AnyIndicatorEvent,
    ShareIntentRecord,
    SightingEvent,
    encode_share_intent,
)
from cte_common.keyed_events import is_keyed
from cte_common.metrics import CONSUMER_BATCH_SECONDS, CONSUMER_BATCH_SIZE, CONSUMER_RECORDS
from cte_common.sharing import AllowList, Evaluator
from cte_common.topics import Topics
from rule_engine import repository
from rule_engine.domain import Catalog, DecisionChanges, IndicatorState, apply_events, decide_batch, in_order
from rule_engine.metrics import (
    ALLOW_LIST_HITS,
    DECISIONS,
    EXPIRY_APPLY_LAG,
    INDICATORS_WRITTEN,
    INTENTS_REPUBLISHED,
    KEYED_REPEATS,
    MERGES,
    READ_MODEL_WRITE_SECONDS,
    REEVALUATED,
    REEVALUATION_PENDING,
    SHARE_INTENTS,
)

log = logging.getLogger(__name__)

CONSUMER = "rule-engine.indicators"
# Events applied together (one load, merge, write and decision round) within a batch's transaction.
SLICE_EVENTS = 5000
CONFIG_CONSUMER = "rule-engine.config"


class Decider:
    """The current catalog (sharings, rules, allow-list) and an evaluator compiled for it.

    Reloaded whenever the catalog's fingerprint changes, checked in every batch. A deciding
    transaction takes the catalog lock shared first thing (before any row lock), so the catalog it reads
    cannot change before it commits (cte_common.catalog_lock_repository).

    Its share intents are published before its commit, under the indicators' row locks, so one value's
    intents reach the sink in the order of its decisions. Should the transaction then roll back or die,
    the sink has applied intents the decisions do not hold, and a retry decides against the decisions as
    committed, so it may publish nothing for them (the catalog or the batch changed in between). So the
    (list, value) pairs are first written to ``intent_journal`` on a connection of their own, and the
    transaction deletes them as it commits; ``republish_dead_intents`` publishes the committed decision
    for any left behind.
    """

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.catalog = Catalog()
        self.evaluator = Evaluator()

    async def refresh(self, conn: Connection) -> None:
        if await repository.catalog_fingerprint(conn) != self.catalog.fingerprint:
            self.catalog = await repository.load_catalog(conn)
            self.evaluator = Evaluator(AllowList(self.catalog.allow))

    async def decide(
        self,
        conn: Connection,
        broker: KafkaBroker,
        topics: Topics,
        states: dict[str, IndicatorState | object],
        before: dict[str, IndicatorState],
        *,
        count_allow_hits: bool,
    ) -> DecisionChanges:
        """Decide, record the decisions and publish the intents: all inside the caller's transaction."""
        if not self.catalog.sharings and not self.catalog.orphan_lists:
            return DecisionChanges()
        announced = await repository.load_decisions(conn, list(states))
        changes = decide_batch(
            self.catalog,
            self.evaluator,
            states,  # type: ignore[arg-type]
            announced,
            datetime.now(UTC),
            before=before,
            count_allow_hits=count_allow_hits,
        )
        if changes.intents:
            attempt = uuid4()
            async with self.pool.acquire() as journal:
                await repository.journal_intents(journal, attempt, changes.intents)
            # The decisions are written while the intents are sent and acknowledged, so the database's
            # and the broker's round trips overlap: the commit, after both, is what makes either count.
            # The journal's rows are committed by now, so the transaction's delete sees them.
            await _all_of(_record(conn, changes, attempt), publish_intents(broker, topics, changes.intents))
        else:
            await repository.save_decisions(conn, changes)
        for (sharing_id, outcome), n in changes.outcomes.items():
            DECISIONS.labels(str(sharing_id), outcome).inc(n)
        for entry_id, n in changes.allow_hits.items():
            ALLOW_LIST_HITS.labels(str(entry_id)).inc(n)
        return changes


async def _record(conn: Connection, changes: DecisionChanges, attempt: UUID) -> None:
    await repository.forget_attempt(conn, attempt)
    await repository.save_decisions(conn, changes)


async def _all_of(*steps: Awaitable[None]) -> None:
    """Run ``steps`` concurrently until every one has ended, then raise the first failure, if any: none is
    left running on the caller's connection when its transaction rolls back, and a publish that was
    started is not cut off half-way (its intents are journalled, see Decider)."""
    for outcome in await asyncio.gather(*steps, return_exceptions=True):
        if isinstance(outcome, BaseException):
            raise outcome


async def publish_intents(broker: KafkaBroker, topics: Topics, intents: Sequence[ShareIntentRecord]) -> None:
    # One record per list (more past the envelope's size bound), in the decisions' order, keyed by the
    # list and given the partition the key hashes to (cte_common.envelope): a batch's intents go to a
    # few lists, and a record each cost the producer and the sink's consumer far more than their JSON.
    await publish_in_envelopes(
        broker,
        topics.share_intents,
        [(i.list_key, encode_share_intent(i)) for i in intents],
        one_key_per_record=True,
    )
    adds = sum(1 for i in intents if i.add)
    if adds:
        SHARE_INTENTS.labels("add").inc(adds)
    if len(intents) > adds:
        SHARE_INTENTS.labels("remove").inc(len(intents) - adds)


class IndicatorEventsHandler:
    def __init__(self, pool: Pool, broker: KafkaBroker, topics: Topics, decider: Decider) -> None:
        self.pool = pool
        self.broker = broker
        self.topics = topics
        self.decider = decider

    async def handle(self, records: Sequence[Record]) -> None:
        started = time.perf_counter()
        applied = 0

        async def apply(conn: Connection, fresh: list[Record]) -> None:
            nonlocal applied
            await lock_catalog_for_decisions(conn)
            decoded = await decode_records_or_park(
                self.broker, self.topics.dead_letter, CONSUMER, fresh, INDICATOR_RECORDS
            )
            applied = len(decoded)
            # Sightings of a request sent with an Idempotency-Key are applied once: a retry of the
            # request carries the same event ids (cte_common.keyed_events).
            keyed = [d.event.event_id for d in decoded if is_keyed(d.event.event_id)]
            if keyed:
                first = await repository.first_applications(conn, keyed)
                if len(first) < len(keyed):
                    KEYED_REPEATS.inc(len(keyed) - len(first))
                    decoded = [d for d in decoded if not is_keyed(d.event.event_id) or _take(first, d.event.event_id)]
            # A tag edit of many indicators expands into one event per value: applied in slices, in
            # order, within the one transaction (each slice sees what the slices before it wrote), and
            # expanded only when its slice comes, so memory stays flat whatever the batch holds.
            events: list[AnyIndicatorEvent | SightingEvent] = []
            for d in decoded:
                ev = d.event
                if ev.kind == "tags-many":  # not isinstance: see domain.apply_events
                    for start in range(0, len(ev.values), SLICE_EVENTS):
                        events.extend(ev.each(start, start + SLICE_EVENTS))
                        if len(events) >= SLICE_EVENTS:
                            await self._apply(conn, events)
                            events = []
                else:
                    events.append(ev)
                    if len(events) >= SLICE_EVENTS:
                        await self._apply(conn, events)
                        events = []
            if events:
                await self._apply(conn, events)

        fresh = await apply_exactly_once(self.pool, CONSUMER, records, apply)
        # Counted once committed: what a dashboard (or the benchmark) sees applied is in the read model.
        CONSUMER_RECORDS.labels(CONSUMER, "applied").inc(applied)
        CONSUMER_RECORDS.labels(CONSUMER, "duplicate").inc(len(records) - len(fresh))
        CONSUMER_BATCH_SIZE.labels(CONSUMER).observe(len(records))
        CONSUMER_BATCH_SECONDS.labels(CONSUMER).observe(time.perf_counter() - started)

    async def _apply(self, conn: Connection, events: list[AnyIndicatorEvent | SightingEvent]) -> None:
        write_started = time.perf_counter()
        values = sorted({e.value for e in events})
        states = await repository.load_states(conn, values)
        # Written, decided and published in value order, the order of every index keyed by value here
        # and in the sink's tables: consecutive insertions and probes share the pages of their descent
        # (bench/write_order.py: 3.4 to 4.8 µs less of PostgreSQL's CPU per new indicator, merge,
        # decisions and the sink's intents together).
        changed = in_order(apply_events(states, events), values)
        await repository.save_changes(conn, changed, states)
        now = datetime.now(UTC)
        for ev in events:
            # An expiry that took effect (it made the indicator inactive in this batch).
            if ev.kind == "expire":
                state = changed.get(ev.value)
                if isinstance(state, IndicatorState) and not state.active:
                    EXPIRY_APPLY_LAG.observe(max((now - ev.due_at).total_seconds(), 0.0))
        READ_MODEL_WRITE_SECONDS.observe(time.perf_counter() - write_started)
        INDICATORS_WRITTEN.inc(len(changed))
        MERGES.inc(sum(1 for v in changed if v in states))
        if changed:
            await self.decider.refresh(conn)
            await self.decider.decide(conn, self.broker, self.topics, dict(changed), states, count_allow_hits=True)


def _take(first: set[UUID], event_id: UUID) -> bool:
    """Whether ``event_id`` is in ``first``, taking it out: a request and its retry may both be in a
    batch, and only the first of the two is applied."""
    if event_id in first:
        first.discard(event_id)
        return True
    return False


class ConfigChangesHandler:
    def __init__(self, pool: Pool, broker: KafkaBroker, topics: Topics, wake: asyncio.Event) -> None:
        self.pool = pool
        self.broker = broker
        self.topics = topics
        self.wake = wake

    async def handle(self, records: Sequence[Record]) -> None:
        requested = False

        async def apply(conn: Connection, fresh: list[Record]) -> None:
            nonlocal requested
            decoded = await decode_or_park(
                self.broker, self.topics.dead_letter, CONFIG_CONSUMER, fresh, CONFIG_CHANGE_ADAPTER
            )
            reasons = sorted(
                {f"{d.event.resource}:{d.event.key}" for d in decoded if d.event.resource in CATALOG_RESOURCES}
            )
            if reasons:
                # One request covers the whole batch: a re-evaluation decides every sharing anyway.
                await repository.request_reevaluation(conn, ", ".join(reasons)[:1000])
                requested = True

        await apply_exactly_once(self.pool, CONFIG_CONSUMER, records, apply)
        if requested:
            self.wake.set()


class Reevaluator:
    """Works through re-evaluation requests; see the module docstring."""

    def __init__(
        self,
        pool: Pool,
        broker: KafkaBroker,
        topics: Topics,
        wake: asyncio.Event,
        batch_size: int = 2000,
        republish_after_seconds: float = 120.0,
    ) -> None:
        self.pool = pool
        self.broker = broker
        self.topics = topics
        self.wake = wake
        self.batch_size = batch_size
        self.republish_after_seconds = republish_after_seconds
        self.decider = Decider(pool)
        self.unmute_checked = datetime.now(UTC)

    async def run_forever(self) -> None:
        while True:
            try:
                busy = await self.step()
                if not busy:
                    await republish_dead_intents(self.pool, self.broker, self.topics, self.republish_after_seconds)
            except Exception:  # a failed step is retried; its transaction rolled back
                log.exception("re-evaluation step failed; retrying")
                busy = False
                await asyncio.sleep(1)
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=1.0)
                self.wake.clear()

    async def step(self) -> bool:
        """One batch of the current request; False when there is nothing to do."""
        async with self.pool.acquire() as conn, conn.transaction():
            await lock_catalog_for_decisions(conn)
            await self._request_for_unmuted_rules(conn)
            REEVALUATION_PENDING.set(await repository.pending_jobs(conn))
            job = await repository.current_job(conn)
            if job is None:
                return False
            await self.decider.refresh(conn)
            values = await repository.next_values(conn, job["after_value"], self.batch_size)
            if not values:
                # Decided by the same catalog and no earlier than this: every value it returns is
                # decided again to a removal, so this loop ends.
                muted = self.decider.catalog.muted_sharings(datetime.now(UTC))
                values = await repository.dangling_values(conn, muted, self.batch_size)
                if not values:
                    await repository.finish_job(conn, job["id"])
                    log.info("re-evaluation %s finished", job["id"])
                    return True
                await self._decide(conn, values)
                return True
            await self._decide(conn, values)
            await repository.advance_job(conn, job["id"], values[-1], len(values))
            REEVALUATED.inc(len(values))
            return True

    async def _decide(self, conn: Connection, values: list[str]) -> None:
        states = await repository.load_states(conn, values, lock=True)  # serial with the consumer's merges
        current: dict[str, IndicatorState | object] = {v: states.get(v) for v in values}
        await self.decider.decide(conn, self.broker, self.topics, current, states, count_allow_hits=False)

    async def _request_for_unmuted_rules(self, conn: Connection) -> None:
        now = datetime.now(UTC)
        unmuted = await repository.rules_unmuted_since(conn, self.unmute_checked)
        self.unmute_checked = now
        if unmuted:
            await repository.request_reevaluation(conn, "unmuted: " + ", ".join(unmuted))


async def republish_dead_intents(pool: Pool, broker: KafkaBroker, topics: Topics, older_than_seconds: float) -> int:
    """Publish the committed decision of every (list, value) whose intents were published by a deciding
    transaction that never committed; the number of intents published.

    Only journal rows older than ``older_than_seconds`` start it: a producer whose publish failed may
    still deliver its records until its request timeout (30 s), and what is published here must come
    after them. Then it takes the catalog lock exclusive: every decision in flight ends first and none
    starts until this commits, so every row left is dead, the decisions read are the committed ones, and
    nothing is published between them and these intents. Exactly once in effect: should this fail or
    die after its publish, the rows stay and the same decisions are published again, which the sink
    applies idempotently.
    """
    async with pool.acquire() as conn, conn.transaction():
        if not await repository.journal_has_stale(conn, older_than_seconds):
            return 0
        await lock_catalog_for_change(conn)
        pairs = await repository.take_journal(conn)
        intents = await repository.committed_intents(conn, pairs)
        if intents:
            await publish_intents(broker, topics, intents)
            INTENTS_REPUBLISHED.inc(len(intents))
            log.warning("published the committed decisions of %d intents never committed", len(intents))
        return len(intents)
