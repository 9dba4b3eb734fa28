"""The intent journal's shape, against real PostgreSQL: a deciding attempt's intents are journalled as one
row per list (its values in an array, in the order published), forgotten by the attempt's own delete, and
read back, every (list, value) of them, by the correction of attempts that never committed."""

from __future__ import annotations

from uuid import uuid4

from cte_common.db import Pool
from cte_common.events import ShareIntentRecord
from cte_common.indicators import IndicatorType
from rule_engine import repository


def intent(list_key: str, value: str, *, add: bool = True) -> ShareIntentRecord:
    return ShareIntentRecord(list_key=list_key, value=value, type=IndicatorType.DOMAIN, add=add)


async def rows(db: Pool) -> list[tuple[str, list[str]]]:
    return [
        (r["list_key"], list(r["indicator_values"]))
        for r in await db.fetch("SELECT list_key, indicator_values FROM intent_journal ORDER BY list_key")
    ]


async def test_one_row_per_list_and_attempt(db: Pool) -> None:
    await db.execute("DELETE FROM intent_journal")
    first, second = uuid4(), uuid4()
    # Interleaved lists, a value on two lists, an add and a remove of one value on one list.
    intents = [
        intent("t/url/a", "x.example"),
        intent("t/url/b", "x.example"),
        intent("t/url/a", "y.example"),
        intent("t/url/b", "z.example", add=False),
        intent("t/url/a", "x.example", add=False),
    ]
    async with db.acquire() as conn:
        await repository.journal_intents(conn, first, intents)
        await repository.journal_intents(conn, second, [intent("t/url/c", "w.example")])
    assert await rows(db) == [
        ("t/url/a", ["x.example", "y.example", "x.example"]),
        ("t/url/b", ["x.example", "z.example"]),
        ("t/url/c", ["w.example"]),
    ]

    # The deciding transaction forgets its own attempt's rows, and only those.
    async with db.acquire() as conn, conn.transaction():
        await repository.forget_attempt(conn, first)
    assert await rows(db) == [("t/url/c", ["w.example"])]

    # What is left is read back as (list, value) pairs, and taken.
    async with db.acquire() as conn:
        await repository.journal_intents(conn, first, intents[:2])
    async with db.acquire() as conn, conn.transaction():
        taken = await repository.take_journal(conn)
    assert sorted(taken) == [("t/url/a", "x.example"), ("t/url/b", "x.example"), ("t/url/c", "w.example")]
    assert await rows(db) == []


async def test_a_rolled_back_attempt_keeps_its_rows(db: Pool) -> None:
    await db.execute("DELETE FROM intent_journal")
    attempt = uuid4()
    async with db.acquire() as conn:
        await repository.journal_intents(conn, attempt, [intent("t/url/a", "v.example")])
    async with db.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await repository.forget_attempt(conn, attempt)
        await tx.rollback()
    assert await rows(db) == [("t/url/a", ["v.example"])]
    await db.execute("DELETE FROM intent_journal")


async def test_a_batch_s_values_are_stored_without_compression(db: Pool) -> None:
    """A batch's array (thousands of values, deleted at its commit) is worth no pglz pass on the way in."""
    await db.execute("DELETE FROM intent_journal")
    values = [f"host{n:05d}.example.com/a/long/enough/path" for n in range(5000)]
    async with db.acquire() as conn:
        await repository.journal_intents(conn, uuid4(), [intent("t/url/a", v) for v in values])
    stored = await db.fetchrow(
        "SELECT pg_column_compression(indicator_values) AS method, "
        "pg_column_size(indicator_values) AS size FROM intent_journal"
    )
    assert stored["method"] is None
    assert stored["size"] > sum(len(v) for v in values)  # out of line, whole
    assert await rows(db) == [("t/url/a", values)]
    await db.execute("DELETE FROM intent_journal")
