"""Abuse of the API's limits and secrets, against the real processes:

- a body over the size limit is refused with a 413 however it is sent, also chunked (no Content-Length);
  a chunked body within the limit is served as usual;
- a batch over ``max_batch_items`` is refused whole with a 413 naming the field and the reason;
- NUL characters (which PostgreSQL text cannot hold) are a 400 wherever they are: body, query, path, form;
- no plaintext secret is stored anywhere in the database: client secrets are hashed, tenant tokens
  encrypted; no GET of any endpoint (from the OpenAPI list) returns a tenant token, and no configuration
  event on Kafka carries one.
"""

from __future__ import annotations

import json
import secrets
import socket
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from cte_common.topics import CONFIG_CHANGES, Topics
from tests.conftest import BOOTSTRAP_SECRET, Env, Running
from tests.integration.test_api_first_path import token

SOURCE = "abuse-src"
MAX_BODY = 32 * 1024 * 1024  # the API's default CTE_MAX_BODY_BYTES
MAX_BATCH = 10_000  # the API's default CTE_MAX_BATCH_ITEMS


@pytest.fixture(scope="module")
def api(services: Running) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=services.api_url, headers={"Authorization": f"Bearer {token(services.api_url)}"}, timeout=60
    ) as client:
        r = client.post("/api/cte/configurations", json={"name": SOURCE, "plugin": "api_source", "ageAfterDays": 0})
        assert r.status_code in (201, 409), r.text
        yield client


def stored(api: httpx.Client, value: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = api.get(
        "/api/cte/indicators/", params={"filters": json.dumps({"value": value})}
    ).json()
    return found


def chunks(data: bytes, size: int = 256 * 1024) -> Iterator[bytes]:
    """A generator body: httpx sends it chunked, without a Content-Length."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_a_chunked_body_over_the_limit_is_refused(api: httpx.Client) -> None:
    item = {"value": "chunked-over.abuse.example", "type": "domain", "source": SOURCE}
    body = json.dumps([item]).encode()
    padded = body[:-1] + b" " * (MAX_BODY + 1 - len(body)) + b"]"  # valid JSON, one byte too many
    r = api.post("/api/cte/indicators/", content=chunks(padded), headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers
    assert r.status_code == 413, r.text
    assert r.json() == {"detail": f"body: larger than {MAX_BODY} bytes"}
    assert stored(api, item["value"]) == []


def test_a_chunked_body_within_the_limit_is_served(api: httpx.Client) -> None:
    item = {"value": "chunked-within.abuse.example", "type": "domain", "source": SOURCE}
    body = json.dumps([item]).encode()
    padded = body[:-1] + b" " * (2 * 1024 * 1024) + b"]"
    r = api.post(
        "/api/cte/indicators/",
        params={"wait": "true"},
        content=chunks(padded),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 201, r.text
    assert [i["value"] for i in stored(api, item["value"])] == [item["value"]]


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(services: Running) -> None:
    host, port = services.api_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        # Only the head: the answer comes without the server waiting for 32 MiB.
        conn.sendall(
            f"POST /api/cte/indicators/ HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {MAX_BODY + 1}\r\n\r\n".encode()
        )
        answer = b""
        while b"}" not in answer and (data := conn.recv(65536)):  # head and body may come apart
            answer += data
    assert answer.startswith(b"HTTP/1.1 413 "), answer
    assert answer.endswith(
        json.dumps({"detail": f"body: larger than {MAX_BODY} bytes"}, separators=(",", ":")).encode()
    )


def test_an_oversized_batch_is_refused_whole_with_its_reason(api: httpx.Client) -> None:
    items = [{"value": f"b{n}.batch.abuse.example", "type": "domain", "source": SOURCE} for n in range(MAX_BATCH + 1)]
    r = api.post("/api/cte/indicators/", json=items)
    assert r.status_code == 413
    assert r.json() == {"detail": f"body: at most {MAX_BATCH} indicators per request, got {MAX_BATCH + 1}"}
    assert stored(api, items[0]["value"]) == []
    exactly = api.post("/api/cte/indicators/", json=items[:MAX_BATCH])
    assert exactly.status_code == 201, exactly.text[:500]


def test_nul_characters_are_refused_wherever_they_are(api: httpx.Client, services: Running) -> None:
    nul = {"detail": "body: NUL characters are not allowed"}
    value = "nul.abuse.example"
    for field in ("value", "comments", "source", "tags"):
        item: dict[str, Any] = {"value": value, "type": "domain", "source": SOURCE, "comments": "c"}
        item[field] = ["a\x00b"] if field == "tags" else item[field] + "\x00"
        r = api.post("/api/cte/indicators/", json=[item])
        assert (r.status_code, r.json()) == (400, nul), (field, r.text)
    assert stored(api, value) == []
    in_request = {"detail": "request: NUL characters are not allowed"}
    r = api.get("/api/cte/indicators/", params={"filters": "value = 'a\x00'"})
    assert (r.status_code, r.json()) == (400, in_request)
    # Escaped inside a JSON filter, the filter language refuses it itself.
    r = api.get("/api/cte/indicators/", params={"filters": json.dumps({"value": "a\x00"})})
    assert r.status_code == 400
    assert "NUL" in r.json()["detail"]
    r = api.get("/api/tenants/a%00b")
    assert (r.status_code, r.json()) == (400, in_request)
    r = httpx.post(
        f"{services.api_url}/api/auth",
        data={"grant_type": "client_credentials", "client_id": "a\x00", "client_secret": "x"},
    )
    assert (r.status_code, r.json()) == (400, nul)
    # The text backslash-u-0000 is no NUL: stored as sent.
    text = "literally \\u0000"
    r = api.post(
        "/api/cte/indicators/",
        params={"wait": "true"},
        json=[{"value": value, "type": "domain", "source": SOURCE, "comments": text}],
    )
    assert r.status_code == 201, r.text
    assert stored(api, value)[0]["sources"][0]["comments"] == text


async def every_config_event(bootstrap: str, topic: str) -> list[bytes]:
    """Every value on ``topic`` from the start, without joining a consumer group."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    values: list[bytes] = []
    try:
        partitions = [TopicPartition(topic, p) for p in range(CONFIG_CHANGES.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        for tp, end in ends.items():
            while await consumer.position(tp) < end:
                for records in (await consumer.getmany(tp, timeout_ms=2000)).values():
                    values += [r.value or b"" for r in records]
    finally:
        await consumer.stop()
    return values


async def test_no_secret_is_stored_in_plaintext_and_no_endpoint_returns_a_tenant_token(
    api: httpx.Client, db: asyncpg.Pool[Any], env: Env
) -> None:
    v1, v2 = "v1-" + secrets.token_hex(16), "v2-" + secrets.token_hex(16)
    tenant, conf = "abuse-tenant", "abuse-ns"
    body = {"name": tenant, "tenantName": "abuse-tenant", "v1Token": v1, "v2Token": v2}
    assert api.post("/api/tenants", json=body).status_code == 201
    r = api.post("/api/cte/configurations", json={"name": conf, "plugin": "netskope", "tenant": tenant})
    assert r.status_code == 201, r.text
    created = api.post("/api/users/tokens", json={"description": "abuse robot"}).json()
    plaintexts = [v1, v2, created["client_secret"], BOOTSTRAP_SECRET]

    tables = [r["tablename"] for r in await db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    assert {"api_clients", "tenants"} <= set(tables)
    for table in tables:
        for text in plaintexts:
            found = await db.fetchval(f'SELECT count(*) FROM "{table}" t WHERE strpos(t::text, $1) > 0', text)
            assert found == 0, f"a plaintext secret in {table}"

    spec = api.get("/api/openapi.json").json()
    names = {"name": [tenant, conf, "All"], "entry_id": ["1"], "sharing_id": ["1"]}
    answered = 0
    for path, operations in spec["paths"].items():
        if "get" not in operations:
            continue
        urls = [path]
        for param, values in names.items():
            urls = [u.replace("{" + param + "}", v) for u in urls for v in values]
        for url in urls:
            r = api.get(url)
            answered += r.status_code == 200
            assert v1 not in r.text, url
            assert v2 not in r.text, url
    assert answered >= 15

    config = await every_config_event(env.stack.kafka_bootstrap, Topics(env.topic_prefix).config_changes)
    assert any(tenant.encode() in value for value in config), "the tenant's configuration event is missing"
    for value in config:
        assert v1.encode() not in value
        assert v2.encode() not in value
