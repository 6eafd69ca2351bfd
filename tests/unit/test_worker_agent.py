"""The agent a worker runs for a claim, the repository it starts from, and what its outcome
becomes in `complete`: as the executor's agent for the same subtask, but with no human to ask."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.agent_tasks import EarlierStep, FileToFetch, PreviousAttempt, RunInput
from contracts.tasks import DEFAULT_MAX_TOKENS, DEFAULT_MODEL
from libs.agent.loop import Outcome
from libs.agent.prompts import system_prompt
from libs.agent.repository import Changes, Repository
from libs.agent.tools import ASK_HUMAN, Comment
from libs.eventstore.blobs import digest_of
from libs.llm.conversation import Usage
from services.worker.agent import UnknownAgentType, agent_spec, result_of
from services.worker.inputs import starting_repository

ORIGINAL = "def register(user):\n    return user\n"
FIXED = "def register(user):\n    assert user\n    return user\n"
NOTES = "# notes\n"


def ref(content: str) -> FileToFetch:
    digest = digest_of(content)
    return FileToFetch(digest=digest, size=len(content.encode()), url=f"/api/agent/files/{digest}")


def run_input(agent_type: str = "codegen", config: dict[str, Any] | None = None, **extra: Any) -> RunInput:
    fields: dict[str, Any] = {
        "subtask_id": "s1",
        "agent_type": agent_type,
        "description": "Validate the user",
        "attempt": 1,
        "files": {"src/register.py": ref(ORIGINAL)},
        "earlier": [],
        "previous": None,
        "config": config or {},
        **extra,
    }
    return RunInput(**fields)


class FakeApi:
    """The agent API's files route: each content by its digest, counting the fetches."""

    def __init__(self, *contents: str) -> None:
        self.contents = {digest_of(c): c for c in contents}
        self.fetched: list[str] = []

    async def file(self, url: str, digest: str) -> str:
        assert url == f"/api/agent/files/{digest}"
        self.fetched.append(digest)
        return self.contents[digest]


def test_the_agent_is_its_types_without_asking_a_human_and_the_tasks_config_defaults() -> None:
    spec = agent_spec(run_input(), Repository({"src/register.py": ORIGINAL}), max_turns=7)

    assert spec.tools is not None and ASK_HUMAN not in spec.tools
    assert {"read_file", "write_file", "delete_file", "finish"} <= set(spec.tools)
    assert spec.system == system_prompt("codegen", spec.tools) and "ask_human" not in spec.system
    assert (spec.provider, spec.model, spec.max_tokens, spec.temperature) == (
        "anthropic",
        DEFAULT_MODEL,
        DEFAULT_MAX_TOKENS,
        0.0,
    )
    assert spec.max_turns == 7
    assert "Task: Validate the user" in spec.first_message and ORIGINAL in spec.first_message


def test_the_tasks_config_and_the_earlier_steps_shape_the_agent() -> None:
    config = {"provider": "openai", "model": "gpt-5.4", "maxTokens": 512, "temperature": 0.3, "maxTurns": 3}
    earlier = [EarlierStep(subtask_id="s0", agent_type="codegen", summary="validated the email")]
    spec = agent_spec(run_input("test", config, earlier=earlier), Repository({}), max_turns=24)

    assert (spec.provider, spec.model, spec.max_tokens, spec.temperature, spec.max_turns) == (
        "openai",
        "gpt-5.4",
        512,
        0.3,
        3,
    )
    assert "- codegen (s0): validated the email" in spec.first_message


def test_a_retry_is_told_what_failed_before() -> None:
    previous = PreviousAttempt(error="SyntaxError in src/register.py", files={}, deleted_files=[], summary="")
    spec = agent_spec(run_input(previous=previous, attempt=2), Repository({}), max_turns=24)

    assert "This is attempt 2." in spec.first_message and "SyntaxError in src/register.py" in spec.first_message


def test_an_agent_type_the_worker_does_not_know_is_refused() -> None:
    with pytest.raises(UnknownAgentType):
        agent_spec(run_input("translate"), Repository({}), max_turns=24)


async def test_a_retry_starts_from_the_previous_attempts_changes_each_content_fetched_once() -> None:
    # As the runtime sends it: the files with the previous attempt's changes applied, and those changes.
    previous = PreviousAttempt(
        error="tests failed", files={"src/register.py": ref(FIXED)}, deleted_files=["old.py"], summary="fixed"
    )
    claimed = run_input(
        files={"src/register.py": ref(FIXED), "docs/a.md": ref(NOTES), "docs/b.md": ref(NOTES)}, previous=previous
    )
    api = FakeApi(FIXED, NOTES)

    repo = await starting_repository(api, claimed)  # type: ignore[arg-type]

    assert repo.current() == {"src/register.py": FIXED, "docs/a.md": NOTES, "docs/b.md": NOTES}
    assert sorted(api.fetched) == sorted({digest_of(FIXED), digest_of(NOTES)})
    # What the agent then changes is what `complete` gets, a file of the previous attempt's included.
    repo.delete("src/register.py")
    repo.write("docs/a.md", "# more notes\n")
    assert repo.changes() == Changes(files={"docs/a.md": "# more notes\n"}, deleted=["src/register.py"])


def test_complete_gets_the_changes_the_summary_with_a_reviewers_findings_and_the_usage() -> None:
    outcome = Outcome(
        summary="two problems",
        changes=Changes(files={"src/a.py": "x = 1\n"}, deleted=["src/b.py"]),
        comments=[Comment("src/a.py", "no validation", 3), Comment("README.md", "stale")],
        usage=Usage(input_tokens=1500, output_tokens=300, cache_read_tokens=20, cache_write_tokens=10),
        model_calls=2,
        tool_calls=5,
    )
    result = result_of(outcome, "claude-sonnet-4-20250514")

    assert result.files == {"src/a.py": "x = 1\n"} and result.deleted_files == ["src/b.py"]
    assert result.summary == "two problems\n\nFindings:\n- src/a.py:3: no validation\n- README.md: stale"
    assert (result.usage.model, result.usage.input_tokens, result.usage.output_tokens) == (
        "claude-sonnet-4-20250514",
        1500,
        300,
    )
    assert (result.usage.cache_read_tokens, result.usage.cache_write_tokens, result.usage.calls) == (20, 10, 7)
