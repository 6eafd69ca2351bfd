"""What the intake says on an issue: plain Markdown, naming the task by its status URL."""

from __future__ import annotations


def status_url(public_url: str, task_id: str) -> str:
    return f"{public_url.rstrip('/')}/api/tasks/{task_id}/status"


def refused(commenter: str, owner: str, repo: str, level: str) -> str:
    return (
        f"@{commenter} I can't take this command: it needs write access to {owner}/{repo}, "
        f"and your permission there is `{level}`. Someone with write access can ask again."
    )


def task_created(commenter: str, agent_type: str, task_url: str, skipped: int) -> str:
    left_out = f" ({skipped} binary or oversized files were left out)" if skipped else ""
    return (
        f"@{commenter} On it: a `{agent_type}` task works on this issue with the repository's default "
        f"branch{left_out}. Follow it at {task_url}"
    )


def not_created(commenter: str, reason: str) -> str:
    return f"@{commenter} The task could not be created: {reason}"


def completed(task_url: str, pr_url: str | None) -> str:
    if pr_url:
        return f"Done: the pull request is {pr_url} (task: {task_url})"
    return f"Done: the task completed without changes to propose (task: {task_url})"


def failed(task_url: str, error: str) -> str:
    return f"The task failed: {error[:1000]} (task: {task_url})"
