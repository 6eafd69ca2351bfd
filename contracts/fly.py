"""Spec 003's container workers on Fly.io: what `/api/config/fly` and `/api/config/validate/fly`
take and answer, and the `fly` key of a workspace's config they keep.

The API token is a secret of the Workspace (`fly_api_token`, sealed, never read back); the app,
region, image and size are plain settings in the workspace's config, so spec 001's
`.../orchestration/config` shows them too, checked alike.
"""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec
from msgspec import UNSET, UnsetType

from contracts.credentials import CredentialStatus

# The config key the settings live under.
FLY_CONFIG_KEY = "fly"


class FlySize(enum.StrEnum):
    """Fly's machine size presets (`fly machine run --vm-size`): CPU kind and count, with the
    memory Fly gives each (256 MB a shared CPU, 2 GB a performance one)."""

    SHARED_CPU_1X = "shared-cpu-1x"
    SHARED_CPU_2X = "shared-cpu-2x"
    SHARED_CPU_4X = "shared-cpu-4x"
    SHARED_CPU_8X = "shared-cpu-8x"
    PERFORMANCE_1X = "performance-1x"
    PERFORMANCE_2X = "performance-2x"
    PERFORMANCE_4X = "performance-4x"
    PERFORMANCE_8X = "performance-8x"
    PERFORMANCE_16X = "performance-16x"


DEFAULT_SIZE = FlySize.SHARED_CPU_1X

# An app's name is a DNS label (`<app>.fly.dev`): lowercase letters, digits and dashes.
FlyApp = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$",
        description="The Fly app the machines are made in: 1 to 63 lowercase letters, digits and dashes, "
        "not starting or ending with a dash.",
    ),
]
FlyRegion = Annotated[
    str,
    msgspec.Meta(pattern=r"^[a-z]{3}$", description="A Fly region's three-letter code (`iad`, `ams`, `syd`)."),
]
FlyImage = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=512,
        pattern=r"^[!-~]+$",
        description="The worker's container image (`registry.fly.io/my-app:v1`, `ghcr.io/acme/worker:latest`).",
    ),
]
# Fly's tokens are macaroons, often written with their scheme (`FlyV1 fm2_...,fm2_...`), and long.
FlyToken = Annotated[
    str,
    msgspec.Meta(
        min_length=16,
        max_length=8192,
        pattern=r"^(FlyV1 )?[!-~]+$",
        description="A Fly API token (`fly tokens create deploy`), as printed (`FlyV1 fm2_...` too). Stored "
        "sealed; never shown again.",
    ),
]


class FlyConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The `fly` key of a workspace's config: where and how its container workers run."""

    app: FlyApp
    region: FlyRegion
    image: FlyImage
    size: FlySize = DEFAULT_SIZE


class FlySettings(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    """`PUT /api/config/fly`: the settings replaced; a token given is stored, `null` clears it,
    left out it stays."""

    app: FlyApp
    region: FlyRegion
    image: FlyImage
    size: FlySize = DEFAULT_SIZE
    api_token: FlyToken | UnsetType | None = UNSET

    def config(self) -> FlyConfig:
        return FlyConfig(app=self.app, region=self.region, image=self.image, size=self.size)


class FlySettingsStatus(msgspec.Struct, frozen=True, rename="camel"):
    """`GET` and `PUT /api/config/fly`: the settings (null when none are set), and whether a token
    is stored with its last four characters."""

    api_token: CredentialStatus
    app: str | None
    region: str | None
    image: str | None
    size: FlySize | None


class FlyToCheck(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    """`POST /api/config/validate/fly`: a token and app to check; each left out is the stored one."""

    api_token: FlyToken | UnsetType = UNSET
    app: FlyApp | UnsetType = UNSET


def fly_config_of(config: dict[str, object]) -> FlyConfig | None:
    """The workspace's Fly settings in its config; None when it has none (or, written before a
    check that refuses them now, ones that do not pass)."""
    found = config.get(FLY_CONFIG_KEY)
    if found is None:
        return None
    try:
        return msgspec.convert(found, FlyConfig)
    except msgspec.ValidationError:
        return None
