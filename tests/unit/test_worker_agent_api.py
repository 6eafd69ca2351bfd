"""The agent API as the worker reads it: 204 is nothing to claim, a 4xx is a refusal with its
diagnostic, a 5xx is worth another try, a file must match its digest, and the session token goes
to the agent API only. A small local server stands in for the runtime service."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from libs.eventstore.blobs import digest_of
from services.worker.agent_api import AgentApi, ClaimNext, Refused, Unavailable

TOKEN = "ags_" + "a" * 32 + "_" + "s" * 43
CONTENT = "print('hi')\n"
DIAGNOSTIC = {
    "diagnostic": {"code": "session_stopped", "message": "the session is stopped", "category": "auth"},
    "error": "the session is stopped",
}


@pytest.fixture
async def server() -> AsyncIterator[tuple[TestServer, list[web.Request]]]:
    seen: list[web.Request] = []
    claims = [web.Response(status=204), web.json_response(DIAGNOSTIC, status=403), web.Response(status=502)]

    async def claim_next(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        return claims.pop(0)

    async def file(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        digest = request.match_info["digest"]
        content = CONTENT if digest == digest_of(CONTENT) else "something else\n"
        return web.json_response({"digest": digest, "size": len(content), "content": content})

    app = web.Application()
    app.router.add_post("/api/agent/tasks/claim-next", claim_next)
    app.router.add_get("/api/agent/files/{digest}", file)
    test_server = TestServer(app)
    await test_server.start_server()
    yield test_server, seen
    await test_server.close()


async def test_the_answers_are_read_as_the_worker_acts_on_them(server: tuple[TestServer, list[web.Request]]) -> None:
    test_server, seen = server
    async with aiohttp.ClientSession() as http:
        api = AgentApi(http, str(test_server.make_url("/")), TOKEN)
        body = ClaimNext(lease_ttl_seconds=30, wait_seconds=0)

        assert await api.claim_next(body) is None
        with pytest.raises(Refused) as refused:
            await api.claim_next(body)
        with pytest.raises(Unavailable):
            await api.claim_next(body)
        assert await api.file(f"/api/agent/files/{digest_of(CONTENT)}", digest_of(CONTENT)) == CONTENT
        with pytest.raises(Unavailable):  # content that is not what its digest says
            await api.file(f"/api/agent/files/{digest_of('x')}", digest_of("x"))

    assert (refused.value.status, refused.value.code, refused.value.message) == (
        403,
        "session_stopped",
        "the session is stopped",
    )
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in seen)


async def test_the_token_is_never_sent_to_a_url_off_the_agent_api(server: tuple[TestServer, list[web.Request]]) -> None:
    test_server, seen = server
    async with aiohttp.ClientSession() as http:
        api = AgentApi(http, str(test_server.make_url("/api")), TOKEN)
        elsewhere = str(test_server.make_url(f"/api/agent/files/{digest_of(CONTENT)}")).replace(
            "127.0.0.1", "localhost"
        )
        with pytest.raises(Refused):
            await api.file(elsewhere, digest_of(CONTENT))

    assert seen == []
