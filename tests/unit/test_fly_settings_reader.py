"""A workspace's Fly settings as the executor reads them: the config's `fly` key and the sealed
token opened with SECRETS_KEY, kept until the workspace changes, None without both (or with a
token that does not open), and never the token in a repr."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
import pytest

from contracts.fly import FlyConfig, FlySize
from libs.domain.workspace import Workspace, workspace_aggregate_id
from libs.fly.settings import FlyAccess, FlySettingsReader, FlyTokenUnusable, fly_access
from libs.secrets import last4, new_key, parse_key, seal

KEY = parse_key(new_key())
TOKEN = "FlyV1 fm2_" + "t" * 40 + "T0K3"
FLY = FlyConfig(app="acme-workers", region="ams", image="registry.fly.io/acme-workers:v3", size=FlySize.SHARED_CPU_2X)


def workspace_with(workspace_id: str, token: str | None = TOKEN, fly: FlyConfig | None = FLY) -> Workspace:
    workspace = Workspace.create(workspace_id, workspace_id)
    if token is not None:
        workspace.set_secret("fly_api_token", seal(KEY, workspace_id, "fly_api_token", token), last4(token))
    if fly is not None:
        config = {"fly": msgspec.to_builtins(fly)}
        workspace.update_config(config, config)
    return workspace


class FakeStore:
    def __init__(self, *workspaces: Workspace) -> None:
        self.workspaces = {workspace_aggregate_id(w.workspace_id): w for w in workspaces}
        self.reads = 0

    def load(self, aggregate_id: UUID) -> Any | None:
        self.reads += 1
        return self.workspaces.get(aggregate_id)


async def test_the_settings_come_with_the_token_opened_and_are_kept_until_the_workspace_changes() -> None:
    store = FakeStore(workspace_with("team-a"))
    reader = FlySettingsReader(store, KEY)  # type: ignore[arg-type]

    first = await reader.of("team-a")
    again = await reader.of("team-a")

    assert first == FlyAccess(
        api_token=TOKEN, app="acme-workers", region="ams", image=FLY.image, size=FlySize.SHARED_CPU_2X
    )
    assert again is first and store.reads == 1
    assert TOKEN not in repr(first) and "t" * 40 not in repr(first)
    store.workspaces[workspace_aggregate_id("team-a")] = workspace_with("team-a", token=None)
    reader.forget("team-a")  # as `workspace.secret_cleared` on the bus makes it
    assert await reader.of("team-a") is None
    assert store.reads == 2


@pytest.mark.parametrize(
    "workspace",
    [workspace_with("team-b", token=None), workspace_with("team-b", fly=None), None],
    ids=["no token", "no app", "no workspace"],
)
async def test_without_both_a_token_and_an_app_there_are_no_settings(workspace: Workspace | None) -> None:
    store = FakeStore(*([workspace] if workspace else []))

    assert await FlySettingsReader(store, KEY).of("team-b") is None  # type: ignore[arg-type]


async def test_a_token_that_does_not_open_counts_as_none_and_says_why() -> None:
    # Sealed for another workspace, or under another key: it does not open here.
    store = FakeStore(workspace_with("team-c"))
    assert await FlySettingsReader(store, parse_key(new_key())).of("team-c") is None  # type: ignore[arg-type]

    with pytest.raises(FlyTokenUnusable, match="does not open with SECRETS_KEY"):
        fly_access("team-c", workspace_with("team-c"), parse_key(new_key()))
    with pytest.raises(FlyTokenUnusable, match="no SECRETS_KEY"):
        fly_access("team-c", workspace_with("team-c"), None)
