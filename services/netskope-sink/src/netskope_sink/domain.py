"""Folding share intents into the desired membership of destination lists. Pure."""

from __future__ import annotations

from cte_common.events import ShareIntent


def latest_intents(intents: list[ShareIntent]) -> list[ShareIntent]:
    """The last intent per (list, value) wins: intents for one list arrive in order on one partition."""
    last: dict[tuple[str, str], ShareIntent] = {}
    for intent in intents:
        last[(intent.list_key, intent.value)] = intent
    return list(last.values())
