"""Reads of the workspaces (`rm_workspaces`), their API keys (`rm_api_keys`) and their stored
credentials (`rm_workspace_secrets`): a workspace's name and config, its keys, the key an HTTP
request presents, and which credentials it stores."""

from __future__ import annotations

import contextlib
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool


def _connection(source: AsyncConnectionPool | AsyncConnection) -> Any:
    """A pool's connection, or the connection given (to read inside its transaction)."""
    return source.connection() if isinstance(source, AsyncConnectionPool) else contextlib.nullcontext(source)


async def workspace(source: AsyncConnectionPool | AsyncConnection, workspace_id: str) -> dict[str, Any] | None:
    async with _connection(source) as conn:
        cur = await conn.execute(
            "SELECT name, created_at, config, purged_through FROM rm_workspaces WHERE workspace_id = %s",
            (workspace_id,),
        )
        row = await cur.fetchone()
    if row is None:
        return None
    return {"workspaceID": workspace_id, "name": row[0], "createdAt": row[1], "config": row[2], "purgedThrough": row[3]}


async def workspace_keys(source: AsyncConnectionPool | AsyncConnection, workspace_id: str) -> list[dict[str, Any]]:
    async with _connection(source) as conn:
        cur = await conn.execute(
            "SELECT key_id, label, created_at, revoked_at FROM rm_api_keys WHERE workspace_id = %s ORDER BY created_at",
            (workspace_id,),
        )
        rows = await cur.fetchall()
    return [{"keyId": r[0], "label": r[1], "createdAt": r[2], "revokedAt": r[3]} for r in rows]


async def api_key(pool: AsyncConnectionPool, key_id: str) -> dict[str, Any] | None:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT workspace_id, key_hash, revoked_at FROM rm_api_keys WHERE key_id = %s", (key_id,), prepare=True
        )
        row = await cur.fetchone()
    return {"workspace_id": row[0], "key_hash": row[1], "revoked_at": row[2]} if row else None


async def workspace_secrets(source: AsyncConnectionPool | AsyncConnection, workspace_id: str) -> dict[str, str]:
    """The workspace's stored credentials: the last four characters of each, by name."""
    async with _connection(source) as conn:
        cur = await conn.execute(
            "SELECT name, last4 FROM rm_workspace_secrets WHERE workspace_id = %s", (workspace_id,)
        )
        rows = await cur.fetchall()
    return {r[0]: r[1] for r in rows}
