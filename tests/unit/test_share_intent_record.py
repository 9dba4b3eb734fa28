"""The rule-engine's share intents are built as plain records and must read as the model the sink decodes."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from cte_common.events import SHARE_INTENT_ADAPTER, ShareIntent, ShareIntentRecord, encode, encode_share_intent
from cte_common.indicators import IndicatorType


def test_the_share_intent_record_has_the_models_fields_in_order() -> None:
    assert list(ShareIntentRecord.__struct_fields__) == list(ShareIntent.model_fields)


def test_a_share_intent_record_decodes_as_the_intent_it_stands_for() -> None:
    at = datetime(2026, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
    for add, priority, cost in ((True, 7.25, 42), (False, 0.0, 0)):
        fields = {
            "event_id": uuid4(),
            "occurred_at": at,
            "list_key": "t/url/list1",
            "value": "example.com/x",
            "type": IndicatorType.URL,
            "add": add,
            "priority": priority,
            "cost_bytes": cost,
        }
        record = ShareIntentRecord(**fields)  # type: ignore[arg-type]
        model = ShareIntent(**fields)  # type: ignore[arg-type]
        assert SHARE_INTENT_ADAPTER.validate_json(encode_share_intent(record)) == model
        assert SHARE_INTENT_ADAPTER.validate_json(encode(model)) == model


def test_a_share_intent_record_has_an_id_and_a_time_of_its_own() -> None:
    a = ShareIntentRecord(list_key="k", value="v", type=IndicatorType.MD5, add=False)
    b = ShareIntentRecord(list_key="k", value="v", type=IndicatorType.MD5, add=False)
    assert a.event_id != b.event_id
    assert SHARE_INTENT_ADAPTER.validate_json(encode_share_intent(a)).kind == "share"
