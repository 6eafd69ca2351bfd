"""What the executor's handlers are handed: built once, in `main.py`, from what the runtime
started for the service."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from githubkit import GitHub
from nats.aio.client import Client as NatsClient

from libs.config import Settings
from libs.eventstore.store import EventStore
from libs.fly.machines import Machines
from libs.fly.settings import FlySettingsReader
from libs.llm.providers import Providers
from libs.pricing import PriceTable
from libs.provider_keys import ProviderKeys
from services.executor.github.branch_locks import BranchLocks
from services.executor.purges import Purges
from services.executor.questions import Answers
from services.executor.runslots import RunSlots
from services.executor.souls import Souls


@dataclass
class Deps:
    settings: Settings
    store: EventStore
    providers: Providers
    slots: RunSlots  # at most `max_concurrent_runs` agent runs at once; sizes what the consumer takes
    github: GitHub[Any] | None  # None without GITHUB_TOKEN
    nc: NatsClient  # commands to other owners (an agent's question goes to review)
    answers: Answers  # the answers runs of this process wait on
    prices: PriceTable  # to estimate a model call against the budget caps
    souls: Souls  # the workspaces' souls, which shape its agents' system prompts (`souls.py`)
    keys: ProviderKeys  # the workspaces' own provider keys, which their agents call the models with
    fly: FlySettingsReader  # the workspaces' Fly settings, their tokens opened (container workers)
    machines: Machines  # the Fly Machines API: a machine per run of a task on the `fly` runner
    # One publisher per branch across replicas (a PostgreSQL advisory lock with a pool).
    locks: BranchLocks = field(default_factory=BranchLocks)
    purges: Purges = field(default_factory=Purges)  # stops the runs of tasks a purge stopped
    sweeper: asyncio.Task[None] | None = None  # the lease sweeper (`sweeper.py`), started with the service
    reaper: asyncio.Task[None] | None = None  # the container reaper (`reaper.py`), likewise
