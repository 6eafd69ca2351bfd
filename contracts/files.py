"""A file by digest: what events name instead of a file's content (DESIGN invariant 10).

An extension to spec 001: `GET /api/v1/workspaces/{workspaceID}/orchestration/files/{digest}`
serves the content of a digest the feed shows (a task's repository, a run's output, a task's
changes), to a key of the workspace that holds it.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
Digest = Annotated[
    str, msgspec.Meta(pattern=DIGEST_PATTERN, description="`sha256:` and the SHA-256 of the UTF-8 content, in hex")
]


class FileRef(msgspec.Struct, frozen=True):
    """A file as an event's payload names it, under its path."""

    digest: Digest
    size: Annotated[int, msgspec.Meta(ge=0, description="the content's size in bytes (UTF-8)")]


class FileContent(msgspec.Struct, frozen=True):
    digest: Digest
    size: Annotated[int, msgspec.Meta(ge=0, description="the content's size in bytes (UTF-8)")]
    content: Annotated[str, msgspec.Meta(description="the file's text")]
