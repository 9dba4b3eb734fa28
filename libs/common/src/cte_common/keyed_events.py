"""Event ids of a request sent with an ``Idempotency-Key``: the same ids on every retry of it.

Every producer gives its events a random id (UUID version 4). The ingest-api gives the sightings of a
request that carries an Idempotency-Key a name-based id instead (UUID version 5) derived from who sent
it, the key and the sighting's place in the request, so a retry of the request (the same key, the same
body) publishes sightings with the same ids. The rule-engine applies a sighting with such an id only
once (``applied_sightings``): a retry whose first attempt's sightings already landed (an answer lost, a
503 whose records were acknowledged late, an API process killed after publishing) adds no hits.
"""

from __future__ import annotations

from uuid import UUID, uuid5

__all__ = ["is_keyed", "keyed_event_id"]

# A fixed namespace for the name-based ids (uuid5 of the project's name in the URL namespace).
_NAMESPACE = UUID("6f1f3a56-3c0e-5b7e-9a55-2f8d6c1b9e40")


def keyed_event_id(principal: str, key: str, index: int) -> UUID:
    """The id of the ``index``-th event of the request ``key`` sent by ``principal``."""
    return uuid5(_NAMESPACE, f"{principal}\x00{key}\x00{index}")


def is_keyed(event_id: UUID) -> bool:
    """Whether an event id is one of :func:`keyed_event_id`'s (the rule-engine applies it once)."""
    return event_id.version == 5
