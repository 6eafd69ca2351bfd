"""The payloads of a GitHubAccount's events (owner: the gateway): `github_account.<event>` on the
wire. An account links a GitHub user to the workspace its first sign-in made; the user's token
is never in an event (it lives only in the user's encrypted session cookie)."""

from __future__ import annotations

import msgspec

from contracts.payloads.shapes import Payload


class GithubAccountLinked(Payload, frozen=True, kw_only=True):
    """The user's first sign-in: linked to the workspace made for it in the same write."""

    github_user_id: int
    login: str  # as GitHub spelt it then


class GithubAccountSignedIn(Payload, frozen=True, kw_only=True):
    """A later sign-in, with the login GitHub gives now (a user may rename itself)."""

    github_user_id: int
    login: str


PAYLOADS: dict[str, type[msgspec.Struct]] = {
    "github_account.linked": GithubAccountLinked,
    "github_account.signed_in": GithubAccountSignedIn,
}
