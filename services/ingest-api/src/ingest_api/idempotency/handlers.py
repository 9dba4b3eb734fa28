"""``Idempotency-Key`` on POST and PATCH of indicators and on the bulk edits.

A request with a key is applied once and answered the same for a day (``CTE_IDEMPOTENCY_KEY_HOURS``),
per client or user (the token's subject), whichever API process answers it: the key and its answer live
in PostgreSQL (``idempotency_keys``).

- The first request with a key claims it (a row, with a lease of ``CTE_IDEMPOTENCY_LEASE_SECONDS``).
  Its sightings get ids derived from the key (``cte_common.keyed_events``), and the rule-engine applies a
  sighting with such an id once.
- A success (2xx) is stored, status and body, and every repeat of the request is answered with it
  (header ``Idempotent-Replayed: true``).
- An error answer (4xx, 5xx, a 503 of an outage, a dropped connection) gives the key back: nothing of
  the request was accepted as far as the client was told, and a retry runs it again. Its sightings
  then carry the same ids as the first attempt's, so whatever of the first attempt did land (a 503 whose
  records Kafka acknowledged late) adds no hits a second time.
- A repeat while the first is still in flight waits for its answer (up to ``CTE_WAIT_TIMEOUT_SECONDS``),
  then answers 409 with ``Retry-After``. A request whose process died holds the key until its lease ends;
  a repeat then takes the key over and runs the request again (again, without extra hits).
- The same key with another request (another path or body) is a 422: the key is the client's mistake,
  not a conflict with the state of the resource (the IETF draft on the Idempotency-Key header says the
  same).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from uuid import UUID, uuid4

import orjson
from fastapi import Header, HTTPException, Request, Response, status
from fastapi.encoders import jsonable_encoder

from cte_common.keyed_events import keyed_event_id
from ingest_api.access.schemas import TokenClaims
from ingest_api.idempotency import repository
from ingest_api.shared import AppState

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Apply this request once: a repeat with the same key within a day is answered the same.",
    ),
]
# Ids of a request's events by their place in it: keyed ones, or None for random ones.
EventIds = Callable[[int], UUID] | None


async def once(
    state: AppState,
    claims: TokenClaims,
    key: str | None,
    request: Request,
    response: Response,
    run: Callable[[EventIds], Awaitable[Any]],
    status_code: int = status.HTTP_201_CREATED,
) -> Any:
    """``run``'s answer; with a key, applied once and answered the same (see the module docstring).
    ``response`` is the route's, whose status ``run`` may set."""
    if key is None:
        return await run(None)
    principal = f"{claims.kind}:{claims.sub}"
    fingerprint = hashlib.sha256(
        b"\x00".join([request.method.encode(), request.url.path.encode(), await request.body()])
    ).digest()
    owner = uuid4()
    settings = state.settings
    deadline = time.monotonic() + settings.wait_timeout_seconds
    pause = 0.01
    while True:
        async with state.pool.acquire() as conn:
            if random.random() < 0.01:  # noqa: S311 - not security: spreads the clean-up over requests
                await repository.forget_expired(conn)
            found = await repository.claim(
                conn,
                principal,
                key,
                fingerprint,
                owner,
                settings.idempotency_lease_seconds,
                settings.idempotency_key_hours * 3600,
            )
        if found is None:
            break
        if bytes(found["request_hash"]) != fingerprint:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                "Idempotency-Key: this key was used with another request (path or body); use a new key.",
            )
        if found["status"] is not None:
            return Response(
                bytes(found["body"]),
                found["status"],
                media_type="application/json",
                headers={"Idempotent-Replayed": "true"},
            )
        if time.monotonic() >= deadline:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                "Idempotency-Key: a request with this key is still in progress; send it again later.",
                headers={"Retry-After": "1"},
            )
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.2)
    try:
        result = await run(lambda index: keyed_event_id(principal, key, index))
    except BaseException:
        # Shielded: a client that hung up cancels the request, and the key must still be given back.
        await asyncio.shield(_release(state, principal, key, owner))
        raise
    if isinstance(result, Response):
        answer = result
    else:
        # The status the route set (a 202: accepted, not yet visible), else its usual one.
        answer = Response(
            orjson.dumps(jsonable_encoder(result)), response.status_code or status_code, media_type="application/json"
        )
    async with state.pool.acquire() as conn:
        await repository.finish(conn, principal, key, owner, answer.status_code, bytes(answer.body))
    return answer


async def _release(state: AppState, principal: str, key: str, owner: UUID) -> None:
    try:
        async with state.pool.acquire() as conn:
            await repository.release(conn, principal, key, owner)
    except Exception:  # PostgreSQL away: the lease ends on its own
        return
