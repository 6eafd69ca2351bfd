"""The gateway's writes for GitHub: a signed-in user's account (and, at the first sign-in, the
workspace made for it, in the same write), and an installation linked to a workspace. Each is
loaded from the log and saved again on fresh state when another replica wrote in between; the
answer waits until the read models show the write."""

from __future__ import annotations

import asyncio
from typing import Any

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from contracts.payloads.github_installation import GithubInstallationLinked
from libs.domain.github_account import GitHubAccount, github_account_id
from libs.domain.github_installation import GitHubInstallation, github_installation_id
from libs.domain.workspace import Workspace, new_workspace_id
from libs.web.errors import ApiError
from services.gateway.github import GitHubUser, InstallationFacts
from services.gateway.state import GatewayState

WRITE_ATTEMPTS = 5


async def _load(state: GatewayState, aggregate_id: Any) -> Any:
    return await asyncio.to_thread(state.store.load, aggregate_id)


async def _saved(state: GatewayState, aggregates: list[Aggregate]) -> bool:
    """Saved (and in the read models); False when another writer got there first."""
    try:
        seq = await asyncio.to_thread(state.store.save, aggregates)
    except IntegrityError:
        return False
    await state.watch.reach(seq, state.settings.read_your_writes_timeout_s)
    return True


def _busy(what: str) -> ApiError:
    return ApiError(503, "service_unavailable", f"{what} is changing too fast; try again")


async def sign_in(state: GatewayState, user: GitHubUser) -> GitHubAccount:
    """The user's account: linked to a new workspace at its first sign-in, found after."""
    for _ in range(WRITE_ATTEMPTS):
        account = await _load(state, github_account_id(user.id))
        if isinstance(account, GitHubAccount):
            account.sign_in(user.login)
            aggregates: list[Aggregate] = [account]
        else:
            workspace = Workspace.create(new_workspace_id(), user.login)
            account = GitHubAccount.link(workspace.workspace_id, user.id, user.login)
            aggregates = [workspace, account]
        if await _saved(state, aggregates):
            return account
    raise _busy(f"the account of GitHub user {user.login}")


async def link_installation(
    state: GatewayState, workspace_id: str, facts: InstallationFacts, linked_by: str
) -> tuple[GitHubInstallation, bool]:
    """The installation linked to the workspace (True), or found linked to it before (False);
    linked to another workspace, a 409."""
    for _ in range(WRITE_ATTEMPTS):
        found = await _load(state, github_installation_id(facts.id))
        if isinstance(found, GitHubInstallation):
            if found.workspace_id != workspace_id:
                raise ApiError(
                    409, "installation_linked_elsewhere", f"installation {facts.id} is linked to another workspace"
                )
            return found, False
        linked = GithubInstallationLinked(
            installation_id=facts.id,
            app_id=facts.app_id,
            account=facts.account.login,
            account_type=facts.account.type,
            repository_selection=facts.repository_selection,
            linked_by=linked_by,
        )
        installation = GitHubInstallation.link(workspace_id, linked)
        if await _saved(state, [installation]):
            return installation, True
    raise _busy(f"installation {facts.id}")
