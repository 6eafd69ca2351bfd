"""Machines for container workers, on one connection pool: start one under a name, destroy one.

A machine's name is the caller's key for it (one per run). Fly documents names as unique in an
app; whether or not it refuses a second create of one, `start` never leaves two machines of a
name running: one found under the name is an orphan of an earlier start whose record was lost
(its tokens with it), so it is destroyed and the machine made again.
"""

from __future__ import annotations

import logging

import httpx

from libs.fly.bodies import Machine
from libs.fly.client import DEFAULT_TIMEOUT_S, FlyClient, FlyError
from libs.fly.settings import FlyAccess

log = logging.getLogger(__name__)

# How long a replaced orphan may take to be gone before its name is used again.
ORPHAN_GONE_S = 30


class Machines:
    def __init__(self, base_url: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.base_url = base_url
        self._http = httpx.AsyncClient(timeout=timeout_s)

    def client(self, token: str) -> FlyClient:
        """A client with `token` on this pool (nothing to close)."""
        return FlyClient(self.base_url, token, http=self._http)

    async def start(
        self, fly: FlyAccess, name: str, env: dict[str, str], metadata: dict[str, str] | None = None
    ) -> str:
        """Creates (and so boots) a machine named `name` in the workspace's app running its
        image with `env`; its id. A machine of that name there already is replaced."""
        client = self.client(fly.api_token)
        await self._replace_orphan(client, fly.app, name)
        try:
            machine = await self._create(client, fly, name, env, metadata)
        except FlyError as exc:
            if not exc.conflict:
                raise
            # Made meanwhile under the same name (or not gone yet): replaced, once.
            await self._replace_orphan(client, fly.app, name)
            machine = await self._create(client, fly, name, env, metadata)
        return machine.id

    async def destroy(self, fly: FlyAccess, app: str, machine_id: str) -> None:
        """Destroys the machine, killing its process; a `FlyError` with `not_found` when Fly
        no longer knows it (destroyed already)."""
        await self.client(fly.api_token).destroy(app, machine_id, force=True)

    async def close(self) -> None:
        await self._http.aclose()

    @staticmethod
    async def _create(
        client: FlyClient, fly: FlyAccess, name: str, env: dict[str, str], metadata: dict[str, str] | None
    ) -> Machine:
        return await client.create_machine(
            fly.app, name=name, region=fly.region, image=fly.image, env=env, size=fly.size, metadata=metadata
        )

    @staticmethod
    async def _replace_orphan(client: FlyClient, app: str, name: str) -> None:
        orphan = await client.find_machine(app, name)
        if orphan is None:
            return
        log.warning("machine %s (%s) in app %s: an earlier start's, destroyed to start again", orphan.id, name, app)
        try:
            await client.destroy(app, orphan.id, force=True)
            await client.wait(app, orphan.id, state="destroyed", timeout_s=ORPHAN_GONE_S)
        except FlyError as exc:
            if not exc.not_found:
                raise
