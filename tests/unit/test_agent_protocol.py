"""The agent protocol: the prompt a model gets, and how its JSON answer is read."""

from __future__ import annotations

import json

import pytest

from contracts.tasks import AgentType
from libs.llm.agent_protocol import END_FILES, AgentAnswer, AnswerError, parse_answer, system_prompt, user_prompt

ANSWER = {"summary": "Added a greeting", "files": {"src/greet.py": "def greet():\n    return 'hi'\n"}}


def test_parses_a_plain_json_answer() -> None:
    answer = parse_answer(json.dumps(ANSWER), "codegen")

    assert answer == AgentAnswer(summary="Added a greeting", files=ANSWER["files"])


def test_parses_a_fenced_json_answer() -> None:
    text = "Here is the change:\n```json\n" + json.dumps(ANSWER, indent=2) + "\n```\nDone."

    answer = parse_answer(text, "codegen")

    assert answer.summary == "Added a greeting"
    assert answer.files == ANSWER["files"]


def test_parses_a_fence_without_language() -> None:
    text = "```\n" + json.dumps(ANSWER) + "\n```"

    assert parse_answer(text, "codegen").files == ANSWER["files"]


def test_parses_json_with_text_around_it() -> None:
    text = "Sure! " + json.dumps(ANSWER) + " Let me know if you need anything else."

    answer = parse_answer(text, "codegen")

    assert answer.summary == "Added a greeting"
    assert answer.files == ANSWER["files"]


def test_files_default_to_none_changed() -> None:
    answer = parse_answer('{"summary": "nothing to do"}', "codegen")

    assert answer.files == {}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "I could not do it.",
        "{not json}",
        '{"files": {"a.py": "x"}}',  # no summary
        '{"summary": 42}',
        '{"summary": "ok", "files": {"a.py": 1}}',
        '{"summary": "ok", "files": ["a.py"]}',
        '["summary", "files"]',
    ],
)
def test_invalid_answers_raise_answer_error(text: str) -> None:
    with pytest.raises(AnswerError):
        parse_answer(text, "codegen")


def test_review_agent_answer_with_files_is_refused() -> None:
    with pytest.raises(AnswerError, match="review"):
        parse_answer(json.dumps(ANSWER), "review")


def test_review_agent_answer_without_files_is_accepted() -> None:
    answer = parse_answer('{"summary": "LGTM, one nit in greet.py", "files": {}}', "review")

    assert answer.summary == "LGTM, one nit in greet.py"
    assert answer.files == {}


def test_other_agents_may_change_files() -> None:
    for agent_type in AgentType:
        if agent_type is not AgentType.REVIEW:
            assert parse_answer(json.dumps(ANSWER), agent_type.value).files == ANSWER["files"]


def test_user_prompt_lists_each_file_in_a_block() -> None:
    files = {"src/app.py": "def main():\n    return 1", "README.md": "# app"}

    prompt = user_prompt("Add a greeting", files)

    assert prompt.startswith("Task: Add a greeting\n")
    assert "--- FILE: src/app.py ---\ndef main():\n    return 1\n" in prompt
    assert "--- FILE: README.md ---\n# app\n" in prompt
    assert prompt.count("--- FILE: ") == 2
    assert prompt.rstrip("\n").endswith(END_FILES)
    assert END_FILES == "--- END FILES ---"


def test_user_prompt_orders_files_by_path() -> None:
    prompt = user_prompt("x", {"b.py": "B", "a.py": "A", "c/d.py": "D"})

    positions = [prompt.index(f"--- FILE: {p} ---") for p in ("a.py", "b.py", "c/d.py")]
    assert positions == sorted(positions)
    assert prompt.index("--- FILE: c/d.py ---") < prompt.index(END_FILES)


def test_user_prompt_without_files_still_closes_the_block() -> None:
    prompt = user_prompt("Explain the repo", {})

    assert "--- FILE: " not in prompt
    assert prompt.rstrip("\n").endswith(END_FILES)


def test_system_prompt_exists_for_every_agent_type_and_states_the_format() -> None:
    for agent_type in AgentType:
        prompt = system_prompt(agent_type.value)
        assert '"summary"' in prompt
        assert '"files"' in prompt
    assert "change no file" in system_prompt("review")
