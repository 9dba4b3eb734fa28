"""Routes of ``/api/cte/business_rules`` (with their test and clone) and ``/api/cte/reevaluations``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status

from cte_common.db import Connection
from cte_common.query import QueryError
from cte_common.sharing import Action, AllowList, Evaluator, SharingDef
from ingest_api.allow_list.repository import allow_entries
from ingest_api.configurations.repository import get_configuration
from ingest_api.indicators.domain import indicator_out
from ingest_api.rules import repository
from ingest_api.rules.domain import (
    RuleTestTally,
    ad_hoc_sharing,
    exception_tags,
    mute_problem,
    reevaluation_out,
    rule_columns,
    rule_def,
    rule_muted,
    rule_out,
    rule_test_action,
    rule_test_source,
    stored_exceptions,
)
from ingest_api.rules.schemas import (
    DEFAULT_RULE,
    ExceptionIn,
    FiltersIn,
    NamedRulePatch,
    Reevaluation,
    Rule,
    RuleIn,
    RuleName,
    RulePatch,
    RuleTest,
)
from ingest_api.shared import (
    MAX_SKIP,
    READ_ERRORS,
    WRITE_ERRORS,
    Empty,
    Reader,
    State,
    Writer,
    configuration_missing,
    destination_tenant,
    unprocessable,
)
from ingest_api.sharing.repository import sharings_of_rule
from ingest_api.tags.repository import lock_tags

rules_router = APIRouter(prefix="/cte/business_rules", tags=["Business Rules"], responses=WRITE_ERRORS)
# The reference's 6.x paths that name the rule in the body: aliases of ours.
rule_ce_router = APIRouter(prefix="/cte/business_rule", tags=["Business Rules"], responses=WRITE_ERRORS)
reevaluations_router = APIRouter(prefix="/cte/reevaluations", tags=["Business Rules"], responses=READ_ERRORS)


def _rule_columns(filters: FiltersIn) -> dict[str, Any]:
    try:
        return rule_columns(filters)
    except QueryError as exc:
        raise unprocessable(exc.message) from None


def _stored_exceptions(exceptions: list[ExceptionIn]) -> list[dict[str, Any]]:
    try:
        return stored_exceptions(exceptions)
    except QueryError as exc:
        raise unprocessable(exc.message) from None


async def _check_exception_tags(conn: Connection, exceptions: list[dict[str, Any]]) -> None:
    """Exception tags must exist; they stay locked until the transaction ends, so a concurrent tag
    deletion waits and then sees the rule that uses the tag."""
    wanted = exception_tags(exceptions)
    found = set(await lock_tags(conn, wanted))
    missing = [t for t in wanted if t not in found]
    if missing:
        raise unprocessable(f"Tag '{missing[0]}' does not exist.")


def _rule_not_found(name: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"Business rule with name='{name}' does not exist.")


@rules_router.post("", status_code=status.HTTP_201_CREATED, summary="Create a business rule")
async def create_rule(state: State, rule: RuleIn, _: Writer) -> Rule:
    columns = {**_rule_columns(rule.filters), "exceptions": _stored_exceptions(rule.exceptions)}
    async with state.pool.acquire() as conn, conn.transaction():
        await _check_exception_tags(conn, columns["exceptions"])
        row = await repository.insert_rule(conn, rule.name, columns)
        if row is None:
            raise HTTPException(status.HTTP_409_CONFLICT, f"Business rule with name='{rule.name}' already exists.")
        out = rule_out(row, datetime.now(UTC))
        await state.publish_change(conn, "business_rule", rule.name, out)
    return out


@rules_router.get("", summary="List the business rules")
async def list_rules(state: State, _: Reader) -> list[Rule]:
    now = datetime.now(UTC)
    async with state.pool.acquire() as conn:
        return [rule_out(r, now) for r in await repository.list_rules(conn)]


@rules_router.get(
    "/test",
    summary="Test the business rule named by ?rule= (the reference's 6.x path); without it, the rule named test",
)
async def rule_test_by_query(
    state: State,
    claims: Reader,
    rule: Annotated[str | None, Query(description="the rule to test")] = None,
    days: Annotated[int, Query(ge=1, le=365, description="1..365; all time is the last 365 days")] = 365,
    sourceConfiguration: Annotated[str | None, Query(description="a source configuration")] = None,
    destinationConfiguration: Annotated[str | None, Query(description="a destination configuration")] = None,
) -> RuleTest | Rule:
    """The same as ``GET /api/cte/business_rules/{rule}/test``. A rule may be named ``test``: without
    ``rule`` this is ``GET /api/cte/business_rules/test``, that rule."""
    if rule is None:
        return await get_rule(state, "test", claims)
    return await rule_test(
        state, rule, claims, days=days, source=sourceConfiguration, destination=destinationConfiguration
    )


@rules_router.get("/{name}", summary="Get one business rule")
async def get_rule(state: State, name: str, _: Reader) -> Rule:
    async with state.pool.acquire() as conn:
        row = await repository.get_rule(conn, name)
    if row is None:
        raise _rule_not_found(name)
    return rule_out(row, datetime.now(UTC))


@rules_router.patch(
    "/{name}",
    summary="Update a business rule (filters, exceptions, mute)",
    description="A given field replaces the stored one whole. Muting needs `unmuteAt` in the future; "
    "`muted: false` unmutes.",
)
async def update_rule(state: State, name: str, patch: RulePatch, _: Writer) -> Rule:
    given = patch.model_fields_set
    columns: dict[str, Any] = {}
    if "filters" in given:
        if patch.filters is None:
            raise unprocessable("filters: cannot be null")
        columns.update(_rule_columns(patch.filters))
    if "exceptions" in given:
        columns["exceptions"] = _stored_exceptions(patch.exceptions or [])
    now = datetime.now(UTC)
    async with state.pool.acquire() as conn, conn.transaction():
        current = await repository.get_rule(conn, name, lock="update")
        if current is None:
            raise _rule_not_found(name)
        if "muted" in given or "unmuteAt" in given:
            muted = patch.muted if patch.muted is not None else rule_muted(current, now)
            unmute_at = patch.unmuteAt if "unmuteAt" in given else current["unmute_at"]
            problem = mute_problem(muted, unmute_at, now)
            if problem:
                raise unprocessable(problem)
            columns["muted"] = muted
            columns["unmute_at"] = unmute_at if muted else None
        if "exceptions" in columns:
            await _check_exception_tags(conn, columns["exceptions"])
        row = await repository.update_rule(conn, name, columns) if columns else current
        assert row is not None
        out = rule_out(row, now)
        await state.publish_change(conn, "business_rule", name, out)
    return out


@rules_router.delete("/{name}", summary="Delete a business rule")
async def delete_rule(state: State, name: str, _: Writer) -> Empty:
    if name == DEFAULT_RULE:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"The default rule '{DEFAULT_RULE}' cannot be deleted.")
    async with state.pool.acquire() as conn, conn.transaction():
        # FOR UPDATE makes a concurrent sharing creation (which locks the rule FOR KEY SHARE) wait.
        if await repository.get_rule(conn, name, lock="update") is None:
            raise _rule_not_found(name)
        users = await sharings_of_rule(conn, name)
        if users:
            named = ", ".join(f"{u['id']} ({u['source']} -> {u['destination']})" for u in users)
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                f"Business rule '{name}' is used by sharing configurations: {named}. Delete them first.",
            )
        await repository.delete_rule(conn, name)
        await state.publish_change(conn, "business_rule", name, None)
    return {}


@rules_router.post(
    "/{name}/clone", status_code=status.HTTP_201_CREATED, summary="Clone a business rule under a new name"
)
async def clone_rule(state: State, name: str, new: RuleName, _: Writer) -> Rule:
    async with state.pool.acquire() as conn, conn.transaction():
        current = await repository.get_rule(conn, name)
        if current is None:
            raise _rule_not_found(name)
        await _check_exception_tags(conn, current["exceptions"])
        row = await repository.insert_rule(conn, new.name, current | {"muted": False, "unmute_at": None})
        if row is None:
            raise HTTPException(status.HTTP_409_CONFLICT, f"Business rule with name='{new.name}' already exists.")
        out = rule_out(row, datetime.now(UTC))
        await state.publish_change(conn, "business_rule", new.name, out)
    return out


@rules_router.get(
    "/{name}/test",
    summary="Test a business rule: how many indicators (and bytes) it would share",
    description="Counts, per target type, the active indicators the rule selects whose entry of `source` (of "
    "any source when not given) was last seen within `days`; exceptions and the allow-list apply, as in "
    "the rule-engine. Sizes are bytes as counted against a Netskope list's cap.",
)
async def rule_test(
    state: State,
    name: str,
    _: Reader,
    days: Annotated[int, Query(ge=1, le=365, description="1..365; all time is the last 365 days")] = 365,
    source: Annotated[str | None, Query(description="a source configuration")] = None,
    destination: Annotated[str | None, Query(description="a destination configuration (Netskope)")] = None,
) -> RuleTest:
    now = datetime.now(UTC)
    since = now - timedelta(days=days)
    tally = RuleTestTally()
    async with state.pool.acquire() as conn, conn.transaction(readonly=True):
        row = await repository.get_rule(conn, name)
        if row is None:
            raise _rule_not_found(name)
        if source is not None and await get_configuration(conn, source) is None:
            raise configuration_missing("source", source)
        if destination is not None:
            config = await get_configuration(conn, destination)
            if config is None:
                raise configuration_missing("destination", destination)
            destination_tenant(config, "destination")
        rule = rule_def(row)
        evaluator = Evaluator(AllowList(await allow_entries(conn)))
        sharings: dict[tuple[str, Action], SharingDef] = {}
        async for chunk in repository.rule_test_candidates(conn, rule.node, since, source):
            for indicator_row, sources in chunk:
                indicator = indicator_out(indicator_row, sources)
                by = source or rule_test_source(indicator, since)
                if by is None:
                    continue
                action = rule_test_action(indicator["type"])
                sharing = sharings.get((by, action))
                if sharing is None:
                    sharing = sharings[(by, action)] = ad_hoc_sharing(rule, by, action)
                tally.add(action, evaluator.decide(sharing, indicator))
    return tally.out()


# Re-evaluations (the rule-engine's progress)


@reevaluations_router.get("", summary="Progress of the rule-engine's re-evaluations, newest first")
async def list_reevaluations(
    state: State,
    _: Reader,
    skip: Annotated[int, Query(ge=0, le=MAX_SKIP)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[Reevaluation]:
    async with state.pool.acquire() as conn:
        return [reevaluation_out(r) for r in await repository.list_reevaluations(conn, skip, limit)]


@rule_ce_router.patch("", summary="Update a business rule named in the body (the reference's 6.x path)")
async def update_rule_by_body(state: State, patch: NamedRulePatch, claims: Writer) -> Rule:
    """The same as ``PATCH /api/cte/business_rules/{name}`` with the rest of the body."""
    given = patch.model_dump(exclude={"name"}, exclude_unset=True)
    return await update_rule(state, patch.name, RulePatch.model_validate(given), claims)


@rule_ce_router.delete("", summary="Delete a business rule named in the body (the reference's 6.x path)")
async def delete_rule_by_body(state: State, ref: RuleName, claims: Writer) -> Empty:
    """The same as ``DELETE /api/cte/business_rules/{name}``."""
    return await delete_rule(state, ref.name, claims)
