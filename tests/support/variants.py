"""Events varied field by field, for the property tests of the msgspec fast paths against the models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from hypothesis import strategies as st
from pydantic import BaseModel

from cte_common.consumer import Decoded, Rejected


def varied(valid: dict[str, Any], choices: dict[str, list[Any]], data: st.DataObject) -> dict[str, Any]:
    """``valid`` with up to three of its fields changed to one of their ``choices`` or left out."""
    event = dict(valid)
    for name in data.draw(st.lists(st.sampled_from(sorted(choices)), max_size=3, unique=True)):
        choice = data.draw(st.sampled_from([*choices[name], "<missing>"]))
        if choice == "<missing>":
            event.pop(name, None)
        else:
            event[name] = choice
    return event


def assert_decoded_alike(
    event: dict[str, Any], model: BaseModel | str, decoded: Sequence[Decoded[Any]], rejected: Sequence[Rejected]
) -> None:
    """The decoding of ``event`` (msgspec's where it took it) agrees with the model's alone (``model``: the
    model's event, or its reason for refusing): the same reason, or the same values but for the id and
    time a left-out field generates."""
    if isinstance(model, str):
        assert [r.reason for r in rejected] == [model]
        assert decoded == []
        return
    assert rejected == []
    got = decoded[0].event
    values = got.model_dump() if isinstance(got, BaseModel) else msgspec.structs.asdict(got)
    expected = model.model_dump()
    for generated in ("event_id", "occurred_at"):
        if generated not in event:
            values.pop(generated)
            expected.pop(generated)
    assert values == expected
