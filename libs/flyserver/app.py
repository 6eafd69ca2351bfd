"""Litestar app speaking the Fly Machines API endpoints the product uses, with Fly's bodies
(`libs.fly.bodies`), status codes and machine states (`lifecycle`); the machines' processes
really run (`processes`).

Every `/v1` route needs `Authorization: Bearer <token>` (or `FlyV1 <token>`) of a token the server
knows: 401 `{"error": "unauthorized"}` otherwise. An app the token's organization does not hold
is a 404, as is a machine the app does not.

- `GET /v1/apps/{app}`: the app
- `GET /v1/apps/{app}/machines[?include_deleted=true&region=&metadata.KEY=VALUE]`
- `POST /v1/apps/{app}/machines` (`CreateMachine`): the machine, `created`, then started
  (unless `skip_launch`); a name the app holds already is a 409
- `GET /v1/apps/{app}/machines/{id}`
- `GET /v1/apps/{app}/machines/{id}/wait?state=started|stopped|suspended|destroyed&timeout=1..60`:
  `{"ok": true}` once there, 408 when not in time
- `POST /v1/apps/{app}/machines/{id}/stop` (`{"signal"?, "timeout"?}`): `{"ok": true}`
- `DELETE /v1/apps/{app}/machines/{id}[?force=true]`: `{"ok": true}`; 412 while its process
  runs and not `force`

The server's own routes (no token) are in `control`.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncGenerator
from typing import Any, TypeVar

import msgspec
from litestar import Litestar, Request, Response, Router, delete, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.enums import MediaType
from litestar.exceptions import HTTPException
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath

from libs.fly.bodies import (
    CREATED,
    DESTROYED,
    MAX_WAIT_S,
    WAIT_STATES,
    App,
    CreateMachine,
    Machine,
    MachineEvent,
    Ok,
    Organization,
    StopMachine,
)
from libs.flyserver import control, lifecycle
from libs.flyserver.state import (
    AppRecord,
    Fleet,
    FlyServerError,
    MachineRecord,
    generated_name,
    instance_id,
    now_ms,
)

T = TypeVar("T")
APP = "/v1/apps/{app_name:str}"
MACHINE = f"{APP}/machines/{{machine_id:str}}"
ORG = "fly_org"


def json(content: Any, status: int = 200) -> Response[Any]:
    return Response(content=content, status_code=status, media_type=MediaType.JSON)


def fly_error(_: Request[Any, Any, Any], exc: FlyServerError) -> Response[Any]:
    return json({"error": exc.message}, exc.status)


def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = 404 if exc.status_code == 405 else exc.status_code
    return json({"error": "not found" if status == 404 else str(exc.detail)}, status)


async def read(request: Request[Any, Any, Any], shape: type[T]) -> T:
    try:
        return msgspec.json.decode(await request.body(), type=shape)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FlyServerError(400, f"invalid_argument: {exc}") from None


def require_token(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    scheme, _, token = connection.headers.get("authorization", "").strip().partition(" ")
    fleet: Fleet = connection.app.state.fleet
    org = fleet.organization(token.strip()) if scheme.lower() in ("bearer", "flyv1") and token.strip() else None
    if org is None and scheme == "FlyV1":
        org = fleet.organization(f"FlyV1 {token.strip()}")
    if org is None:
        raise FlyServerError(401, "unauthorized")
    connection.scope.setdefault("state", {})[ORG] = org


def app_of(request: Request[Any, Any, Any], app_name: FromPath[str], fleet: NamedDependency[Fleet]) -> AppRecord:
    return fleet.app(app_name, request.scope["state"][ORG])


def render(machine: MachineRecord) -> Machine:
    return Machine(
        id=machine.id,
        name=machine.name,
        state=machine.state,
        region=machine.region,
        instance_id=machine.instance_id,
        private_ip=machine.private_ip,
        config=machine.config,
        events=list(machine.events),
        created_at=machine.created_at,
        updated_at=machine.updated_at,
    )


@get(APP)
async def get_app(app: NamedDependency[AppRecord], fleet: NamedDependency[Fleet]) -> Response[Any]:
    count = sum(1 for m in fleet.machines.values() if m.app == app.name and m.state != DESTROYED)
    organization = Organization(name=app.org, slug=app.org)
    return json(App(name=app.name, id=app.id, organization=organization, status="deployed", machine_count=count))


@get(f"{APP}/machines")
async def list_machines(
    request: Request[Any, Any, Any], app: NamedDependency[AppRecord], fleet: NamedDependency[Fleet]
) -> Response[Any]:
    query = request.query_params
    include_deleted = query.get("include_deleted", "").lower() == "true"
    wanted = {k.removeprefix("metadata."): v for k, v in query.items() if k.startswith("metadata.")}
    found = [
        render(m)
        for m in fleet.machines.values()
        if m.app == app.name
        and (include_deleted or m.state != DESTROYED)
        and query.get("region", m.region) == m.region
        and all(m.config.metadata.get(k) == v for k, v in wanted.items())
    ]
    return json(found)


@post(f"{APP}/machines")
async def create_machine(
    request: Request[Any, Any, Any], app: NamedDependency[AppRecord], fleet: NamedDependency[Fleet]
) -> Response[Any]:
    body = await read(request, CreateMachine)
    name = body.name or generated_name()
    taken = fleet.live_named(app, name)
    if taken is not None:
        raise FlyServerError(409, f"a machine named {name} exists in app {app.name} ({taken.id})")
    machine_id = fleet.new_machine_id()
    machine = MachineRecord(
        id=machine_id,
        app=app.name,
        name=name,
        region=body.region or "iad",
        config=body.config,
        instance_id=instance_id(),
        private_ip=f"fdaa:0:1:a7b::{secrets.token_hex(2)}",
        workdir=fleet.data_dir / "machines" / machine_id,
        log_path=fleet.data_dir / "logs" / f"{machine_id}.log",
        state=CREATED,
        events=[MachineEvent(type="launch", status=CREATED, source="user", timestamp=now_ms())],
    )
    fleet.machines[machine_id] = machine
    if not body.skip_launch:
        lifecycle.in_background(lifecycle.launch(fleet, machine))
    return json(render(machine))


@get(MACHINE)
async def get_machine(machine: NamedDependency[MachineRecord]) -> Response[Any]:
    return json(render(machine))


@get(f"{MACHINE}/wait")
async def wait_machine(request: Request[Any, Any, Any], machine: NamedDependency[MachineRecord]) -> Response[Any]:
    state = request.query_params.get("state", "started")
    if state not in WAIT_STATES:
        raise FlyServerError(400, f"invalid_argument: state must be one of {', '.join(sorted(WAIT_STATES))}")
    try:
        timeout = int(request.query_params.get("timeout", MAX_WAIT_S))
    except ValueError:
        raise FlyServerError(400, "invalid_argument: timeout must be a number of seconds") from None
    await lifecycle.wait(machine, state, max(1, min(MAX_WAIT_S, timeout)))
    return json(Ok())


@post(f"{MACHINE}/stop")
async def stop_machine(
    request: Request[Any, Any, Any], machine: NamedDependency[MachineRecord], fleet: NamedDependency[Fleet]
) -> Response[Any]:
    body = await read(request, StopMachine) if (await request.body()).strip() else StopMachine()
    await lifecycle.stop(fleet, machine, body.signal, body.timeout)
    return json(Ok())


@delete(MACHINE, status_code=200)
async def destroy_machine(request: Request[Any, Any, Any], machine: NamedDependency[MachineRecord]) -> Response[Any]:
    query = request.query_params
    force = "true" in (query.get("force", "").lower(), query.get("kill", "").lower())
    await lifecycle.destroy(machine, force)
    return json(Ok())


def machine_of(
    app: NamedDependency[AppRecord], machine_id: FromPath[str], fleet: NamedDependency[Fleet]
) -> MachineRecord:
    return fleet.machine(app, machine_id)


FLY_ROUTES = [get_app, list_machines, create_machine, get_machine, wait_machine, stop_machine, destroy_machine]


def create_app(fleet: Fleet) -> Litestar:
    """The local Fly server over `fleet` (also `app.state.fleet`). Stopping it kills every
    machine's process."""

    @contextlib.asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            await lifecycle.kill_all(fleet)

    return Litestar(
        route_handlers=[Router("/", route_handlers=FLY_ROUTES, guards=[require_token]), *control.ROUTES],
        dependencies={
            "fleet": Provide(lambda: fleet, sync_to_thread=False),
            "app": Provide(app_of, sync_to_thread=False),
            "machine": Provide(machine_of, sync_to_thread=False),
        },
        exception_handlers={FlyServerError: fly_error, HTTPException: http_error},
        state=State({"fleet": fleet}),
        lifespan=[lifespan],
        openapi_config=None,
    )
