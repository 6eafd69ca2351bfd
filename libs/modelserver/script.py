"""The scripting model of the local model server, and its deterministic default answer.

A `Script` is a FIFO queue of `Behaviour`s. Every model call (Anthropic or OpenAI) takes the
first queued behaviour whose `match` substring occurs in the request's message text; when none
matches, the script's default behaviour answers and the queue is left untouched. Every call is
also recorded (bounded) so tests and developers can see what the product sent.

Behaviour fields (JSON through `POST /_script`, or Python):

- `reply`: the assistant text. `None` means "the default answer" below (unless `tool_calls`
  are given, in which case the answer is only the tool calls).
- `delay_ms`: sleep this long before answering (to provoke client timeouts).
- `status`: an HTTP status; anything but 200 answers with an error in the provider's format.
- `error_body`: sent verbatim as the error body instead of the generated provider error.
- `headers`: extra response headers (e.g. `retry-after`, `x-should-retry`).
- `usage`: token usage to report; `None` reports the default (1000 in, 200 out).
- `match`: a substring the request text must contain; `None` matches anything.
- `api_key`: the API key the call must present (`x-api-key` or `Authorization: Bearer`); `None`
  matches any. With `status: 401` it makes the server refuse that one key, as a provider would.
- `tool_calls`: `[{"name": ..., "arguments": {...}}]`, answered as Anthropic `tool_use` blocks or
  OpenAI `tool_calls`.

Default answer (the product's agent answer protocol). Agents are asked to answer with a JSON
object `{"summary": str, "files": {path: full new content}}`, and they receive the files to work on
in the last user message as blocks::

    --- FILE: src/app.py ---
    <content>
    --- FILE: src/other.ts ---
    <content>
    --- END FILES ---

A block runs from its header line to the next header, the `--- END FILES ---` line, or the end of
the message. The default answer takes the FIRST block, strips its trailing newlines, appends one
line `<comment> reviewed by the local model` (`//` for .ts/.tsx/.js/.jsx/.mjs/.cjs, `#`
otherwise, e.g. .py) and answers
`{"summary": "Generated 1 file(s)", "files": {path: new content}}`. Without blocks it answers
`{"summary": "Generated 0 file(s)", "files": {}}`. The answer is a pure function of the last user
message, so the same prompt always gets the same reply.

When the request offers tools (the product's agents always do), the default answer is the
whole run in one turn, as tool calls instead of text: `write_file` with that same path and
content (if `write_file` is offered and the FIRST user message has a block), then
`finish` with the summary `Generated N file(s)`. The product's agent loop ends on `finish`,
so an unscripted run makes exactly one model call. A request that offers `submit_plan` (the
planner drafting a plan) gets `DEFAULT_PLAN`: a codegen subtask, then a test subtask after it.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from typing import Annotated, Any, Literal

import msgspec

DEFAULT_INPUT_TOKENS = 1000
DEFAULT_OUTPUT_TOKENS = 200
MAX_RECORDED_CALLS = 1000

FILE_HEADER = re.compile(r"^--- FILE: (?P<path>.+?) ---$")
END_FILES = "--- END FILES ---"
REVIEW_NOTE = "reviewed by the local model"
SLASH_COMMENT_SUFFIXES = (".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs")

Api = Literal["anthropic", "openai"]


class Usage(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    input_tokens: Annotated[int, msgspec.Meta(ge=0)] = DEFAULT_INPUT_TOKENS
    output_tokens: Annotated[int, msgspec.Meta(ge=0)] = DEFAULT_OUTPUT_TOKENS
    cache_read_input_tokens: Annotated[int, msgspec.Meta(ge=0)] = 0
    cache_creation_input_tokens: Annotated[int, msgspec.Meta(ge=0)] = 0


DEFAULT_USAGE = Usage()


class ToolCall(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    arguments: dict[str, Any] = {}
    # Fixed ids let a test script the follow-up turn that quotes the id back.
    id: str | None = None


class Behaviour(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reply: str | None = None
    delay_ms: Annotated[int, msgspec.Meta(ge=0)] = 0
    status: Annotated[int, msgspec.Meta(ge=100, le=599)] = 200
    error_body: dict[str, Any] | None = None
    headers: dict[str, str] = {}
    usage: Usage | None = None
    match: str | None = None
    tool_calls: list[ToolCall] | None = None
    api_key: str | None = None

    def matches(self, text: str, api_key: str = "") -> bool:
        return (self.match is None or self.match in text) and (self.api_key is None or self.api_key == api_key)

    @property
    def effective_usage(self) -> Usage:
        return self.usage or DEFAULT_USAGE


class RecordedCall(msgspec.Struct, frozen=True):
    api: Api
    model: str
    request: dict[str, Any]
    timestamp: float
    # The last four characters of the API key the call presented: which key reached the server,
    # without the server keeping (or showing) the key.
    key_last4: str | None = None
    endpoint: str = "messages"  # `messages`, `count_tokens` (Anthropic) or `chat.completions` (OpenAI)


class Script:
    """Queued behaviours plus recorded calls.

    A plain lock guards the state: handlers run on the server's event loop while tests usually
    script it from another thread, and no operation here blocks for long.
    """

    def __init__(self, default: Behaviour | None = None, max_calls: int = MAX_RECORDED_CALLS) -> None:
        self._lock = threading.Lock()
        self._queue: list[Behaviour] = []
        self._default = default or Behaviour()
        self._calls: deque[RecordedCall] = deque(maxlen=max_calls)

    def push(self, *behaviours: Behaviour) -> int:
        """Append behaviours; returns how many are now queued."""
        with self._lock:
            self._queue.extend(behaviours)
            return len(self._queue)

    def next_for(self, text: str, api_key: str = "") -> Behaviour:
        with self._lock:
            for index, behaviour in enumerate(self._queue):
                if behaviour.matches(text, api_key):
                    return self._queue.pop(index)
            return self._default

    def clear(self) -> None:
        """Drop queued behaviours and recorded calls; the default stays."""
        with self._lock:
            self._queue.clear()
            self._calls.clear()

    @property
    def default(self) -> Behaviour:
        return self._default

    def set_default(self, behaviour: Behaviour | None = None) -> None:
        """Replace the default behaviour; `None` restores the built-in one."""
        with self._lock:
            self._default = behaviour or Behaviour()

    def pending(self) -> list[Behaviour]:
        with self._lock:
            return list(self._queue)

    def record(
        self, api: Api, model: str, request: dict[str, Any], api_key: str = "", endpoint: str = "messages"
    ) -> RecordedCall:
        last4 = api_key[-4:] if api_key else None
        call = RecordedCall(api, model, request, time.time(), key_last4=last4, endpoint=endpoint)
        with self._lock:
            self._calls.append(call)
        return call

    def calls(self, api: Api | None = None) -> list[RecordedCall]:
        with self._lock:
            return [call for call in self._calls if api is None or call.api == api]


def comment_prefix(path: str) -> str:
    return "//" if path.endswith(SLASH_COMMENT_SUFFIXES) else "#"


def first_file_block(text: str) -> tuple[str, str] | None:
    """The (path, content) of the first `--- FILE: path ---` block in `text`, if any."""
    path: str | None = None
    body: list[str] = []
    for line in text.splitlines():
        marker = line.strip()
        header = FILE_HEADER.match(marker)
        if path is None:
            if header:
                path = header["path"].strip()
            continue
        if header or marker == END_FILES:
            break
        body.append(line)
    if path is None:
        return None
    return path, "\n".join(body)


def reviewed_content(path: str, content: str) -> str:
    kept = content.rstrip("\n")
    note = f"{comment_prefix(path)} {REVIEW_NOTE}\n"
    return f"{kept}\n{note}" if kept else note


# The plan answered when a planner offers `submit_plan`: implement, then test it.
DEFAULT_PLAN = [
    {"id": "implement", "agentType": "codegen", "description": "Implement the task", "dependencies": []},
    {"id": "verify", "agentType": "test", "description": "Write tests for the change", "dependencies": ["implement"]},
]


def default_tool_calls(first_user_text: str, offered: set[str]) -> list[ToolCall]:
    """The default answer when the request offers tools (see the module docstring): the whole
    agent run in one turn, `write_file` of the first block then `finish`."""
    if "submit_plan" in offered:
        return [ToolCall("submit_plan", {"subtasks": DEFAULT_PLAN}, "call_plan_0")]
    block = first_file_block(first_user_text)
    calls: list[ToolCall] = []
    if block is not None and "write_file" in offered:
        calls.append(ToolCall("write_file", {"path": block[0], "content": reviewed_content(*block)}, "call_write_0"))
    if "finish" in offered:
        calls.append(ToolCall("finish", {"summary": f"Generated {len(calls)} file(s)"}, "call_finish_0"))
    return calls


def default_reply(last_user_text: str) -> str:
    """The deterministic agent answer (see the module docstring) as a JSON string."""
    block = first_file_block(last_user_text)
    files = {} if block is None else {block[0]: reviewed_content(*block)}
    answer = {"summary": f"Generated {len(files)} file(s)", "files": files}
    return msgspec.json.encode(answer).decode()
