"""A changing call's claim: one row per call holding the entries it adds, and what a read-back after a
lost answer makes of it (the sink's own SQL, in PostgreSQL).

The claim is written before the call (repository.claim); when the answer is lost, the read-back
(repository.reconcile with ``uncertain``) takes as ours the claimed entries the tenant holds, unless
they were foreign before; the rest of the tenant's entries stay foreign, and the claims are gone.
"""

from __future__ import annotations

import secrets

from cte_common.db import Pool
from cte_common.events import ShareIntent
from cte_common.indicators import IndicatorType
from cte_common.sharing import cost_bytes
from netskope_sink.lists import repository


async def test_a_call_claims_its_appends_in_one_row_and_a_lost_answer_adopts_only_those(db: Pool) -> None:
    key = f"claims-{secrets.token_hex(4)}/url/l"
    values = [f"v{n}.claims.example" for n in range(50)]
    async with db.acquire() as conn:
        await conn.execute("INSERT INTO list_state (list_key) VALUES ($1)", key)
        # An entry an administrator put on the list before: foreign, even when a value of ours makes it.
        await conn.execute("INSERT INTO list_foreign (list_key, value) VALUES ($1, $2)", key, values[0])
        intents = [
            ShareIntent(
                list_key=key,
                value=v,
                type=IndicatorType.DOMAIN,
                add=True,
                priority=float(n),
                cost_bytes=cost_bytes(v),
            )
            for n, v in enumerate(values)
        ]
        async with conn.transaction():
            await repository.apply_intents(conn, intents)
        prepared = await repository.prepare_push(
            conn, key, cap_bytes=10**6, max_entries=1000, url_list=True, uncertain=False
        )
        assert prepared.appends == len(values) - 1  # the foreign one is never appended as ours

        await repository.claim(conn, key)
        claims = await conn.fetch("SELECT entries FROM list_claims WHERE list_key = $1", key)
        assert len(claims) == 1
        assert sorted(claims[0]["entries"]) == sorted(values[1:])
        # A call with nothing to add claims nothing.
        await repository.forget_push(conn, key)
        await repository.claim(conn, key)
        assert await conn.fetchval("SELECT count(*) FROM list_claims WHERE list_key = $1", key) == 1

        # The answer was lost; the tenant holds part of the call's entries, the foreign one and one
        # an administrator added meanwhile.
        held = [*values[:30], "added-by-hand.example"]
        found = await repository.reconcile(
            conn, key, held, uncertain=True, placeholder="placeholder.example", costs=cost_bytes
        )
        assert found.adopted == 29
        pushed = {r["value"] for r in await conn.fetch("SELECT value FROM list_pushed WHERE list_key = $1", key)}
        assert pushed == set(values[1:30])
        assert sorted(found.foreign) == sorted([values[0], "added-by-hand.example"])
        assert await conn.fetchval("SELECT count(*) FROM list_claims WHERE list_key = $1", key) == 0

        # Without a lost answer nothing is adopted from a claim.
        await repository.forget_push(conn, key)
        await conn.execute("DELETE FROM list_pushed WHERE list_key = $1", key)
        await conn.execute("INSERT INTO list_claims (list_key, entries) VALUES ($1, $2)", key, values[30:40])
        found = await repository.reconcile(
            conn, key, values[30:40], uncertain=False, placeholder="placeholder.example", costs=cost_bytes
        )
        assert found.adopted == 0
        assert sorted(found.foreign) == sorted(values[30:40])
