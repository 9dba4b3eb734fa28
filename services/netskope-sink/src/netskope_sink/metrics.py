"""The netskope-sink's metrics."""

from __future__ import annotations

from prometheus_client import Counter

INTENTS = Counter("cte_sink_intents_total", "Share intents applied to the desired list state.", ["action"])
