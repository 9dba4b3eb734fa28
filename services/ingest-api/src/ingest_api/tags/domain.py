"""Tags without I/O."""

from __future__ import annotations


def applied_on(count: int, total: int) -> str:
    """The reference's appliedOn: whether the tag is on none, some or all of the filtered indicators."""
    if count == 0:
        return "none"
    return "all" if count == total else "some"
