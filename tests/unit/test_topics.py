"""Topic names and consumer group ids of a namespace: the services and the benchmark derive them from the
same prefix, and two namespaces on one cluster share neither."""

from cte_common.topics import Topics


def test_a_namespace_names_its_topics_and_groups_from_its_prefix() -> None:
    topics = Topics("cte")
    assert topics.indicator_events == "cte.indicator-events.v1"
    assert topics.share_intents == "cte.share-intents.v1"
    assert topics.group("rule-engine") == "cte.rule-engine"


def test_two_namespaces_share_no_topic_and_no_group() -> None:
    a, b = Topics("one"), Topics("two")
    assert {a.indicator_events, a.config_changes, a.share_intents, a.dead_letter}.isdisjoint(
        {b.indicator_events, b.config_changes, b.share_intents, b.dead_letter}
    )
    assert a.group("netskope-sink") != b.group("netskope-sink")
