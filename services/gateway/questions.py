"""Spec 001's questions queue: agents' questions that wait for a human, and their answers.

The queue shows only open questions (answered or expired ones disappear); an answer goes to the
question's owner (review), which checks it against the question's options and records it.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.params import FromPath, JSONBody

from contracts.commands import AnswerQuestionCommand
from contracts.questions import Answer, Answered, QuestionEnvelope, QuestionList
from contracts.subjects import ANSWER_QUESTION
from libs.readmodels import question_reads
from libs.web.auth import workspace_of
from libs.web.commands import send
from libs.web.errors import ApiError
from services.gateway.state import gateway_state

PATH = "/api/v1/workspaces/{workspaceID:str}/orchestration/questions"


async def _open(request: Request[Any, Any, Any], workspace_id: str, question_id: str | None = None) -> list[Any]:
    state = gateway_state(request)
    # Questions are asked by agents, not through this gateway: wait for the log's head.
    await state.reach_head()
    return await question_reads.open_questions(state.pool, workspace_id, question_id)


@get(PATH)
async def list_questions(request: Request[Any, Any, Any], workspaceID: FromPath[str]) -> QuestionList:
    found = await _open(request, workspace_of(request, workspaceID))
    return msgspec.convert({"questions": found}, QuestionList)


@get(PATH + "/{questionID:str}")
async def get_question(
    request: Request[Any, Any, Any], workspaceID: FromPath[str], questionID: FromPath[str]
) -> QuestionEnvelope:
    found = await _open(request, workspace_of(request, workspaceID), questionID)
    if not found:
        raise ApiError(404, "Not found", f"question {questionID} not found")
    return msgspec.convert({"question": found[0]}, QuestionEnvelope)


@post(PATH + "/{questionID:str}/answer", status_code=200)
async def answer_question(
    request: Request[Any, Any, Any], workspaceID: FromPath[str], questionID: FromPath[str], data: JSONBody[Answer]
) -> Answered:
    workspace = workspace_of(request, workspaceID)
    state = gateway_state(request)
    # The owner decides from the event store, which is always current: unknown, answered,
    # expired or another workspace's is a 404, an answer the options do not allow a 400.
    command = AnswerQuestionCommand(workspace_id=workspace, question_id=questionID, answers=data.answers)
    reply = await send(state.broker, ANSWER_QUESTION, command, state.settings.command_timeout_s)
    state.watch.wrote(reply.seq)
    return Answered(answered=True)


ROUTES = [list_questions, get_question, answer_question]
