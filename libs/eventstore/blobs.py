"""Files by digest: the contents events name and never copy (DESIGN invariant 10).

A task's repository snapshot, each run's outputs and a task's changes are stored once, in
`orchestrator_blobs`, keyed by the workspace and the SHA-256 of the content, in the transaction
of the first event that names them. Events carry `path -> {"digest", "size"}` (`FileRefs`); a
reader loads the contents by digest. A blob never changes once written, so a process caches
what it loaded (bounded in bytes, one cache per event store: per database) and a second load of
the same snapshot costs no query.

Keyed per workspace, not by digest alone: a workspace can neither read another's file nor
learn, by probing a digest, that another workspace holds it.

Events stored before this existed carry contents inline (a string where a ref now is): every
reader here takes both, so an old log still loads and replays.
"""

from __future__ import annotations

import collections
import hashlib
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec
from psycopg.sql import SQL, Identifier

BLOBS_TABLE = "orchestrator_blobs"
DIGEST_PREFIX = "sha256:"
# What one process keeps of loaded blobs: a few RW-2 repositories (3 MB each), and every
# subtask of a task in flight finds its base snapshot here.
CACHE_BYTES = 64 * 1024 * 1024
# Blobs to store above this size (in all) are first looked for in the store: below it, sending
# them again (and letting the insert pass over them) costs less than a query.
CHECKED_BYTES = 64 * 1024

# In an event: `path -> {"digest": "sha256:<hex>", "size": <bytes>}` (`contracts.files.FileRef`, as
# a plain dict, since payloads are JSON); from an event stored before blobs, `path -> content`.
FileRefs = dict[str, Any]


class Blob(msgspec.Struct, frozen=True):
    """A file's content to store with the events that first name it."""

    workspace_id: str
    digest: str
    size: int
    content: bytes


def digest_of(text: str) -> str:
    return DIGEST_PREFIX + hashlib.sha256(text.encode()).hexdigest()


def stored(workspace_id: str, files: Mapping[str, str]) -> tuple[FileRefs, list[Blob]]:
    """`files` (path -> content) as an event names them, and the blobs to save with that event
    (one per distinct content: two paths with the same content share a blob)."""
    refs: FileRefs = {}
    blobs: dict[str, Blob] = {}
    for path, text in files.items():
        content = text.encode()
        digest = DIGEST_PREFIX + hashlib.sha256(content).hexdigest()
        refs[path] = {"digest": digest, "size": len(content)}
        blobs.setdefault(digest, Blob(workspace_id, digest, len(content), content))
    return refs, list(blobs.values())


def digests_in(*maps: Mapping[str, Any] | None) -> set[str]:
    """The digests the maps of files name (inline contents from old events name none)."""
    return {ref["digest"] for files in maps if files for ref in files.values() if isinstance(ref, dict)}


def contents(files: Mapping[str, Any], loaded: Mapping[str, str]) -> dict[str, str]:
    """`files` (path -> ref, or inline content from an old event) as path -> content, from the
    blobs `loaded` (digest -> content). KeyError when one is missing: a log that names a blob
    always holds it (same transaction), so a missing one is a bug, not a state to paper over."""
    return {path: _content(ref, loaded) for path, ref in files.items()}


def _content(ref: Any, loaded: Mapping[str, str]) -> str:
    return ref if isinstance(ref, str) else loaded[ref["digest"]]


# Handlers hand their changed aggregates to a consumer, which saves them with its tracking row:
# the blobs an aggregate's new events name ride on the aggregate to that save.
_CARRIED = "_blobs_to_store"


def carry(aggregate: Any, blobs: Iterable[Blob]) -> None:
    """`blobs` go to the store with `aggregate`'s next save (`EventStore.save`)."""
    aggregate.__dict__.setdefault(_CARRIED, []).extend(blobs)


def carried(aggregates: Iterable[Any]) -> list[Blob]:
    return [b for a in aggregates for b in getattr(a, "__dict__", {}).get(_CARRIED, ())]


def carry_done(aggregates: Iterable[Any]) -> None:
    """After a save that took them: a failed save leaves them for the next try."""
    for aggregate in aggregates:
        getattr(aggregate, "__dict__", {}).pop(_CARRIED, None)


class BlobCache:
    """Loaded blobs by (workspace, digest), least recently used first out, at most `limit` bytes
    of content. Safe to share between threads."""

    def __init__(self, limit: int = CACHE_BYTES) -> None:
        self.limit = limit
        self._held = 0
        self._items: collections.OrderedDict[tuple[str, str], str] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, workspace_id: str, digests: Iterable[str]) -> tuple[dict[str, str], list[str]]:
        """What is cached of `digests`, and the digests still to load."""
        found: dict[str, str] = {}
        missing: list[str] = []
        with self._lock:
            for digest in digests:
                key = (workspace_id, digest)
                text = self._items.get(key)
                if text is None:
                    missing.append(digest)
                else:
                    self._items.move_to_end(key)
                    found[digest] = text
        return found, missing

    def holds(self, workspace_id: str, digest: str) -> bool:
        with self._lock:
            return (workspace_id, digest) in self._items

    def put(self, workspace_id: str, loaded: Mapping[str, str]) -> None:
        with self._lock:
            for digest, text in loaded.items():
                key = (workspace_id, digest)
                if key in self._items or len(text) > self.limit:
                    continue
                self._items[key] = text
                self._held += len(text)
            while self._held > self.limit:
                _, text = self._items.popitem(last=False)
                self._held -= len(text)


def _select(schema: str) -> bytes:
    return (
        SQL("SELECT digest, content FROM {0}.{1} WHERE workspace_id = %s AND digest = ANY(%s::text[])")
        .format(Identifier(schema), Identifier(BLOBS_TABLE))
        .as_bytes()
    )


class BlobStore:
    """Loads blobs through the event store's connection pool (synchronous: the services' threads)."""

    def __init__(self, datastore: Any, cache: BlobCache | None = None) -> None:
        self.datastore = datastore
        # The store's own: what it says is held is held in this database (a cache shared by
        # stores of different databases would say so of blobs one of them never wrote).
        self.cache = cache if cache is not None else BlobCache()
        self._select = _select(datastore.schema)
        self._held = (
            SQL("SELECT digest FROM {0}.{1} WHERE workspace_id = %s AND digest = ANY(%s::text[])")
            .format(Identifier(datastore.schema), Identifier(BLOBS_TABLE))
            .as_bytes()
        )

    def load(self, workspace_id: str, digests: Iterable[str]) -> dict[str, str]:
        """digest -> content for each of `digests` the workspace holds, in one query for all
        that are not cached (none when all are)."""
        found, missing = self.cache.get(workspace_id, set(digests))
        if missing:
            with self.datastore.get_connection() as conn, conn.cursor() as curs:  # autocommit: one round trip
                curs.execute(self._select, (workspace_id, missing), prepare=True)
                loaded = {row["digest"]: bytes(row["content"]).decode() for row in curs.fetchall()}
            self.cache.put(workspace_id, loaded)
            found.update(loaded)
        return found

    def unstored(self, blobs: Sequence[Blob]) -> list[Blob]:
        """`blobs` less those the store holds already, so a repository every task of a team names
        crosses to PostgreSQL once, not with each task: those this process loaded or stored are
        known at no cost; past `CHECKED_BYTES` of others, one query asks for the rest."""
        fresh = [b for b in blobs if not self.cache.holds(b.workspace_id, b.digest)]
        if sum(b.size for b in fresh) <= CHECKED_BYTES:
            return fresh  # sending them costs less than asking first
        held: set[tuple[str, str]] = set()
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            for workspace_id in {b.workspace_id for b in fresh}:
                digests = [b.digest for b in fresh if b.workspace_id == workspace_id]
                curs.execute(self._held, (workspace_id, digests), prepare=True)
                held.update((workspace_id, row["digest"]) for row in curs.fetchall())
        return [b for b in fresh if (b.workspace_id, b.digest) not in held]

    def remember(self, blobs: Iterable[Blob]) -> None:
        """Blobs just stored: later loads of them in this process need no query."""
        for blob in blobs:
            self.cache.put(blob.workspace_id, {blob.digest: blob.content.decode()})

    def files(self, workspace_id: str, *maps: Mapping[str, Any] | None) -> list[dict[str, str]]:
        """Each map of files (refs) as path -> content, loaded in one query."""
        loaded = self.load(workspace_id, digests_in(*maps))
        return [contents(files or {}, loaded) for files in maps]
