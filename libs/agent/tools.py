"""The tools an agent can call, their JSON schemas, and which agent type gets which.

Every tool works on the run's `Repository` only. A tool that cannot do what it was asked
answers with an error the model can read and act on; it never raises into the loop.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection
from typing import Any

import msgspec

from libs.agent.repository import PathError, Repository, printable
from libs.llm.conversation import Tool

MAX_READ_CHARS = 100_000
MAX_SEARCH_RESULTS = 100
FINISH = "finish"


class ToolResult(msgspec.Struct, frozen=True):
    content: str  # what the model reads back
    ok: bool
    title: str  # one line for people: logs and the tool-call log
    target: str | None = None  # the file or pattern the call was about
    duration_ms: int = 0


class Comment(msgspec.Struct, frozen=True):
    path: str
    body: str
    line: int | None = None


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


_PATH = {"type": "string", "description": "Path relative to the repository root, e.g. src/app.py"}

LIST_FILES = Tool(
    "list_files",
    "List the repository's files (with their sizes), optionally only those under a path prefix.",
    _object({"prefix": {"type": "string", "description": "Only paths starting with this"}}, []),
)
READ_FILE = Tool("read_file", "Read one file's full content.", _object({"path": _PATH}, ["path"]))
WRITE_FILE = Tool(
    "write_file",
    "Create a file or replace its whole content.",
    _object(
        {"path": _PATH, "content": {"type": "string", "description": "The complete new content"}}, ["path", "content"]
    ),
)
DELETE_FILE = Tool("delete_file", "Delete a file.", _object({"path": _PATH}, ["path"]))
SEARCH = Tool(
    "search",
    "Search the files for a regular expression; answers path:line: text for each match.",
    _object(
        {
            "pattern": {"type": "string", "description": "A Python regular expression"},
            "prefix": {"type": "string", "description": "Only search paths starting with this"},
        },
        ["pattern"],
    ),
)
COMMENT = Tool(
    "comment",
    "Record a review finding about a file (optionally a line). Reviews change no file.",
    _object(
        {"path": _PATH, "body": {"type": "string"}, "line": {"type": "integer", "minimum": 1}},
        ["path", "body"],
    ),
)
ASK_HUMAN = "ask_human"
ASK_HUMAN_TOOL = Tool(
    ASK_HUMAN,
    "Ask a human when you cannot decide alone (an approval, a clarification, a choice between options). "
    "The run waits for the answer; if none comes in time you are told so.",
    _object(
        {
            "questions": {
                "type": "array",
                "minItems": 1,
                "maxItems": 10,
                "items": {
                    "type": "object",
                    "properties": {
                        "question": {"type": "string"},
                        "header": {"type": "string", "description": "A short title, e.g. Deploy target"},
                        "options": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {"label": {"type": "string"}, "description": {"type": "string"}},
                                "required": ["label"],
                            },
                        },
                        "multiple": {"type": "boolean", "description": "Several options may be picked"},
                        "custom": {"type": "boolean", "description": "The human may answer in their own words"},
                    },
                    "required": ["question"],
                },
            }
        },
        ["questions"],
    ),
)
FINISH_TOOL = Tool(
    FINISH,
    "Finish the work. Call it once, last, with a short summary of what you did and why.",
    _object({"summary": {"type": "string", "description": "What changed and why, for the reviewer"}}, ["summary"]),
)

_READING = (LIST_FILES, READ_FILE, SEARCH)
_WRITING = (WRITE_FILE, DELETE_FILE)

TOOLSETS: dict[str, tuple[Tool, ...]] = {
    "codegen": (*_READING, *_WRITING, ASK_HUMAN_TOOL, FINISH_TOOL),
    "test": (*_READING, *_WRITING, ASK_HUMAN_TOOL, FINISH_TOOL),
    "refactor": (*_READING, *_WRITING, ASK_HUMAN_TOOL, FINISH_TOOL),
    "debug": (*_READING, *_WRITING, ASK_HUMAN_TOOL, FINISH_TOOL),
    "dependency": (*_READING, *_WRITING, ASK_HUMAN_TOOL, FINISH_TOOL),
    "orchestration": (*_READING, *_WRITING, FINISH_TOOL),
    # A reviewer reads and comments; it has no tool that writes.
    "review": (*_READING, COMMENT, ASK_HUMAN_TOOL, FINISH_TOOL),
}


# The tools that work on the repository: an agent offered none of them is shown no files.
REPOSITORY_TOOLS = frozenset(t.name for t in (*_READING, *_WRITING, COMMENT))


def offered(agent_type: str, allowed: Collection[str] | None = None) -> tuple[Tool, ...]:
    """The tools an agent of `agent_type` is offered: its type's set, or only those of it that
    `allowed` names (an orchestration step's `tools`), `finish` always, since a run ends by it."""
    tools = TOOLSETS[agent_type]
    if allowed is None:
        return tools
    return tuple(t for t in tools if t.name in allowed or t.name == FINISH)


class Workbench:
    """Runs one agent's tool calls against its repository; collects review comments. A call to a
    tool it was not offered is refused as a tool that does not exist is."""

    def __init__(self, agent_type: str, repo: Repository, allowed: Collection[str] | None = None) -> None:
        self.tools = offered(agent_type, allowed)
        self.repo = repo
        self.comments: list[Comment] = []
        self._handlers: dict[str, Callable[[dict[str, Any]], ToolResult]] = {
            "list_files": self._list_files,
            "read_file": self._read_file,
            "write_file": self._write_file,
            "delete_file": self._delete_file,
            "search": self._search,
            "comment": self._comment,
            FINISH: self._finish,
        }

    def call(self, name: str, arguments: Any) -> ToolResult:
        started = time.perf_counter()
        if name not in {t.name for t in self.tools}:
            offered = ", ".join(t.name for t in self.tools)
            result = ToolResult(f"error: there is no tool '{name}' here; the tools are: {offered}", False, name)
        elif not isinstance(arguments, dict):
            result = ToolResult("error: the arguments must be a JSON object", False, f"{name}: bad arguments")
        else:
            try:
                result = self._handlers[name](arguments)
            except (PathError, KeyError, TypeError, ValueError, re.error) as exc:
                detail = f"missing argument {exc}" if isinstance(exc, KeyError) else str(exc)
                result = ToolResult(f"error: {detail}", False, f"{name} failed: {detail}", _target(arguments))
        return ToolResult(
            printable(result.content),
            result.ok,
            printable(result.title),
            printable(result.target) if result.target is not None else None,
            int((time.perf_counter() - started) * 1000),
        )

    def _list_files(self, args: dict[str, Any]) -> ToolResult:
        prefix = str(args.get("prefix") or "")
        paths = [p for p in self.repo.paths() if p.startswith(prefix)]
        lines = [f"{p} ({len((self.repo.read(p) or '').encode())} bytes)" for p in paths]
        return ToolResult("\n".join(lines) or "(no files)", True, f"Listed {len(paths)} file(s)", prefix or None)

    def _read_file(self, args: dict[str, Any]) -> ToolResult:
        path = _text(args, "path")
        content = self.repo.read(path)
        if content is None:
            return ToolResult(f"error: '{path}' does not exist", False, f"Read {path}: not found", path)
        shown = content if len(content) <= MAX_READ_CHARS else content[:MAX_READ_CHARS] + "\n[truncated]"
        return ToolResult(shown, True, f"Read {path} ({len(content.encode())} bytes)", path)

    def _write_file(self, args: dict[str, Any]) -> ToolResult:
        path = self.repo.write(_text(args, "path"), _text(args, "content"))
        size = len(self.repo.written[path].encode())
        return ToolResult(f"wrote {path} ({size} bytes)", True, f"Wrote {path} ({size} bytes)", path)

    def _delete_file(self, args: dict[str, Any]) -> ToolResult:
        path = self.repo.delete(_text(args, "path"))
        return ToolResult(f"deleted {path}", True, f"Deleted {path}", path)

    def _search(self, args: dict[str, Any]) -> ToolResult:
        pattern = _text(args, "pattern")
        regex = re.compile(pattern)
        prefix = str(args.get("prefix") or "")
        matches: list[str] = []
        for path in self.repo.paths():
            if not path.startswith(prefix):
                continue
            for number, line in enumerate((self.repo.read(path) or "").splitlines(), start=1):
                if regex.search(line):
                    matches.append(f"{path}:{number}: {line[:300]}")
                    if len(matches) >= MAX_SEARCH_RESULTS:
                        matches.append(f"[stopped at {MAX_SEARCH_RESULTS} matches]")
                        return ToolResult("\n".join(matches), True, f"Searched for {pattern}", pattern)
        return ToolResult("\n".join(matches) or "no match", True, f"Searched for {pattern}", pattern)

    def _comment(self, args: dict[str, Any]) -> ToolResult:
        path, body = _text(args, "path"), _text(args, "body")
        line = args.get("line")
        if line is not None and (isinstance(line, bool) or not isinstance(line, int) or line < 1):
            raise ValueError("line must be a positive integer")
        self.comments.append(Comment(path=printable(path), body=printable(body), line=line))
        where = f"{path}:{line}" if line else path
        return ToolResult("comment recorded", True, f"Commented on {where}", path)

    def _finish(self, args: dict[str, Any]) -> ToolResult:
        summary = _text(args, "summary").strip()
        if not summary:
            raise ValueError("the summary must not be empty")
        return ToolResult("finished", True, f"Finished: {summary[:200]}", None)


def _text(args: dict[str, Any], key: str) -> str:
    value = args[key]
    if not isinstance(value, str):
        raise TypeError(f"'{key}' must be a string")
    return value


def _target(args: Any) -> str | None:
    if isinstance(args, dict):
        for key in ("path", "pattern", "prefix"):
            if isinstance(args.get(key), str):
                return args[key]
    return None
