"""The read models' rows as one JSON document: a statement per table takes a batch's rows as a
single parameter, which msgspec encodes at C speed (psycopg's array dumpers escaped every
element in Python: the stream's top cost)."""

from __future__ import annotations

import re
from typing import Any

import msgspec

_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def as_json(rows: Any) -> str:
    text = msgspec.json.encode(rows).decode()
    # A backstop: every writer cleans what a model wrote, but one event jsonb cannot hold would
    # stop the projector for every workspace, so it is made storable here too.
    return _NUL_ESCAPE.sub(r"\1\\ufffd", text) if "\\u0000" in text else text
