"""The local Fly server's own routes for development and tests (no token; Fly has none of them):

- `POST /_apps` `{"app", "token"?, "org"?}`: registers an app reached by `token` (made when not
  given; a token already known keeps its organization); answers `{"app", "token", "org"}`;
- `GET /_machines`: every machine, destroyed ones too, with its state, its process (`pid`, and
  `running` while it has not exited), its exit code and signal, and its log file;
- `GET /health`.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, get, post
from litestar.di import NamedDependency

from contracts.fly import FlyApp
from libs.flyserver.state import Fleet, FlyServerError


class NewApp(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    app: FlyApp
    token: Annotated[str, msgspec.Meta(min_length=16, pattern=r"^(FlyV1 )?[!-~]+$")] | None = None
    org: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9-]{1,63}$")] | None = None


class RegisteredApp(msgspec.Struct, frozen=True):
    app: str
    token: str
    org: str


class MachineInfo(msgspec.Struct, frozen=True, rename="camel"):
    app: str
    id: str
    name: str
    state: str
    region: str
    pid: int | None
    running: bool
    exit_code: int | None
    signal: int | None
    log: str


class MachineList(msgspec.Struct, frozen=True):
    machines: list[MachineInfo]


@post("/_apps", status_code=201)
async def register_app(request: Request[Any, Any, Any], fleet: NamedDependency[Fleet]) -> RegisteredApp:
    try:
        body = msgspec.json.decode(await request.body(), type=NewApp)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FlyServerError(400, f"invalid_argument: {exc}") from None
    app, token = fleet.register(body.app, body.token, body.org)
    return RegisteredApp(app=app.name, token=token, org=app.org)


@get("/_machines")
async def list_all(fleet: NamedDependency[Fleet]) -> MachineList:
    return MachineList(
        machines=[
            MachineInfo(
                app=m.app,
                id=m.id,
                name=m.name,
                state=m.state,
                region=m.region,
                pid=m.process.pid if m.process else None,
                running=m.process is not None and m.process.running,
                exit_code=m.exit.exit_code if m.exit else None,
                signal=m.exit.signal if m.exit else None,
                log=str(m.log_path),
            )
            for m in fleet.machines.values()
        ]
    )


@get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


ROUTES = [register_app, list_all, health]
