"""Routes of ``/api/cte/allow_list``."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from ingest_api.allow_list import repository
from ingest_api.allow_list.domain import allow_entry, allow_entry_out, allow_pattern
from ingest_api.allow_list.schemas import AllowEntryIn, AllowEntryOut
from ingest_api.shared import WRITE_ERRORS, Empty, Reader, RowId, State, Writer, unprocessable

router = APIRouter(prefix="/cte/allow_list", tags=["Allow-list"], responses=WRITE_ERRORS)


def _allow_entry_not_found(entry_id: int) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"Allow-list entry with id={entry_id} does not exist.")


@router.post("", status_code=status.HTTP_201_CREATED, summary="Add an allow-list entry")
async def create_allow_entry(state: State, entry: AllowEntryIn, _: Writer) -> AllowEntryOut:
    try:
        pattern = allow_pattern(entry.kind, entry.pattern)
    except ValueError as exc:
        raise unprocessable(str(exc)) from None
    async with state.pool.acquire() as conn, conn.transaction():
        row = await repository.insert_allow_entry(conn, entry.kind, pattern, entry.comment)
        if row is None:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"An allow-list entry with kind='{entry.kind}' and pattern='{pattern}' already exists.",
            )
        await state.publish_change(conn, "allow_list", str(row["id"]), allow_entry(row))
    return allow_entry_out(row)


@router.get("", summary="List the allow-list, with how often each entry matched")
async def list_allow_entries(state: State, _: Reader) -> list[AllowEntryOut]:
    async with state.pool.acquire() as conn:
        return [allow_entry_out(r) for r in await repository.list_allow_entries(conn)]


@router.get("/{entry_id}", summary="Get one allow-list entry")
async def get_allow_entry(state: State, entry_id: RowId, _: Reader) -> AllowEntryOut:
    async with state.pool.acquire() as conn:
        row = await repository.get_allow_entry(conn, entry_id)
    if row is None:
        raise _allow_entry_not_found(entry_id)
    return allow_entry_out(row)


@router.delete("/{entry_id}", summary="Delete an allow-list entry")
async def delete_allow_entry(state: State, entry_id: RowId, _: Writer) -> Empty:
    async with state.pool.acquire() as conn, conn.transaction():
        if not await repository.delete_allow_entry(conn, entry_id):
            raise _allow_entry_not_found(entry_id)
        await state.publish_change(conn, "allow_list", str(entry_id), None)
    return {}
