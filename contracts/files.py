"""A file by digest: what events name instead of a file's content (DESIGN invariant 10).

An extension to spec 001: `GET /api/v1/workspaces/{workspaceID}/orchestration/files/{digest}`
serves the content of a digest the feed shows (a task's repository, a run's output, a task's
changes), to a key of the workspace that holds it.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
_DIGEST = "`sha256:` and the SHA-256 of the UTF-8 content, in hex"
Digest = Annotated[str, msgspec.Meta(pattern=DIGEST_PATTERN, description=_DIGEST)]
# A FileRef's digest is the store's own (`libs.eventstore.blobs`), and loading an aggregate
# decodes every file its events name: the pattern is documented, not checked on decoding, where
# a regular expression per file tripled the cost of a repository's refs. A digest from outside
# (the files endpoint's path) is checked against DIGEST_PATTERN where it comes in.
StoredDigest = Annotated[str, msgspec.Meta(description=_DIGEST, extra_json_schema={"pattern": DIGEST_PATTERN})]


class FileRef(msgspec.Struct, frozen=True):
    """A file as an event's payload names it, under its path."""

    digest: StoredDigest
    size: Annotated[int, msgspec.Meta(ge=0, description="the content's size in bytes (UTF-8)")]


class FileContent(msgspec.Struct, frozen=True):
    digest: Digest
    size: Annotated[int, msgspec.Meta(ge=0, description="the content's size in bytes (UTF-8)")]
    content: Annotated[str, msgspec.Meta(description="the file's text")]
