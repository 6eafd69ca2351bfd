"""Spec 003's sign-in and installation bodies: what `GET /api/auth/github/installed` and
`GET /api/auth/diagnostics` answer."""

from __future__ import annotations

from typing import Literal

import msgspec


class LinkedInstallation(msgspec.Struct, frozen=True, rename="camel"):
    """An installation of the GitHub App, linked to the caller's workspace."""

    installation_id: int
    workspace_id: str
    account: str  # the user or organization the App is installed on
    account_type: str  # "User" or "Organization"
    repository_selection: str  # "all" its repositories, or those "selected"
    newly_linked: bool  # false: it was linked to this workspace before, and nothing changed


class SettingStatus(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """A setting of the sign-in: whether it is set (never its value) and what it is for."""

    name: str
    status: Literal["configured", "missing", "invalid"]
    purpose: str
    problem: str | None = None  # why an `invalid` value cannot be used, without the value


class AuthDiagnostics(msgspec.Struct, frozen=True, rename="camel"):
    sign_in: Literal["ready", "not_configured"]  # GET /api/auth/github can sign people in
    installations: Literal["ready", "not_configured"]  # GET /api/auth/github/installed can link one
    settings: list[SettingStatus]
