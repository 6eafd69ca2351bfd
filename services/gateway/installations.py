"""The GitHub App installation hand-off: `GET /api/auth/github/installed?installation_id=...`,
where GitHub sends the person who installed the App (its "Setup URL"), or a script with a
workspace's key. The installation, read as the App sees it (its JWT), is linked to the caller's
workspace.

GitHub says plainly that this `installation_id` can be forged: a signed-in caller must be able to
use the installation with its own GitHub token (`GET /user/installations`), so nobody can link
another's installation by sending a victim's browser here. A key holder is trusted with its
workspace, as for everything else the key does.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Request, get
from litestar.params import QueryParameter

from contracts.github import LinkedInstallation
from libs.web.auth import caller
from libs.web.errors import ApiError
from libs.web.openapi import ERRORS
from libs.web.session import signed_in
from services.gateway import github
from services.gateway.github_links import link_installation
from services.gateway.signin_settings import INSTALLATIONS, require
from services.gateway.state import gateway_state

# JSON's safe integers: an id beyond them would not read back the same in every client.
MAX_ID = 2**53 - 1


@get(
    "/api/auth/github/installed",
    opt={
        ERRORS: {
            403: "A revoked key; or the signed-in GitHub user cannot use this installation; or a key-less "
            "change without X-Requested-With.",
            404: "GitHub knows no installation of this id for the App.",
            409: "The installation is linked to another workspace.",
            502: "GitHub could not be reached, or answered what its API does not document.",
            503: "Installations are not configured on this server (the App's id and key), or the database is "
            "away: the message says which.",
        }
    },
)
async def installed(
    request: Request[Any, Any, Any],
    installation_id: Annotated[int, QueryParameter(ge=1, le=MAX_ID)],
    # GitHub's word for what happened; both link it (the repositories are read anew each time).
    setup_action: Annotated[Literal["install", "update"] | None, QueryParameter()] = None,
) -> LinkedInstallation:
    """Links the installation to the caller's workspace (by the sign-in cookie or a key)."""
    state = gateway_state(request)
    require(state.settings, (*INSTALLATIONS, "GITHUB_API_URL"), "Linking GitHub App installations")
    who = caller(request)
    facts = await github.installation(state.settings, installation_id)
    if facts is None:
        raise ApiError(404, "Not found", f"GitHub knows no installation {installation_id} of this App")
    if who.key_id is not None:
        linked_by = f"key:{who.key_id}"
    else:
        user = signed_in(request)
        if user is None:  # its time ran out since the guard read it
            raise ApiError(401, "unauthorized", "the sign-in has ended: sign in again at /api/auth/github")
        if installation_id not in await github.users_installations(state.settings, user.token):
            raise ApiError(
                403,
                "forbidden",
                f"your GitHub account cannot use installation {installation_id} (on {facts.account.login}): "
                "an owner of that account can link it",
            )
        linked_by = f"github:{user.login}"
    found, new = await link_installation(state, who.workspace_id, facts, linked_by)
    return LinkedInstallation(
        installation_id=found.installation_id,
        workspace_id=found.workspace_id,
        account=found.account,
        account_type=found.account_type,
        repository_selection=found.repository_selection,
        newly_linked=new,
    )


ROUTES = [installed]
