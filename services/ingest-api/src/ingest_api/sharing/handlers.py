"""Routes of ``/api/cte/sharing`` (Threat Exchange > Sharing), with the dry run."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
from fastapi import APIRouter, HTTPException, status

from cte_common.db import Connection
from cte_common.sharing import Action, AllowList, Candidate, Evaluator, FileTarget, UrlTarget, list_key
from ingest_api.allow_list.repository import allow_entries
from ingest_api.configurations.repository import get_configuration
from ingest_api.indicators.domain import indicator_out
from ingest_api.rules.domain import rule_muted
from ingest_api.rules.repository import get_rule
from ingest_api.shared import (
    WRITE_ERRORS,
    Empty,
    Reader,
    RowId,
    State,
    Writer,
    configuration_missing,
    destination_tenant,
    unprocessable,
)
from ingest_api.sharing import repository
from ingest_api.sharing.domain import DryRun, list_status_out, sharing_def, sharing_out, target_problems
from ingest_api.sharing.schemas import Sharing, SharingDryRun, SharingIn, SharingListStatus, SharingPatch

router = APIRouter(prefix="/cte/sharing", tags=["Sharing"], responses=WRITE_ERRORS)


def _sharing_not_found(sharing_id: int) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"Sharing configuration with id={sharing_id} does not exist.")


def _target(action: Action, parameters: dict[str, Any]) -> UrlTarget | FileTarget:
    target, problems = target_problems(action, parameters)
    if target is None:
        raise unprocessable("; ".join(problems))
    return target


async def _checked_tenant(conn: Connection, body: SharingIn) -> str:
    """The tenant of a new sharing's destination, once its source and destination are known to exist."""
    if await get_configuration(conn, body.sourceConfiguration) is None:
        raise configuration_missing("sourceConfiguration", body.sourceConfiguration)
    destination = await get_configuration(conn, body.destinationConfiguration)
    if destination is None:
        raise configuration_missing("destinationConfiguration", body.destinationConfiguration)
    return destination_tenant(destination)


async def _check_rule_exists(conn: Connection, name: str) -> None:
    # FOR KEY SHARE: a concurrent deletion of the rule waits for this transaction (or has happened).
    if await get_rule(conn, name, lock="key share") is None:
        raise unprocessable(f"businessRule: Business rule with name='{name}' does not exist.")


async def _check_list_free(
    conn: Connection, tenant: str, action: Action, list_name: str, sharing_id: int | None
) -> str:
    """The list's key, unless another sharing already targets that list."""
    key = list_key(tenant, action, list_name)
    other = await repository.sharing_on_list(conn, key)
    if other is not None and other["id"] != sharing_id:
        raise _list_taken(tenant, action, list_name, other["id"])
    return key


def _list_taken(tenant: str, action: Action, list_name: str, other_id: int | None) -> HTTPException:
    kind = "URL List" if action == "url" else "File Hash List"
    by = f"sharing {other_id}" if other_id is not None else "another sharing"
    return unprocessable(
        "parameters: The same URL List, File Hash List or Private App List is already configured: "
        f"the {kind} '{list_name}' on tenant '{tenant}' is already the target of {by}."
    )


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a sharing configuration")
async def create_sharing(state: State, body: SharingIn, _: Writer) -> Sharing:
    action, parameters = body.resolved()
    target = _target(action, parameters)
    async with state.pool.acquire() as conn, conn.transaction():
        tenant = await _checked_tenant(conn, body)
        await _check_rule_exists(conn, body.businessRule)
        key = await _check_list_free(conn, tenant, action, target.list_name, None)
        row = await repository.insert_sharing(
            conn,
            {
                "source": body.sourceConfiguration,
                "rule": body.businessRule,
                "destination": body.destinationConfiguration,
                "action": action,
                "parameters": target.model_dump(),
                "list_key": key,
                "priority": body.priority,
            },
        )
        if row is None:  # taken meanwhile by a concurrent creation
            raise _list_taken(tenant, action, target.list_name, None)
        out = sharing_out(row)
        await state.publish_change(conn, "sharing", str(row["id"]), out)
    return out


@router.get("", summary="List the sharing configurations")
async def list_sharings(state: State, _: Reader) -> list[Sharing]:
    async with state.pool.acquire() as conn:
        return [sharing_out(r) for r in await repository.list_sharings(conn)]


# Declared before /{sharing_id}, which would otherwise take "status" for an id.
@router.get(
    "/status",
    summary="Every sharing's list status on its tenant",
    description="One entry per sharing: the list's state, what it holds, its fill, foreign entries, what is "
    "left out and why, the last push and the last error (docs/API.md, List status).",
)
async def list_statuses(state: State, _: Reader) -> list[SharingListStatus]:
    async with state.pool.acquire() as conn:
        return [list_status_out(r) for r in await repository.list_statuses(conn)]


@router.get("/{sharing_id}/status", summary="A sharing's list status on its tenant")
async def list_status(state: State, sharing_id: RowId, _: Reader) -> SharingListStatus:
    async with state.pool.acquire() as conn:
        rows = await repository.list_statuses(conn, sharing_id)
    if not rows:
        raise _sharing_not_found(sharing_id)
    return list_status_out(rows[0])


@router.get("/{sharing_id}", summary="Get one sharing configuration")
async def get_sharing(state: State, sharing_id: RowId, _: Reader) -> Sharing:
    async with state.pool.acquire() as conn:
        row = await repository.get_sharing(conn, sharing_id)
    if row is None:
        raise _sharing_not_found(sharing_id)
    return sharing_out(row)


@router.patch(
    "/{sharing_id}",
    summary="Update a sharing configuration (rule, parameters, priority)",
    description="`parameters` replaces the stored parameters whole (defaults fill what it leaves out).",
)
async def update_sharing(state: State, sharing_id: RowId, patch: SharingPatch, _: Writer) -> Sharing:
    given = {k for k in patch.model_fields_set if getattr(patch, k) is not None}
    async with state.pool.acquire() as conn, conn.transaction():
        current = await repository.get_sharing(conn, sharing_id, for_update=True)
        if current is None:
            raise _sharing_not_found(sharing_id)
        columns: dict[str, Any] = {}
        taken: HTTPException | None = None  # the answer if the new list is taken meanwhile
        if "businessRule" in given:
            assert patch.businessRule is not None
            await _check_rule_exists(conn, patch.businessRule)
            columns["rule"] = patch.businessRule
        if "parameters" in given:
            assert patch.parameters is not None
            target = _target(current["action"], patch.parameters)
            destination = await get_configuration(conn, current["destination"])
            assert destination is not None  # deleting a configuration deletes its sharings
            tenant = destination_tenant(destination)
            key = await _check_list_free(conn, tenant, current["action"], target.list_name, sharing_id)
            columns["parameters"] = target.model_dump()
            columns["list_key"] = key
            taken = _list_taken(tenant, current["action"], target.list_name, None)
        if "priority" in given:
            columns["priority"] = patch.priority
        try:
            row = await repository.update_sharing(conn, sharing_id, columns) if columns else current
        except asyncpg.UniqueViolationError:  # only list_key is unique
            assert taken is not None
            raise taken from None
        assert row is not None
        out = sharing_out(row)
        await state.publish_change(conn, "sharing", str(sharing_id), out)
    return out


@router.delete("/{sharing_id}", summary="Delete a sharing configuration")
async def delete_sharing(state: State, sharing_id: RowId, _: Writer) -> Empty:
    async with state.pool.acquire() as conn, conn.transaction():
        if not await repository.delete_sharing(conn, sharing_id):
            raise _sharing_not_found(sharing_id)
        await state.publish_change(conn, "sharing", str(sharing_id), None)
    return {}


@router.get(
    "/{sharing_id}/dry_run",
    summary="What the sharing's list would hold: additions, removals, what the cap leaves out",
    description="Decides every active indicator of the sharing's source as the rule-engine does, cuts the "
    "selection at the list's cap, and compares it with what the sink wants the list to hold now (cut at the "
    "same cap). Nothing is pushed or written. Lists of values hold the first 100 (highest priority first).",
)
async def dry_run_sharing(state: State, sharing_id: RowId, _: Reader) -> SharingDryRun:
    async with state.pool.acquire() as conn, conn.transaction(readonly=True):
        row = await repository.get_sharing(conn, sharing_id)
        if row is None:
            raise _sharing_not_found(sharing_id)
        rule = await get_rule(conn, row["rule"])
        assert rule is not None  # a rule in use cannot be deleted
        return await _dry_run(conn, row, rule)


@router.post(
    "/dry_run",
    summary="What a sharing not yet saved would put on its list: additions, removals, what the cap leaves out",
    description="The answer of GET /{sharing_id}/dry_run for the body POST /api/cte/sharing takes, checked the "
    "same way (the same 422 answers); nothing is saved. A client shows it before the sharing is created, so "
    "it takes the scope of creating one (cte_write), as every POST does.",
)
async def dry_run_new_sharing(state: State, body: SharingIn, _: Writer) -> SharingDryRun:
    action, parameters = body.resolved()
    target = _target(action, parameters)
    async with state.pool.acquire() as conn, conn.transaction(readonly=True):
        tenant = await _checked_tenant(conn, body)
        rule = await get_rule(conn, body.businessRule)  # no lock: nothing is written
        if rule is None:
            raise unprocessable(f"businessRule: Business rule with name='{body.businessRule}' does not exist.")
        key = await _check_list_free(conn, tenant, action, target.list_name, None)
        row = {
            "id": 0,  # not saved: no sharing has this id
            "source": body.sourceConfiguration,
            "rule": body.businessRule,
            "action": action,
            "parameters": target.model_dump(),
            "list_key": key,
            "priority": body.priority,
        }
        return await _dry_run(conn, row, rule)


async def _dry_run(conn: Connection, row: dict[str, Any], rule: dict[str, Any]) -> SharingDryRun:
    """Every active indicator of the source decided as the rule-engine does, against the list's members."""
    run = DryRun()
    sharing = sharing_def(row, rule)
    evaluator = Evaluator(AllowList(await allow_entries(conn)))
    async for chunk in repository.dry_run_candidates(conn, sharing.source):
        for indicator_row, sources in chunk:
            indicator = indicator_out(indicator_row, sources)
            run.add(indicator["value"], evaluator.decide(sharing, indicator))
    current = [
        Candidate(m["value"], m["priority"], m["cost_bytes"])
        async for members in repository.stream_list_members(conn, sharing.list_key)
        for m in members
    ]
    return {**run.out(sharing.cap_bytes, current), "ruleMuted": rule_muted(rule, datetime.now(UTC))}
