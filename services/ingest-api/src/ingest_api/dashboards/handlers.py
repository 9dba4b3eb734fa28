"""Routes of ``/api/cte/dashboards/`` and ``/api/cte/dashboard/pull``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from cte_common.indicators import IndicatorType
from ingest_api.dashboards import repository
from ingest_api.dashboards.schemas import DashboardGroupOut, PullCountsOut, PullOut
from ingest_api.shared import READ_ERRORS, Reader, State, filter_where

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
