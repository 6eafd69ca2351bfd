"""Files by digest: the events name a task's files, a run's outputs and a task's changes by
digest (`contracts.files`); this serves a digest's content to a key of the workspace holding it."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from litestar import Request, get
from litestar.params import FromPath

from contracts.files import DIGEST_PATTERN, FileContent
from libs.web.auth import workspace_of
from libs.web.errors import ApiError
from services.gateway.state import gateway_state

_DIGEST = re.compile(DIGEST_PATTERN)


@get("/api/v1/workspaces/{workspaceID:str}/orchestration/files/{digest:str}")
async def file_by_digest(
    request: Request[Any, Any, Any], workspaceID: FromPath[str], digest: FromPath[str]
) -> FileContent:
    state, workspace_id = gateway_state(request), workspace_of(request, workspaceID)
    # No read-your-writes wait: a blob is stored in the transaction of the first event naming it.
    # A malformed digest names no file either: 404, as one another workspace holds.
    found = await asyncio.to_thread(state.store.blobs.load, workspace_id, [digest]) if _DIGEST.match(digest) else {}
    if digest not in found:
        raise ApiError(404, "Not found", f"file {digest} not found")
    content = found[digest]
    return FileContent(digest=digest, size=len(content.encode()), content=content)


ROUTES = [file_by_digest]
