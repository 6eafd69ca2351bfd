"""The local model server, exercised through the official anthropic and openai SDKs over HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator

import anthropic
import httpx
import openai
import pytest

from libs.modelserver.script import Behaviour, ToolCall, Usage, default_reply
from tests.servers import RunningServer, unscripted

# Current names: the anthropic SDK warns on deprecated ones such as claude-sonnet-4-20250514.
CLAUDE = "claude-sonnet-4-6"
GPT = "gpt-5.4-mini"
NO_FILES = '{"summary":"Generated 0 file(s)","files":{}}'
FILES_PROMPT = (
    "Add a docstring.\n"
    "--- FILE: src/app.py ---\n"
    "def main():\n"
    "    return 1\n"
    "\n"
    "--- FILE: src/other.ts ---\n"
    "export const x = 1;\n"
    "--- END FILES ---\n"
)
REVIEWED_APP = "def main():\n    return 1\n# reviewed by the local model\n"


@pytest.fixture
def model_server(running_server: RunningServer) -> RunningServer:
    unscripted(running_server)
    return running_server


# Clients are closed at teardown so no connection outlives its test; per-test options come
# from `client.with_options(...)`, which shares the connection pool.
@pytest.fixture
def claude(model_server: RunningServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=model_server.url, api_key="test") as client:
        yield client


@pytest.fixture
async def async_claude(model_server: RunningServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=model_server.url, api_key="test") as client:
        yield client


@pytest.fixture
def gpt(model_server: RunningServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{model_server.url}/v1", api_key="test") as client:
        yield client


@pytest.fixture
async def async_gpt(model_server: RunningServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=f"{model_server.url}/v1", api_key="test") as client:
        yield client


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def claude_text(message: anthropic.types.Message) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


# --- The deterministic default answer ---------------------------------------------------------


def test_default_reply_reviews_the_first_file_block_only() -> None:
    answer = json.loads(default_reply(FILES_PROMPT))

    assert answer == {"summary": "Generated 1 file(s)", "files": {"src/app.py": REVIEWED_APP}}


def test_default_reply_uses_slash_comments_for_typescript_and_javascript() -> None:
    for path in ("web/a.ts", "web/b.js"):
        answer = json.loads(default_reply(f"--- FILE: {path} ---\nlet a = 1;\n--- END FILES ---"))

        assert answer["files"] == {path: "let a = 1;\n// reviewed by the local model\n"}


def test_default_reply_without_file_blocks_generates_nothing() -> None:
    assert json.loads(default_reply("just chat")) == {"summary": "Generated 0 file(s)", "files": {}}


def test_default_reply_block_may_run_to_the_end_of_the_message() -> None:
    answer = json.loads(default_reply("--- FILE: notes.md ---\nhello"))

    assert answer["files"] == {"notes.md": "hello\n# reviewed by the local model\n"}


# --- Default behaviour through the SDKs -------------------------------------------------------


def test_anthropic_default_reply_has_fixed_usage(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model=CLAUDE, max_tokens=1024, messages=user(FILES_PROMPT))

    assert json.loads(claude_text(message))["files"] == {"src/app.py": REVIEWED_APP}
    assert message.model == CLAUDE
    assert message.role == "assistant"
    assert message.stop_reason == "end_turn"
    assert message.id.startswith("msg_")
    assert message.usage.input_tokens == 1000
    assert message.usage.output_tokens == 200
    assert message.usage.cache_read_input_tokens == 0
    assert message.usage.cache_creation_input_tokens == 0


def test_default_reply_looks_at_the_last_user_message_only(claude: anthropic.Anthropic) -> None:
    messages = [
        {"role": "user", "content": FILES_PROMPT},
        {"role": "assistant", "content": "done"},
        {"role": "user", "content": "thanks"},
    ]

    message = claude.messages.create(model=CLAUDE, max_tokens=64, messages=messages)

    assert claude_text(message) == NO_FILES


def test_openai_default_reply_has_fixed_usage(gpt: openai.OpenAI) -> None:
    completion = gpt.chat.completions.create(model=GPT, messages=user(FILES_PROMPT))

    choice = completion.choices[0]
    assert json.loads(choice.message.content or "")["summary"] == "Generated 1 file(s)"
    assert choice.finish_reason == "stop"
    assert completion.model == GPT
    assert completion.object == "chat.completion"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (1000, 200)
    assert completion.usage.total_tokens == 1200


# --- Scripted behaviours ----------------------------------------------------------------------


async def test_async_anthropic_gets_scripted_reply_and_usage(
    model_server: RunningServer, async_claude: anthropic.AsyncAnthropic
) -> None:
    usage = Usage(input_tokens=7, output_tokens=3, cache_read_input_tokens=5, cache_creation_input_tokens=2)
    model_server.script.push(Behaviour(reply="scripted hello", usage=usage))

    message = await async_claude.messages.create(model=CLAUDE, max_tokens=64, messages=user("hi"))

    assert claude_text(message) == "scripted hello"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (7, 3)
    assert (message.usage.cache_read_input_tokens, message.usage.cache_creation_input_tokens) == (5, 2)


async def test_async_openai_gets_scripted_reply(model_server: RunningServer, async_gpt: openai.AsyncOpenAI) -> None:
    model_server.script.push(Behaviour(reply="scripted hello", usage=Usage(input_tokens=7, output_tokens=3)))

    completion = await async_gpt.chat.completions.create(model=GPT, messages=user("hi"))

    assert completion.choices[0].message.content == "scripted hello"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (7, 3)


def test_scripted_behaviours_are_consumed_in_order(model_server: RunningServer, gpt: openai.OpenAI) -> None:
    model_server.script.push(Behaviour(reply="first"), Behaviour(reply="second"))

    replies = [gpt.chat.completions.create(model=GPT, messages=user("x")).choices[0].message.content for _ in range(3)]

    assert replies == ["first", "second", NO_FILES]


def test_match_selects_the_first_matching_behaviour(model_server: RunningServer, claude: anthropic.Anthropic) -> None:
    model_server.script.push(Behaviour(reply="for alpha", match="alpha"), Behaviour(reply="for beta", match="beta"))

    def ask(text: str) -> str:
        return claude_text(claude.messages.create(model=CLAUDE, max_tokens=64, messages=user(text)))

    assert ask("this is about beta") == "for beta"
    assert ask("nothing relevant") == NO_FILES
    assert ask("now alpha") == "for alpha"
    assert model_server.script.pending() == []


def test_match_sees_the_system_prompt(model_server: RunningServer, claude: anthropic.Anthropic) -> None:
    model_server.script.push(Behaviour(reply="reviewer", match="You are a reviewer"))

    message = claude.messages.create(model=CLAUDE, max_tokens=64, system="You are a reviewer.", messages=user("look"))

    assert claude_text(message) == "reviewer"


def test_anthropic_retries_a_scripted_429_after_retry_after(
    model_server: RunningServer, claude: anthropic.Anthropic
) -> None:
    model_server.script.push(
        Behaviour(status=429, headers={"retry-after": "0.05"}), Behaviour(reply="after the rate limit")
    )

    raw = claude.with_options(max_retries=1).messages.with_raw_response.create(
        model=CLAUDE, max_tokens=64, messages=user("hi")
    )

    assert claude_text(raw.parse()) == "after the rate limit"
    assert raw.retries_taken == 1
    assert len(model_server.script.calls("anthropic")) == 2


def test_openai_retries_a_scripted_429_after_retry_after(model_server: RunningServer, gpt: openai.OpenAI) -> None:
    model_server.script.push(
        Behaviour(status=429, headers={"retry-after": "0.05"}), Behaviour(reply="after the rate limit")
    )

    completion = gpt.with_options(max_retries=1).chat.completions.create(model=GPT, messages=user("hi"))

    assert completion.choices[0].message.content == "after the rate limit"
    assert len(model_server.script.calls("openai")) == 2


def test_a_429_without_retries_left_raises_rate_limit_errors(
    model_server: RunningServer, claude: anthropic.Anthropic, gpt: openai.OpenAI
) -> None:
    model_server.script.push(Behaviour(status=429), Behaviour(status=429))

    with pytest.raises(anthropic.RateLimitError) as claude_error:
        claude.with_options(max_retries=0).messages.create(model=CLAUDE, max_tokens=8, messages=user("x"))
    with pytest.raises(openai.RateLimitError) as gpt_error:
        gpt.with_options(max_retries=0).chat.completions.create(model=GPT, messages=user("x"))

    assert claude_error.value.body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "Scripted error 429 from the local model server"},
    }
    assert gpt_error.value.code == "rate_limit_exceeded"


def test_scripted_401_raises_authentication_errors(
    model_server: RunningServer, claude: anthropic.Anthropic, gpt: openai.OpenAI
) -> None:
    model_server.script.push(Behaviour(status=401), Behaviour(status=401))

    with pytest.raises(anthropic.AuthenticationError) as claude_error:
        claude.messages.create(model=CLAUDE, max_tokens=8, messages=user("x"))
    with pytest.raises(openai.AuthenticationError) as gpt_error:
        gpt.chat.completions.create(model=GPT, messages=user("x"))

    assert claude_error.value.status_code == 401
    assert "authentication_error" in str(claude_error.value)
    assert gpt_error.value.status_code == 401
    assert gpt_error.value.code == "invalid_api_key"


def test_scripted_error_body_is_sent_verbatim(model_server: RunningServer, claude: anthropic.Anthropic) -> None:
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    model_server.script.push(Behaviour(status=529, error_body=body))

    with pytest.raises(anthropic.APIStatusError) as error:
        claude.with_options(max_retries=0).messages.create(model=CLAUDE, max_tokens=8, messages=user("x"))

    assert error.value.status_code == 529
    assert error.value.body == body


def test_missing_api_key_gets_401_in_each_provider_format(model_server: RunningServer) -> None:
    request = {"model": "m", "max_tokens": 8, "messages": user("x")}

    claude_response = httpx.post(f"{model_server.url}/v1/messages", json=request)
    gpt_response = httpx.post(f"{model_server.url}/v1/chat/completions", json=request)

    assert claude_response.status_code == 401
    assert claude_response.json()["error"]["type"] == "authentication_error"
    assert gpt_response.status_code == 401
    assert gpt_response.json()["error"]["code"] == "invalid_api_key"
    assert model_server.script.calls() == []


def test_invalid_body_gets_400(model_server: RunningServer) -> None:
    headers = {"x-api-key": "k", "authorization": "Bearer k"}

    claude_response = httpx.post(f"{model_server.url}/v1/messages", content=b"not json", headers=headers)
    gpt_response = httpx.post(f"{model_server.url}/v1/chat/completions", json={"model": "m"}, headers=headers)

    assert claude_response.status_code == 400
    assert claude_response.json()["error"]["type"] == "invalid_request_error"
    assert gpt_response.status_code == 400
    assert gpt_response.json()["error"]["type"] == "invalid_request_error"


# --- Tool calls -------------------------------------------------------------------------------


WRITE_FILE = ToolCall(name="write_file", arguments={"path": "a.py", "content": "x = 1\n"}, id="toolu_fixed")


def test_anthropic_tool_use_round_trip(model_server: RunningServer, claude: anthropic.Anthropic) -> None:
    model_server.script.push(Behaviour(reply="Writing it.", tool_calls=[WRITE_FILE]))
    model_server.script.push(Behaviour(reply="All written.", match="wrote 6 bytes"))
    messages: list[dict[str, object]] = [{"role": "user", "content": "write a.py"}]

    first = claude.messages.create(model=CLAUDE, max_tokens=256, messages=messages)  # type: ignore[arg-type]
    tool_use = first.content[1]
    messages += [
        {"role": "assistant", "content": [block.model_dump() for block in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "wrote 6 bytes"}],  # type: ignore[union-attr]
        },
    ]
    second = claude.messages.create(model=CLAUDE, max_tokens=256, messages=messages)  # type: ignore[arg-type]

    assert first.stop_reason == "tool_use"
    assert first.content[0].type == "text"
    assert tool_use.type == "tool_use"
    assert (tool_use.id, tool_use.name, tool_use.input) == ("toolu_fixed", "write_file", WRITE_FILE.arguments)
    assert claude_text(second) == "All written."
    assert second.stop_reason == "end_turn"


def test_openai_tool_calls_round_trip(model_server: RunningServer, gpt: openai.OpenAI) -> None:
    model_server.script.push(Behaviour(tool_calls=[ToolCall(name="write_file", arguments={"path": "b.py"})]))
    model_server.script.push(Behaviour(reply="All written.", match="wrote b.py"))
    messages: list[dict[str, object]] = [{"role": "user", "content": "write b.py"}]

    first = gpt.chat.completions.create(model=GPT, messages=messages)  # type: ignore[arg-type]
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "wrote b.py"},
    ]
    second = gpt.chat.completions.create(model=GPT, messages=messages)  # type: ignore[arg-type]

    assert first.choices[0].finish_reason == "tool_calls"
    assert first.choices[0].message.content is None
    assert call.id.startswith("call_")
    assert call.function.name == "write_file"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"path": "b.py"}  # type: ignore[union-attr]
    assert second.choices[0].message.content == "All written."
    assert model_server.script.calls("openai")[1].request["messages"][2]["tool_call_id"] == call.id


# --- Streaming --------------------------------------------------------------------------------


def test_anthropic_streaming_text_and_usage(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model=CLAUDE, max_tokens=1024, messages=user(FILES_PROMPT)) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()

    assert len(pieces) > 1
    assert json.loads("".join(pieces))["files"] == {"src/app.py": REVIEWED_APP}
    assert claude_text(final) == "".join(pieces)
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (1000, 200)


async def test_async_anthropic_streaming_tool_use(
    model_server: RunningServer, async_claude: anthropic.AsyncAnthropic
) -> None:
    model_server.script.push(Behaviour(tool_calls=[WRITE_FILE]))

    async with async_claude.messages.stream(model=CLAUDE, max_tokens=256, messages=user("write a.py")) as stream:
        final = await stream.get_final_message()

    assert final.stop_reason == "tool_use"
    assert [(block.type, block.name, block.input) for block in final.content] == [  # type: ignore[union-attr]
        ("tool_use", "write_file", WRITE_FILE.arguments)
    ]


def test_openai_streaming_chunks_and_usage(model_server: RunningServer, gpt: openai.OpenAI) -> None:
    model_server.script.push(Behaviour(reply="a streamed reply that spans several chunks"))

    chunks = list(
        gpt.chat.completions.create(model=GPT, messages=user("hi"), stream=True, stream_options={"include_usage": True})
    )

    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    finishes = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices]
    assert text == "a streamed reply that spans several chunks"
    assert finishes[-1] == "stop"
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (1000, 200)


async def test_async_openai_stream_helper_accumulates_tool_calls(
    model_server: RunningServer, async_gpt: openai.AsyncOpenAI
) -> None:
    model_server.script.push(Behaviour(tool_calls=[ToolCall(name="run_tests", arguments={"paths": ["t.py"]})]))

    async with async_gpt.chat.completions.stream(model=GPT, messages=user("test it")) as stream:
        completion = await stream.get_final_completion()

    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None
    assert message.tool_calls[0].function.name == "run_tests"
    assert json.loads(message.tool_calls[0].function.arguments) == {"paths": ["t.py"]}


# --- Delays -----------------------------------------------------------------------------------


def test_delay_makes_the_sdks_time_out(
    model_server: RunningServer, claude: anthropic.Anthropic, gpt: openai.OpenAI
) -> None:
    model_server.script.push(Behaviour(delay_ms=1000), Behaviour(delay_ms=1000))

    with pytest.raises(anthropic.APITimeoutError):
        claude.with_options(timeout=0.2, max_retries=0).messages.create(model=CLAUDE, max_tokens=8, messages=user("x"))
    with pytest.raises(openai.APITimeoutError):
        gpt.with_options(timeout=0.2, max_retries=0).chat.completions.create(model=GPT, messages=user("x"))


async def test_short_delay_still_answers(model_server: RunningServer, async_claude: anthropic.AsyncAnthropic) -> None:
    model_server.script.push(Behaviour(reply="late", delay_ms=100))

    started = time.monotonic()
    message = await async_claude.messages.create(model=CLAUDE, max_tokens=8, messages=user("x"))

    assert claude_text(message) == "late"
    assert time.monotonic() - started >= 0.1


# --- Scripting over HTTP, discovery -----------------------------------------------------------


def test_scripting_endpoints(model_server: RunningServer, gpt: openai.OpenAI) -> None:
    base = model_server.url
    queued = httpx.post(f"{base}/_script", json={"behaviours": [{"reply": "from http", "match": "ping"}]})
    new_default = httpx.put(f"{base}/_script/default", json={"reply": "new default"})

    default_answer = gpt.chat.completions.create(model=GPT, messages=user("other"))
    scripted_answer = gpt.chat.completions.create(model=GPT, messages=user("ping"))
    calls = httpx.get(f"{base}/_calls", params={"api": "openai"}).json()["calls"]
    cleared = httpx.delete(f"{base}/_script")

    assert queued.json() == {"queued": 1}
    assert new_default.json()["reply"] == "new default"
    assert default_answer.choices[0].message.content == "new default"
    assert scripted_answer.choices[0].message.content == "from http"
    assert [(call["api"], call["model"], call["request"]["messages"]) for call in calls] == [
        ("openai", GPT, user("other")),
        ("openai", GPT, user("ping")),
    ]
    assert cleared.status_code == 204
    assert httpx.get(f"{base}/_calls").json() == {"calls": []}


def test_script_rejects_unknown_behaviour_fields(model_server: RunningServer) -> None:
    response = httpx.post(f"{model_server.url}/_script", json={"behaviours": [{"replly": "typo"}]})

    assert response.status_code == 400
    assert model_server.script.pending() == []


def test_health_and_models(model_server: RunningServer, claude: anthropic.Anthropic, gpt: openai.OpenAI) -> None:
    claude_models = [model.id for model in claude.models.list()]
    gpt_models = [model.id for model in gpt.models.list()]

    assert httpx.get(f"{model_server.url}/health").json() == {"status": "ok"}
    assert CLAUDE in claude_models
    assert GPT in gpt_models


# --- Keys: counted, refused, recorded by their last four characters -----------------------------


def test_count_tokens_answers_in_anthropics_format(model_server: RunningServer, claude: anthropic.Anthropic) -> None:
    counted = claude.messages.count_tokens(model=CLAUDE, messages=user("How many tokens is this?"))

    assert counted.input_tokens == len("How many tokens is this?") // 4 + 1
    (call,) = model_server.script.calls("anthropic")
    assert (call.endpoint, call.key_last4) == ("count_tokens", "test")


def test_a_behaviour_for_one_key_refuses_that_key_only(
    model_server: RunningServer, claude: anthropic.Anthropic
) -> None:
    refused = "sk-ant-refused-" + "x" * 20 + "9876"
    model_server.script.push(Behaviour(status=401, api_key=refused))

    claude.messages.count_tokens(model=CLAUDE, messages=user("hi"))  # another key: not this behaviour's
    with pytest.raises(anthropic.AuthenticationError) as failed:
        claude.with_options(api_key=refused).messages.count_tokens(model=CLAUDE, messages=user("hi"))

    assert failed.value.status_code == 401
    assert model_server.script.pending() == []
    assert [c.key_last4 for c in model_server.script.calls()] == ["test", "9876"]


def test_each_call_records_the_last_four_characters_of_its_key_and_never_the_key(
    model_server: RunningServer, claude: anthropic.Anthropic, gpt: openai.OpenAI
) -> None:
    own = "sk-own-key-" + "k" * 30 + "abcd"
    claude.with_options(api_key=own).messages.create(model=CLAUDE, max_tokens=8, messages=user("hi"))
    gpt.with_options(api_key=own).chat.completions.create(model=GPT, messages=user("hi"))

    shown = httpx.get(f"{model_server.url}/_calls", timeout=10).json()["calls"]

    assert [(c["api"], c["endpoint"], c["key_last4"]) for c in shown] == [
        ("anthropic", "messages", "abcd"),
        ("openai", "chat.completions", "abcd"),
    ]
    assert own not in json.dumps(shown)
