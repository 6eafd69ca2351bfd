"""An agent's `ask_human` call, as the run that makes it lives it: the question goes to review
(`questions.ask`), the run gives its slot back and waits for the answer or the expiry
(`questions.Answers`), then takes a slot again and hands the model what came of it."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any, Protocol

import msgspec

from contracts.commands import AskQuestionCommand
from contracts.questions import MAX_QUESTIONS, QuestionItem
from libs.agent.repository import printable
from libs.agent.tools import ToolResult
from libs.domain.run import Run
from libs.domain.task import CANCELLED, Task
from services.executor.deps import Deps
from services.executor.purges import cancelling
from services.executor.questions import AskFailed, answer_text, ask, recorded_expiry
from services.executor.runslots import RunSlot

log = logging.getLogger(__name__)


class Asker(Protocol):
    """What the asking takes of the run that asks (its `RunRecorder`)."""

    run: Run
    task_id: str
    turn: int
    deps: Deps
    slot: RunSlot
    waited_s: float  # for people's answers: not the run's work, nor charged as its time

    async def saved(self) -> None: ...


class TaskStopped(Exception):
    """The run's task was stopped (its workspace purged): the run stops where it is."""


async def ask_human(asker: Asker, call_id: str, arguments: Any) -> ToolResult:
    """Asks, then waits until a human answers or the question expires."""
    await asker.saved()
    started = time.perf_counter()
    run, deps = asker.run, asker.deps

    def result(content: str, ok: bool, title: str, target: str | None = None) -> ToolResult:
        duration_ms = int((time.perf_counter() - started) * 1000)
        return ToolResult(printable(content), ok, printable(title), target, duration_ms)

    try:
        items = msgspec.convert((arguments or {}).get("questions"), list[QuestionItem])
        if not 1 <= len(items) <= MAX_QUESTIONS:
            raise msgspec.ValidationError(f"ask between 1 and {MAX_QUESTIONS} questions")
    except (msgspec.ValidationError, AttributeError) as exc:
        return result(f"error: the question is not well formed: {exc}", False, "Asked a human: not well formed")
    question_id = f"que_{uuid.uuid4().hex}"
    title = f"Asked a human: {items[0].header or items[0].question}"[:200]
    command = AskQuestionCommand(
        workspace_id=run.workspace_id,
        question_id=question_id,
        task_id=asker.task_id,
        run_id=str(run.id),
        questions=msgspec.to_builtins(items),
        tool={"messageID": f"msg_{run.id.hex}_{asker.turn}", "callID": call_id},
        subtask_id=run.subtask_id,
        agent_type=run.agent_type,
    )
    deps.answers.expect(question_id)
    try:
        try:
            expires_at = await ask(deps.nc, command, deps.settings.command_timeout_s)
        except AskFailed as exc:
            # A question review recorded though its reply came too late is waited for like
            # any other: someone may answer it, and the agent should hear.
            late = await recorded_expiry(deps.store, question_id) if exc.timed_out else None
            if late is None:
                return result(f"error: {exc}", False, title, question_id)
            expires_at = late
        # Waiting for a person holds no run slot: other runs (other workspaces') go on.
        asker.slot.park()
        waiting_since = time.perf_counter()
        try:
            answers = await deps.answers.outcome(question_id, expires_at)
        finally:
            # The person's time only: waiting for a slot to go on counts, as at the start.
            asker.waited_s += time.perf_counter() - waiting_since
            if cancelling():
                asker.slot.leave()  # stopped as it waited (its task purged): it goes on no more
            else:
                await asker.slot.unpark()
    finally:
        deps.answers.forget(question_id)  # however the wait ended
    if answers is None and await _task_stopped(asker):
        # Its question was closed by a purge this process did not hear of: the run stops
        # rather than call the model for a task nobody can see any more.
        raise TaskStopped(asker.task_id)
    if answers is None:
        text = "error: nobody answered in time and the question expired. Decide with your best judgement."
        return result(text, False, title, question_id)
    return result(answer_text(items, answers), True, title, question_id)


async def _task_stopped(asker: Asker) -> bool:
    """Whether the run's task was stopped under it (a purge): this process heard of it, or
    the task is on record as cancelled. Read only when a question went unanswered."""
    if asker.deps.purges.is_stopped(asker.task_id):
        return True
    task_id = uuid.UUID(asker.task_id)
    try:
        task = await asyncio.to_thread(asker.deps.store.load, task_id)
    except Exception:
        log.warning("run %s: could not read its task; it goes on", asker.run.id, exc_info=True)
        return False
    return isinstance(task, Task) and task.status == CANCELLED
