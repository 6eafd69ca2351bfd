"""A typed async client of the Fly Machines REST API (fly.io/docs/machines/api): an app, and a
machine's create, get, wait, stop and destroy, at a configurable base URL (`FLY_API_URL`:
`https://api.machines.dev`, or the local Fly server in development and tests).

Every failure is a `FlyError` with Fly's status (None when Fly was not reached) and its message,
the token masked out of it: the token is sent in a header and is in no message, log line or repr.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from contracts.fly import DEFAULT_SIZE, FlySize
from libs.fly.bodies import (
    DESTROYED,
    DESTROYING,
    MAX_WAIT_S,
    App,
    CreateMachine,
    Machine,
    MachineConfig,
    Restart,
    StopMachine,
    decode_error,
    guest_for,
)
from libs.observability.logs import REDACTED, redact

log = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 30.0
FLYV1 = "FlyV1 "
MAX_MESSAGE_CHARS = 300


class FlyError(Exception):
    """What Fly refused (`status`: its HTTP status), or that it could not be reached (None)."""

    def __init__(self, status: int | None, message: str, code: str | None = None) -> None:
        super().__init__(f"Fly answered HTTP {status}: {message}" if status is not None else message)
        self.status = status
        self.message = message
        self.code = code  # Fly's word for some errors (`name_taken`, `insufficient_capacity`)

    @property
    def unauthorized(self) -> bool:
        return self.status in (401, 403)

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def timed_out(self) -> bool:
        """A wait that ended before the machine got there (Fly's 408)."""
        return self.status == 408

    @property
    def retryable(self) -> bool:
        """Worth trying again later: Fly not reached, busy, short of capacity, or failing."""
        if self.status is None or self.code == "insufficient_capacity":
            return True
        return self.status in (408, 429) or self.status >= 500


def authorization(token: str) -> str:
    """The Authorization header flyctl sends: a macaroon token with its scheme as it is
    (`FlyV1 fm2_...`), one without it (`fm1r_...`) under `FlyV1`, any other as `Bearer`."""
    token = token.strip()
    if token.startswith(FLYV1):
        return token
    if token.startswith("fm1r_"):
        return FLYV1 + token
    return f"Bearer {token}"


def _path(*parts: str) -> str:
    # An app or machine id is one path segment, whatever it holds.
    return "/" + "/".join(quote(part, safe="") for part in parts)


class FlyClient:
    """The Machines API with one token. Pass `http` to share a connection pool (and close it
    yourself); without it the client owns one, closed by `aclose` or `async with`."""

    def __init__(
        self, base_url: str, token: str, *, http: httpx.AsyncClient | None = None, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._owned = http is None
        self._http = http if http is not None else httpx.AsyncClient(timeout=timeout_s)
        self._timeout_s = timeout_s
        self._headers = {"Authorization": authorization(token), "Accept": "application/json"}
        # What a message must not repeat: the token, and its macaroons without the scheme.
        bare = token.strip().removeprefix(FLYV1)
        self._secrets = sorted({token, token.strip(), bare, *bare.split(",")} - {""}, key=len, reverse=True)

    def __repr__(self) -> str:  # never the token
        return f"FlyClient({self.base_url!r})"

    async def __aenter__(self) -> FlyClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owned:
            await self._http.aclose()

    # --- apps -------------------------------------------------------------------------------

    async def get_app(self, app: str) -> App:
        """`GET /v1/apps/{app}`: the app, when the token reaches it (401 a token Fly refuses,
        404 an app it does not know or the token cannot see)."""
        return await self._call("GET", _path("v1", "apps", app), App)

    # --- machines ---------------------------------------------------------------------------

    async def create_machine(
        self,
        app: str,
        *,
        name: str,
        region: str,
        image: str,
        env: dict[str, str],
        size: FlySize | str = DEFAULT_SIZE,
        metadata: dict[str, str] | None = None,
        auto_destroy: bool = True,
    ) -> Machine:
        """`POST /v1/apps/{app}/machines`: a machine of `image` that boots at once, runs its
        process once (`restart: no`) and, with `auto_destroy`, is destroyed when it exits.
        A name the app holds already is a `FlyError` with `conflict`."""
        config = MachineConfig(
            image=image,
            env=env,
            guest=guest_for(size),
            restart=Restart(policy="no"),
            auto_destroy=auto_destroy,
            metadata=metadata or {},
        )
        body = CreateMachine(config=config, name=name, region=region)
        return await self._call("POST", _path("v1", "apps", app, "machines"), Machine, body=body)

    async def list_machines(self, app: str, *, include_deleted: bool = False) -> list[Machine]:
        """`GET /v1/apps/{app}/machines`: its machines (the destroyed ones only if asked)."""
        params = {"include_deleted": "true"} if include_deleted else None
        return await self._call("GET", _path("v1", "apps", app, "machines"), list[Machine], params=params)

    async def find_machine(self, app: str, name: str) -> Machine | None:
        """The app's machine of that name that is not destroyed (or being destroyed), if any."""
        for machine in await self.list_machines(app):
            if machine.name == name and machine.state not in (DESTROYING, DESTROYED):
                return machine
        return None

    async def get_machine(self, app: str, machine_id: str) -> Machine:
        return await self._call("GET", _path("v1", "apps", app, "machines", machine_id), Machine)

    async def wait(
        self, app: str, machine_id: str, state: str = "started", timeout_s: float = MAX_WAIT_S, instance_id: str = ""
    ) -> None:
        """`GET .../wait?state=&timeout=`: returns once the machine is in `state`; a `FlyError`
        with `timed_out` (Fly's 408) when it is not within `timeout_s` (1 to 60 seconds)."""
        seconds = max(1, min(MAX_WAIT_S, round(timeout_s)))
        params = {"state": state, "timeout": str(seconds)}
        if instance_id:
            params["instance_id"] = instance_id
        path = _path("v1", "apps", app, "machines", machine_id, "wait")
        await self._call("GET", path, None, params=params, timeout_s=seconds + self._timeout_s)

    async def stop(self, app: str, machine_id: str, *, signal: str = "SIGTERM", timeout_s: int | None = None) -> None:
        """`POST .../stop`: `signal` to its process, then SIGKILL after `timeout_s` (Fly's
        default when None)."""
        body = StopMachine(signal=signal, timeout=f"{timeout_s}s" if timeout_s is not None else None)
        await self._call("POST", _path("v1", "apps", app, "machines", machine_id, "stop"), None, body=body)

    async def destroy(self, app: str, machine_id: str, *, force: bool = True) -> None:
        """`DELETE .../machines/{id}?force=true`: destroys it, killing its process when `force`
        (without, Fly refuses a machine still running)."""
        params = {"force": "true"} if force else None
        await self._call("DELETE", _path("v1", "apps", app, "machines", machine_id), None, params=params)

    # --- the call ---------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        shape: type[T] | None,
        *,
        body: msgspec.Struct | None = None,
        params: dict[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        url = self.base_url + path
        content = msgspec.json.encode(body) if body is not None else None
        headers = {**self._headers, "Content-Type": "application/json"} if content is not None else self._headers
        try:
            response = await self._http.request(
                method, url, content=content, params=params, headers=headers, timeout=timeout_s or self._timeout_s
            )
        except httpx.TimeoutException:
            raise FlyError(None, f"Fly did not answer in time at {self.base_url}") from None
        except httpx.HTTPError as exc:
            raise FlyError(None, f"Fly could not be reached at {self.base_url} ({type(exc).__name__})") from None
        if response.status_code >= 400:
            said = decode_error(response.content)
            message = self._masked(said.error or response.reason_phrase or "no message")
            raise FlyError(response.status_code, message, said.status)
        if shape is None:
            return None
        try:
            return msgspec.json.decode(response.content, type=shape)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise FlyError(response.status_code, f"Fly's answer to {method} {path} was not understood: {exc}") from None

    def _masked(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return redact(text)[:MAX_MESSAGE_CHARS]
