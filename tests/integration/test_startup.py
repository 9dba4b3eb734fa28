"""A service started while Kafka and PostgreSQL do not answer (restarting, or their connections cut)
waits for them, then works: it does not exit and leave the rest to a supervisor."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from cte_common.events import IndicatorSighting, encode
from cte_common.indicators import IndicatorType
from cte_common.kafka import Outgoing, make_broker, publish_all
from cte_common.settings import CommonSettings
from cte_common.topics import Topics
from tests.conftest import open_env
from tests.support.processes import Service, free_port
from tests.support.stack import Stack
from tests.support.tcpproxy import TcpProxy


def through(url: str, port: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))


async def test_a_rule_engine_started_before_kafka_and_postgres_answer_waits_for_them(
    stack: Stack, tmp_path: Path
) -> None:
    async with open_env(stack, tmp_path) as env:
        kafka = TcpProxy(free_port(), int(stack.kafka_bootstrap.rsplit(":", 1)[1])).start()
        pg = TcpProxy(free_port(), int(urlsplit(env.database_url).port or 5432)).start()
        kafka.refuse()
        pg.refuse()
        metrics = free_port()
        engine = Service(
            "cte-rule-engine",
            env.service_env(
                # Only the bootstrap goes through the proxy; refusing it is what a restarting broker does.
                CTE_KAFKA_BOOTSTRAP=f"127.0.0.1:{kafka.listen_port}",
                CTE_DATABASE_URL=through(env.database_url, pg.listen_port),
                CTE_RULE_ENGINE_METRICS_PORT=str(metrics),
            ),
            f"http://127.0.0.1:{metrics}/metrics",  # served before it connects
            tmp_path,
        ).start()
        broker = make_broker(CommonSettings(kafka_bootstrap=stack.kafka_bootstrap), client_id="startup-test")
        try:
            await asyncio.sleep(4)
            assert engine.proc is not None
            assert engine.proc.poll() is None, engine.log_tail()
            assert "PostgreSQL unreachable at start-up" in engine.log_tail()
            pg.accept()
            deadline = time.monotonic() + 30
            while "Kafka unreachable at start-up" not in engine.log_tail():
                assert time.monotonic() < deadline, engine.log_tail()
                await asyncio.sleep(0.2)
            assert engine.proc.poll() is None, engine.log_tail()
            kafka.accept()

            now = datetime.now(UTC)
            event = IndicatorSighting(
                value="waited.startup.example", type=IndicatorType.DOMAIN, source="s", first_seen=now, last_seen=now
            )
            await broker.start()
            await publish_all(broker, Topics(env.topic_prefix).indicator_events, [Outgoing(b"k", encode(event))])
            conn = await asyncpg.connect(env.database_url)
            try:
                deadline = time.monotonic() + 60
                sql = "SELECT count(*) FROM indicators WHERE value = 'waited.startup.example'"
                while await conn.fetchval(sql) != 1:
                    assert time.monotonic() < deadline, engine.log_tail()
                    assert engine.proc.poll() is None, engine.log_tail()
                    await asyncio.sleep(0.2)
            finally:
                await conn.close()
        finally:
            await broker.stop()
            engine.stop()
            kafka.stop()
            pg.stop()
