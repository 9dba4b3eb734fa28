"""The incremental push against the full recomputation, on random change sequences, in PostgreSQL.

Each example applies batches of intents to one list through the sink's own SQL (apply_intents), pushes
after each batch (prepare_push, the tenant refusing some appended entries, record_push), sometimes with
more intents arriving between the preparation and the record, sometimes with the tenant's content
unknown or the cap changed. After every push, the recorded cut, the bytes, the entries the tenant holds,
the appends and removals, and every value's status in ``list_value_status`` must be what the reference
selection (``select_within_cap`` over every member, from scratch) gives.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cte_common.db import Pool
from cte_common.events import ShareIntent
from cte_common.indicators import IndicatorType
from cte_common.sharing import Candidate, cost_bytes, select_within_cap
from netskope_sink.lists import repository
from netskope_sink.lists.domain import CapReserve
from tests.conftest import Env
from tests.support.lists import drop_list

VALUES = [f"{scheme}{host}{n}.example" for n in range(8) for scheme, host in (("", "a"), ("https://", "a"), ("", "Z"))]
VALUES += ["2001:db8::1", "2001:db8::2"]
PRIORITIES = (1.0, 2.0, 3.0)
RESERVE = CapReserve(seconds=10.0, max_share=0.3)


def kind(value: str, url_list: bool) -> IndicatorType:
    if ":" in value and "//" not in value:
        return IndicatorType.IPV6
    if not url_list:
        return IndicatorType.SHA256
    return IndicatorType.URL if "//" in value else IndicatorType.DOMAIN


def entry(value: str, url_list: bool) -> str | None:
    if not url_list:
        return value
    if kind(value, url_list) == IndicatorType.IPV6:
        return None
    return value.partition("://")[2] or value


intent = st.tuples(st.sampled_from(VALUES), st.one_of(st.none(), st.sampled_from(PRIORITIES)))


@dataclass
class Step:
    intents: list[tuple[str, float | None]]
    during: list[tuple[str, float | None]]  # applied between the preparation and the record
    refuse: float  # share of the appended entries the tenant refuses
    uncertain: bool
    cap_share: float | None  # a new cap, as a share of every member's cost
    reserve: bool = False  # the list was just pushed and trimmed: a reserve below the cap may be kept


steps = st.lists(
    st.builds(
        Step,
        intents=st.lists(intent, max_size=12),
        during=st.one_of(st.just([]), st.lists(intent, max_size=4)),
        refuse=st.sampled_from([0.0, 0.0, 0.0, 0.5]),
        uncertain=st.sampled_from([False, False, False, True]),
        cap_share=st.one_of(st.none(), st.none(), st.sampled_from([0.2, 0.5, 1.5])),
        reserve=st.sampled_from([False, False, True]),
    ),
    min_size=1,
    max_size=8,
)


@dataclass
class Model:
    """The list as the reference sees it: every member, every refusal, what the tenant holds."""

    url_list: bool
    trusted: bool = False  # pushed at least once: changes are tracked from that push's snapshot
    members: dict[str, tuple[float, int]] = field(default_factory=dict)
    rejected: set[str] = field(default_factory=set)
    held: set[str] = field(default_factory=set)

    def changed(self, intents: list[tuple[str, float | None]]) -> set[str]:
        """The values whose membership or priority the intents change."""
        last = dict(intents)
        return {
            v
            for v, p in last.items()
            if (v in self.members if p is None else v not in self.members or self.members[v][0] != p)
        }

    def apply(self, intents: list[tuple[str, float | None]]) -> None:
        # The last intent per value is the one the sink applies (latest_intents).
        for value, priority in dict(intents).items():
            if priority is None:
                self.members.pop(value, None)
                self.rejected.discard(value)
            else:
                self.members[value] = (priority, cost_bytes(value))

    def invalid(self) -> set[str]:
        """The members the sink's pre-check refuses (IPv6 in a URL list): never candidates."""
        return {v for v in self.members if entry(v, self.url_list) is None}

    def candidates(self) -> list[Candidate]:
        """Every candidate, in the selection's order."""
        out = self.rejected | self.invalid()
        usable = [Candidate(v, p, c) for v, (p, c) in self.members.items() if v not in out]
        return sorted(usable, key=lambda c: (-c.priority, c.value))

    def select(self, cap: int, max_entries: int) -> list[Candidate]:
        return select_within_cap(self.candidates(), cap, max_entries)[0]


@pytest.fixture(scope="module")
def scratch(env: Env) -> Iterator[tuple[asyncio.AbstractEventLoop, asyncpg.Connection[Any]]]:
    loop = asyncio.new_event_loop()
    conn = loop.run_until_complete(asyncpg.connect(env.database_url))
    try:
        yield loop, conn
    finally:
        loop.run_until_complete(conn.close())
        loop.close()


async def apply(conn: asyncpg.Connection[Any], key: str, intents: list[tuple[str, float | None]], url: bool) -> None:
    events = [
        ShareIntent(
            list_key=key, value=v, type=kind(v, url), add=p is not None, priority=p or 0.0, cost_bytes=cost_bytes(v)
        )
        for v, p in dict(intents).items()
    ]
    async with conn.transaction():
        await repository.apply_intents(conn, events)


async def run_example(
    conn: asyncpg.Connection[Any], url_list: bool, initial: list[tuple[str, float | None]], plan: list[Step]
) -> None:
    key = f"cut-{secrets.token_hex(4)}/{'url' if url_list else 'file'}/l"
    model = Model(url_list)
    total = sum(cost_bytes(v) for v in VALUES)
    cap, max_entries = 1 + total // 3, 12
    try:
        await conn.execute("INSERT INTO list_state (list_key) VALUES ($1)", key)
        await apply(conn, key, initial, url_list)
        model.apply(initial)
        for step in plan:
            await apply(conn, key, step.intents, url_list)
            model.apply(step.intents)
            if step.cap_share is not None:
                cap = 1 + int(total * step.cap_share)
            version = await repository.list_version(conn, key)
            # A reserve applies to a list trimmed moments ago (CapReserve.room): then the inflow of the
            # last instant is the share's worth, and the kept prefix is anywhere between the cap less
            # that share and the cap.
            await conn.execute(
                "UPDATE list_state SET trimmed_at = CASE WHEN $2 THEN now() END, last_push_at = now() "
                "WHERE list_key = $1",
                key,
                step.reserve,
            )
            prepared = await repository.prepare_push(
                conn,
                key,
                cap_bytes=cap,
                max_entries=max_entries,
                url_list=url_list,
                uncertain=step.uncertain,
                reserve=RESERVE,
            )
            kept = model.select(cap, max_entries)
            if step.reserve and not prepared.whole:
                # Whatever the reserve, the kept values are a prefix of the order within the cap that
                # keeps at least what the cap less the share's reserve keeps.
                order = model.candidates()
                at_least = len(
                    model.select(cap - int(cap * RESERVE.max_share), max_entries - int(max_entries * RESERVE.max_share))
                )
                cut_key = prepared.cut.sort_key()
                kept = [c for c in order if cut_key is not None and (-c.priority, c.value) <= cut_key]
                assert at_least <= len(kept) <= len(model.select(cap, max_entries))
            kept_entries = {e for c in kept if (e := entry(c.value, url_list)) is not None}
            held = set() if step.uncertain else model.held
            assert prepared.kept == len(kept)
            assert prepared.bytes == 1 + sum(c.cost for c in kept)
            want_cut = (kept[-1].priority, kept[-1].value) if kept else (None, None)
            assert (prepared.cut.priority, prepared.cut.value) == want_cut
            assert prepared.left_out == len(model.members) - len(model.rejected) - len(model.invalid()) - len(kept)
            changes = await conn.fetch("SELECT change, value, entry FROM push_changes WHERE list_key = $1", key)
            appends = {r["entry"] for r in changes if r["change"] == "append"}
            removes = {r["value"] for r in changes if r["change"] == "remove"}
            assert appends == kept_entries - held
            assert removes == held - kept_entries
            refused_entries = sorted(appends)[: int(len(appends) * step.refuse)]
            refused = dict.fromkeys(refused_entries, "Invalid host")
            await apply(conn, key, step.during, url_list)
            async with conn.transaction():
                entries = await repository.record_push(
                    conn, key, version=version, prepared=prepared, uncertain=step.uncertain, refused=refused, cap=cap
                )
            await repository.forget_push(conn, key)
            model.held = kept_entries - set(refused_entries)
            pushed = {r[0] for r in await conn.fetch("SELECT value FROM list_pushed WHERE list_key = $1", key)}
            assert pushed == model.held
            assert entries == len(model.held)
            # Statuses, as the read side sees them, against the push just recorded.
            during = model.changed(step.during)
            model.apply(step.during)
            model.rejected |= {
                c.value for c in kept if entry(c.value, url_list) in refused and c.value in model.members
            }
            model.trusted = True
            rows = await conn.fetch("SELECT value, status FROM list_value_status WHERE list_key = $1", key)
            kept_values = {c.value for c in kept}
            want: dict[str, set[str]] = {}
            for value in model.members:
                if value in model.rejected:
                    want[value] = {"rejected"}
                elif value in model.invalid():
                    want[value] = {"unfit"}
                elif not model.trusted:
                    want[value] = {"pending"}
                elif value in during:
                    # A value beyond the cut of this push and the last one may not be tracked: it
                    # reads where the cut just recorded puts it.
                    cut = prepared.cut.sort_key()
                    beyond = cut is None or (-model.members[value][0], value) > cut  # (None: keeps nothing)
                    want[value] = {"pending", "left_out"} if beyond else {"pending"}
                else:
                    want[value] = {"shared" if value in kept_values else "left_out"}
            got = {r["value"]: r["status"] for r in rows}
            assert got.keys() == want.keys()
            assert all(got[v] in want[v] for v in got), (got, want)
    finally:
        await drop_list(conn, key)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    url_list=st.booleans(),
    initial=st.lists(st.tuples(st.sampled_from(VALUES), st.sampled_from(PRIORITIES)), max_size=20),
    plan=steps,
)
def test_the_incremental_push_is_the_full_recomputation(
    scratch: tuple[asyncio.AbstractEventLoop, asyncpg.Connection[Any]],
    url_list: bool,
    initial: list[tuple[str, float]],
    plan: list[Step],
) -> None:
    loop, conn = scratch
    try:
        loop.run_until_complete(run_example(conn, url_list, list(initial), plan))
    except AssertionError:
        print(f"url_list={url_list} initial={initial} plan={plan}")  # noqa: T201 (the example, when it fails)
        raise


@pytest.mark.parametrize("joins", ["incrementally", "in a whole push", "with the first value"])
def test_an_entry_made_by_a_second_value_stays_when_the_first_goes(
    scratch: tuple[asyncio.AbstractEventLoop, asyncpg.Connection[Any]], joins: str
) -> None:
    """A URL list's entry made by one value, then by a second (its value with a scheme) from a later
    push (worked out from the changes, or whole: the cap changed) or from the same one: when the first
    value goes, the entry stays. The sink looks the other values up only for an entry it knows two
    values made (list_pushed.shared), so it must know it however the second came."""
    loop, conn = scratch
    same = {"during": [], "refuse": 0.0, "uncertain": False}
    first, second = ("a0.example", 3.0), ("https://a0.example", 2.0)
    pushes = {
        "incrementally": [[first], [second]],
        "in a whole push": [[first], [second]],
        "with the first value": [[first, second]],
    }[joins]
    plan = [
        Step(intents=i, cap_share=1.5 if joins == "in a whole push" and n else None, **same)
        for n, i in enumerate(pushes)
    ]
    plan.append(Step(intents=[(first[0], None)], cap_share=None, **same))
    plan.append(Step(intents=[(second[0], None)], cap_share=None, **same))
    loop.run_until_complete(run_example(conn, True, [], plan))


async def test_a_list_fed_during_every_push_is_pushed_incrementally_after_the_first(db: Pool) -> None:
    """Intents keep arriving while each push is under way (a feed without a pause): the first push
    is worked out whole, every later one from the changes alone, and the values the pushes saw show
    'shared' or 'left_out', not 'pending', for as long as the feed runs."""
    key = f"fed-{secrets.token_hex(4)}/url/l"
    values = [f"v{n:02d}.example" for n in range(40)]
    cap = 1 + sum(cost_bytes(v) for v in values[:10])  # ten values
    async with db.acquire() as conn:
        try:
            wholes = []
            for round_ in range(4):
                fresh = values[round_ * 10 : round_ * 10 + 10]
                await apply(conn, key, [(v, float(round_ + 1)) for v in fresh], True)
                version = await repository.list_version(conn, key)
                prepared = await repository.prepare_push(
                    conn, key, cap_bytes=cap, max_entries=1000, url_list=True, uncertain=False
                )
                wholes.append(prepared.whole)
                during = values[round_ * 10 + 10 : round_ * 10 + 11]  # the next round's first value, early
                await apply(conn, key, [(v, float(round_ + 2)) for v in during], True)
                async with conn.transaction():
                    await repository.record_push(
                        conn, key, version=version, prepared=prepared, uncertain=False, refused={}, cap=cap
                    )
                await repository.forget_push(conn, key)
                rows = await conn.fetch("SELECT value, status FROM list_value_status WHERE list_key = $1", key)
                statuses = {r["value"]: r["status"] for r in rows}
                assert {statuses[v] for v in fresh} <= {"shared", "left_out"}, statuses
                assert all(statuses[v] == "pending" for v in during)
            assert wholes == [True, False, False, False]
            # The cap holds the ten highest priorities: the last round's values.
            shared = await conn.fetch(
                "SELECT value FROM list_value_status WHERE list_key = $1 AND status = 'shared'", key
            )
            assert sorted(r["value"] for r in shared) == values[30:]
        finally:
            await drop_list(conn, key)
