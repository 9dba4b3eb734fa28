"""Routes of ``/api/cte/dashboards/`` and ``/api/cte/dashboard/pull``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status

from ingest_api.dashboards import repository
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
) -> list[dict[str, Any]]:
    where, params = filter_where(filters)
    try:
        sql = repository.ordered_dashboard_query(group_by, count_by, where, params, ascending)
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    async with state.pool.acquire() as conn:
        rows = await repository.run_dashboard(conn, sql, [*params, limit])
    keys = repository.dashboard_ids(group_by)
    return [{"_id": {k: row[f"k{n}"] for n, k in enumerate(keys)}, "count": row["count"]} for row in rows]


@router.get("/cte/dashboard/pull", summary="Indicators per type and source, retracted or not")
async def dashboard_pull(state: State, _: Reader) -> dict[str, Any]:
    async with state.pool.acquire() as conn:
        rows = await repository.pull_counts(conn)
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        out.setdefault(r["type"], {})[r["source"]] = {
            "retractedCount": r["retracted"],
            "unretractedCount": r["unretracted"],
            "allCount": r["total"],
        }
    return out
