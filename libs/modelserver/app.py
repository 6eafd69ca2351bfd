"""Litestar app speaking enough of the Anthropic Messages and OpenAI Chat Completions APIs for the
official SDKs, answering from a `Script` (see `libs.modelserver.script` for behaviours and the
deterministic default answer: the agent JSON protocol, usage 1000 in / 200 out).

Model routes:

- `POST /v1/messages`: Anthropic Messages, plain JSON or SSE (`stream: true`).
- `POST /v1/messages/count_tokens`: Anthropic's token count (`{"input_tokens": N}`, N the request's
  characters / 4): the free call a key is checked with. Scripted behaviours apply to it too.
- `POST /v1/chat/completions`: OpenAI Chat Completions, plain JSON or SSE chunks ending with
  `data: [DONE]` (`stream_options.include_usage` adds the usage chunk).
- `GET /v1/models`: one list both SDKs can parse; `GET /health`.

Any non-empty key is accepted: `x-api-key` or `Authorization: Bearer` for Anthropic (the 2.x SDK
sends its api_key as a bearer token), `Authorization: Bearer` for OpenAI. A missing key gets a
401 in the provider's error format. A scripted behaviour with `api_key` answers only calls
presenting that key (a 401 for one key: a refused key); every recorded call keeps its key's last
four characters, never the key.

Scripting routes: `POST /_script` `{"behaviours": [...]}` appends, `GET /_script` shows the queue
and the default, `DELETE /_script` clears the queue and recorded calls, `PUT /_script/default`
replaces the default behaviour, `GET /_calls[?api=anthropic|openai]` lists recorded calls.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Litestar, Request, delete, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.enums import MediaType
from litestar.params import FromQuery, JSONBody
from litestar.response import Response, ServerSentEvent, ServerSentEventMessage

from libs.modelserver.script import (
    Api,
    Behaviour,
    RecordedCall,
    Script,
    ToolCall,
    Usage,
    default_reply,
    default_tool_calls,
)

# Agent prompts carry whole files, so allow more than Litestar's 10 MB default.
MAX_BODY_BYTES = 64 * 1024 * 1024
# Small pieces so streaming clients see several deltas even for short replies.
STREAM_PIECE_CHARS = 24
# Listing is informational: any model name gets an answer, echoed back in the body.
MODELS = ("claude-sonnet-4-6", "claude-haiku-4-5", "claude-sonnet-4-20250514", "gpt-5.4", "gpt-5.4-mini")

ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}
# (type, code) as OpenAI sends them for each status.
OPENAI_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


# --- Anthropic bodies -------------------------------------------------------------------------


class AnthropicUsage(msgspec.Struct, frozen=True, kw_only=True):
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int


class TextBlock(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="text"):
    text: str


class ToolUseBlock(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="tool_use"):
    id: str
    name: str
    input: dict[str, Any]


class AnthropicMessage(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="message"):
    id: str
    role: str = "assistant"
    model: str
    content: list[TextBlock | ToolUseBlock]
    stop_reason: str | None
    stop_sequence: str | None = None
    usage: AnthropicUsage


class AnthropicErrorDetail(msgspec.Struct, frozen=True):
    type: str
    message: str


class AnthropicError(msgspec.Struct, frozen=True, tag_field="type", tag="error"):
    error: AnthropicErrorDetail


# Stream events: the tag doubles as the SSE `event:` name, which the SDK requires.
class MessageStart(msgspec.Struct, frozen=True, tag_field="type", tag="message_start"):
    message: AnthropicMessage


class Ping(msgspec.Struct, frozen=True, tag_field="type", tag="ping"):
    pass


class TextDelta(msgspec.Struct, frozen=True, tag_field="type", tag="text_delta"):
    text: str


class InputJsonDelta(msgspec.Struct, frozen=True, tag_field="type", tag="input_json_delta"):
    partial_json: str


class ContentBlockStart(msgspec.Struct, frozen=True, tag_field="type", tag="content_block_start"):
    index: int
    content_block: TextBlock | ToolUseBlock


class ContentBlockDelta(msgspec.Struct, frozen=True, tag_field="type", tag="content_block_delta"):
    index: int
    delta: TextDelta | InputJsonDelta


class ContentBlockStop(msgspec.Struct, frozen=True, tag_field="type", tag="content_block_stop"):
    index: int


class StopDelta(msgspec.Struct, frozen=True):
    stop_reason: str | None
    stop_sequence: str | None = None


class MessageDelta(msgspec.Struct, frozen=True, tag_field="type", tag="message_delta"):
    delta: StopDelta
    usage: AnthropicUsage


class MessageStop(msgspec.Struct, frozen=True, tag_field="type", tag="message_stop"):
    pass


AnthropicEvent = (
    MessageStart | Ping | ContentBlockStart | ContentBlockDelta | ContentBlockStop | MessageDelta | MessageStop
)


# --- OpenAI bodies ----------------------------------------------------------------------------


class FunctionCall(msgspec.Struct, frozen=True):
    name: str
    arguments: str


class ChatToolCall(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    type: str = "function"
    function: FunctionCall


class ChatMessage(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    role: str
    content: str | None
    refusal: str | None = None
    tool_calls: list[ChatToolCall] | None = None


class Choice(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    message: ChatMessage
    finish_reason: str
    logprobs: None = None


class PromptTokensDetails(msgspec.Struct, frozen=True):
    cached_tokens: int


class CompletionUsage(msgspec.Struct, frozen=True, kw_only=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails


class ChatCompletion(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: str = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage


class ChunkFunction(msgspec.Struct, frozen=True, omit_defaults=True):
    name: str | None = None
    arguments: str | None = None


class ChunkToolCall(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    index: int
    id: str | None = None
    type: str | None = None
    function: ChunkFunction | None = None


class ChunkDelta(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    role: str | None = None
    content: str | None = None
    tool_calls: list[ChunkToolCall] | None = None


class ChunkChoice(msgspec.Struct, frozen=True, kw_only=True):
    index: int = 0
    delta: ChunkDelta
    finish_reason: str | None = None
    logprobs: None = None


class ChatCompletionChunk(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: str = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = None


class OpenAIErrorDetail(msgspec.Struct, frozen=True, kw_only=True):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIError(msgspec.Struct, frozen=True):
    error: OpenAIErrorDetail


# --- Shared bodies ----------------------------------------------------------------------------


class ModelEntry(msgspec.Struct, frozen=True, kw_only=True):
    # One entry carries both providers' fields; each SDK ignores the other's.
    id: str
    object: str = "model"
    type: str = "model"
    created: int
    created_at: str
    owned_by: str
    display_name: str
    lifecycle: str = "active"


class ModelList(msgspec.Struct, frozen=True, kw_only=True):
    object: str = "list"
    data: list[ModelEntry]
    has_more: bool = False
    first_id: str | None
    last_id: str | None


class Health(msgspec.Struct, frozen=True):
    status: str


class ScriptUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    behaviours: list[Behaviour]


class Queued(msgspec.Struct, frozen=True):
    queued: int


class ScriptView(msgspec.Struct, frozen=True):
    default: Behaviour
    behaviours: list[Behaviour]


class CallsView(msgspec.Struct, frozen=True):
    calls: list[RecordedCall]


class Answer(msgspec.Struct, frozen=True):
    """What the model says, before it is dressed in a provider's format."""

    text: str | None
    tool_calls: list[ToolCall]
    usage: Usage


# --- Request reading --------------------------------------------------------------------------


async def read_json_object(request: Request[Any, Any, Any]) -> dict[str, Any] | None:
    try:
        body = msgspec.json.decode(await request.body())
    except msgspec.DecodeError:
        return None
    return body if isinstance(body, dict) else None


def bearer_token(request: Request[Any, Any, Any]) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def content_text(content: Any) -> str:
    """Text of a message `content`: a string or a list of parts/blocks (tool results included)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts = [part_text(part) for part in content if isinstance(part, dict)]
    return "\n".join(text for text in texts if text)


def part_text(part: dict[str, Any]) -> str:
    if isinstance(part.get("text"), str):
        return part["text"]
    if part.get("type") == "tool_result":
        return content_text(part.get("content"))
    return ""


def messages_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [message for message in body.get("messages", []) if isinstance(message, dict)]


def request_text(body: dict[str, Any]) -> str:
    """Everything a `match` can look at: the system prompt and every message's text."""
    texts = [content_text(body.get("system"))]
    texts.extend(content_text(message.get("content")) for message in messages_of(body))
    return "\n".join(text for text in texts if text)


def last_user_text(body: dict[str, Any]) -> str:
    users = [message for message in messages_of(body) if message.get("role") == "user"]
    return content_text(users[-1].get("content")) if users else ""


# --- Behaviour to answer ----------------------------------------------------------------------


def api_key_of(request: Request[Any, Any, Any]) -> str:
    return request.headers.get("x-api-key", "").strip() or bearer_token(request)


async def take_behaviour(
    script: Script, api: Api, body: dict[str, Any], api_key: str, endpoint: str = "messages"
) -> Behaviour:
    script.record(api, str(body.get("model", "")), body, api_key, endpoint)
    behaviour = script.next_for(request_text(body), api_key)
    if behaviour.delay_ms:
        await asyncio.sleep(behaviour.delay_ms / 1000)
    return behaviour


def answer_for(behaviour: Behaviour, body: dict[str, Any]) -> Answer:
    tool_calls = behaviour.tool_calls or []
    text = behaviour.reply
    if text is None and not tool_calls:
        offered = offered_tools(body)
        if offered:
            tool_calls = default_tool_calls(first_user_text(body), offered)
        else:
            text = default_reply(last_user_text(body))
    return Answer(text=text, tool_calls=tool_calls, usage=behaviour.effective_usage)


def offered_tools(body: dict[str, Any]) -> set[str]:
    """Tool names the request offers, in either API's format."""
    names: set[str] = set()
    for tool in body.get("tools") or []:
        if isinstance(tool, dict):
            function = tool.get("function")
            name = function.get("name") if isinstance(function, dict) else tool.get("name")
            if isinstance(name, str):
                names.add(name)
    return names


def first_user_text(body: dict[str, Any]) -> str:
    users = [message for message in messages_of(body) if message.get("role") == "user"]
    return content_text(users[0].get("content")) if users else ""


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def pieces(text: str) -> Iterator[str]:
    for start in range(0, len(text), STREAM_PIECE_CHARS):
        yield text[start : start + STREAM_PIECE_CHARS]


def json_response(content: msgspec.Struct, status: int, headers: dict[str, str]) -> Response[Any]:
    return Response(content=content, status_code=status, headers=headers, media_type=MediaType.JSON)


def error_response(behaviour: Behaviour, generated: msgspec.Struct, headers: dict[str, str]) -> Response[Any]:
    body: Any = behaviour.error_body if behaviour.error_body is not None else generated
    return Response(content=body, status_code=behaviour.status, headers=headers, media_type=MediaType.JSON)


def scripted_error_message(status: int) -> str:
    return f"Scripted error {status} from the local model server"


# --- Anthropic --------------------------------------------------------------------------------


def anthropic_error(status: int, message: str) -> AnthropicError:
    kind = ANTHROPIC_ERROR_TYPES.get(status, "api_error")
    return AnthropicError(error=AnthropicErrorDetail(type=kind, message=message))


def anthropic_usage(usage: Usage) -> AnthropicUsage:
    return AnthropicUsage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_creation_input_tokens=usage.cache_creation_input_tokens,
        cache_read_input_tokens=usage.cache_read_input_tokens,
    )


def anthropic_message(answer: Answer, model: str) -> AnthropicMessage:
    content: list[TextBlock | ToolUseBlock] = [] if answer.text is None else [TextBlock(text=answer.text)]
    content.extend(
        ToolUseBlock(id=call.id or new_id("toolu_"), name=call.name, input=call.arguments) for call in answer.tool_calls
    )
    return AnthropicMessage(
        id=new_id("msg_"),
        model=model,
        content=content,
        stop_reason="tool_use" if answer.tool_calls else "end_turn",
        usage=anthropic_usage(answer.usage),
    )


def anthropic_block_events(index: int, block: TextBlock | ToolUseBlock) -> Iterator[AnthropicEvent]:
    # Blocks open empty and fill through deltas, as the real API streams them.
    if isinstance(block, TextBlock):
        yield ContentBlockStart(index=index, content_block=TextBlock(text=""))
        for piece in pieces(block.text):
            yield ContentBlockDelta(index=index, delta=TextDelta(text=piece))
    else:
        yield ContentBlockStart(index=index, content_block=msgspec.structs.replace(block, input={}))
        for piece in pieces(msgspec.json.encode(block.input).decode()):
            yield ContentBlockDelta(index=index, delta=InputJsonDelta(partial_json=piece))
    yield ContentBlockStop(index=index)


def anthropic_events(message: AnthropicMessage) -> Iterator[AnthropicEvent]:
    opening_usage = msgspec.structs.replace(message.usage, output_tokens=0)
    yield MessageStart(message=msgspec.structs.replace(message, content=[], stop_reason=None, usage=opening_usage))
    yield Ping()
    for index, block in enumerate(message.content):
        yield from anthropic_block_events(index, block)
    yield MessageDelta(delta=StopDelta(stop_reason=message.stop_reason), usage=message.usage)
    yield MessageStop()


def anthropic_sse(message: AnthropicMessage, headers: dict[str, str]) -> ServerSentEvent:
    events = [
        ServerSentEventMessage(event=event.__struct_config__.tag, data=msgspec.json.encode(event).decode())
        for event in anthropic_events(message)
    ]
    return ServerSentEvent(events, headers=headers)


@post("/v1/messages", status_code=200)
async def anthropic_messages(request: Request[Any, Any, Any], script: NamedDependency[Script]) -> Response[Any]:
    headers = {"request-id": new_id("req_")}
    api_key = api_key_of(request)
    if not api_key:
        missing = anthropic_error(401, "x-api-key header is required")
        return json_response(missing, 401, headers)
    body = await read_json_object(request)
    if body is None or not isinstance(body.get("messages"), list):
        invalid = anthropic_error(400, "messages: a JSON body with a messages list is required")
        return json_response(invalid, 400, headers)
    behaviour = await take_behaviour(script, "anthropic", body, api_key)
    headers.update(behaviour.headers)
    if behaviour.status != 200:
        generated = anthropic_error(behaviour.status, scripted_error_message(behaviour.status))
        return error_response(behaviour, generated, headers)
    message = anthropic_message(answer_for(behaviour, body), str(body.get("model", "")))
    if body.get("stream"):
        return anthropic_sse(message, headers)
    return json_response(message, 200, headers)


class TokenCount(msgspec.Struct, frozen=True):
    input_tokens: int


@post("/v1/messages/count_tokens", status_code=200)
async def anthropic_count_tokens(request: Request[Any, Any, Any], script: NamedDependency[Script]) -> Response[Any]:
    headers = {"request-id": new_id("req_")}
    api_key = api_key_of(request)
    if not api_key:
        return json_response(anthropic_error(401, "x-api-key header is required"), 401, headers)
    body = await read_json_object(request)
    if body is None or not isinstance(body.get("messages"), list):
        invalid = anthropic_error(400, "messages: a JSON body with a messages list is required")
        return json_response(invalid, 400, headers)
    behaviour = await take_behaviour(script, "anthropic", body, api_key, "count_tokens")
    headers.update(behaviour.headers)
    if behaviour.status != 200:
        generated = anthropic_error(behaviour.status, scripted_error_message(behaviour.status))
        return error_response(behaviour, generated, headers)
    return json_response(TokenCount(input_tokens=len(request_text(body)) // 4 + 1), 200, headers)


# --- OpenAI -----------------------------------------------------------------------------------


def openai_error(status: int, message: str) -> OpenAIError:
    kind, code = OPENAI_ERROR_KINDS.get(status, ("server_error", None))
    return OpenAIError(error=OpenAIErrorDetail(message=message, type=kind, code=code))


def openai_usage(usage: Usage) -> CompletionUsage:
    # OpenAI's prompt_tokens include cached tokens, unlike Anthropic's input_tokens.
    prompt = usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens
    return CompletionUsage(
        prompt_tokens=prompt,
        completion_tokens=usage.output_tokens,
        total_tokens=prompt + usage.output_tokens,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=usage.cache_read_input_tokens),
    )


def openai_tool_call(call: ToolCall) -> ChatToolCall:
    arguments = msgspec.json.encode(call.arguments).decode()
    return ChatToolCall(id=call.id or new_id("call_"), function=FunctionCall(name=call.name, arguments=arguments))


def chat_completion(answer: Answer, model: str) -> ChatCompletion:
    tool_calls = [openai_tool_call(call) for call in answer.tool_calls] or None
    message = ChatMessage(role="assistant", content=answer.text, tool_calls=tool_calls)
    choice = Choice(index=0, message=message, finish_reason="tool_calls" if tool_calls else "stop")
    return ChatCompletion(
        id=new_id("chatcmpl-"),
        created=int(time.time()),
        model=model,
        choices=[choice],
        usage=openai_usage(answer.usage),
    )


def tool_call_deltas(index: int, call: ChatToolCall) -> Iterator[ChunkDelta]:
    opening = ChunkToolCall(index=index, id=call.id, type="function", function=ChunkFunction(call.function.name, ""))
    yield ChunkDelta(tool_calls=[opening])
    for piece in pieces(call.function.arguments):
        yield ChunkDelta(tool_calls=[ChunkToolCall(index=index, function=ChunkFunction(arguments=piece))])


def chat_deltas(message: ChatMessage) -> Iterator[ChunkDelta]:
    yield ChunkDelta(role="assistant", content="")
    for piece in pieces(message.content or ""):
        yield ChunkDelta(content=piece)
    for index, call in enumerate(message.tool_calls or []):
        yield from tool_call_deltas(index, call)


def chat_chunks(completion: ChatCompletion, include_usage: bool) -> Iterator[ChatCompletionChunk]:
    choice = completion.choices[0]

    def chunk(choices: list[ChunkChoice], usage: CompletionUsage | None = None) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=completion.id, created=completion.created, model=completion.model, choices=choices, usage=usage
        )

    for delta in chat_deltas(choice.message):
        yield chunk([ChunkChoice(delta=delta)])
    yield chunk([ChunkChoice(delta=ChunkDelta(), finish_reason=choice.finish_reason)])
    if include_usage:
        yield chunk([], completion.usage)


def openai_sse(completion: ChatCompletion, include_usage: bool, headers: dict[str, str]) -> ServerSentEvent:
    messages = [
        ServerSentEventMessage(data=msgspec.json.encode(chunk).decode())
        for chunk in chat_chunks(completion, include_usage)
    ]
    messages.append(ServerSentEventMessage(data="[DONE]"))
    return ServerSentEvent(messages, headers=headers)


def wants_usage_chunk(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


@post("/v1/chat/completions", status_code=200)
async def openai_chat_completions(request: Request[Any, Any, Any], script: NamedDependency[Script]) -> Response[Any]:
    headers = {"x-request-id": new_id("req_")}
    api_key = bearer_token(request)
    if not api_key:
        missing = openai_error(401, "You didn't provide an API key (Authorization: Bearer <key>).")
        return json_response(missing, 401, headers)
    body = await read_json_object(request)
    if body is None or not isinstance(body.get("messages"), list):
        invalid = openai_error(400, "A JSON body with a 'messages' list is required.")
        return json_response(invalid, 400, headers)
    behaviour = await take_behaviour(script, "openai", body, api_key, "chat.completions")
    headers.update(behaviour.headers)
    if behaviour.status != 200:
        generated = openai_error(behaviour.status, scripted_error_message(behaviour.status))
        return error_response(behaviour, generated, headers)
    completion = chat_completion(answer_for(behaviour, body), str(body.get("model", "")))
    if body.get("stream"):
        return openai_sse(completion, wants_usage_chunk(body), headers)
    return json_response(completion, 200, headers)


# --- Discovery and scripting ------------------------------------------------------------------


def model_entry(model: str) -> ModelEntry:
    owner = "openai" if model.startswith("gpt") else "anthropic"
    created = datetime(2025, 1, 1, tzinfo=UTC)
    return ModelEntry(
        id=model,
        created=int(created.timestamp()),
        created_at=created.isoformat(),
        owned_by=owner,
        display_name=model,
    )


@get("/v1/models")
async def list_models() -> ModelList:
    return ModelList(data=[model_entry(model) for model in MODELS], first_id=MODELS[0], last_id=MODELS[-1])


@get("/health")
async def health() -> Health:
    return Health(status="ok")


@post("/_script", status_code=200)
async def append_behaviours(data: JSONBody[ScriptUpdate], script: NamedDependency[Script]) -> Queued:
    return Queued(queued=script.push(*data.behaviours))


@get("/_script")
async def show_script(script: NamedDependency[Script]) -> ScriptView:
    return ScriptView(default=script.default, behaviours=script.pending())


@delete("/_script")
async def clear_script(script: NamedDependency[Script]) -> None:
    script.clear()


@put("/_script/default")
async def replace_default(data: JSONBody[Behaviour], script: NamedDependency[Script]) -> Behaviour:
    script.set_default(data)
    return script.default


@get("/_calls")
async def recorded_calls(script: NamedDependency[Script], api: FromQuery[Api | None] = None) -> CallsView:
    return CallsView(calls=script.calls(api))


def create_app(script: Script | None = None) -> Litestar:
    """The model server app; pass a `Script` to script it in-process, else it owns a fresh one.

    Either way the script is also reachable as `app.state.script`.
    """
    active = script if script is not None else Script()
    return Litestar(
        route_handlers=[
            anthropic_messages,
            anthropic_count_tokens,
            openai_chat_completions,
            list_models,
            health,
            append_behaviours,
            show_script,
            clear_script,
            replace_default,
            recorded_calls,
        ],
        dependencies={"script": Provide(lambda: active, sync_to_thread=False)},
        state=State({"script": active}),
        openapi_config=None,
        request_max_body_size=MAX_BODY_BYTES,
    )
