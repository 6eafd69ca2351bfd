"""A tool-using conversation in each provider's own message format.

Anthropic keeps the system prompt apart and carries tool calls and results as content
blocks; OpenAI puts the system prompt first, tool calls on the assistant message and each
result in a `tool` message. The agent loop speaks to both through the same four methods.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import msgspec


class Tool(msgspec.Struct, frozen=True):
    """A tool offered to the model: what a provider call takes (the agent decides which, and
    runs them)."""

    name: str
    description: str
    parameters: dict[str, Any]  # JSON Schema of the arguments object


class Usage(msgspec.Struct, frozen=True):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
        )


class ToolUse(msgspec.Struct, frozen=True):
    id: str
    name: str
    arguments: Any  # a dict when the model sent valid JSON; anything else is answered with an error


class Turn(msgspec.Struct, frozen=True):
    """One model answer."""

    text: str
    tool_uses: list[ToolUse]
    usage: Usage
    stop_reason: str
    duration_ms: int


class ToolOutput(msgspec.Struct, frozen=True):
    tool_use_id: str
    content: str
    is_error: bool


class Conversation(Protocol):
    system: str
    messages: list[dict[str, Any]]

    def add_user(self, text: str) -> None: ...
    def add_assistant(self, turn: Turn) -> None: ...
    def add_tool_outputs(self, outputs: list[ToolOutput], note: str | None = None) -> None: ...
    def tool_specs(self, tools: tuple[Tool, ...]) -> list[dict[str, Any]]: ...


class AnthropicConversation:
    def __init__(self, system: str) -> None:
        self.system = system
        self.messages: list[dict[str, Any]] = []

    def add_user(self, text: str) -> None:
        self.messages.append({"role": "user", "content": text})

    def add_assistant(self, turn: Turn) -> None:
        blocks: list[dict[str, Any]] = [{"type": "text", "text": turn.text}] if turn.text else []
        blocks += [
            {"type": "tool_use", "id": u.id, "name": u.name, "input": _as_object(u.arguments)} for u in turn.tool_uses
        ]
        # An empty assistant turn is refused by the API: say so rather than send nothing.
        self.messages.append({"role": "assistant", "content": blocks or [{"type": "text", "text": "(no answer)"}]})

    def add_tool_outputs(self, outputs: list[ToolOutput], note: str | None = None) -> None:
        blocks: list[dict[str, Any]] = [
            {"type": "tool_result", "tool_use_id": o.tool_use_id, "content": o.content, "is_error": o.is_error}
            for o in outputs
        ]
        if note:
            blocks.append({"type": "text", "text": note})
        self.messages.append({"role": "user", "content": blocks})

    def tool_specs(self, tools: tuple[Tool, ...]) -> list[dict[str, Any]]:
        return [{"name": t.name, "description": t.description, "input_schema": t.parameters} for t in tools]


class OpenAIConversation:
    def __init__(self, system: str) -> None:
        self.system = system
        self.messages: list[dict[str, Any]] = [{"role": "system", "content": system}]

    def add_user(self, text: str) -> None:
        self.messages.append({"role": "user", "content": text})

    def add_assistant(self, turn: Turn) -> None:
        message: dict[str, Any] = {"role": "assistant", "content": turn.text or None}
        if turn.tool_uses:
            message["tool_calls"] = [
                {
                    "id": u.id,
                    "type": "function",
                    "function": {"name": u.name, "arguments": json.dumps(_as_object(u.arguments))},
                }
                for u in turn.tool_uses
            ]
        elif not turn.text:
            message["content"] = "(no answer)"
        self.messages.append(message)

    def add_tool_outputs(self, outputs: list[ToolOutput], note: str | None = None) -> None:
        for o in outputs:
            content = f"error: {o.content}" if o.is_error and not o.content.startswith("error") else o.content
            self.messages.append({"role": "tool", "tool_call_id": o.tool_use_id, "content": content})
        if note:
            self.messages.append({"role": "user", "content": note})

    def tool_specs(self, tools: tuple[Tool, ...]) -> list[dict[str, Any]]:
        return [
            {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
            for t in tools
        ]


def conversation_for(provider: str, system: str) -> Conversation:
    return OpenAIConversation(system) if provider == "openai" else AnthropicConversation(system)


def _as_object(arguments: Any) -> dict[str, Any]:
    return arguments if isinstance(arguments, dict) else {}
