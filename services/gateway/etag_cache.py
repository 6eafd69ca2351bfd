"""What GitHub last answered each caller's reads, with its ETag, so a read asked again goes out
with `If-None-Match` and a `304 Not Modified` (which GitHub does not count against the rate
limit) is answered from here.

Keyed by a digest of the token and the URL: the token itself is never kept, and one caller's
answer is never another's (GitHub answers `/user` differently for each). Bounded twice, by the
number of answers and by their bytes; the least recently used go first.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

MAX_ENTRIES = 2048
MAX_BYTES = 32 * 1024 * 1024
# An answer larger than this is not worth a place: it would push out many small ones.
MAX_ENTRY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Cached:
    etag: str
    body: bytes


def cache_key(token: str, url: str) -> str:
    # One digest of both: a key says nothing of the token, and no token/URL pair collides with another.
    return hashlib.sha256(b"github-read\x00" + token.encode() + b"\x00" + url.encode()).hexdigest()


class EtagCache:
    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._entries: OrderedDict[str, Cached] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def get(self, key: str) -> Cached | None:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: str, etag: str, body: bytes) -> None:
        self.drop(key)
        if len(body) > min(MAX_ENTRY_BYTES, self.max_bytes):
            return
        self._entries[key] = Cached(etag, body)
        self._bytes += len(body)
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            _, oldest = self._entries.popitem(last=False)
            self._bytes -= len(oldest.body)

    def drop(self, key: str) -> None:
        gone = self._entries.pop(key, None)
        if gone is not None:
            self._bytes -= len(gone.body)
