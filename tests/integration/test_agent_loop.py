"""The agent loop with the real `Providers` (official SDKs) against the local model server, per provider.

The model server runs in-process (uvicorn in a thread, on a port the OS picked) and is scripted
directly through its `Script`; what the product sent is read back from the calls it recorded.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
import pytest_asyncio

from contracts.payloads.shapes import BudgetCap
from libs.agent.loop import NUDGE, NUDGE_FINISH, AgentSpec, ModelCall, Outcome, run_agent
from libs.agent.prompts import first_message, system_prompt
from libs.agent.repository import Repository
from libs.agent.tools import ToolResult
from libs.llm.conversation import Conversation, Tool, ToolUse, Turn, Usage
from libs.llm.providers import Providers
from libs.modelserver.script import Behaviour, RecordedCall, Script, ToolCall
from tests.servers import RunningServer

PROVIDERS = ["anthropic", "openai"]
MODELS = {"anthropic": "claude-sonnet-4-6", "openai": "gpt-5.4-mini"}
API_KEY = "sk-test-7f3a9c1e5b2d-do-not-log"
FILES = {"src/app.py": "def main():\n    return 1\n", "src/util.py": "def helper():\n    return 42\n"}
REVIEWED_APP = "def main():\n    return 1\n# reviewed by the local model\n"
CODEGEN_TOOLS = {"list_files", "read_file", "search", "write_file", "delete_file", "ask_human", "finish"}
# 429s say "retry after 0 s"; retry-after-ms (read first by both SDKs) keeps the wait at 1 ms
# instead of the SDKs' half-second backoff for a zero retry-after.
RATE_LIMITED = Behaviour(status=429, headers={"retry-after": "0", "retry-after-ms": "1"})
SERVER_ERROR = Behaviour(status=500, headers={"retry-after-ms": "1"})

# One event loop for the module, so one `Providers` (two SDK clients) serves every test.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def providers(running_server: RunningServer) -> AsyncIterator[Providers]:
    settings = running_server.settings("agent-loop-test", API_KEY, llm_timeout_s=10.0, llm_max_retries=1)
    clients = Providers(settings)
    try:
        yield clients
    finally:
        await clients.close()


@dataclass
class Recorder:
    """An Observer that keeps what it was told."""

    model_calls: list[ModelCall] = field(default_factory=list)
    tool_calls: list[tuple[str, str, ToolResult]] = field(default_factory=list)
    turns: list[bool] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)

    def model_called(self, call: ModelCall) -> None:
        self.model_calls.append(call)

    def tool_called(self, call_id: str, tool: str, result: ToolResult) -> None:
        self.tool_calls.append((call_id, tool, result))

    async def ask_human(self, call_id: str, arguments: Any) -> ToolResult:
        return ToolResult("A human answered: yes", True, "Asked a human")

    async def before_model_call(self, prompt_chars: Callable[[], int], max_tokens: int) -> BudgetCap | None:
        self.sizes.append(prompt_chars())
        return None

    async def turn_done(self, finished: bool) -> None:
        self.turns.append(finished)


def agent_spec(provider: str, agent_type: str = "codegen", max_turns: int = 4) -> AgentSpec:
    return AgentSpec(
        agent_type=agent_type,
        provider=provider,
        model=MODELS[provider],
        system=system_prompt(agent_type),
        first_message=first_message("Add a docstring to main", FILES),
        max_tokens=1024,
        temperature=0.0,
        max_turns=max_turns,
    )


async def run(
    model: Any, provider: str, agent_type: str = "codegen", max_turns: int = 4
) -> tuple[Outcome, Recorder, Repository]:
    repo, recorder = Repository(FILES), Recorder()
    outcome = await run_agent(model, agent_spec(provider, agent_type, max_turns), repo, recorder)
    return outcome, recorder, repo


def offered(call: RecordedCall) -> set[str]:
    return {tool["function"]["name"] if "function" in tool else tool["name"] for tool in call.request["tools"]}


def tool_results(call: RecordedCall, provider: str) -> list[dict[str, Any]]:
    """The tool results a request carries, as (id, content, is_error) in either wire format."""
    messages = call.request["messages"]
    if provider == "openai":
        return [{"id": m["tool_call_id"], "content": m["content"]} for m in messages if m["role"] == "tool"]
    return [
        {"id": block["tool_use_id"], "content": block["content"], "is_error": block["is_error"]}
        for m in messages
        if m["role"] == "user" and isinstance(m["content"], list)
        for block in m["content"]
        if block.get("type") == "tool_result"
    ]


# --- (a) an unscripted run --------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_unscripted_run_writes_the_first_file_and_finishes_in_one_call(
    provider: str, script: Script, providers: Providers
) -> None:
    outcome, recorder, _ = await run(providers, provider)

    assert outcome.error is None
    assert outcome.summary == "Generated 1 file(s)"
    assert outcome.changes.files == {"src/app.py": REVIEWED_APP}
    assert outcome.changes.deleted == []
    assert outcome.comments == []
    assert outcome.usage == Usage(input_tokens=1000, output_tokens=200)
    assert (outcome.model_calls, outcome.tool_calls) == (1, 2)
    assert len(recorder.model_calls) == 1
    call = recorder.model_calls[0]
    assert (call.turn, call.ok, call.tool_calls, call.error) == (1, True, 2, None)
    assert call.usage == Usage(input_tokens=1000, output_tokens=200)
    assert [(call_id, tool, result.ok) for call_id, tool, result in recorder.tool_calls] == [
        ("call_write_0", "write_file", True),
        ("call_finish_0", "finish", True),
    ]
    assert recorder.tool_calls[0][2].title == f"Wrote src/app.py ({len(REVIEWED_APP)} bytes)"
    assert recorder.turns == [True]
    [sent] = script.calls(provider)  # type: ignore[arg-type]
    assert sent.model == MODELS[provider]
    assert offered(sent) == CODEGEN_TOOLS


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_the_system_prompt_task_and_sampling_reach_the_provider_in_its_format(
    provider: str, script: Script, providers: Providers
) -> None:
    await run(providers, provider)

    request = script.calls()[0].request
    assert (request["model"], request["max_tokens"], request["temperature"]) == (MODELS[provider], 1024, 0.0)
    if provider == "openai":
        assert request["messages"][0] == {"role": "system", "content": system_prompt("codegen")}
        user = request["messages"][1]
    else:
        assert request["system"] == system_prompt("codegen")
        user = request["messages"][0]
    assert user["role"] == "user"
    assert user["content"].startswith("Task: Add a docstring to main")
    assert "--- FILE: src/app.py ---" in user["content"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_unscripted_review_changes_nothing(provider: str, script: Script, providers: Providers) -> None:
    outcome, recorder, _ = await run(providers, provider, agent_type="review")

    assert outcome.error is None
    assert outcome.summary == "Generated 0 file(s)"
    assert outcome.changes.files == {}
    assert [tool for _, tool, _ in recorder.tool_calls] == ["finish"]
    assert offered(script.calls()[0]) == {"list_files", "read_file", "search", "comment", "ask_human", "finish"}


# --- (b) several turns ------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_tool_result_goes_back_to_the_model_in_the_providers_format(
    provider: str, script: Script, providers: Providers
) -> None:
    new_app = 'def main():\n    """Entry point."""\n    return 1\n'
    script.push(
        Behaviour(tool_calls=[ToolCall("read_file", {"path": "src/app.py"}, id="call_read_1")]),
        Behaviour(
            tool_calls=[
                ToolCall("write_file", {"path": "src/app.py", "content": new_app}, id="call_write_2"),
                ToolCall("finish", {"summary": "Documented main"}, id="call_finish_2"),
            ]
        ),
    )

    outcome, recorder, _ = await run(providers, provider)

    assert outcome.error is None
    assert outcome.summary == "Documented main"
    assert outcome.changes.files == {"src/app.py": new_app}
    assert outcome.usage == Usage(input_tokens=2000, output_tokens=400)
    assert (outcome.model_calls, outcome.tool_calls) == (2, 3)
    assert [tool for _, tool, _ in recorder.tool_calls] == ["read_file", "write_file", "finish"]
    assert recorder.turns == [False, True]
    # Asked before each call, with the request growing by the file read back.
    assert len(recorder.sizes) == 2 and recorder.sizes[1] > recorder.sizes[0] + len(FILES["src/app.py"])
    first, second = script.calls()
    assert tool_results(first, provider) == []
    messages = second.request["messages"]
    if provider == "openai":
        assert messages[2]["role"] == "assistant"
        [call] = messages[2]["tool_calls"]
        assert call["id"] == "call_read_1"
        assert call["type"] == "function"
        assert call["function"]["name"] == "read_file"
        assert json.loads(call["function"]["arguments"]) == {"path": "src/app.py"}
        assert messages[3] == {"role": "tool", "tool_call_id": "call_read_1", "content": FILES["src/app.py"]}
        assert len(messages) == 4
    else:
        assert messages[1] == {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "call_read_1", "name": "read_file", "input": {"path": "src/app.py"}}
            ],
        }
        assert messages[2] == {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_read_1", "content": FILES["src/app.py"], "is_error": False}
            ],
        }
        assert len(messages) == 3


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_failed_tool_call_goes_back_as_an_error_and_the_run_goes_on(
    provider: str, script: Script, providers: Providers
) -> None:
    script.push(
        Behaviour(tool_calls=[ToolCall("read_file", {"path": "src/missing.py"}, id="call_read_1")]),
    )

    outcome, recorder, _ = await run(providers, provider)

    assert outcome.summary == "Generated 1 file(s)"
    assert recorder.tool_calls[0][2].ok is False
    [result] = tool_results(script.calls()[1], provider)
    assert result["id"] == "call_read_1"
    assert result["content"] == "error: 'src/missing.py' does not exist"
    if provider == "anthropic":
        assert result["is_error"] is True


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_reviewer_comments_and_cannot_write(provider: str, script: Script, providers: Providers) -> None:
    script.push(
        Behaviour(
            tool_calls=[
                ToolCall("comment", {"path": "src/app.py", "line": 2, "body": "Magic number"}, id="call_c_1"),
                ToolCall("write_file", {"path": "src/app.py", "content": "x"}, id="call_w_1"),
                ToolCall("finish", {"summary": "One finding"}, id="call_f_1"),
            ]
        )
    )

    outcome, recorder, repo = await run(providers, provider, agent_type="review")

    assert outcome.error is None
    assert outcome.summary == "One finding"
    assert [(c.path, c.line, c.body) for c in outcome.comments] == [("src/app.py", 2, "Magic number")]
    assert outcome.changes.files == {}
    assert repo.read("src/app.py") == FILES["src/app.py"]
    assert [(tool, result.ok) for _, tool, result in recorder.tool_calls] == [
        ("comment", True),
        ("write_file", False),
        ("finish", True),
    ]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_step_with_only_the_reading_tools_is_offered_those_and_its_write_is_refused(
    provider: str, script: Script, providers: Providers
) -> None:
    script.push(
        Behaviour(
            tool_calls=[
                ToolCall("write_file", {"path": "src/app.py", "content": "x"}, id="call_w_1"),
                ToolCall("finish", {"summary": "Plan: document main"}, id="call_f_1"),
            ]
        )
    )
    spec = msgspec.structs.replace(agent_spec(provider, "orchestration"), tools=("list_files", "read_file", "search"))
    repo, recorder = Repository(FILES), Recorder()

    outcome = await run_agent(providers, spec, repo, recorder)

    assert outcome.summary == "Plan: document main" and outcome.changes.files == {}
    assert repo.read("src/app.py") == FILES["src/app.py"]
    assert [(tool, result.ok) for _, tool, result in recorder.tool_calls] == [("write_file", False), ("finish", True)]
    assert recorder.tool_calls[0][2].content.startswith("error: there is no tool 'write_file' here")
    [sent] = script.calls()
    assert offered(sent) == {"list_files", "read_file", "search", "finish"}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_step_without_tools_is_offered_only_finish_and_nudged_to_it(
    provider: str, script: Script, providers: Providers
) -> None:
    script.push(Behaviour(reply="Three owls."))
    spec = msgspec.structs.replace(agent_spec(provider, "orchestration"), tools=())

    outcome = await run_agent(providers, spec, Repository(FILES), Recorder())

    # The default answer, offered no write_file, only finishes.
    assert outcome.summary == "Generated 0 file(s)" and outcome.model_calls == 2
    first, second = script.calls()
    assert offered(first) == offered(second) == {"finish"}
    assert second.request["messages"][-1] == {"role": "user", "content": NUDGE_FINISH}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_finish_with_an_empty_summary_does_not_end_the_run(
    provider: str, script: Script, providers: Providers
) -> None:
    script.push(Behaviour(tool_calls=[ToolCall("finish", {"summary": "  "}, id="call_f_1")]))

    outcome, recorder, _ = await run(providers, provider)

    assert outcome.summary == "Generated 1 file(s)"
    assert outcome.model_calls == 2
    assert recorder.turns == [False, True]
    [result] = tool_results(script.calls()[1], provider)
    assert result["content"] == "error: the summary must not be empty"


# --- (c) a text-only answer -------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_text_only_answer_gets_the_nudge_and_the_loop_continues(
    provider: str, script: Script, providers: Providers
) -> None:
    script.push(Behaviour(reply="I would add a docstring to main."))

    outcome, recorder, _ = await run(providers, provider)

    assert outcome.error is None
    assert outcome.summary == "Generated 1 file(s)"
    assert outcome.changes.files == {"src/app.py": REVIEWED_APP}
    assert outcome.model_calls == 2
    assert [call.tool_calls for call in recorder.model_calls] == [0, 2]
    assert recorder.turns == [False, True]
    messages = script.calls()[1].request["messages"]
    assert messages[-1] == {"role": "user", "content": NUDGE}
    assert messages[-2]["role"] == "assistant"
    said = messages[-2]["content"]
    assert said == "I would add a docstring to main." or said == [
        {"type": "text", "text": "I would add a docstring to main."}
    ]


# --- (d) running out of turns -----------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_reaching_max_turns_is_a_retryable_error(provider: str, script: Script, providers: Providers) -> None:
    script.set_default(Behaviour(reply="Still thinking."))

    outcome, recorder, _ = await run(providers, provider, max_turns=3)

    assert outcome.error == "the agent did not call finish within 3 model calls"
    assert outcome.retryable is True
    assert outcome.summary is None
    assert outcome.model_calls == 3
    assert outcome.usage == Usage(input_tokens=3000, output_tokens=600)
    assert len(script.calls()) == 3
    assert recorder.turns == [False, False, False]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_running_out_of_turns_keeps_the_changes_made_so_far(
    provider: str, script: Script, providers: Providers
) -> None:
    script.push(Behaviour(tool_calls=[ToolCall("write_file", {"path": "notes.md", "content": "wip\n"})]))
    script.set_default(Behaviour(reply="Still thinking."))

    outcome, _, _ = await run(providers, provider, max_turns=2)

    assert outcome.error is not None
    assert outcome.changes.files == {"notes.md": "wip\n"}


# --- (e), (f) provider errors -----------------------------------------------------------------


def echoing_key_error(provider: str) -> dict[str, Any]:
    """A 401 body quoting the key back, as providers do with part of it."""
    if provider == "openai":
        detail = {"message": f"Incorrect API key provided: {API_KEY}", "type": "invalid_request_error"}
        return {"error": {**detail, "param": None, "code": "invalid_api_key"}}
    return {"type": "error", "error": {"type": "authentication_error", "message": f"invalid x-api-key {API_KEY}"}}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_http_401_ends_the_run_with_a_permanent_error_that_hides_the_key(
    provider: str, script: Script, providers: Providers
) -> None:
    script.push(Behaviour(status=401, error_body=echoing_key_error(provider)))

    outcome, recorder, _ = await run(providers, provider)

    assert outcome.error is not None
    assert "401" in outcome.error
    assert outcome.error == f"{provider} returned HTTP 401 (authentication failed: check the API key)"
    assert API_KEY not in outcome.error
    assert "sk-test" not in outcome.error
    assert outcome.retryable is False
    assert outcome.summary is None
    assert outcome.model_calls == 1
    assert outcome.usage == Usage()
    [call] = recorder.model_calls
    assert call.ok is False
    assert call.error == outcome.error
    assert len(script.calls()) == 1  # not retried


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_429_then_success_is_retried_by_the_sdk_and_the_run_succeeds(
    provider: str, script: Script, providers: Providers
) -> None:
    script.push(RATE_LIMITED)

    outcome, recorder, _ = await run(providers, provider)

    assert outcome.error is None
    assert outcome.summary == "Generated 1 file(s)"
    assert outcome.changes.files == {"src/app.py": REVIEWED_APP}
    assert len(script.calls()) == 2
    assert outcome.model_calls == 1
    assert [call.ok for call in recorder.model_calls] == [True]
    assert outcome.usage == Usage(input_tokens=1000, output_tokens=200)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_429_past_the_retries_is_a_retryable_error(provider: str, script: Script, providers: Providers) -> None:
    script.push(RATE_LIMITED, RATE_LIMITED)

    outcome, _, _ = await run(providers, provider)

    assert outcome.error == f"{provider} returned HTTP 429 (rate limited)"
    assert outcome.retryable is True
    assert len(script.calls()) == 2  # the call and llm_max_retries=1 retry


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_server_error_after_a_tool_turn_keeps_the_usage_so_far(
    provider: str, script: Script, providers: Providers
) -> None:
    script.push(
        Behaviour(tool_calls=[ToolCall("list_files", {})]),
        SERVER_ERROR,
        SERVER_ERROR,
    )

    outcome, recorder, _ = await run(providers, provider)

    assert outcome.error == f"{provider} returned HTTP 500 (provider error)"
    assert outcome.retryable is True
    assert outcome.model_calls == 2
    assert outcome.usage == Usage(input_tokens=1000, output_tokens=200)
    assert [call.ok for call in recorder.model_calls] == [True, False]


# --- (g) arguments that are not a JSON object ---------------------------------------------------


class BadArgumentsFirst:
    """The model's first answer is a tool call whose arguments did not parse as JSON (how `Providers`
    hands them on: the raw string); later turns go to the real provider. The local model server can
    only script object arguments, so the bad turn is made here."""

    def __init__(self, model: Providers) -> None:
        self.model = model
        self.calls = 0

    async def converse(
        self,
        provider: str,
        model: str,
        conversation: Conversation,
        tools: tuple[Tool, ...],
        max_tokens: int,
        temperature: float,
    ) -> Turn:
        self.calls += 1
        if self.calls == 1:
            use = ToolUse("call_bad_1", "write_file", '{"path": "src/app.py", "content": ')
            return Turn("", [use], Usage(input_tokens=10, output_tokens=5), "tool_use", 1)
        return await self.model.converse(provider, model, conversation, tools, max_tokens, temperature)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_tool_arguments_that_are_not_json_get_an_error_result_not_a_crash(
    provider: str, script: Script, providers: Providers
) -> None:
    outcome, recorder, _ = await run(BadArgumentsFirst(providers), provider)

    assert outcome.error is None
    assert outcome.summary == "Generated 1 file(s)"
    assert outcome.usage == Usage(input_tokens=1010, output_tokens=205)
    call_id, tool, result = recorder.tool_calls[0]
    assert (call_id, tool, result.ok) == ("call_bad_1", "write_file", False)
    assert result.content == "error: the arguments must be a JSON object"
    [sent] = script.calls()
    [returned] = tool_results(sent, provider)
    assert returned["id"] == "call_bad_1"
    assert returned["content"] == "error: the arguments must be a JSON object"
    assistant = sent.request["messages"][-2]
    if provider == "openai":
        assert assistant["tool_calls"][0]["function"]["arguments"] == "{}"
    else:
        assert returned["is_error"] is True
        assert assistant["content"] == [{"type": "tool_use", "id": "call_bad_1", "name": "write_file", "input": {}}]


CAP = BudgetCap(cap="task", limit_usd=0.01, spent_usd=0.009, estimate_usd=0.002)


class CappedRecorder(Recorder):
    """Lets the first model call through, then stops on a budget cap."""

    async def before_model_call(self, prompt_chars: Callable[[], int], max_tokens: int) -> BudgetCap | None:
        await super().before_model_call(prompt_chars, max_tokens)
        return CAP if len(self.sizes) > 1 else None


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_budget_stop_ends_the_run_before_the_call_with_what_it_did(
    provider: str, script: Script, providers: Providers
) -> None:
    script.push(Behaviour(tool_calls=[ToolCall("read_file", {"path": "src/app.py"}, id="call_read_1")]))
    repo, recorder = Repository(FILES), CappedRecorder()

    outcome = await run_agent(providers, agent_spec(provider), repo, recorder)

    assert outcome.budget_stop == CAP
    assert outcome.model_calls == 1 and len(script.calls()) == 1, "the second call was never made"
    assert outcome.usage == Usage(input_tokens=1000, output_tokens=200)
