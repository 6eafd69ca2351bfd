"""The payloads of a GitHubInstallation's events (owner: the gateway): `github_installation.<event>`
on the wire. An installation of the product's GitHub App belongs to one workspace, which acts on
its repositories only."""

from __future__ import annotations

import msgspec

from contracts.payloads.shapes import Payload


class GithubInstallationLinked(Payload, frozen=True, kw_only=True):
    installation_id: int
    app_id: int
    account: str  # the login of the user or organization the App is installed on
    account_type: str  # "User" or "Organization"
    repository_selection: str  # "all", or "selected" repositories
    # Who linked it: `github:<login>` (signed in) or `key:<key id>` (a workspace's API key).
    linked_by: str


PAYLOADS: dict[str, type[msgspec.Struct]] = {"github_installation.linked": GithubInstallationLinked}
