"""A pull request's words: its title, the task it names, its body."""

from __future__ import annotations

from typing import Any

# GitHub cuts titles at 256 characters; a task description is often longer, and multi-line.
MAX_TITLE_CHARS = 120


def pull_request_title(title: str) -> str:
    line = next((line.strip() for line in title.splitlines() if line.strip()), "")
    line = " ".join(line.split()) or "Changes from the agent orchestrator"
    return line if len(line) <= MAX_TITLE_CHARS else f"{line[: MAX_TITLE_CHARS - 1].rstrip()}…"


def task_reference(task_id: str, task_url: str | None) -> str:
    return f"Task: [{task_id}]({task_url})" if task_url else f"Task: `{task_id}`"


def pull_request_body(reference: str, summaries: list[dict[str, Any]], changed: list[str], removed: list[str]) -> str:
    lines = [f"Opened by the agent orchestrator for an approved task. {reference}", "", "## Subtasks", ""]
    lines += [subtask_line(summary) for summary in summaries] or ["(none recorded)"]
    lines += ["", "## Files", ""]
    lines += [f"- changed `{path}`" for path in changed]
    lines += [f"- deleted `{path}`" for path in removed]
    return "\n".join(lines) + "\n"


def subtask_line(summary: dict[str, Any]) -> str:
    # A multi-line summary stays inside its list item: continuation lines are indented.
    text = "\n  ".join(str(summary.get("summary") or "(no summary)").strip().splitlines())
    return f"- **{summary.get('agentType', 'agent')}** `{summary.get('subtaskId', '?')}`: {text}"
