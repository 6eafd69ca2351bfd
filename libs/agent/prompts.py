"""What each agent type is told: its system prompt, and the first message of a run.

The first message carries the task, what earlier subtasks did, the previous attempt's error
when self-heal retries, and the repository: small files inline as blocks (so most runs need
no read calls), the rest by path only. An agent with no repository tool is shown no files.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from libs.agent.tools import TOOLSETS

FILE_MARKER = "--- FILE: {path} ---"
END_FILES = "--- END FILES ---"
INLINE_BUDGET_CHARS = 60_000

# What each repository tool is for, in the order the prompt names them.
_LOOKING = ("list_files", "read_file", "search")
_CHANGING = {"write_file": "write_file (always the whole new content)", "delete_file": "delete_file"}
_COMMENT = "comment to record each finding"
_CANNOT_CHANGE = " (you cannot change files)"
_FINISH = "When you are done, call finish once with a short summary for the human reviewer."

ROLES = {
    "codegen": "You are a senior software engineer implementing a change in an existing codebase.",
    "test": (
        "You are a test engineer. Write focused automated tests for the change described, in the "
        "repository's test framework (pytest for Python), next to its existing tests."
    ),
    "review": (
        "You are a code reviewer. Read the change and the code around it, and report correctness, "
        "security and maintainability findings. You change no file."
    ),
    "refactor": "You are a refactoring expert. Improve the structure of the code without changing its behaviour.",
    "debug": "You are a debugging expert. Find the root cause of the problem described and fix it at its source.",
    # An agent step of an orchestration (spec 004): its prompt is the step's, its answer the
    # summary it finishes with, which the orchestration writes to its state.
    "orchestration": (
        "You are one agent in a multi-step workflow. Do the step you are given; the summary you "
        "finish with is your answer, and the next steps read it as it is."
    ),
    "dependency": (
        "You are a dependency maintainer. Update the project's dependencies as asked, keeping every "
        "manifest and lock file consistent."
    ),
}


def system_prompt(agent_type: str, tools: Collection[str] | None = None) -> str:
    """The agent's role, and how to work with the tools it is offered (`tools`, their names;
    None: its type's set): a tool it lacks is never described."""
    names = {t.name for t in TOOLSETS[agent_type]} if tools is None else set(tools)
    return f"{ROLES[agent_type]} {_method(names)}"


def _method(names: set[str]) -> str:
    looking = [n for n in _LOOKING if n in names]
    changing = [text for n, text in _CHANGING.items() if n in names]
    uses = [f"{_and(looking)} to look"] if looking else []
    if changing:
        uses.append(f"{_and(changing)} to change files")
    if "comment" in names:
        uses.append(_COMMENT)
    if not uses:
        return "You have no repository and no tool but finish: call it once, with your answer as its summary."
    if not changing:
        uses[-1] += _CANNOT_CHANGE
    tools = "".join(f"{use}, " for use in uses)
    # Only an agent that can change files is asked for the smallest change.
    care = (
        "Make the smallest change that fully does the task, keep the project's style, and never invent files "
        "you have not looked at."
        if changing
        else "Never invent files you have not looked at."
    )
    return f"You work on a snapshot of the repository through tools: {tools}and finish to end. {care} {_FINISH}"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def first_message(
    description: str,
    files: dict[str, str] | None,
    earlier: list[dict[str, Any]] | None = None,
    previous_error: str | None = None,
    attempt: int = 1,
) -> str:
    parts = [f"Task: {description}"]
    if earlier:
        done = "\n".join(f"- {e['agentType']} ({e['subtaskId']}): {e.get('summary') or 'no summary'}" for e in earlier)
        parts.append(f"Earlier steps of this task, already applied to the files below:\n{done}")
    if previous_error and files is None:
        parts.append(f"This is attempt {attempt}. The previous attempt failed:\n{previous_error}\nTry again.")
    elif previous_error:
        parts.append(
            f"This is attempt {attempt}. The previous attempt's changes are applied to the files below, "
            f"and they failed the checks:\n{previous_error}\nFix the problem, then call finish."
        )
    if files is not None:  # None: no repository at all, where {} is an empty one
        parts.append(repository_blocks(files))
    return "\n\n".join(parts)


def repository_blocks(files: dict[str, str]) -> str:
    inline: list[str] = []
    listed: list[str] = []
    budget = INLINE_BUDGET_CHARS
    for path, content in sorted(files.items()):
        if len(content) <= budget:
            inline.append(f"{FILE_MARKER.format(path=path)}\n{content}")
            budget -= len(content)
        else:
            listed.append(path)
    text = "Repository files:\n" + "\n".join(inline) + f"\n{END_FILES}"
    if listed:
        text += "\nMore files (use read_file to see them):\n" + "\n".join(listed)
    return text
