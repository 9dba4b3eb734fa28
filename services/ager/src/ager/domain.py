"""Which due indicators to (re)publish an expire command for. Pure."""

from __future__ import annotations

from datetime import datetime


class Dispatched:
    """Expire commands published recently, so a sweep does not repeat one the rule-engine has not applied yet.

    Only an optimisation: losing it (a restart) republishes some commands, which the rule-engine
    applies idempotently (an indicator is expired only while it is still due).
    """

    def __init__(self, redispatch_after_seconds: float) -> None:
        self.redispatch_after = redispatch_after_seconds
        self._sent: dict[tuple[str, datetime], float] = {}

    def select(self, due: list[tuple[str, datetime]], now: float) -> list[tuple[str, datetime]]:
        self._sent = {k: t for k, t in self._sent.items() if now - t < self.redispatch_after}
        return [d for d in due if d not in self._sent]

    def mark(self, sent: list[tuple[str, datetime]], now: float) -> None:
        for d in sent:
            self._sent[d] = now
