"""Routes of ``/api/cte/dashboards/`` and ``/api/cte/dashboard/pull``."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status

from cte_common.indicators import IndicatorType
from ingest_api.configurations.repository import get_configuration
from ingest_api.dashboards import repository
from ingest_api.dashboards.schemas import DashboardGroupOut, PullCountsOut, PullOut, SharingCountsOut, SharingOut
from ingest_api.rules.repository import get_rule
from ingest_api.shared import READ_ERRORS, Reader, State, configuration_missing, filter_where

router = APIRouter(tags=["Dashboards"], responses=READ_ERRORS)


@router.get("/cte/dashboards/", summary="Get aggregated results from indicators")
async def dashboards(
    state: State,
    _: Reader,
    group_by: Annotated[list[str], Query()] = [],  # noqa: B006 (FastAPI reads the default, never mutates it)
    count_by: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    ascending: bool = False,
    filters: str = "{}",
) -> list[DashboardGroupOut]:
    where, params = filter_where(filters)
    try:
        sql = repository.ordered_dashboard_query(group_by, count_by, where, params, ascending)
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    async with state.pool.acquire() as conn:
        rows = await repository.run_dashboard(conn, sql, [*params, limit])
    keys = repository.dashboard_ids(group_by)
    return [DashboardGroupOut(_id={k: row[f"k{n}"] for n, k in enumerate(keys)}, count=row["count"]) for row in rows]


@router.get("/cte/dashboard/pull", summary="Indicators per type and source, retracted or not")
async def dashboard_pull(state: State, _: Reader) -> PullOut:
    async with state.pool.acquire() as conn:
        rows = await repository.pull_counts(conn)
    out: PullOut = {}
    for r in rows:
        out.setdefault(IndicatorType(r["type"]), {})[r["source"]] = PullCountsOut(
            retractedCount=r["retracted"], unretractedCount=r["unretracted"], allCount=r["total"]
        )
    return out


@router.get(
    "/cte/dashboard/sharing",
    summary="Per type: what a rule selects from a source, what its sharings share, and the difference",
    description="`filteredCount`: active indicators that `sourceConfiguration` reports (not retracted) and "
    "the rule's filter selects; `sharedCount`: those the rule-engine decided to share through the sharings "
    "of the rule from the source (to `destinationConfiguration` when given); `misMatchCount`: the "
    "difference (exceptions, the allow-list, test indicators, types the target does not hold).",
)
async def dashboard_sharing(
    state: State,
    _: Reader,
    rule: Annotated[str, Query(min_length=1, max_length=200)],
    sourceConfiguration: Annotated[str, Query(min_length=1, max_length=200)],
    destinationConfiguration: Annotated[str | None, Query(max_length=200)] = None,
) -> SharingOut:
    async with state.pool.acquire() as conn:
        stored = await get_rule(conn, rule)
        if stored is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"Business rule with name='{rule}' does not exist.")
        for field, name in (
            ("sourceConfiguration", sourceConfiguration),
            ("destinationConfiguration", destinationConfiguration),
        ):
            if name is not None and await get_configuration(conn, name) is None:
                raise configuration_missing(field, name)
        rule_filter: Any = json.loads(stored["filter"]) if isinstance(stored["filter"], str) else stored["filter"]
        selects = {"sources": {"$elemMatch": {"source": sourceConfiguration, "retracted": False}}}
        where, params = filter_where({"$and": [rule_filter, {"active": True}, selects]})
        sql = repository.ordered_dashboard_query(["type"], None, where, params, False)
        filtered = {r["k0"]: int(r["count"]) for r in await repository.run_dashboard(conn, sql, [*params, 100])}
        shared = {
            r["type"]: int(r["shared"])
            for r in await repository.shared_counts(conn, rule, sourceConfiguration, destinationConfiguration)
        }
    out: SharingOut = {}
    for kind in sorted(filtered.keys() | shared.keys()):
        f, s = filtered.get(kind, 0), shared.get(kind, 0)
        out[IndicatorType(kind)] = SharingCountsOut(filteredCount=f, sharedCount=s, misMatchCount=max(f - s, 0))
    return out
