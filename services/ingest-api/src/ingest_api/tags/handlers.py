"""Routes of ``/api/cte/tags``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, status

from cte_common.events import IndicatorTagEdit
from ingest_api.indicators.repository import values_with_tag
from ingest_api.rules.domain import rule_uses_tag
from ingest_api.rules.repository import list_rules
from ingest_api.shared import WRITE_ERRORS, Empty, Reader, State, Writer, filter_where
from ingest_api.tags import repository
from ingest_api.tags.domain import applied_on
from ingest_api.tags.schemas import TagIn, TagName, TagOut
from ingest_api.write_path import publish_indicator_events

router = APIRouter(prefix="/cte/tags", tags=["Tags"], responses=WRITE_ERRORS)


@router.get("", summary="Get configured tags")
async def list_tags(state: State, _: Reader, filters: str = "{}") -> list[TagOut]:
    where, params = filter_where(filters)
    async with state.pool.acquire() as conn:
        rows, total = await repository.tags_with_usage(conn, where=where, params=params)
    return [TagOut(name=r["name"], color=r["color"], appliedOn=applied_on(r["count"], total)) for r in rows]


@router.post("", summary="Create a tag")
async def create_tag(state: State, tag: TagIn, _: Writer) -> Empty:
    async with state.pool.acquire() as conn, conn.transaction():
        if not await repository.insert_tag(conn, tag.name, tag.color):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"Tag '{tag.name}' already exists.")
        await state.publish_change(conn, "tag", tag.name, tag.model_dump())
    return Empty()


@router.delete("", summary="Delete a tag (from every indicator too)")
async def delete_tag(state: State, tag: Annotated[TagName, Body()], _: Writer) -> Empty:
    async with state.pool.acquire() as conn, conn.transaction():
        if not await repository.delete_tag(conn, tag.name):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"Tag '{tag.name}' does not exist.")
        # Checked after the delete, which waits for a rule being created with this tag (it locks the
        # tag) and then sees it; refusing rolls the delete back.
        if any(rule_uses_tag(r, tag.name) for r in await list_rules(conn)):
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"{tag.name} is in use by one of the CTE business rules.")
        async for chunk in values_with_tag(conn, tag.name):
            await publish_indicator_events(state, [IndicatorTagEdit(value=v, remove=[tag.name]) for v in chunk])
        await state.publish_change(conn, "tag", tag.name, None)
    return Empty()
