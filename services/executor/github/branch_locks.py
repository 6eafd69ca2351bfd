"""One publisher per branch at a time, in the process and across replicas."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import weakref
from collections.abc import AsyncIterator

from psycopg_pool import AsyncConnectionPool

from libs.readmodels.schema import BRANCH_LOCK_CLASS
from services.executor.github.git_steps import Target


class BranchLocks:
    """One publisher per branch at a time. Two approvals for one branch handled at once would
    both find no pull request and both commit onto the base, the second moving the branch over
    the first (chained tasks share their parent's branch).

    In the process, an asyncio lock per branch; across replicas, given the database, also a
    PostgreSQL advisory lock, taken in a transaction held for the publish: released at its end,
    by commit or rollback, and with the session if the process dies, so no lock outlives its
    holder. The connections come from a small pool opened at the first publish: a connection
    per publish cost the executor and PostgreSQL more CPU than the publish's GitHub calls. A
    publish that waits longer than `POOL_WAIT_S` for one (or finds the database down) raises,
    before any GitHub call, so its approval is redelivered and tried again."""

    POOL_SIZE = 8
    POOL_WAIT_S = 60.0

    def __init__(self, database_url: str | None = None) -> None:
        self.database_url = database_url
        self._local: weakref.WeakValueDictionary[Target, asyncio.Lock] = weakref.WeakValueDictionary()
        self._pool: AsyncConnectionPool | None = None
        self._opening = asyncio.Lock()
        self._closed = False

    @contextlib.asynccontextmanager
    async def held(self, target: Target) -> AsyncIterator[None]:
        lock = self._local.setdefault(target, asyncio.Lock())
        async with lock:  # waiters in this process queue here, not on connections
            if self.database_url is None:
                yield
                return
            pool = await self._opened(self.database_url)
            async with pool.connection(timeout=self.POOL_WAIT_S) as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (BRANCH_LOCK_CLASS, branch_key(target)))
                yield

    async def _opened(self, database_url: str) -> AsyncConnectionPool:
        async with self._opening:
            if self._closed:
                raise RuntimeError("the executor is stopping: no more pull requests")
            if self._pool is None:
                pool = AsyncConnectionPool(
                    database_url,
                    min_size=1,
                    max_size=self.POOL_SIZE,
                    open=False,
                    kwargs={"autocommit": True},
                    # A connection PostgreSQL dropped (a restart) is replaced, not handed out.
                    check=AsyncConnectionPool.check_connection,
                )
                await pool.open()
                self._pool = pool
            return self._pool

    async def close(self) -> None:
        async with self._opening:
            self._closed = True
            if self._pool is not None:
                await self._pool.close()
                self._pool = None


def branch_key(target: Target) -> int:
    """A branch as a 32-bit lock key: two branches that share one only wait for each other."""
    name = f"{target.owner}/{target.repo}/{target.branch}".lower()  # GitHub's names ignore case
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "big", signed=True)
