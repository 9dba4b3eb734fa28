"""Sharing configurations without I/O: targets, the output shape, the evaluator's form, the dry run."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from cte_common.sharing import (
    Action,
    Candidate,
    Decision,
    FileTarget,
    Outcome,
    SharingDef,
    UrlTarget,
    parse_target,
    select_within_cap,
    split_list_key,
)
from ingest_api.rules.domain import rule_def
from ingest_api.sharing.schemas import (
    ACTION_LABELS,
    DRY_RUN_SAMPLE,
    DryRunResult,
    ListState,
    Sharing,
    SharingListStatus,
)


def target_problems(action: Action, parameters: Mapping[str, Any]) -> tuple[UrlTarget | FileTarget | None, list[str]]:
    """The parsed target, or what is wrong with the parameters (each message names its field)."""
    try:
        return parse_target(action, parameters), []
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = str(err["msg"]).removeprefix("Value error, ")
            loc = ".".join(str(p) for p in err["loc"])
            problems.append(f"parameters.{loc}: {msg}" if loc else f"parameters.{msg}")
        return None, problems


def sharing_out(row: Mapping[str, Any]) -> Sharing:
    return {
        "id": row["id"],
        "sourceConfiguration": row["source"],
        "businessRule": row["rule"],
        "destinationConfiguration": row["destination"],
        "action": row["action"],
        "parameters": row["parameters"],
        "target": {"label": ACTION_LABELS[row["action"]], "value": row["action"], "parameters": row["parameters"]},
        "priority": row["priority"],
        "listKey": row["list_key"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }


def sharing_def(row: Mapping[str, Any], rule: Mapping[str, Any]) -> SharingDef:
    target = parse_target(row["action"], row["parameters"])
    return SharingDef(
        id=row["id"],
        source=row["source"],
        rule=rule_def(rule),
        action=row["action"],
        list_key=row["list_key"],
        cap_bytes=target.cap_bytes,
        priority=row["priority"],
    )


@dataclass
class DryRun:
    """What a sharing would hold, against what the sink wants its list to hold now."""

    selected: list[Candidate] = field(default_factory=list)
    excluded: Counter[Outcome] = field(default_factory=Counter)

    def add(self, value: str, decision: Decision) -> None:
        if decision.selected:
            self.selected.append(Candidate(value, decision.priority, decision.cost))
        else:
            self.excluded[decision.outcome] += 1

    def out(self, cap_bytes: int, current: list[Candidate]) -> DryRunResult:
        """``current``: the sink's desired members of the list; both sides are cut at the same cap."""
        kept, left_out = select_within_cap(self.selected, cap_bytes)
        held, _ = select_within_cap(current, cap_bytes)
        kept_values = {c.value for c in kept}
        held_values = {c.value for c in held}
        add = [c.value for c in kept if c.value not in held_values]
        remove = [c.value for c in held if c.value not in kept_values]
        return {
            "selected": len(kept),
            "selectedBytes": sum(c.cost for c in kept),
            "wouldAdd": add[:DRY_RUN_SAMPLE],
            "wouldAddCount": len(add),
            "wouldRemove": remove[:DRY_RUN_SAMPLE],
            "wouldRemoveCount": len(remove),
            "leftOutByCap": [c.value for c in left_out[:DRY_RUN_SAMPLE]],
            "leftOutByCapCount": len(left_out),
            "excluded": dict(sorted(self.excluded.items())),
        }


def sharing_name(row: Mapping[str, Any]) -> str:
    """Sharings have no name of their own (as in the reference): they read as source to destination."""
    return f"{row['source']} -> {row['destination']}"


def list_state_of(row: Mapping[str, Any]) -> ListState:
    """``credentials_rejected`` while the tenant rejects the credentials it has; ``failed`` while it
    refuses the list; ``pending`` while the sink has changes the tenant has not got (or never pushed
    the list)."""
    if row["credentials_rejected"] is not None:
        return "credentials_rejected"
    if row["refused"]:
        return "failed"
    # A list made due only to be read back has no content waiting: it is not pending. One held below its
    # cap by the sink's reserve (fed without a pause) has candidates that fit waiting for the feed to pause.
    waiting = row["pending_changes"] > 0 or (row["due"] and row["last_push_at"] is None) or row["settling"]
    return "pending" if waiting else "ok"


def list_status_out(row: Mapping[str, Any]) -> SharingListStatus:
    """A row of repository.list_statuses as the API answers it."""
    tenant, action, name = split_list_key(row["list_key"])
    cap = parse_target(row["action"], row["parameters"]).cap_bytes
    foreign_entries, foreign_bytes = row["foreign_entries"], row["foreign_bytes"]
    state = list_state_of(row)
    by_tenant = row["left_out_tenant"]
    return {
        "sharingId": row["id"],
        "sharingName": sharing_name(row),
        "tenant": tenant,
        "listName": name,
        "listType": "url" if action == "url" else "file_hash",
        "state": state,
        "entries": row["entries"],
        "bytes": row["bytes"],
        "capBytes": cap,
        "fill": min(1.0, (row["bytes"] + foreign_bytes) / cap) if cap else 0.0,
        "foreign": {"entries": foreign_entries, "bytes": foreign_bytes},
        "leftOut": {
            "cap": max(0, row["left_out"] - by_tenant),
            "tenantLimit": by_tenant,
            "invalid": row["unfit"],
            "rejected": row["rejected"],
        },
        "pendingChanges": row["pending_changes"],
        "lastPushAt": row["last_push_at"],
        "lastReadBackAt": row["last_read_back_at"],
        "lastError": row["credentials_rejected"] if state == "credentials_rejected" else row["last_error"],
        "failures": row["failures"],
        # Nothing is attempted while the credentials are rejected: the next attempt follows their change.
        "nextAttemptAt": row["next_attempt_at"] if row["due"] and state != "credentials_rejected" else None,
    }
