"""settle_heap: what startup made leaves the collector's generations, and with ``batches`` a batch's
allocations no longer set off a young collection every 700 of them (bench/notes.md, "the collector")."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# Run in a child: the collector's state is the whole process's, and the test run's own must not change.
_PROBE = textwrap.dedent(
    """
    import gc
    from dataclasses import dataclass

    from cte_common.service import settle_heap

    @dataclass
    class Entry:
        value: str
        tags: list[str]

    def young_collections_for_a_batch() -> int:
        before = gc.get_stats()[0]["collections"]
        batch = [Entry(str(i), [str(i)]) for i in range(20_000)]
        after = gc.get_stats()[0]["collections"]
        del batch
        return after - before

    print(young_collections_for_a_batch(), gc.get_freeze_count(), gc.get_threshold()[0])
    settle_heap()
    print(young_collections_for_a_batch(), gc.get_freeze_count(), gc.get_threshold()[0])
    settle_heap(batches=True)
    print(young_collections_for_a_batch(), gc.get_freeze_count(), gc.get_threshold()[0])
    """
)


def test_startup_is_frozen_and_with_batches_a_batch_sets_off_at_most_one_young_collection() -> None:
    out = subprocess.run([sys.executable, "-c", _PROBE], check=True, capture_output=True, text=True).stdout
    before, frozen, batches = (tuple(int(x) for x in line.split()) for line in out.splitlines())
    assert before[1] == 0
    assert before[0] >= 20  # the interpreter's thresholds: one young collection per 700 net allocations
    # Frozen (the modules and objects the imports made), the interpreter's thresholds kept.
    assert frozen[1] > 10_000
    assert frozen[2] == before[2] == 700
    assert frozen[0] >= 20
    assert batches[2] == 50_000
    assert batches[0] <= 1


_HTTPX_CYCLE = textwrap.dedent(
    """
    import asyncio
    import gc
    import weakref

    import httpx

    async def main() -> None:
        gc.disable()
        transport = httpx.MockTransport(lambda request: httpx.Response(200, content=b"x" * 1_000_000))
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.get("http://tenant.invalid/api/v2/policy/urllist")
            await response.aread()
            gone = weakref.ref(response)
            del response
            print(gone() is None)
            gc.collect(1)
            print(gone() is None)

    asyncio.run(main())
    """
)


def test_an_httpx_response_is_freed_by_a_collection_only() -> None:
    """Why the sink collects after its rounds of pushes and polls (settle_heap's batch thresholds would
    otherwise keep a tenant's answer, up to a whole list, for a long time): should httpx stop making
    the cycle, this fails and those collections can go."""
    out = subprocess.run([sys.executable, "-c", _HTTPX_CYCLE], check=True, capture_output=True, text=True).stdout
    assert out.split() == ["False", "True"]
