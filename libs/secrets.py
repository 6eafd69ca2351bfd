"""A workspace's stored credentials, sealed with AES-256-GCM under `SECRETS_KEY`.

A sealed value is `v1.` then base64 of a random 96-bit nonce followed by the ciphertext and its
tag. The associated data is the workspace id and the secret's name, so a sealed value copied to
another workspace, or to another name of the same workspace, does not open: the tag fails.
Only the services that use a credential hold `SECRETS_KEY` (the gateway, which seals and checks
them; the executor, which gives the providers' keys to its agents' SDK clients).
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = "v1."
KEY_BYTES = 32
NONCE_BYTES = 12
# How to make a key, for the messages that ask for one.
MAKE_ONE = "python -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())'"


class SecretsKeyError(ValueError):
    """`SECRETS_KEY` is not 32 bytes in base64. The message never quotes the value."""


class SealError(ValueError):
    """A sealed value that does not open with this key for this workspace and name: another
    key sealed it, it was moved, or it was altered."""


def parse_key(text: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SecretsKeyError(f"SECRETS_KEY is not base64: make one with {MAKE_ONE}") from None
    if len(key) != KEY_BYTES:
        raise SecretsKeyError(f"SECRETS_KEY must be {KEY_BYTES} bytes once decoded: make one with {MAKE_ONE}")
    return key


def new_key() -> str:
    """A fresh `SECRETS_KEY`, as the environment carries it."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def _bound_to(workspace_id: str, name: str) -> bytes:
    # A workspace id holds no `/` (`WORKSPACE_ID`), so no two (workspace, name) pairs join alike.
    return f"{workspace_id}/{name}".encode()


def seal(key: bytes, workspace_id: str, name: str, value: str) -> str:
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, value.encode(), _bound_to(workspace_id, name))
    return VERSION + base64.b64encode(nonce + sealed).decode()


def unseal(key: bytes, workspace_id: str, name: str, sealed: str) -> str:
    if not sealed.startswith(VERSION):
        raise SealError(f"the stored {name} is not a sealed value this version reads")
    try:
        raw = base64.b64decode(sealed[len(VERSION) :], validate=True)
        opened = AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _bound_to(workspace_id, name))
    except (binascii.Error, ValueError, InvalidTag):
        raise SealError(f"the stored {name} does not open with this SECRETS_KEY") from None
    return opened.decode()


def last4(value: str) -> str:
    """What a read may show of a stored credential."""
    return value[-4:]
