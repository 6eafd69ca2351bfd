"""JSON request bodies, decoded the same way on every route: a body that is empty, not JSON,
not UTF-8, or nested deeper than the decoder goes is a 400 with the family's error body.

msgspec raises `UnicodeDecodeError` and `RecursionError` for the last two rather than its
`DecodeError`, and Litestar passes them on as 500s: `JsonRequest` is the request class of the
HTTP services so that route bodies go through `decode_body` instead.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request
from litestar.types import Empty

from libs.web.errors import EMPTY_BODY, ApiError

_decoder = msgspec.json.Decoder()


def decode_body(raw: bytes) -> Any:
    if not raw.strip():
        raise ApiError(400, "invalid_request", EMPTY_BODY)
    try:
        value = _decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise ApiError(400, "invalid_request", f"the body is not valid JSON: {exc}") from None
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_request", "the body is not valid UTF-8") from None
    except RecursionError:
        raise ApiError(400, "invalid_request", "the body nests deeper than JSON bodies here may") from None
    # Only a body that spells the escape can hold one (a raw NUL byte is not JSON): the walk is
    # for those alone.
    if b"\\u0000" in raw and holds_nul(value):
        raise ApiError(400, "invalid_request", NUL_REFUSED)
    return value


NUL_REFUSED = "the body holds U+0000 in a string: PostgreSQL cannot store it, so no field may, read or not"


def holds_nul(value: Any) -> bool:
    """Whether any string in a decoded JSON value, key or value, holds U+0000; a loop, not
    recursion, so it goes as deep as the decoder did."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


class JsonRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        """The body as JSON, decoded once per request and kept where Litestar's own `json()`
        keeps it."""
        if self._json is Empty:
            found = self._connection_state.json
            self._json = found if found is not Empty else decode_body(await self.body())
            self._connection_state.json = self._json
        return self._json
