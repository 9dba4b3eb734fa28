"""settle_heap: what startup made leaves the collector's generations, and a batch's allocations no
longer set off a young collection every 700 of them (bench/notes.md, "the collector")."""

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

    print(young_collections_for_a_batch(), gc.get_freeze_count())
    settle_heap()
    print(young_collections_for_a_batch(), gc.get_freeze_count())
    """
)


def test_startup_is_frozen_and_a_batch_sets_off_at_most_one_young_collection() -> None:
    out = subprocess.run([sys.executable, "-c", _PROBE], check=True, capture_output=True, text=True).stdout
    (before_collections, before_frozen), (after_collections, after_frozen) = (
        tuple(int(x) for x in line.split()) for line in out.splitlines()
    )
    assert before_frozen == 0
    assert before_collections >= 20  # the interpreter's default: one per 700 net allocations
    assert after_frozen > 10_000  # the modules and objects the imports made
    assert after_collections <= 1
