"""The agent's tools: which agent type gets which, and what each call answers the model."""

from __future__ import annotations

import pytest

from libs.agent.repository import Repository
from libs.agent.tools import (
    MAX_READ_CHARS,
    MAX_SEARCH_RESULTS,
    TOOLSETS,
    Comment,
    ToolResult,
    Workbench,
    offered,
)

FILES = {
    "src/app.py": "import os\n\ndef main():\n    return os.getcwd()\n",
    "src/util.py": "def helper():\n    return 42\n",
    "tests/test_app.py": "from app import main\n\ndef test_main():\n    assert main()\n",
    "README.md": "# demo\n",
}
WRITERS = ("codegen", "test", "refactor", "debug", "dependency")


def bench(agent_type: str = "codegen", files: dict[str, str] | None = None) -> Workbench:
    return Workbench(agent_type, Repository(FILES if files is None else files))


def names(workbench: Workbench) -> set[str]:
    return {tool.name for tool in workbench.tools}


# --- Tool sets --------------------------------------------------------------------------------


@pytest.mark.parametrize("agent_type", WRITERS)
def test_writing_agents_get_the_reading_and_writing_tools(agent_type: str) -> None:
    assert names(bench(agent_type)) == {
        "list_files",
        "read_file",
        "search",
        "write_file",
        "delete_file",
        "ask_human",
        "finish",
    }


def test_a_reviewer_reads_and_comments_but_cannot_write() -> None:
    assert names(bench("review")) == {"list_files", "read_file", "search", "comment", "ask_human", "finish"}


def test_every_agent_type_has_a_tool_set_ending_with_finish() -> None:
    assert set(TOOLSETS) == {*WRITERS, "review", "orchestration"}
    for tools in TOOLSETS.values():
        assert tools[-1].name == "finish"


def test_an_orchestration_step_is_offered_only_the_tools_it_names_and_finish() -> None:
    workbench = Workbench("orchestration", Repository(FILES), ["search", "list_files", "read_file"])

    # In its type's order, whatever the order named.
    assert [t.name for t in workbench.tools] == ["list_files", "read_file", "search", "finish"]
    assert [t.name for t in offered("orchestration", [])] == ["finish"]
    assert offered("orchestration", None) == TOOLSETS["orchestration"]


def test_a_tool_named_that_the_agent_type_lacks_is_not_offered() -> None:
    assert [t.name for t in offered("orchestration", ["comment", "ask_human", "read_file"])] == ["read_file", "finish"]


def test_a_step_without_the_writing_tools_has_its_write_refused_as_an_unknown_tool() -> None:
    workbench = Workbench("orchestration", Repository(FILES), ["list_files", "read_file", "search"])

    written = workbench.call("write_file", {"path": "src/app.py", "content": "hacked"})
    deleted = workbench.call("delete_file", {"path": "README.md"})

    assert not written.ok and not deleted.ok
    assert written.content == (
        "error: there is no tool 'write_file' here; the tools are: list_files, read_file, search, finish"
    )
    assert deleted.content.startswith("error: there is no tool 'delete_file' here")
    assert workbench.repo.changes().files == {} and workbench.repo.changes().deleted == []
    assert workbench.call("read_file", {"path": "README.md"}).content == FILES["README.md"]


def test_a_step_without_tools_can_only_finish() -> None:
    workbench = Workbench("orchestration", Repository(FILES), [])

    assert not workbench.call("read_file", {"path": "README.md"}).ok
    assert workbench.call("finish", {"summary": "the answer"}).ok


def test_every_tool_schema_is_an_object_listing_its_required_arguments() -> None:
    for tools in TOOLSETS.values():
        for tool in tools:
            assert tool.parameters["type"] == "object"
            assert set(tool.parameters["required"]) <= set(tool.parameters["properties"])
            assert tool.description


def test_a_reviewer_calling_write_file_gets_an_error_listing_the_offered_tools() -> None:
    workbench = bench("review")

    result = workbench.call("write_file", {"path": "src/app.py", "content": "hacked"})

    assert not result.ok
    assert result.content.startswith("error: there is no tool 'write_file' here")
    for name in ("list_files", "read_file", "search", "comment", "finish"):
        assert name in result.content
    assert "delete_file" not in result.content
    assert workbench.repo.read("src/app.py") == FILES["src/app.py"]
    assert workbench.repo.changes().files == {}


def test_a_reviewer_cannot_delete_either() -> None:
    workbench = bench("review")

    result = workbench.call("delete_file", {"path": "README.md"})

    assert not result.ok
    assert workbench.repo.read("README.md") == FILES["README.md"]


def test_a_writer_has_no_comment_tool() -> None:
    workbench = bench("codegen")

    result = workbench.call("comment", {"path": "src/app.py", "body": "nice"})

    assert not result.ok
    assert "there is no tool 'comment'" in result.content
    assert workbench.comments == []


def test_an_unknown_tool_is_an_error_result_with_its_name_as_title() -> None:
    result = bench().call("run_shell", {"command": "rm -rf /"})

    assert result == ToolResult(
        "error: there is no tool 'run_shell' here; the tools are: "
        "list_files, read_file, search, write_file, delete_file, ask_human, finish",
        False,
        "run_shell",
        None,
        result.duration_ms,
    )


@pytest.mark.parametrize("arguments", ["{not json", ["src/app.py"], None, 3])
def test_arguments_that_are_not_an_object_are_an_error_result(arguments: object) -> None:
    result = bench().call("read_file", arguments)

    assert not result.ok
    assert result.content == "error: the arguments must be a JSON object"
    assert result.title == "read_file: bad arguments"


def test_a_missing_argument_is_a_readable_error_not_an_exception() -> None:
    result = bench().call("write_file", {"path": "src/new.py"})

    assert not result.ok
    assert result.content == "error: missing argument 'content'"
    assert result.title == "write_file failed: missing argument 'content'"
    assert result.target == "src/new.py"


def test_an_argument_of_the_wrong_type_is_an_error_result() -> None:
    result = bench().call("read_file", {"path": 7})

    assert not result.ok
    assert result.content == "error: 'path' must be a string"


def test_a_path_outside_the_repository_is_an_error_result() -> None:
    workbench = bench()

    result = workbench.call("write_file", {"path": "../../etc/passwd", "content": "x"})

    assert not result.ok
    assert "outside the repository" in result.content
    assert result.target == "../../etc/passwd"
    assert workbench.repo.changes().files == {}


# --- list_files, read_file --------------------------------------------------------------------


def test_list_files_lists_every_file_with_its_size() -> None:
    result = bench().call("list_files", {})

    assert result.ok
    assert result.content.splitlines() == [
        "README.md (7 bytes)",
        "src/app.py (46 bytes)",
        "src/util.py (28 bytes)",
        "tests/test_app.py (57 bytes)",
    ]
    assert result.title == "Listed 4 file(s)"
    assert result.target is None


def test_list_files_with_a_prefix_lists_only_those_files() -> None:
    result = bench().call("list_files", {"prefix": "src/"})

    assert result.content.splitlines() == ["src/app.py (46 bytes)", "src/util.py (28 bytes)"]
    assert result.title == "Listed 2 file(s)"
    assert result.target == "src/"


def test_list_files_with_no_match_says_so() -> None:
    result = bench().call("list_files", {"prefix": "docs/"})

    assert result.ok
    assert result.content == "(no files)"
    assert result.title == "Listed 0 file(s)"


def test_list_files_shows_written_files_and_hides_deleted_ones() -> None:
    workbench = bench()
    workbench.call("write_file", {"path": "src/new.py", "content": "x = 1\n"})
    workbench.call("delete_file", {"path": "src/util.py"})

    result = workbench.call("list_files", {"prefix": "src"})

    assert result.content.splitlines() == ["src/app.py (46 bytes)", "src/new.py (6 bytes)"]


def test_read_file_answers_the_content() -> None:
    result = bench().call("read_file", {"path": "src/util.py"})

    assert result == ToolResult(
        FILES["src/util.py"], True, "Read src/util.py (28 bytes)", "src/util.py", result.duration_ms
    )


def test_read_file_of_a_missing_file_is_an_error_result() -> None:
    result = bench().call("read_file", {"path": "src/nope.py"})

    assert not result.ok
    assert result.content == "error: 'src/nope.py' does not exist"
    assert result.title == "Read src/nope.py: not found"
    assert result.target == "src/nope.py"


def test_read_file_truncates_a_long_file_and_says_so() -> None:
    content = "a" * MAX_READ_CHARS + "THE END"
    result = bench(files={"big.txt": content}).call("read_file", {"path": "big.txt"})

    assert result.ok
    assert result.content == "a" * MAX_READ_CHARS + "\n[truncated]"
    assert "THE END" not in result.content
    assert result.title == f"Read big.txt ({len(content)} bytes)"


def test_read_file_does_not_truncate_a_file_of_exactly_the_limit() -> None:
    content = "b" * MAX_READ_CHARS
    result = bench(files={"big.txt": content}).call("read_file", {"path": "big.txt"})

    assert result.content == content


# --- write_file, delete_file ------------------------------------------------------------------


def test_write_file_writes_and_reports_the_size() -> None:
    workbench = bench()

    result = workbench.call("write_file", {"path": "./src/new.py", "content": "é = 1\n"})

    assert result.ok
    assert result.content == "wrote src/new.py (7 bytes)"
    assert result.title == "Wrote src/new.py (7 bytes)"
    assert result.target == "src/new.py"
    assert workbench.repo.changes().files == {"src/new.py": "é = 1\n"}


def test_delete_file_deletes_and_a_second_delete_is_an_error() -> None:
    workbench = bench()

    first = workbench.call("delete_file", {"path": "README.md"})
    second = workbench.call("delete_file", {"path": "README.md"})

    assert (first.ok, first.content, first.title, first.target) == (
        True,
        "deleted README.md",
        "Deleted README.md",
        "README.md",
    )
    assert not second.ok
    assert second.content == "error: 'README.md' does not exist"
    assert workbench.repo.changes().deleted == ["README.md"]


# --- search -----------------------------------------------------------------------------------


def test_search_answers_path_line_and_text_for_each_regex_match() -> None:
    result = bench().call("search", {"pattern": r"def \w+\(\)"})

    assert result.ok
    assert result.content.splitlines() == [
        "src/app.py:3: def main():",
        "src/util.py:1: def helper():",
        "tests/test_app.py:3: def test_main():",
    ]
    assert result.title == r"Searched for def \w+\(\)"
    assert result.target == r"def \w+\(\)"


def test_search_with_a_prefix_searches_only_those_files() -> None:
    result = bench().call("search", {"pattern": "main", "prefix": "tests/"})

    assert result.content.splitlines() == [
        "tests/test_app.py:1: from app import main",
        "tests/test_app.py:3: def test_main():",
        "tests/test_app.py:4:     assert main()",
    ]


def test_search_without_a_match_says_so() -> None:
    result = bench().call("search", {"pattern": "no such text"})

    assert result.ok
    assert result.content == "no match"


def test_search_stops_at_the_result_cap_and_says_so() -> None:
    many = "\n".join(f"hit {n}" for n in range(MAX_SEARCH_RESULTS + 50))
    result = bench(files={"a.txt": many, "b.txt": "hit again"}).call("search", {"pattern": "hit"})

    lines = result.content.splitlines()
    assert result.ok
    assert len(lines) == MAX_SEARCH_RESULTS + 1
    assert lines[0] == "a.txt:1: hit 0"
    assert lines[MAX_SEARCH_RESULTS - 1] == f"a.txt:{MAX_SEARCH_RESULTS}: hit {MAX_SEARCH_RESULTS - 1}"
    assert lines[-1] == f"[stopped at {MAX_SEARCH_RESULTS} matches]"
    assert "b.txt" not in result.content


def test_search_shortens_long_matching_lines() -> None:
    result = bench(files={"long.txt": "needle" + "x" * 1000}).call("search", {"pattern": "needle"})

    assert result.content == "long.txt:1: " + ("needle" + "x" * 1000)[:300]


def test_a_bad_regex_is_an_error_result() -> None:
    result = bench().call("search", {"pattern": "def (unclosed"})

    assert not result.ok
    assert result.content.startswith("error: missing ), unterminated subpattern")
    assert result.title.startswith("search failed: ")
    assert result.target == "def (unclosed"


# --- comment ----------------------------------------------------------------------------------


def test_comment_records_a_finding_with_a_line() -> None:
    workbench = bench("review")

    result = workbench.call("comment", {"path": "src/app.py", "line": 4, "body": "getcwd depends on the caller"})

    assert result.ok
    assert result.content == "comment recorded"
    assert result.title == "Commented on src/app.py:4"
    assert result.target == "src/app.py"
    assert workbench.comments == [Comment(path="src/app.py", body="getcwd depends on the caller", line=4)]


def test_comment_without_a_line_is_about_the_whole_file() -> None:
    workbench = bench("review")

    result = workbench.call("comment", {"path": "README.md", "body": "too short"})

    assert result.title == "Commented on README.md"
    assert workbench.comments == [Comment(path="README.md", body="too short", line=None)]


@pytest.mark.parametrize("line", [0, -3, "4", 2.5])
def test_comment_with_a_bad_line_is_an_error_and_records_nothing(line: object) -> None:
    workbench = bench("review")

    result = workbench.call("comment", {"path": "src/app.py", "line": line, "body": "x"})

    assert not result.ok
    assert result.content == "error: line must be a positive integer"
    assert workbench.comments == []


def test_comment_without_a_body_is_an_error() -> None:
    workbench = bench("review")

    result = workbench.call("comment", {"path": "src/app.py"})

    assert not result.ok
    assert result.content == "error: missing argument 'body'"
    assert workbench.comments == []


# --- finish -----------------------------------------------------------------------------------


def test_finish_with_a_summary_finishes() -> None:
    result = bench().call("finish", {"summary": "  Added validation.  "})

    assert result.ok
    assert result.content == "finished"
    assert result.title == "Finished: Added validation."
    assert result.target is None


def test_finish_title_is_shortened_for_a_long_summary() -> None:
    result = bench().call("finish", {"summary": "s" * 500})

    assert result.title == "Finished: " + "s" * 200


@pytest.mark.parametrize("arguments", [{"summary": ""}, {"summary": "   \n"}])
def test_finish_requires_a_non_empty_summary(arguments: dict[str, str]) -> None:
    result = bench().call("finish", arguments)

    assert not result.ok
    assert result.content == "error: the summary must not be empty"
    assert result.title == "finish failed: the summary must not be empty"


def test_finish_without_a_summary_is_an_error() -> None:
    result = bench("review").call("finish", {})

    assert not result.ok
    assert result.content == "error: missing argument 'summary'"


def test_comment_line_true_is_not_taken_for_line_one() -> None:
    # JSON `true` decodes to a Python bool, which is an int: it is no line number.
    workbench = bench("review")

    result = workbench.call("comment", {"path": "src/app.py", "line": True, "body": "x"})

    assert not result.ok
    assert workbench.comments == []
