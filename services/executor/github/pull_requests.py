"""Pull requests for approved tasks: the task's changes as one commit on its branch, proposed
against its base branch through GitHub's REST API (githubkit), the git-data way: read the base
branch (its head commit and tree), write a tree on that tree, one commit, point the branch at
it, open the pull request (the calls: `git_steps`).

Most tasks publish to a branch of their own that does not exist yet, so the commit is made on the
base first and the branch created at it: a new branch has no pull request, and the task's is opened
(five calls in all). When the branch exists already, `open_pull_request` looks for an open pull
request from it: this task's (a redelivered approval, or a second replica handling the same one)
is returned as it is, so no second one is ever opened; another task's (a chained task building on
its parent's) gets this task's changes as one more commit on top; with none open (an earlier
attempt that stopped half-way, or a closed pull request) the branch is moved to the new commit: it
is the task's branch. The commit made on the base in those cases stays unreferenced, as git's
garbage.
"""

from __future__ import annotations

import time
from typing import Any

import pydantic
from githubkit import GitHub
from githubkit.exception import GitHubException

from contracts.repos import names_problem
from libs.bus.consumer import TryLater
from libs.domain.pull_request import PullRequest
from services.executor.github.branch_locks import BranchLocks
from services.executor.github.errors import describe
from services.executor.github.git_steps import (
    Opened,
    Target,
    branch_head,
    branch_ref,
    commit_changes,
    create,
    create_branch,
    find_open,
)
from services.executor.github.retries import RETRY_WINDOW_S, passes
from services.executor.github.text import pull_request_body, pull_request_title, task_reference

NO_CREDENTIALS = "no GitHub credentials configured"
NO_CHANGES = "the task changed no files"


async def open_pull_request(
    github: GitHub[Any] | None,
    workspace_id: str,
    task_id: str,
    repo: dict[str, Any],
    files: dict[str, str],
    deleted: list[str],
    summaries: list[dict[str, Any]],
    task_url: str | None,
    title: str,
    locks: BranchLocks,
    *,
    approved_at_ms: int | None,
) -> PullRequest:
    """Open (or find) the task's pull request and record the outcome as a `PullRequest`.

    `repo` is the task's RepoContext (`owner`, `repo`, `branch`, `baseBranch`), `files` maps each
    changed path to its new content, `deleted` lists removed paths, `summaries` are the subtasks'
    `{"subtaskId", "agentType", "summary"}`, `title` is the task's (its first line is used).
    A GitHub error becomes `pull_request.failed` with GitHub's message; the token never appears.
    With `approved_at_ms` (when the task was approved, epoch ms; None: no retries), an error
    that passes (a rate limit, GitHub away) raises `TryLater` instead, until RETRY_WINDOW_S after
    the approval: a publish tried again finds what the last attempt left (its branch, its pull
    request).
    """
    if github is None:
        return PullRequest.skipped(workspace_id, task_id, NO_CREDENTIALS)
    target = Target(repo["owner"], repo["repo"], repo["branch"], repo["baseBranch"])
    # Checked at submission; again here for a task stored before that check existed.
    if (refusal := names_problem(*target)) is not None:
        return PullRequest.failed(workspace_id, task_id, refusal)
    removed = sorted(set(deleted) - set(files))
    if not files and not removed:
        return PullRequest.skipped(workspace_id, task_id, NO_CHANGES)
    headline = pull_request_title(title)
    reference = task_reference(task_id, task_url)
    try:
        # One httpx client for the publish's calls: githubkit makes one per call outside `async with`.
        async with locks.held(target), github:
            opened = await _publish(github, target, task_id, headline, reference, summaries, files, removed)
    except (GitHubException, pydantic.ValidationError) as exc:
        error = describe(exc, github)
        passing, delay_s = passes(exc)
        if passing and approved_at_ms is not None:
            since_s = time.time() - approved_at_ms / 1000
            if since_s + (delay_s or 0) < RETRY_WINDOW_S:
                raise TryLater(error, delay_s) from exc
            window = f"{RETRY_WINDOW_S // 60} minutes"
            if since_s >= RETRY_WINDOW_S:
                error += f" (tried again for {window} after the approval)"
            else:  # a rate limit that resets after the window is over
                resets = int(delay_s or 0) // 60
                error += f" (the rate limit resets in {resets} minutes, past the {window} an approval waits)"
        return PullRequest.failed(workspace_id, task_id, error)
    return PullRequest.opened(workspace_id, task_id, opened.url, opened.number)


async def _publish(
    github: GitHub[Any],
    target: Target,
    task_id: str,
    headline: str,
    reference: str,
    summaries: list[dict[str, Any]],
    files: dict[str, str],
    removed: list[str],
) -> Opened:
    message = f"{headline}\n\n{reference}\n"
    body = pull_request_body(reference, summaries, sorted(files), removed)
    commit = await commit_changes(github, target, files, removed, message, onto=target.base)
    if await create_branch(github, target, commit):
        return await create(github, target, headline, body)
    opened = await find_open(github, target)
    if opened is None:
        # No open pull request comes from the branch, so it is moved, not merged.
        await github.rest.git.async_update_ref(*target.path, branch_ref(target.branch), sha=commit, force=True)
        opened = await create(github, target, headline, body)
    elif task_id not in opened.body:
        # Another task's pull request from the same branch (a chained task building on its
        # parent's, say): this task's changes go on top of it as one more commit, and its
        # body gains this task's section, which also marks the task as published. A publish
        # handed back after its commit (GitHub away before the body's update) finds its commit
        # at the branch's head and does not add it again.
        head = await branch_head(github, target, target.branch)
        if task_id not in head.commit.message:
            commit = await commit_changes(github, target, files, removed, message, onto=head)
            await github.rest.git.async_update_ref(*target.path, branch_ref(target.branch), sha=commit, force=False)
        await github.rest.pulls.async_update(
            *target.path, opened.number, body=f"{opened.body.rstrip()}\n\n---\n\n{body}"
        )
    return opened
