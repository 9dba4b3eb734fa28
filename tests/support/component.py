"""The system in one process, for the component tests: no service runs on its own, the test moves it.

The ingest-api runs in process (its lifespan in the test's event loop, requests through httpx's ASGI
transport) on the real PostgreSQL and Kafka: an accepted write is on the topic, as in production. The
consumers do not run. A test moves the system on with one call per step, and each call returns once
the step's effects are committed, so a test neither sleeps nor polls:

- ``apply_pending()``: the rule-engine's batch handlers applied to what the indicator and
  configuration topics hold past what they were given before (read by offset), then its re-evaluation
  run to the end; again until nothing new arrives.
- ``sweep(now)``: one sweep of the ager as of ``now``, then ``apply_pending()``.
- ``push_lists()``: the sink's share-intent handler given the new intents, one flush of every due list
  to the fake tenant (in process too, through the sink's tenant client), then ``apply_pending()``.
- ``share_intents()``: what the share topic received since the last call, decoded.

One exception: a ``?wait=true`` request answers only once the read model shows its write, so
``answered_after_apply`` applies while the request waits, until it answers.

The handlers are the services' own objects with their own delivery semantics: positions recorded
with the writes in one transaction, replays skipped, dead letters published.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from typing import Any

import httpx
from faststream.kafka import KafkaBroker

from ager.handlers import Sweeper
from ager.settings import Settings as AgerSettings
from cte_common.consumer import Record
from cte_common.db import Pool, create_pool
from cte_common.envelope import SHARE_INTENT_RECORDS, decode_records
from cte_common.events import AnyShareIntent
from cte_common.kafka import make_broker
from cte_common.settings import CommonSettings
from cte_common.topic_range import TopicRange
from cte_common.topics import Topics
from fake_tenant.main import create_app as create_tenant_app
from fake_tenant.settings import Settings as TenantSettings
from ingest_api.main import create_app as create_api_app
from ingest_api.settings import Settings as ApiSettings
from netskope_sink.lists.handlers import Flusher, ShareIntentsHandler
from netskope_sink.settings import Settings as SinkSettings
from rule_engine.handlers import ConfigChangesHandler, Decider, IndicatorEventsHandler, Reevaluator
from rule_engine.settings import Settings as RuleEngineSettings

# The fake tenant's tokens (its settings' defaults), for tenants created through the API.
TENANT_V1_TOKEN = "fake-v1-token"
TENANT_V2_TOKEN = "fake-v2-token"
# Requests to it never leave the process: any base URL reaches the in-process app.
TENANT_URL = "http://fake-tenant.component"


class TopicFeed:
    """One topic read by offsets: each ``take`` returns what arrived since the previous one."""

    def __init__(self, reader: TopicRange) -> None:
        self.reader = reader
        self.next: dict[str, int] | None = None

    async def take(self) -> list[Record]:
        if self.next is None:
            self.next = dict.fromkeys(await self.reader.end_offsets(), 0)
        taken: list[Record] = []

        def visit(r: Any) -> None:
            taken.append(Record(self.reader.topic, r.partition, r.offset, r.key, r.value, r.timestamp))

        await self.reader.scan(self.next, visit, limit_seconds=30, what="a component test")
        for r in taken:
            self.next[str(r.partition)] = max(self.next[str(r.partition)], r.offset + 1)
        # In offset order within each partition, as a consumer's batch hands them over.
        return sorted(taken, key=lambda r: (r.partition, r.offset))


async def _in_batches(
    records: Sequence[Record], size: int, handle: Callable[[Sequence[Record]], Awaitable[None]]
) -> None:
    for start in range(0, len(records), size):
        await handle(records[start : start + size])


class System:
    """The API's client (signed in with the bootstrap client), the fake tenant's, and the steps."""

    def __init__(
        self,
        *,
        api: httpx.AsyncClient,
        api_settings: ApiSettings,
        tenant: httpx.AsyncClient,
        tenant_transport: httpx.AsyncBaseTransport,
        pool: Pool,
        broker: KafkaBroker,
        topics: Topics,
        readers: Callable[[str], TopicRange],
        rule_engine: RuleEngineSettings,
        sink: SinkSettings,
        ager: AgerSettings,
    ) -> None:
        self.api = api
        self.api_settings = api_settings  # the running API's own: a test may change a bound for a while
        self.tenant = tenant  # the fake tenant: /_sim/state and the other test routes
        self.transport = tenant_transport  # how the sink's clients reach the fake tenant
        self.pool = pool
        self.broker = broker  # the consumer services' (publishing straight onto a topic, say)
        self.topics = topics
        # The services' wake-ups: unused here, where a step runs when the test calls it.
        wake = asyncio.Event()
        self._batch = rule_engine.batch_max_records
        self._rule_engine = IndicatorEventsHandler(pool, broker, topics, Decider(pool))
        self._config_consumer = ConfigChangesHandler(pool, broker, topics, wake)
        self._reevaluator = Reevaluator(pool, broker, topics, wake, rule_engine.reevaluation_batch_size)
        self._sweeper = Sweeper(ager, pool, broker, topics)
        self._sink_intents = ShareIntentsHandler(pool, broker, topics, wake)
        self.flusher = Flusher(sink, pool, broker, topics, wake, transport=tenant_transport)
        self._indicator_events = TopicFeed(readers(topics.indicator_events))
        self._config_changes = TopicFeed(readers(topics.config_changes))
        share_topic = readers(topics.share_intents)
        self._sink_feed = TopicFeed(share_topic)
        self._observed_intents = TopicFeed(share_topic)

    async def configure(self, body: dict[str, Any]) -> dict[str, Any]:
        """A configuration (an API Source unless ``plugin`` says otherwise), created."""
        r = await self.api.post("/api/cte/configurations", json={"plugin": "api_source", **body})
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def netskope_destination(self, tenant: str) -> str:
        """A tenant on the fake tenant and a Netskope configuration of it; the configuration's name."""
        body = {"name": tenant, "tenantName": TENANT_URL, "v1Token": TENANT_V1_TOKEN, "v2Token": TENANT_V2_TOKEN}
        r = await self.api.post("/api/tenants", json=body)
        assert r.status_code == 201, r.text
        return str((await self.configure({"name": f"{tenant}-ns", "plugin": "netskope", "tenant": tenant}))["name"])

    async def share(self, body: dict[str, Any]) -> dict[str, Any]:
        r = await self.api.post("/api/cte/sharing", json=body)
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def share_to_url_list(self, name: str, destination: str, **parameters: Any) -> dict[str, Any]:
        """An API Source ``<name>-src`` shared by the rule "All" to the URL list ``name`` of ``destination``
        (created by the sink), with more of the sharing's ``parameters`` (a cap, say); the sharing."""
        await self.configure({"name": f"{name}-src", "ageAfterDays": 0})
        return await self.share(
            {
                "sourceConfiguration": f"{name}-src",
                "businessRule": "All",
                "destinationConfiguration": destination,
                "action": "url",
                "parameters": {"list": "create", "name": name, **parameters},
            }
        )

    async def sharing_status(self, sharing_id: int) -> dict[str, Any]:
        """The sharing's list status, as GET /api/cte/sharing/{id}/status answers it."""
        r = await self.api.get(f"/api/cte/sharing/{sharing_id}/status")
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def tenant_calls(self) -> int:
        """How many requests the fake tenant has logged: the ``since`` of ``tenant_calls_since``."""
        total: int = (await self.tenant.get("/_sim/requests")).json()["total"]
        return total

    async def tenant_calls_since(self, since: int) -> list[dict[str, Any]]:
        """The requests the fake tenant logged after the first ``since``, in order."""
        calls: list[dict[str, Any]] = (await self.tenant.get("/_sim/requests", params={"since": since})).json()[
            "requests"
        ]
        return calls

    async def indicator(self, value: str) -> dict[str, Any] | None:
        """The indicator as GET /api/cte/indicators/ shows it, or None."""
        r = await self.api.get("/api/cte/indicators/", params={"filters": json.dumps({"value": value})})
        assert r.status_code == 200, r.text
        found = [i for i in r.json() if i["value"] == value]
        return dict(found[0]) if found else None

    async def post_indicators(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """POST the items (accepted: on the topic), then apply them: the read model shows them."""
        r = await self.api.post("/api/cte/indicators/", json=items)
        assert r.status_code == 201, r.text
        await self.apply_pending()
        return list(r.json())

    async def apply_pending(self) -> int:
        """The rule-engine catches up; returns how many records it was given."""
        given = 0
        while True:
            events = await self._indicator_events.take()
            await _in_batches(events, self._batch, self._rule_engine.handle)
            changes = await self._config_changes.take()
            await _in_batches(changes, self._batch, self._config_consumer.handle)
            steps = 0
            while await self._reevaluator.step():
                steps += 1
            if not events and not changes and not steps:
                return given
            given += len(events) + len(changes)

    async def redeliver(self) -> int:
        """The whole indicator topic handed to the rule-engine again from its first offsets, as after a
        rebalance that lost the offset commits; returns how many records."""
        records = await TopicFeed(self._indicator_events.reader).take()
        await _in_batches(records, self._batch, self._rule_engine.handle)
        return len(records)

    async def answered_after_apply(self, request: Awaitable[httpx.Response]) -> httpx.Response:
        """The answer to a ``?wait=true`` request: the rule-engine applies what the request published,
        round after round, while the API waits for the read model to show it."""
        answer = asyncio.ensure_future(request)
        while not answer.done():
            await self.apply_pending()
            await asyncio.wait({answer}, timeout=0.01)
        return answer.result()

    async def sweep(self, now: datetime | None = None) -> int:
        """One sweep of the ager as of ``now`` (the present when None), applied; returns how many expire
        commands it published."""
        # The sweep a test asks for is the next one in time: its deletion round is due too.
        self._sweeper.next_delete_check = 0.0
        published = await self._sweeper.sweep_once(now)
        await self.apply_pending()
        return published

    async def take_intents(self) -> None:
        """The sink takes the new share intents (its lists become due), without pushing."""
        intents = await self._sink_feed.take()
        await _in_batches(intents, self._batch, self._sink_intents.handle)

    async def push_lists(self) -> int:
        """The sink takes the new share intents and pushes every due list; returns how many lists were due."""
        await self.take_intents()
        due = await self.flusher.flush_due()
        await self.apply_pending()
        return due

    async def share_intents(self) -> list[AnyShareIntent]:
        """The share intents published since the last call (single or in envelopes), in order within each
        list, decoded as the sink decodes them."""
        decoded, rejected = decode_records(await self.share_intent_records(), SHARE_INTENT_RECORDS)
        assert rejected == [], rejected
        return [d.event for d in decoded]

    async def share_intent_records(self) -> list[Record]:
        """The records of the share intents published since the last call (or the last share_intents)."""
        return await self._observed_intents.take()


@asynccontextmanager
async def running_system(
    *,
    kafka_bootstrap: str,
    database_url: str,
    topic_prefix: str,
    secrets_key: str,
    bootstrap_client: tuple[str, str],
    jwt_secret: str,
    tenant_settings: dict[str, Any] | None = None,
    sink_settings: dict[str, Any] | None = None,
) -> AsyncIterator[System]:
    """The system on one database and topic namespace, until the block ends. ``tenant_settings`` and
    ``sink_settings``: the fake tenant's and the sink's settings a module changes (lower limits, say)."""
    common: dict[str, Any] = {
        "_env_file": None,
        "kafka_bootstrap": kafka_bootstrap,
        "database_url": database_url,
        "topic_prefix": topic_prefix,
        "secrets_key": secrets_key,
        "startup_timeout_seconds": 30,
    }
    client_id, client_secret = bootstrap_client
    api_settings = ApiSettings(
        **common, bootstrap_client_id=client_id, bootstrap_client_secret=client_secret, jwt_secret=jwt_secret
    )
    async with AsyncExitStack() as stack:
        api_app = create_api_app(api_settings)
        await stack.enter_async_context(api_app.router.lifespan_context(api_app))
        api = await stack.enter_async_context(
            # The component tier applies the topic by hand, so its writes ask for the fastest
            # acknowledgement: the default (answered once the read model shows the write) would wait
            # for a rule-engine nobody runs meanwhile. Tests of the default mode clear the parameter and
            # send their writes through ``answered_after_apply``.
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=api_app),
                base_url="http://api.component",
                timeout=30,
                params={"wait": "false"},
            )
        )
        signed_in = await api.post(
            "/api/auth",
            data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret},
        )
        signed_in.raise_for_status()
        api.headers["Authorization"] = f"Bearer {signed_in.json()['access_token']}"

        tenant_app = create_tenant_app(TenantSettings(_env_file=None, **(tenant_settings or {})))
        tenant_transport = httpx.ASGITransport(app=tenant_app)
        tenant = await stack.enter_async_context(httpx.AsyncClient(transport=tenant_transport, base_url=TENANT_URL))

        # The consumer services' broker (it publishes: share intents, expiries, tags) and pool: one of
        # each here, as each service has one.
        broker = make_broker(CommonSettings(**common), client_id="component-tests")
        await broker.start()
        stack.push_async_callback(broker.stop)
        pool = await create_pool(CommonSettings(**common))
        stack.push_async_callback(pool.close)

        def reader(topic: str) -> TopicRange:
            opened = TopicRange(kafka_bootstrap, topic, "component-tests")
            stack.push_async_callback(opened.close)
            return opened

        system = System(
            api=api,
            api_settings=api_settings,
            tenant=tenant,
            tenant_transport=tenant_transport,
            pool=pool,
            broker=broker,
            topics=Topics(topic_prefix),
            readers=reader,
            rule_engine=RuleEngineSettings(**common),
            # A tenant call that fails, fails within seconds: a test reports it instead of retrying for minutes.
            sink=SinkSettings(
                **common,
                **{
                    "request_attempts": 2,
                    "backoff_max_seconds": 1,
                    "request_timeout_seconds": 5,
                    # Every push_lists pushes every changed list: a test of the pacing sets its own.
                    "file_replace_pacing": 0,
                    **(sink_settings or {}),
                },
            ),
            ager=AgerSettings(**common),
        )
        stack.push_async_callback(system.flusher.tenants.close)
        yield system
