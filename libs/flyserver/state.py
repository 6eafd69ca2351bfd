"""What the local Fly server knows: the apps and the tokens that reach them, and each machine
with its state, its events (newest first, as Fly lists them) and its process.

A token belongs to an organization and reaches that organization's apps, as a Fly token does;
an app is registered with the token that reaches it (`POST /_apps`, or at start).
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import string
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from libs.fly.bodies import DESTROYED, EventRequest, ExitEvent, MachineConfig, MachineEvent
from libs.flyserver.processes import MachineProcess

# Crockford's base32, as Fly's instance ids (ULIDs) are written.
ULID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class FlyServerError(Exception):
    """An answer of Fly's: its status and `{"error": message}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_ms() -> int:
    return int(time.time() * 1000)


def instance_id() -> str:
    return "01" + "".join(secrets.choice(ULID_ALPHABET) for _ in range(24))


@dataclass
class AppRecord:
    name: str
    id: str
    org: str


@dataclass
class MachineRecord:
    id: str
    app: str
    name: str
    region: str
    config: MachineConfig
    instance_id: str
    private_ip: str
    workdir: Path
    log_path: Path
    state: str
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    events: list[MachineEvent] = field(default_factory=list)
    process: MachineProcess | None = None
    exit: ExitEvent | None = None
    # Woken on each change of state, for `wait`.
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def become(self, state: str, event_type: str, source: str = "flyd", exit: ExitEvent | None = None) -> None:
        request = EventRequest(exit_event=exit) if exit is not None else None
        self.events.insert(
            0, MachineEvent(type=event_type, status=state, source=source, timestamp=now_ms(), request=request)
        )
        if exit is not None:
            self.exit = exit
        self.state = state
        self.updated_at = now_iso()
        async with self.changed:
            self.changed.notify_all()


@dataclass
class Fleet:
    """The server's apps, tokens and machines."""

    data_dir: Path
    worker_command: list[str]
    stop_grace_s: float = 5.0
    apps: dict[str, AppRecord] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # token -> organization slug
    machines: dict[str, MachineRecord] = field(default_factory=dict)

    def register(self, app: str, token: str | None = None, org: str | None = None) -> tuple[AppRecord, str]:
        """The app, reached by `token` (made when not given) in its organization; registering an
        app again gives it to that token's organization."""
        token = token or f"fly-local-{secrets.token_urlsafe(24)}"
        org = self.tokens.get(token) or org or f"org-{secrets.token_hex(4)}"
        self.tokens[token] = org
        record = self.apps.get(app)
        record = AppRecord(name=app, id=record.id if record else secrets.token_hex(8), org=org)
        self.apps[app] = record
        return record, token

    def organization(self, presented: str) -> str | None:
        found = None
        for token, org in self.tokens.items():
            if hmac.compare_digest(presented.encode(), token.encode()):
                found = org
        return found

    def app(self, name: str, org: str) -> AppRecord:
        record = self.apps.get(name)
        if record is None or record.org != org:
            raise FlyServerError(404, "app not found")
        return record

    def machine(self, app: AppRecord, machine_id: str) -> MachineRecord:
        found = self.machines.get(machine_id)
        if found is None or found.app != app.name:
            raise FlyServerError(404, "machine not found")
        return found

    def live_named(self, app: AppRecord, name: str) -> MachineRecord | None:
        for machine in self.machines.values():
            if machine.app == app.name and machine.name == name and machine.state != DESTROYED:
                return machine
        return None

    def new_machine_id(self) -> str:
        while (found := secrets.token_hex(7)) in self.machines:
            pass
        return found


def generated_name() -> str:
    """A name like Fly's (`aged-thunder-7371`) for a machine created without one."""
    words = ("aged", "bold", "calm", "dark", "late", "quiet", "red", "young")
    things = ("breeze", "cloud", "dawn", "field", "leaf", "river", "snow", "thunder")
    return (
        f"{secrets.choice(words)}-{secrets.choice(things)}-{''.join(secrets.choice(string.digits) for _ in range(4))}"
    )
