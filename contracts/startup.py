"""`GET /api/startup/check`: each setting and dependency the product needs, whether it is there,
and how to fix it when not. Never a setting's value."""

from __future__ import annotations

from typing import Literal

import msgspec

CheckStatus = Literal["ok", "missing", "error"]


class StartupItem(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    name: str  # the setting (`SECRETS_KEY`) or dependency (`database`, `service:planner`)
    kind: Literal["dependency", "service", "setting", "provider"]
    status: CheckStatus
    # False: the product works without it (e.g. one provider's key: the other, or the local
    # model server, serves); it does not make the whole check fail.
    required: bool
    detail: str
    fix: str | None = None  # what to do, when not `ok`


class StartupCheck(msgspec.Struct, frozen=True, rename="camel"):
    status: CheckStatus  # `ok` when every required item is; else `error` if any is, else `missing`
    checks: list[StartupItem]
