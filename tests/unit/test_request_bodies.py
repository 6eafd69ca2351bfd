"""A JSON body that is empty, not JSON, not UTF-8 or nested past the decoder's depth is a 400
with the family's error body, never a 500: on a body route, and where a route decodes its own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from litestar import Litestar, Request, patch, post
from litestar.params import JSONBody
from litestar.testing import TestClient

from libs.domain.errors import EventTooLarge
from libs.web.bodies import JsonRequest, decode_body
from libs.web.errors import HANDLERS


class Body(msgspec.Struct, frozen=True):
    tasks: list[str]


@post("/typed")
async def typed(data: JSONBody[Body]) -> dict[str, int]:
    return {"tasks": len(data.tasks)}


@patch("/raw")
async def raw(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return {"decoded": decode_body(await request.body())}


@post("/stored")
async def stored() -> None:
    raise EventTooLarge("an event of 70000000 bytes is larger than the 67108864 an event may be")


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient[Litestar]]:
    app = Litestar([typed, raw, stored], exception_handlers=HANDLERS, request_class=JsonRequest)
    with TestClient(app) as test_client:
        yield test_client


BAD = {
    "empty": (b"", "the request body is empty"),
    "blank": (b"  \n", "the request body is empty"),
    "not JSON": (b'{"tasks": [', "not valid JSON"),
    "not UTF-8": (b'{"tasks": ["\xe9"]}', "not valid UTF-8"),
    "not UTF-8 either": (b'{"a": "\xc3\x28"}', "not valid UTF-8"),
    "nested past the decoder": (b'{"tasks": ' + b"[" * 2000 + b"]" * 2000 + b"}", "nests deeper"),
    # Refused wherever it is, a field the route reads or one it ignores, as the README says.
    "NUL in a field read": (b'{"tasks": ["a\\u0000b"]}', "U+0000"),
    "NUL in a field ignored": (b'{"tasks": [], "note": "\\u0000"}', "U+0000"),
    "NUL in a key ignored": (b'{"tasks": [], "n\\u0000te": 1}', "U+0000"),
    "NUL deep down": (b'{"tasks": [], "x": ' + b"[" * 500 + b'"\\u0000"' + b"]" * 500 + b"}", "U+0000"),
}


@pytest.mark.parametrize(("body", "said"), BAD.values(), ids=BAD.keys())
@pytest.mark.parametrize("route", ["/typed", "/raw"])
def test_a_body_that_cannot_be_decoded_is_a_400(
    client: TestClient[Litestar], route: str, body: bytes, said: str
) -> None:
    send = client.post if route == "/typed" else client.patch
    response = send(route, content=body, headers={"content-type": "application/json"})

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert said in response.json()["message"]


def test_a_good_body_still_decodes(client: TestClient[Litestar]) -> None:
    assert client.post("/typed", json={"tasks": ["a", "b"]}).json() == {"tasks": 2}
    assert client.patch("/raw", json={"x": [1]}).json() == {"decoded": {"x": [1]}}
    # An escaped backslash before `u0000` is text, not a NUL.
    escaped = client.patch("/raw", content=b'{"x": "\\\\u0000"}', headers={"content-type": "application/json"})
    assert escaped.json() == {"decoded": {"x": "\\u0000"}}


def test_an_event_too_large_for_the_bus_is_a_413(client: TestClient[Litestar]) -> None:
    response = client.post("/stored")

    assert response.status_code == 413
    assert response.json() == {
        "error": "payload_too_large",
        "message": "an event of 70000000 bytes is larger than the 67108864 an event may be",
    }
