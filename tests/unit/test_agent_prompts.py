"""What each agent type is told: its system prompt and the first message of a run."""

from __future__ import annotations

import pytest

from libs.agent.prompts import END_FILES, INLINE_BUDGET_CHARS, ROLES, first_message, repository_blocks, system_prompt
from libs.agent.tools import TOOLSETS

WRITERS = ("codegen", "test", "refactor", "debug", "dependency")
FILES = {"src/app.py": "def main():\n    return 1\n", "README.md": "# demo\n"}


# --- system prompts ---------------------------------------------------------------------------


def test_every_agent_type_has_a_role() -> None:
    assert set(ROLES) == set(TOOLSETS)


@pytest.mark.parametrize("agent_type", WRITERS)
def test_writing_agents_are_told_their_role_and_the_writing_tools(agent_type: str) -> None:
    prompt = system_prompt(agent_type)

    assert prompt.startswith(ROLES[agent_type])
    assert "write_file (always the whole new content) and delete_file" in prompt
    for tool in ("list_files", "read_file", "search", "finish"):
        assert tool in prompt
    assert "comment" not in prompt


def test_the_reviewer_is_told_it_cannot_change_files_and_has_comment() -> None:
    prompt = system_prompt("review")

    assert prompt.startswith("You are a code reviewer.")
    assert "comment to record each finding (you cannot change files)" in prompt
    assert "You change no file." in prompt
    assert "write_file" not in prompt
    assert "delete_file" not in prompt


def test_a_step_with_only_the_reading_tools_is_told_of_those_and_that_it_cannot_change_files() -> None:
    prompt = system_prompt("orchestration", ["list_files", "read_file", "search", "finish"])

    assert prompt.startswith(ROLES["orchestration"])
    assert "list_files, read_file and search to look (you cannot change files), and finish to end." in prompt
    for lacking in ("write_file", "delete_file", "comment", "smallest change"):
        assert lacking not in prompt


def test_a_step_with_some_tools_is_told_of_exactly_those() -> None:
    prompt = system_prompt("orchestration", ["read_file", "write_file", "finish"])

    assert "through tools: read_file to look, write_file (always the whole new content) to change files, and " in prompt
    for lacking in ("list_files", "search", "delete_file"):
        assert lacking not in prompt


def test_a_step_without_tools_is_told_it_has_only_finish_and_no_repository() -> None:
    prompt = system_prompt("orchestration", ["finish"])

    assert prompt == (
        f"{ROLES['orchestration']} You have no repository and no tool but finish: call it once, with your answer "
        "as its summary."
    )


def test_an_agent_types_own_set_is_its_default() -> None:
    for agent_type, tools in TOOLSETS.items():
        assert system_prompt(agent_type) == system_prompt(agent_type, [t.name for t in tools])


def test_the_prompts_differ_per_agent_type() -> None:
    assert len({system_prompt(agent_type) for agent_type in ROLES}) == len(ROLES)


def test_the_test_agent_is_told_to_use_pytest_for_python() -> None:
    assert "pytest for Python" in system_prompt("test")


def test_an_unknown_agent_type_has_no_prompt() -> None:
    with pytest.raises(KeyError):
        system_prompt("poet")


# --- first message ----------------------------------------------------------------------------


def test_the_first_message_starts_with_the_task_and_carries_the_files_inline() -> None:
    message = first_message("Add input validation", FILES)

    assert message.startswith("Task: Add input validation\n\n")
    assert (
        "Repository files:\n"
        "--- FILE: README.md ---\n# demo\n\n"
        "--- FILE: src/app.py ---\ndef main():\n    return 1\n\n"
        "--- END FILES ---"
    ) in message
    assert message.endswith(END_FILES)
    assert "Earlier steps" not in message
    assert "attempt" not in message
    assert "More files" not in message


def test_a_first_message_without_a_repository_shows_no_files_and_an_empty_one_shows_it_empty() -> None:
    assert first_message("Name three owls", None) == "Task: Name three owls"
    assert first_message("Name three owls", {}).endswith(f"Repository files:\n\n{END_FILES}")
    retried = first_message("Name three owls", None, previous_error="the model timed out", attempt=2)
    assert retried == (
        "Task: Name three owls\n\nThis is attempt 2. The previous attempt failed:\nthe model timed out\nTry again."
    )


def test_the_first_message_lists_the_earlier_steps_with_their_summaries() -> None:
    earlier = [
        {"agentType": "codegen", "subtaskId": "st-1", "summary": "Added the validator"},
        {"agentType": "test", "subtaskId": "st-2", "summary": None},
    ]

    message = first_message("Review the change", FILES, earlier=earlier)

    assert (
        "Earlier steps of this task, already applied to the files below:\n"
        "- codegen (st-1): Added the validator\n"
        "- test (st-2): no summary"
    ) in message
    assert message.index("Task: Review the change") < message.index("Earlier steps") < message.index("--- FILE:")


def test_the_first_message_of_a_retry_carries_the_previous_error_and_attempt_number() -> None:
    error = "tests/test_app.py:3: SyntaxError: invalid syntax"

    message = first_message("Write tests", FILES, previous_error=error, attempt=2)

    assert "This is attempt 2." in message
    assert f"they failed the checks:\n{error}\nFix the problem, then call finish." in message
    assert message.index("This is attempt 2") < message.index("Repository files:")


def test_the_attempt_number_is_not_mentioned_without_a_previous_error() -> None:
    assert "attempt" not in first_message("Write tests", FILES, attempt=3)


def test_the_first_message_with_no_files_still_closes_the_file_blocks() -> None:
    message = first_message("Create a project", {})

    assert message == "Task: Create a project\n\nRepository files:\n\n--- END FILES ---"


def test_files_past_the_inline_budget_are_listed_not_inlined() -> None:
    big = "B" * (INLINE_BUDGET_CHARS - 100)
    files = {"a_big.py": big, "b_small.py": "small = 1\n", "c_large.py": "C" * 500, "d_huge.txt": "D" * 100_000}

    text = first_message("Refactor", files)

    assert "--- FILE: a_big.py ---\n" + big in text
    assert "--- FILE: b_small.py ---\nsmall = 1\n" in text
    assert "C" * 500 not in text
    assert "D" * 100 not in text
    assert "--- FILE: c_large.py ---" not in text
    assert "--- FILE: d_huge.txt ---" not in text
    assert text.endswith(f"{END_FILES}\nMore files (use read_file to see them):\nc_large.py\nd_huge.txt")


def test_a_file_of_exactly_the_budget_is_inlined() -> None:
    text = repository_blocks({"exact.txt": "E" * INLINE_BUDGET_CHARS})

    assert "--- FILE: exact.txt ---\n" + "E" * INLINE_BUDGET_CHARS in text
    assert "More files" not in text


def test_the_file_blocks_are_in_path_order() -> None:
    text = repository_blocks({"z.py": "z\n", "a.py": "a\n", "m/b.py": "b\n"})

    assert text.index("--- FILE: a.py ---") < text.index("--- FILE: m/b.py ---") < text.index("--- FILE: z.py ---")
