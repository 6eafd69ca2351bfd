"""Spec 002's agent API as the worker calls it: the claim, the files by digest, and the calls
under the lease. Bodies are the contracts' Structs; answers are read into the few fields the
worker uses, so a view that grows a field never breaks it.

A refusal (4xx) is `Refused`, with the diagnostic's code and message; a server that cannot be
reached or answers 5xx is `Unavailable`, which the callers try again."""

from __future__ import annotations

from typing import Any

import aiohttp
import msgspec

from contracts.agent_tasks import Complete, Fail, Heartbeat, Release, RunInput
from libs.eventstore.blobs import digest_of

# A claim's long-poll is answered within its `wait_seconds`; the answer gets this much more.
ANSWER_MARGIN_S = 15.0
CALL_TIMEOUT_S = 30.0
# `complete` waits for the self-heal checks (the runtime gives them 90 s).
COMPLETE_TIMEOUT_S = 150.0


class ClaimNext(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """`POST /api/agent/tasks/claim-next`; `run_id` only when the worker is given one."""

    lease_ttl_seconds: int
    wait_seconds: float
    run_id: str | None = None


class RunRef(msgspec.Struct, frozen=True):
    id: str
    attempt: int = 1


class TaskRef(msgspec.Struct, frozen=True):
    id: str


class Claim(msgspec.Struct, frozen=True):
    claim_token: str
    run: RunRef
    task: TaskRef
    input: RunInput


class _Claimed(msgspec.Struct, frozen=True):
    claim: Claim


class EndedRun(msgspec.Struct, frozen=True):
    status: str  # "completed" | "failed" | "released" | ...
    error: str | None = None
    failure_kind: str | None = None


class EndedLease(msgspec.Struct, frozen=True):
    status: str


class LeaseAnswer(msgspec.Struct, frozen=True):
    lease: EndedLease
    run: EndedRun


class _Diagnostic(msgspec.Struct, frozen=True):
    code: str = ""
    message: str = ""


class _Refusal(msgspec.Struct, frozen=True):
    diagnostic: _Diagnostic


class _File(msgspec.Struct, frozen=True):
    digest: str
    content: str


class Refused(Exception):
    """The agent API refused the call (a 4xx): what it said, by its diagnostic."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class Unavailable(Exception):
    """The agent API could not be reached, or failed (a 5xx): trying again may help."""


class AgentApi:
    def __init__(self, http: aiohttp.ClientSession, base_url: str, token: str) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self._auth = {"Authorization": f"Bearer {token}"}

    async def claim_next(self, body: ClaimNext) -> Claim | None:
        """The run claimed, or None when none was ready within the body's `wait_seconds`."""
        status, raw = await self._send("POST", "/api/agent/tasks/claim-next", body, body.wait_seconds + ANSWER_MARGIN_S)
        if status == 204:
            return None
        return msgspec.json.decode(raw, type=_Claimed).claim

    async def file(self, url: str, digest: str) -> str:
        """A claim's file by the URL its input names; checked against its digest."""
        _, raw = await self._send("GET", url, None, CALL_TIMEOUT_S)
        found = msgspec.json.decode(raw, type=_File)
        if found.digest != digest or digest_of(found.content) != digest:
            raise Unavailable(f"the file {digest} came back with other content")
        return found.content

    async def heartbeat(self, run_id: str, claim_token: str) -> None:
        await self._send("POST", f"/api/agent/tasks/{run_id}/heartbeat", Heartbeat(claim_token=claim_token))

    async def complete(self, run_id: str, body: Complete) -> LeaseAnswer:
        return await self._ended(f"/api/agent/tasks/{run_id}/complete", body, COMPLETE_TIMEOUT_S)

    async def fail(self, run_id: str, body: Fail) -> LeaseAnswer:
        return await self._ended(f"/api/agent/tasks/{run_id}/fail", body)

    async def release(self, run_id: str, body: Release) -> LeaseAnswer:
        return await self._ended(f"/api/agent/tasks/{run_id}/release", body)

    async def _ended(self, path: str, body: Any, timeout_s: float = CALL_TIMEOUT_S) -> LeaseAnswer:
        _, raw = await self._send("POST", path, body, timeout_s)
        return msgspec.json.decode(raw, type=LeaseAnswer)

    async def _send(self, method: str, path: str, body: Any, timeout_s: float = CALL_TIMEOUT_S) -> tuple[int, bytes]:
        url = self._url(path)
        headers = dict(self._auth)
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = msgspec.json.encode(body)
        try:
            async with self._http.request(
                method, url, data=data, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as response:
                raw = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unavailable(f"{method} {path}: {type(exc).__name__}") from None
        if status >= 500:
            raise Unavailable(f"{method} {path}: HTTP {status}")
        if status >= 400:
            raise _refused(status, raw)
        return status, raw

    def _url(self, path: str) -> str:
        """A path on the agent API (a claim's file URL is one), or a full URL under it: the
        session token goes nowhere else."""
        if path.startswith("/"):
            return self._base + path
        if path.startswith(self._base + "/"):
            return path
        raise Refused(400, "url_elsewhere", "a URL that is not on the agent API was not called")


def _refused(status: int, raw: bytes) -> Refused:
    try:
        found = msgspec.json.decode(raw, type=_Refusal).diagnostic
    except msgspec.DecodeError:
        return Refused(status, f"http_{status}", raw[:200].decode(errors="replace"))
    return Refused(status, found.code or f"http_{status}", found.message)
