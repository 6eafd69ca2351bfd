"""GitHubAccount: a GitHub user linked to a workspace; owned by the gateway.

Its id derives from the GitHub user's id (stable across renames), so every sign-in of the user
finds the one account, and two first sign-ins at once cannot both link it: the second save
conflicts and finds the first's.
"""

from __future__ import annotations

from uuid import UUID

from contracts.payloads.github_account import GithubAccountLinked, GithubAccountSignedIn
from libs.domain.base import WorkspaceAggregate, derived_id


def github_account_id(github_user_id: int) -> UUID:
    return derived_id("github_account", github_user_id)


class GitHubAccount(WorkspaceAggregate):
    class Linked(WorkspaceAggregate.Created):
        payload: GithubAccountLinked

    def __init__(self, workspace_id: str, payload: GithubAccountLinked) -> None:
        self.workspace_id = workspace_id
        self.github_user_id = payload.github_user_id
        self.login = payload.login

    @classmethod
    def link(cls, workspace_id: str, github_user_id: int, login: str) -> GitHubAccount:
        linked = GithubAccountLinked(github_user_id=github_user_id, login=login)
        return cls._create(cls.Linked, id=github_account_id(github_user_id), workspace_id=workspace_id, payload=linked)

    def sign_in(self, login: str) -> None:
        self.emit(self.SignedIn, GithubAccountSignedIn(github_user_id=self.github_user_id, login=login))

    class SignedIn(WorkspaceAggregate.Event):
        payload: GithubAccountSignedIn

        def apply(self, account: GitHubAccount) -> None:
            account.login = self.payload.login
