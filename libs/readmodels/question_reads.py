"""Reads of the agents' questions (`rm_questions`) for the HTTP services: the open ones."""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool


async def open_questions(pool: AsyncConnectionPool, workspace_id: str, question_id: str | None = None) -> list[Any]:
    """The workspace's unanswered, unexpired questions (or the one asked for), oldest first."""
    by_id = " AND question_id = %s" if question_id else ""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT question_id, session_id, questions, tool FROM rm_questions "
            f"WHERE workspace_id = %s AND status = 'open'{by_id} ORDER BY asked_at, question_id",
            (workspace_id, question_id) if question_id else (workspace_id,),
        )
        rows = await cur.fetchall()
    return [{"id": r[0], "sessionID": r[1], "questions": r[2], "tool": r[3]} for r in rows]
