"""Tags without I/O."""

from __future__ import annotations

from ingest_api.tags.schemas import AppliedOn


def applied_on(count: int, total: int) -> AppliedOn:
    """The reference's appliedOn: whether the tag is on none, some or all of the filtered indicators."""
    if count == 0:
        return "none"
    return "all" if count == total else "some"
