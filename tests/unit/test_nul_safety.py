"""U+0000 from a model never reaches an event as such: PostgreSQL's jsonb cannot hold it, and
one such event would stop the projector for every workspace."""

from __future__ import annotations

import json

from libs.agent.repository import Repository
from libs.agent.tools import Workbench
from libs.readmodels.projector import _json


def test_tool_results_carry_no_nul_whatever_the_model_sent() -> None:
    bench = Workbench("review", Repository({"a.py": "x = 1\n"}))

    searched = bench.call("search", {"pattern": "\x00"})
    commented = bench.call("comment", {"path": "a\x00.py", "body": "b\x00d"})
    missing = bench.call("read_file", {"path": "no\x00pe"})

    for result in (searched, commented, missing):
        assert "\x00" not in result.content + result.title + (result.target or "")
    assert bench.comments[0].path == "a\ufffd.py" and bench.comments[0].body == "b\ufffdd"


def test_the_projector_makes_a_nul_storable_and_leaves_an_escaped_backslash_alone() -> None:
    rows = [{"payload": {"real": "x\x00y", "text": "\\u0000", "both": "\\\x00"}}]

    stored = json.loads(_json(rows))

    assert stored == [{"payload": {"real": "x\ufffdy", "text": "\\u0000", "both": "\\\ufffd"}}]
