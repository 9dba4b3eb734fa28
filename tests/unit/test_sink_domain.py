"""The sink's decisions without I/O: the call that brings a list to its selection, the tenant's answers."""

from __future__ import annotations

from netskope_sink.lists.domain import plan_push, rejected_entries, v1_errors


def test_plan_appends_new_entries_and_replaces_when_something_must_go() -> None:
    assert plan_push(exists=True, appends=0, removes=0, holds_any=True) == "none"
    assert plan_push(exists=True, appends=1, removes=0, holds_any=True) == "append"
    assert plan_push(exists=True, appends=1, removes=1, holds_any=True) == "replace"
    assert plan_push(exists=True, appends=0, removes=1, holds_any=True) == "replace"
    # Nothing of ours known to be there (the default placeholder, a record not trusted): replaced whole.
    assert plan_push(exists=True, appends=1, removes=0, holds_any=False) == "replace"
    assert plan_push(exists=True, appends=0, removes=0, holds_any=False) == "replace"
    assert plan_push(exists=False, appends=0, removes=0, holds_any=True) == "create"


def test_tenant_answers_are_read_like_the_reference_plugin() -> None:
    assert rejected_entries({"message": [["bad/*", "wildcard only as a leading *."], ["x y", "space"]]}) == [
        ("bad/*", "wildcard only as a leading *."),
        ("x y", "space"),
    ]
    assert rejected_entries({"message": "Invalid token"}) == []
    assert v1_errors({"status": "error", "errors": ["Duplicate request, no change in file hashes"]}) == [
        "Duplicate request, no change in file hashes"
    ]
    assert v1_errors({"status": "success"}) == []
