"""What the local GitHub server's route modules share: reading a body as GitHub does, the
renderer on the request's base URL, JSON answers, the documentation link of a route, and a list
route's page (`Paging`, the `paging` dependency)."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from litestar import Request, Response
from litestar.enums import MediaType
from litestar.params import FromQuery

from libs.githubserver.common import GitHubError
from libs.githubserver.render import Renderer

DOCS = "https://docs.github.com/rest"

T = TypeVar("T")


def docs(page: str) -> dict[str, str]:
    """The `documentation_url` GitHub puts in this route's error bodies."""
    return {"docs": f"{DOCS}/{page}"}


async def read(request: Request[Any, Any, Any], shape: type[T]) -> T:
    try:
        return msgspec.json.decode(await request.body(), type=shape)
    except msgspec.ValidationError as exc:
        raise GitHubError(422, f"Invalid request.\n\n{exc}") from None
    except msgspec.DecodeError:
        raise GitHubError(400, "Problems parsing JSON") from None


def renderer(request: Request[Any, Any, Any]) -> Renderer:
    return Renderer(str(request.base_url))


def json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(content=content, status_code=status, media_type=MediaType.JSON, headers=headers)


class Paging(msgspec.Struct, frozen=True):
    """A list route's `per_page` and `page` query parameters."""

    per_page: int = 30
    page: int = 1

    def of(self, items: list[T]) -> list[T]:
        """One page of a list, with GitHub's bounds: at most 100 a page, pages from 1."""
        size = min(max(self.per_page, 1), 100)
        return items[(max(self.page, 1) - 1) * size :][:size]


def paging(per_page: FromQuery[int] = 30, page: FromQuery[int] = 1) -> Paging:
    """The `paging` dependency: every list route takes its page the same way."""
    return Paging(per_page, page)
