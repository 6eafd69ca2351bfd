"""A workspace's own provider keys: opened from its Workspace with SECRETS_KEY, kept until its
secrets change, and the keys its agents' model calls go out with (the local model server over
HTTP, through the official SDKs, says which key each call presented)."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import pytest

from libs.domain.workspace import Workspace, workspace_aggregate_id
from libs.llm.conversation import conversation_for
from libs.llm.providers import OwnKeys, ProviderError, Providers
from libs.provider_keys import ProviderKeys
from libs.secrets import last4, new_key, parse_key, seal
from tests.servers import RunningServer

KEY = parse_key(new_key())
ANTHROPIC_KEY = "sk-ant-own-" + "a" * 30 + "AAAA"
OPENAI_KEY = "sk-own-openai-" + "o" * 30 + "OOOO"


def workspace_with(workspace_id: str, sealed_for: str | None = None, **keys: str) -> Workspace:
    """A workspace storing `keys` (provider -> key), sealed for `sealed_for` (itself by default)."""
    workspace = Workspace.create(workspace_id, workspace_id)
    for provider, value in keys.items():
        name = f"{provider}_api_key"
        workspace.set_secret(name, seal(KEY, sealed_for or workspace_id, name, value), last4(value))
    return workspace


class FakeStore:
    """The event store's `load`, counting the reads."""

    def __init__(self, *workspaces: Workspace) -> None:
        self.workspaces = {workspace_aggregate_id(w.workspace_id): w for w in workspaces}
        self.reads = 0

    def load(self, aggregate_id: UUID) -> Any | None:
        self.reads += 1
        return self.workspaces.get(aggregate_id)


async def test_a_workspaces_stored_keys_open_and_are_kept_until_its_secrets_change() -> None:
    store = FakeStore(workspace_with("team-a", anthropic=ANTHROPIC_KEY))
    keys = ProviderKeys(store, KEY)  # type: ignore[arg-type]

    first = await keys.of("team-a")
    again = await keys.of("team-a")
    assert (dict(first.keys), first.problems, store.reads) == ({"anthropic": ANTHROPIC_KEY}, {}, 1)
    assert again is first

    store.workspaces[workspace_aggregate_id("team-a")] = workspace_with("team-a", openai=OPENAI_KEY)
    keys.forget("team-a")  # as `workspace.secret_set` on the bus makes it
    changed = await keys.of("team-a")
    assert (dict(changed.keys), store.reads) == ({"openai": OPENAI_KEY}, 2)


async def test_what_was_read_before_the_secrets_changed_is_not_kept() -> None:
    store = FakeStore(workspace_with("team-a", anthropic=ANTHROPIC_KEY))
    keys = ProviderKeys(store, KEY)  # type: ignore[arg-type]
    loading = asyncio.Event()
    read = store.load

    def slow_load(aggregate_id: UUID) -> Any | None:
        found = read(aggregate_id)
        asyncio.run_coroutine_threadsafe(_set(loading), loop).result()
        return found

    loop = asyncio.get_running_loop()
    store.load = slow_load  # type: ignore[method-assign]
    reading = asyncio.create_task(keys.of("team-a"))
    await loading.wait()
    keys.forget("team-a")  # the secret changed while the read was under way
    await reading
    store.load = read  # type: ignore[method-assign]

    await keys.of("team-a")
    assert store.reads == 2


async def _set(event: asyncio.Event) -> None:
    event.set()


async def test_the_bus_drops_a_workspace_on_its_secret_events_only() -> None:
    store = FakeStore(workspace_with("team-a", anthropic=ANTHROPIC_KEY))
    keys = ProviderKeys(store, KEY)  # type: ignore[arg-type]
    await keys.of("team-a")

    for event in ("config_updated", "key_issued", "purged"):
        await keys._on_message(Message(f"events.team-a.workspace.{event}"))  # type: ignore[arg-type]
        await keys.of("team-a")
    assert store.reads == 1
    await keys._on_message(Message("events.team-a.workspace.secret_cleared"))  # type: ignore[arg-type]
    await keys.of("team-a")
    assert store.reads == 2


class Message:
    def __init__(self, subject: str) -> None:
        self.subject = subject


@pytest.mark.parametrize(
    ("secrets_key", "sealed_for", "why"),
    [
        (None, None, "has no SECRETS_KEY"),
        (parse_key(new_key()), None, "does not open with this service's SECRETS_KEY"),
        (KEY, "team-b", "does not open"),  # sealed for another workspace and copied over
    ],
)
async def test_a_stored_key_that_cannot_be_opened_is_a_problem_not_a_fallback(
    secrets_key: bytes | None, sealed_for: str | None, why: str
) -> None:
    store = FakeStore(workspace_with("team-a", sealed_for, anthropic=ANTHROPIC_KEY))

    own = await ProviderKeys(store, secrets_key).of("team-a")  # type: ignore[arg-type]

    assert own.keys == {}
    assert why in own.problems["anthropic"]
    assert ANTHROPIC_KEY not in own.problems["anthropic"] and ANTHROPIC_KEY not in repr(own)


async def test_a_workspace_without_stored_keys_has_none() -> None:
    store = FakeStore(workspace_with("team-a"))

    assert (await ProviderKeys(store, None).of("team-a")).keys == {}  # type: ignore[arg-type]
    assert (await ProviderKeys(store, KEY).of("no-such-workspace")).keys == {}  # type: ignore[arg-type]


# --- The calls go out with the workspace's key, or the environment's ------------------------------


async def say_hello(providers: Providers, own: OwnKeys, provider: str) -> None:
    model = providers.for_workspace(own)
    await model.converse(provider, "m", conversation_for(provider, "system"), (), 16, 0.0)


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
async def test_a_workspaces_calls_carry_its_own_key_and_others_the_environments(
    running_server: RunningServer, provider: str
) -> None:
    script = running_server.script
    script.clear()
    providers = Providers(running_server.settings("executor", "environment-key-ENVK"))
    own = "sk-workspace-" + "w" * 30 + "OWN1"
    try:
        await say_hello(providers, OwnKeys("team-a", {provider: own}), provider)
        await say_hello(providers, OwnKeys("team-b"), provider)
        # The key stored again: the next call goes out with the new one.
        await say_hello(providers, OwnKeys("team-a", {provider: own[:-4] + "OWN2"}), provider)
    finally:
        await providers.close()

    assert [c.key_last4 for c in script.calls(provider)] == ["OWN1", "ENVK", "OWN2"]  # type: ignore[arg-type]


async def test_a_call_with_a_stored_key_that_cannot_be_opened_fails_for_good_and_reaches_no_provider(
    running_server: RunningServer,
) -> None:
    script = running_server.script
    script.clear()
    providers = Providers(running_server.settings("executor", "environment-key"))
    own = OwnKeys("team-a", problems={"anthropic": "the stored anthropic key does not open"})
    try:
        with pytest.raises(ProviderError) as failed:
            await say_hello(providers, own, "anthropic")
        await say_hello(providers, own, "openai")  # its other provider has no problem
    finally:
        await providers.close()

    assert (str(failed.value), failed.value.retryable) == ("the stored anthropic key does not open", False)
    assert [c.api for c in script.calls()] == ["openai"]
