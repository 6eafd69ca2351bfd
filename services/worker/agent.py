"""The agent a claimed run is, built from the claim's input as the executor builds it from a
dispatch, and what its outcome becomes in the calls that end the run.

The tools are the agent type's without `ask_human`: no person is reachable from a worker."""

from __future__ import annotations

from contracts.agent_tasks import RunInput, RunResult, Usage
from contracts.tasks import DEFAULT_MAX_TOKENS, DEFAULT_MODEL, DEFAULT_PROVIDER, DEFAULT_TEMPERATURE
from libs.agent.loop import AgentSpec, Outcome
from libs.agent.prompts import first_message, system_prompt
from libs.agent.repository import Repository
from libs.agent.tools import ASK_HUMAN, REPOSITORY_TOOLS, TOOLSETS, Comment, offered
from libs.llm.conversation import Usage as LlmUsage

MAX_SUMMARY_CHARS = 20_000  # what `complete` takes (`RunResult.summary`)


class UnknownAgentType(ValueError):
    """The claim names an agent type this worker has no tools for (a newer server's)."""


def agent_spec(run: RunInput, repo: Repository, max_turns: int) -> AgentSpec:
    """`max_turns`: the worker's limit, unless the run's config says its own (an orchestration's step)."""
    if run.agent_type not in TOOLSETS:
        raise UnknownAgentType(f"agent type {run.agent_type!r} is not one this worker can run")
    tools = tuple(t.name for t in offered(run.agent_type) if t.name != ASK_HUMAN)
    config = run.config
    files = repo.current() if REPOSITORY_TOOLS.intersection(tools) else None
    # The earlier steps as the prompt reads them: the wire's camelCase keys, as the executor's dispatch has.
    earlier = [{"subtaskId": e.subtask_id, "agentType": e.agent_type, "summary": e.summary} for e in run.earlier]
    error = run.previous.error if run.previous is not None else None
    return AgentSpec(
        agent_type=run.agent_type,
        provider=str(config.get("provider") or DEFAULT_PROVIDER),
        model=str(config.get("model") or DEFAULT_MODEL),
        system=system_prompt(run.agent_type, tools),
        first_message=first_message(run.description, files, earlier, error, run.attempt),
        max_tokens=int(config.get("maxTokens", DEFAULT_MAX_TOKENS)),
        temperature=float(config.get("temperature", DEFAULT_TEMPERATURE)),
        max_turns=int(config.get("maxTurns", max_turns)),
        tools=tools,
    )


def usage_of(used: LlmUsage, calls: int, model: str) -> Usage:
    """What the run used, as the calls that end it report it (`calls`: model and tool calls)."""
    return Usage(
        model=model,
        input_tokens=used.input_tokens,
        output_tokens=used.output_tokens,
        cache_read_tokens=used.cache_read_tokens,
        cache_write_tokens=used.cache_write_tokens,
        calls=calls,
    )


def result_of(outcome: Outcome, model: str) -> RunResult:
    """What `complete` is sent: the changed files, the deleted ones, the summary (a reviewer's
    findings written into it: the result has no field of its own for them), the usage."""
    return RunResult(
        files=outcome.changes.files,
        deleted_files=outcome.changes.deleted,
        summary=_summary(outcome.summary or "", outcome.comments)[:MAX_SUMMARY_CHARS],
        usage=usage_of(outcome.usage, outcome.model_calls + outcome.tool_calls, model),
    )


def _summary(summary: str, comments: list[Comment]) -> str:
    if not comments:
        return summary
    lines = [f"- {c.path}{f':{c.line}' if c.line else ''}: {c.body}" for c in comments]
    return f"{summary}\n\nFindings:\n" + "\n".join(lines)
