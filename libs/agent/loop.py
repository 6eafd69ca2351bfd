"""The agent loop: model turn, tool calls, results back, until the agent calls `finish`.

Bounded by `max_turns` model calls. Every model call and every tool call is reported to the
observer as it happens (the executor records each as an event and a log line); the loop
itself keeps no state beyond the conversation and the repository.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from contracts.payloads.shapes import BudgetCap
from libs.agent.repository import Changes, Repository, printable
from libs.agent.tools import ASK_HUMAN, FINISH, Comment, ToolResult, Workbench
from libs.llm.conversation import Conversation, Tool, ToolOutput, Turn, Usage, conversation_for
from libs.llm.providers import ProviderError

NUDGE = "Use the tools to make the change, then call finish with a summary. Do not answer in text only."
# For an agent offered no tool but finish, which has no change to make.
NUDGE_FINISH = "Call finish with your answer as its summary. Do not answer in text only."


class AgentSpec(msgspec.Struct, frozen=True):
    agent_type: str
    provider: str
    model: str
    system: str
    first_message: str
    max_tokens: int
    temperature: float
    max_turns: int
    # The tools it may use, by name (an orchestration step's); None: its agent type's set.
    tools: tuple[str, ...] | None = None


class ModelCall(msgspec.Struct, frozen=True):
    turn: int
    ok: bool
    duration_ms: int
    usage: Usage
    stop_reason: str | None = None
    tool_calls: int = 0
    error: str | None = None


class Outcome(msgspec.Struct, frozen=True):
    """How a run ended: finished with a summary, or an error (and whether retrying can help)."""

    summary: str | None
    changes: Changes
    comments: list[Comment]
    usage: Usage
    model_calls: int
    tool_calls: int
    error: str | None = None
    retryable: bool = False
    budget_stop: BudgetCap | None = None  # the cap a next model call would have crossed


class Model(Protocol):
    async def converse(
        self,
        provider: str,
        model: str,
        conversation: Conversation,
        tools: tuple[Tool, ...],
        max_tokens: int,
        temperature: float,
    ) -> Turn: ...


class Observer(Protocol):
    def model_called(self, call: ModelCall) -> None: ...
    def tool_called(self, call_id: str, tool: str, result: ToolResult) -> None: ...
    async def turn_done(self, finished: bool) -> None: ...
    async def ask_human(self, call_id: str, arguments: Any) -> ToolResult: ...
    async def before_model_call(self, prompt_chars: Callable[[], int], max_tokens: int) -> BudgetCap | None: ...


async def run_agent(model: Model, spec: AgentSpec, repo: Repository, observer: Observer) -> Outcome:
    bench = Workbench(spec.agent_type, repo, spec.tools)
    nudge = NUDGE_FINISH if [t.name for t in bench.tools] == [FINISH] else NUDGE
    conversation = _opening(spec)
    usage, tool_calls = Usage(), 0

    def outcome(summary: str | None, error: str | None = None, retryable: bool = False, calls: int = 0) -> Outcome:
        return Outcome(summary, repo.changes(), bench.comments, usage, calls, tool_calls, error, retryable)

    for turn_number in range(1, spec.max_turns + 1):
        # Budget caps are checked before the call that could cross them, not after.
        # The prompt's size is measured only if asked (a capped workspace): it encodes the
        # whole conversation.
        stop = await observer.before_model_call(lambda: _size(conversation), spec.max_tokens)
        if stop is not None:
            return msgspec.structs.replace(
                outcome(None, "stopped by a budget cap", calls=turn_number - 1), budget_stop=stop
            )
        try:
            turn = await model.converse(
                spec.provider, spec.model, conversation, bench.tools, spec.max_tokens, spec.temperature
            )
        except ProviderError as exc:
            observer.model_called(ModelCall(turn_number, False, 0, Usage(), error=str(exc)))
            return outcome(None, str(exc), exc.retryable, turn_number)
        usage = usage + turn.usage
        observer.model_called(
            ModelCall(turn_number, True, turn.duration_ms, turn.usage, turn.stop_reason, len(turn.tool_uses))
        )
        conversation.add_assistant(turn)
        if not turn.tool_uses:
            conversation.add_user(nudge)
            await observer.turn_done(finished=False)
            continue
        outputs: list[ToolOutput] = []
        summary: str | None = None
        for use in turn.tool_uses:
            if use.name == ASK_HUMAN and ASK_HUMAN in {t.name for t in bench.tools}:
                # The run waits here for a person: the question goes out, the answer comes back.
                result = await observer.ask_human(use.id, use.arguments)
            else:
                result = bench.call(use.name, use.arguments)
            tool_calls += 1
            observer.tool_called(use.id, use.name, result)
            outputs.append(ToolOutput(use.id, result.content, not result.ok))
            if use.name == FINISH and result.ok:
                summary = printable(str(use.arguments["summary"]).strip())
        if summary is not None:
            await observer.turn_done(finished=True)
            return outcome(summary, calls=turn_number)
        conversation.add_tool_outputs(outputs)
        await observer.turn_done(finished=False)
    # Running out of turns is a failure self-heal may retry: the next attempt starts from
    # this one's changes, with the reason in its first message.
    return outcome(None, f"the agent did not call finish within {spec.max_turns} model calls", True, spec.max_turns)


def _opening(spec: AgentSpec) -> Conversation:
    conversation = conversation_for(spec.provider, spec.system)
    conversation.add_user(spec.first_message)
    return conversation


def _size(conversation: Conversation) -> int:
    """What the next request sends, in characters: about four per token."""
    return len(conversation.system) + len(msgspec.json.encode(conversation.messages))


def first_prompt_chars(spec: AgentSpec) -> int:
    """The size of a run's first request, as the loop measures it before the call."""
    return _size(_opening(spec))


def estimated_usage(prompt_chars: int, max_tokens: int) -> dict[str, int]:
    """What a model call may use, told before it is made: its request at about four characters
    a token (the tool definitions left out), and as much output as it may answer."""
    return {"input_tokens": prompt_chars // 4, "output_tokens": max_tokens}
