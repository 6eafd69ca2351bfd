"""What an agent is asked, and how its answer is read.

The model gets the task and the repository as file blocks, and answers with one JSON object:
`{"summary": "...", "files": {"path": "full new content"}}`. The local model server's
default reply follows the same protocol.
"""

from __future__ import annotations

import json
import re

import msgspec

FILE_MARKER = "--- FILE: {path} ---"
END_FILES = "--- END FILES ---"

SYSTEM_PROMPTS = {
    "codegen": "You are a senior software engineer. Implement the requested change.",
    "test": "You are a test engineer. Write focused automated tests for the described change.",
    "review": "You are a code reviewer. Review the code and report findings; change no file.",
    "refactor": "You are a refactoring expert. Improve structure without changing behaviour.",
    "debug": "You are a debugging expert. Find the root cause and fix it.",
    "dependency": "You are a dependency maintainer. Update dependencies safely.",
}

ANSWER_FORMAT = (
    "Answer with one JSON object and nothing else: "
    '{"summary": "<what you did>", "files": {"<path>": "<full new content>"}}. '
    "List only the files you change or create."
)


class AgentAnswer(msgspec.Struct, frozen=True):
    summary: str
    files: dict[str, str] = {}


class AnswerError(ValueError):
    pass


def system_prompt(agent_type: str) -> str:
    return f"{SYSTEM_PROMPTS[agent_type]} {ANSWER_FORMAT}"


def user_prompt(description: str, files: dict[str, str]) -> str:
    blocks = [f"{FILE_MARKER.format(path=path)}\n{content}" for path, content in sorted(files.items())]
    return f"Task: {description}\n\nRepository files:\n" + "\n".join(blocks) + f"\n{END_FILES}\n"


_FENCE = re.compile(r"```(?:json)?\s*(\{.*\})\s*```", re.DOTALL)


def parse_answer(text: str, agent_type: str) -> AgentAnswer:
    match = _FENCE.search(text)
    candidate = match.group(1) if match else text[text.find("{") : text.rfind("}") + 1]
    try:
        answer = msgspec.convert(json.loads(candidate), AgentAnswer)
    except (ValueError, msgspec.ValidationError) as exc:
        raise AnswerError(f"the agent's answer is not the expected JSON object: {exc}") from None
    if agent_type == "review" and answer.files:
        raise AnswerError("a review agent must not change files")
    return _without_nul(answer)


def _without_nul(answer: AgentAnswer) -> AgentAnswer:
    # A model can emit U+0000, which PostgreSQL cannot store: keep it visible, not fatal.
    def clean(text: str) -> str:
        return text.replace("\x00", "\ufffd")

    return AgentAnswer(summary=clean(answer.summary), files={clean(k): clean(v) for k, v in answer.files.items()})
