"""The gateway's cache of GitHub's answers: keyed by a digest of token and URL (never the token),
one caller's answer never another's, and bounded by entries and bytes, least recently used first."""

from __future__ import annotations

from services.gateway.etag_cache import MAX_ENTRY_BYTES, EtagCache, cache_key


def test_a_key_is_a_digest_that_never_holds_the_token() -> None:
    key = cache_key("ghu_secret-token", "/user")
    assert "ghu_secret-token" not in key and len(key) == 64
    assert key == cache_key("ghu_secret-token", "/user")


def test_each_token_and_url_has_its_own_answer() -> None:
    cache = EtagCache()
    cache.put(cache_key("alice", "/user"), 'W/"a"', b'{"login":"alice"}')
    assert cache.get(cache_key("bob", "/user")) is None
    assert cache.get(cache_key("alice", "/user/orgs")) is None
    found = cache.get(cache_key("alice", "/user"))
    assert found is not None and (found.etag, found.body) == ('W/"a"', b'{"login":"alice"}')


def test_the_least_recently_used_goes_first_when_full() -> None:
    cache = EtagCache(max_entries=2)
    cache.put("a", "1", b"A")
    cache.put("b", "2", b"B")
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", "3", b"C")
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("c") is not None
    assert len(cache) == 2


def test_bytes_are_bounded_and_a_new_answer_replaces_the_old() -> None:
    cache = EtagCache(max_bytes=10)
    cache.put("a", "1", b"12345")
    cache.put("a", "2", b"123456")
    assert cache.size_bytes == 6 and cache.get("a") == cache.get("a") and cache.get("a").etag == "2"  # type: ignore[union-attr]
    cache.put("b", "3", b"12345")
    assert cache.get("a") is None and cache.size_bytes == 5


def test_an_answer_too_large_is_not_kept() -> None:
    cache = EtagCache()
    cache.put("big", "1", b"x" * (MAX_ENTRY_BYTES + 1))
    assert cache.get("big") is None and cache.size_bytes == 0
