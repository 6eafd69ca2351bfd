"""The Fly Machines API's JSON, as its reference documents it (fly.io/docs/machines/api): the
bodies this product sends, and the fields it reads of Fly's answers. Shared by the client
(`libs.fly.client`) and the local Fly server (`libs.flyserver`), which speaks the same shapes.

Fly's answers carry many more fields than these; a decoder here skips what it does not name.
"""

from __future__ import annotations

from typing import Any

import msgspec

from contracts.fly import FlySize

# The states a machine goes through (fly.io/docs/machines/machine-states).
CREATED, STARTING, STARTED, STOPPING, STOPPED = "created", "starting", "started", "stopping", "stopped"
DESTROYING, DESTROYED, FAILED = "destroying", "destroyed", "failed"
# What `GET .../wait?state=` takes.
WAIT_STATES = frozenset({STARTED, STOPPED, "suspended", DESTROYED})
# Fly's wait holds a request at most a minute (its proxy's limit).
MAX_WAIT_S = 60


class Guest(msgspec.Struct, frozen=True):
    cpu_kind: str
    cpus: int
    memory_mb: int


def _preset(size: FlySize) -> Guest:
    # flyctl's presets: `shared-cpu-2x` is two shared CPUs with 256 MB each, `performance-2x`
    # two dedicated ones with 2 GB each.
    family, _, count = size.value.rpartition("-")
    cpus = int(count.removesuffix("x"))
    if family == "shared-cpu":
        return Guest(cpu_kind="shared", cpus=cpus, memory_mb=cpus * 256)
    return Guest(cpu_kind="performance", cpus=cpus, memory_mb=cpus * 2048)


PRESETS: dict[FlySize, Guest] = {size: _preset(size) for size in FlySize}


def guest_for(size: FlySize | str) -> Guest:
    return PRESETS[FlySize(size)]


class Restart(msgspec.Struct, frozen=True):
    # `no`: the machine stops when its process exits, whatever its exit code.
    policy: str = "no"


class MachineConfig(msgspec.Struct, frozen=True, omit_defaults=True):
    image: str
    env: dict[str, str] = {}
    guest: Guest | None = None
    restart: Restart | None = None
    # True: the machine destroys itself once its process has exited.
    auto_destroy: bool = False
    metadata: dict[str, str] = {}


class CreateMachine(msgspec.Struct, frozen=True, omit_defaults=True):
    """`POST /v1/apps/{app}/machines`."""

    config: MachineConfig
    name: str | None = None
    region: str | None = None
    skip_launch: bool = False


class StopMachine(msgspec.Struct, frozen=True, omit_defaults=True):
    """`POST .../machines/{id}/stop`: the signal, and how long before SIGKILL (`"10s"`)."""

    signal: str | None = None
    timeout: str | int | None = None  # Fly's Duration: `"10s"`; seconds as a number taken too


class ExitEvent(msgspec.Struct, frozen=True, omit_defaults=True):
    exit_code: int = 0
    oom_killed: bool = False
    requested_stop: bool = False
    signal: int | None = None
    exited_at: str | None = None


class EventRequest(msgspec.Struct, frozen=True, omit_defaults=True):
    exit_event: ExitEvent | None = None


class MachineEvent(msgspec.Struct, frozen=True, omit_defaults=True):
    type: str  # launch, start, exit, stop, destroy
    status: str  # the state it led to
    source: str = "flyd"  # `user` for what an API call asked
    timestamp: int = 0  # milliseconds since the epoch
    request: EventRequest | None = None


class Machine(msgspec.Struct, frozen=True, omit_defaults=True):
    """A machine as Fly shows it (`GET .../machines/{id}`); its events newest first."""

    id: str
    state: str
    name: str = ""
    region: str = ""
    instance_id: str = ""
    private_ip: str = ""
    config: MachineConfig | None = None
    events: list[MachineEvent] = []
    created_at: str = ""
    updated_at: str = ""

    @property
    def exit_event(self) -> ExitEvent | None:
        """The last exit of its process, when it has exited."""
        for event in self.events:
            if event.type == "exit" and event.request is not None and event.request.exit_event is not None:
                return event.request.exit_event
        return None


class Organization(msgspec.Struct, frozen=True):
    name: str = ""
    slug: str = ""


class App(msgspec.Struct, frozen=True, omit_defaults=True):
    """`GET /v1/apps/{app}`."""

    name: str
    id: str = ""
    organization: Organization | None = None
    status: str = ""
    machine_count: int = 0


class Ok(msgspec.Struct, frozen=True):
    """What stop, wait and destroy answer."""

    ok: bool = True


class ErrorBody(msgspec.Struct, frozen=True, omit_defaults=True):
    """Fly's error: `{"error": "..."}`, sometimes with a `status` code word (`name_taken`)."""

    error: str = ""
    status: str | None = None


def decode_error(raw: bytes) -> ErrorBody:
    try:
        return msgspec.json.decode(raw, type=ErrorBody)
    except (msgspec.DecodeError, msgspec.ValidationError):
        text = raw.decode("utf-8", errors="replace").strip()
        return ErrorBody(error=text[:300])


def as_json(value: Any) -> bytes:
    return msgspec.json.encode(value)
