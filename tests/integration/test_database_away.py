"""The gateway while PostgreSQL is away: a 503 with the error body and a Retry-After, not a 500,
for reads through its pool and for writes through the event store alike. The real gateway app,
in process, on real NATS; its database is dropped under it (its sessions ended by force)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest
from litestar.testing import AsyncTestClient
from psycopg import sql

from libs.config import Settings
from libs.eventstore.store import EventStore
from libs.readmodels import projector
from services.gateway.app import create_app

pytestmark = pytest.mark.integration

ADMIN = "admin-token-for-this-test"


@pytest.fixture
async def gateway(postgres_url: str, nats_url: str) -> AsyncIterator[AsyncTestClient]:
    settings = Settings(service="gateway", database_url=postgres_url, nats_url=nats_url, admin_token=ADMIN)
    async with AsyncTestClient(app=create_app(settings)) as client:
        yield client


def drop_database(postgres_url: str) -> None:
    """The database goes away, every session in it ended (as a restart or a failover does)."""
    name = psycopg.conninfo.conninfo_to_dict(postgres_url)["dbname"]
    admin = psycopg.conninfo.make_conninfo(postgres_url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(str(name))))


def assert_unavailable(response: object) -> None:
    assert response.status_code == 503, response.text  # type: ignore[attr-defined]
    assert response.json() == {  # type: ignore[attr-defined]
        "error": "service_unavailable",
        "message": "the database cannot be reached at the moment; try again",
    }
    assert response.headers["Retry-After"] == "2"  # type: ignore[attr-defined]


async def test_requests_while_the_database_is_away_get_a_503_to_try_again(
    gateway: AsyncTestClient, postgres_url: str, store: EventStore
) -> None:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    created = await gateway.post("/admin/workspaces", json={"workspaceId": "away", "name": "away"}, headers=admin)
    assert created.status_code == 201, created.text
    key = {"Authorization": f"Bearer {created.json()['apiKey']}"}
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        projector.catch_up(store, conn)  # the key reaches the read models, as the stream's projector does
    unknown = f"/tasks/{uuid.uuid4()}"
    assert (await gateway.get(unknown, headers=key)).status_code == 404

    drop_database(postgres_url)

    assert_unavailable(await gateway.get(unknown, headers=key))  # the key's look-up, on the pool
    assert_unavailable(await gateway.get("/admin/workspaces/away", headers=admin))
    # A write: the Workspace aggregate is saved through the event store (eventsourcing).
    assert_unavailable(await gateway.post("/admin/workspaces/away/keys", json={}, headers=admin))
