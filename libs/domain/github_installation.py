"""GitHubInstallation: an installation of the product's GitHub App, linked to the one workspace
that acts on its repositories; owned by the gateway.

Its id derives from the installation's id, so an installation is linked once: linking it again
to the same workspace changes nothing, and to another is refused.
"""

from __future__ import annotations

from uuid import UUID

from contracts.payloads.github_installation import GithubInstallationLinked
from libs.domain.base import WorkspaceAggregate, derived_id


def github_installation_id(installation_id: int) -> UUID:
    return derived_id("github_installation", installation_id)


class GitHubInstallation(WorkspaceAggregate):
    class Linked(WorkspaceAggregate.Created):
        payload: GithubInstallationLinked

    def __init__(self, workspace_id: str, payload: GithubInstallationLinked) -> None:
        self.workspace_id = workspace_id
        self.installation_id = payload.installation_id
        self.account = payload.account
        self.account_type = payload.account_type
        self.repository_selection = payload.repository_selection

    @classmethod
    def link(cls, workspace_id: str, linked: GithubInstallationLinked) -> GitHubInstallation:
        return cls._create(
            cls.Linked, id=github_installation_id(linked.installation_id), workspace_id=workspace_id, payload=linked
        )
