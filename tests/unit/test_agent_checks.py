"""Self-heal checks: syntax of the changed files, pytest collection of written tests, a summary.

Collecting runs pytest in a child process (half a second or more each), so the runs that need it
are made once per module, side by side, and the tests read their reports.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from libs.agent.checks import check, is_test_file, syntax_problems
from libs.agent.repository import Repository
from libs.agent.tools import Workbench

# The project's pytest configuration skips the plugins this environment has installed (faker alone
# takes a second to import): collection runs then take half a second instead of two.
PYPROJECT = (
    '[project]\nname = "demo"\n\n'
    '[tool.pytest.ini_options]\naddopts = "-p no:faker -p no:anyio -p no:asyncio -p no:platformdirs"\n'
)
APP = {"src/app.py": "def main():\n    return 1\n", "pyproject.toml": PYPROJECT}
SECRETS = {"ANTHROPIC_API_KEY": "sk-ant-parent-secret", "OPENAI_API_KEY": "sk-parent-secret", "GITHUB_TOKEN": "ghp_x"}

MISSING_MODULE_TEST = "from app import main\nimport no_such_module_xyz\n\n\ndef test_main():\n    assert main() == 1\n"
NO_TESTS = "from app import main\n\nVALUE = main()\n"
# Imports the project's code from src/; fails to collect when it can see any of the parent's secrets.
CLEAN_TEST = (
    "import os\n\n"
    "from app import main\n\n"
    f"LEAKED = sorted(set(os.environ) & {set(SECRETS)!r})\n"
    "if LEAKED:\n"
    "    raise RuntimeError(f'the collection sees {LEAKED}')\n\n\n"
    "def test_main():\n"
    "    assert main() == 1\n"
)


def written(files: dict[str, str], base: dict[str, str] | None = None) -> Repository:
    repo = Repository(APP if base is None else base)
    for path, content in files.items():
        repo.write(path, content)
    return repo


# --- syntax_problems --------------------------------------------------------------------------


def test_valid_files_have_no_problem() -> None:
    assert syntax_problems("src/app.py", "def f():\n    return 1\n") is None
    assert syntax_problems("data.json", '{"a": [1, 2]}') is None
    assert syntax_problems("ci.yaml", "a: 1\n---\nb: [1, 2]\n") is None
    assert syntax_problems("ci.yml", "a: 1\n") is None
    assert syntax_problems("pyproject.toml", '[tool.x]\na = "b"\n') is None


def test_python_syntax_error_names_the_file_and_line() -> None:
    problem = syntax_problems("src/app.py", "a = 1\nb = 2\ndef f(:\n    pass\n")

    assert problem is not None
    assert problem.startswith("src/app.py:3: SyntaxError: ")


def test_python_indentation_error_is_reported_too() -> None:
    problem = syntax_problems("src/app.py", "def f():\nreturn 1\n")

    assert problem is not None
    assert problem.startswith("src/app.py:2: SyntaxError: expected an indented block")


def test_invalid_json_is_reported() -> None:
    problem = syntax_problems("config/app.json", '{"a": }')

    assert problem is not None
    assert problem.startswith("config/app.json: not valid JSON: ")


@pytest.mark.parametrize("path", ["deploy/ci.yaml", "deploy/ci.yml", "deploy/CI.YAML"])
def test_invalid_yaml_is_reported(path: str) -> None:
    problem = syntax_problems(path, "a: [1, 2\nb: 3\n")

    assert problem is not None
    assert problem.startswith(f"{path}: not valid Y")
    assert "\n" not in problem


@pytest.mark.parametrize(
    ("path", "content"),
    [
        pytest.param(
            "deploy/template.yaml",
            "Resources:\n  Bucket:\n    Properties:\n      BucketName: !Sub '${AWS::StackName}-x'\n",
            id="cloudformation-short-form",
        ),
        pytest.param(
            "mkdocs.yml",
            "markdown_extensions:\n  - pymdownx.emoji:\n      emoji_index: !!python/name:material.emoji.twemoji\n",
            id="mkdocs-material-emoji",
        ),
    ],
)
def test_valid_yaml_with_application_tags_has_no_problem(path: str, content: str) -> None:
    # Tags are part of YAML's syntax; what they mean is up to the application reading the file.
    assert syntax_problems(path, content) is None


def test_invalid_toml_is_reported() -> None:
    problem = syntax_problems("pyproject.toml", "[project\nname = 1\n")

    assert problem is not None
    assert problem.startswith("pyproject.toml: not valid TOML: ")


@pytest.mark.parametrize("path", ["README.md", "src/app.ts", "Makefile", "notes.txt"])
def test_a_file_type_without_a_check_has_no_problem(path: str) -> None:
    assert syntax_problems(path, "def f(:\n{ not: valid ]\n") is None


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("tests/test_app.py", True),
        ("app_test.py", True),
        ("src/app.py", False),
        ("tests/conftest.py", False),
        ("test_data.json", False),
    ],
)
def test_is_test_file(path: str, expected: bool) -> None:
    assert is_test_file(path) is expected


# --- check() without collection ---------------------------------------------------------------


async def test_a_run_without_a_summary_is_a_problem() -> None:
    for summary in (None, ""):
        assert await check(written({}), summary) == ["the agent did not finish with a summary (call finish)"]


async def test_an_unchanged_repository_with_a_summary_passes() -> None:
    assert await check(written({}), "nothing to do") == []


async def test_only_changed_files_are_checked() -> None:
    repo = written({"src/new.py": "x = 1\n"}, base={**APP, "broken.json": "{"})

    assert await check(repo, "added new.py") == []


async def test_syntax_problems_of_the_changed_files_are_all_listed() -> None:
    repo = written({"src/app.py": "def main(:\n", "data.json": "[1,", "notes.md": "{"})

    problems = await check(repo, "done")

    assert len(problems) == 2
    assert problems[0].startswith("data.json: not valid JSON")
    assert problems[1].startswith("src/app.py:1: SyntaxError")


async def test_a_test_file_with_a_syntax_error_is_reported_without_collecting() -> None:
    repo = written({"tests/test_app.py": "def test_x(:\n"})

    assert await check(repo, "added a test") == ["tests/test_app.py:1: SyntaxError: invalid syntax"]


async def test_a_test_written_below_an_existing_file_is_refused_or_reported_not_a_crash() -> None:
    # src/app.py is a file, so src/app.py/test_app.py cannot exist next to it on any disk or in git.
    workbench = Workbench("test", written({}))
    result = workbench.call("write_file", {"path": "src/app.py/test_app.py", "content": "def test_a():\n    pass\n"})

    problems = await check(workbench.repo, "added a test")

    assert not result.ok or any("src/app.py" in problem for problem in problems)


async def test_collect_tests_false_skips_pytest() -> None:
    repo = written({"tests/test_app.py": MISSING_MODULE_TEST})

    assert await check(repo, "added a test", collect_tests=False) == []


# --- check() with pytest collection -----------------------------------------------------------


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """check() of several repositories, run side by side while the parent holds secrets."""
    outside = Path(tmp_path_factory.mktemp("outside")) / "escaped.txt"
    repos = {
        "missing_module": written({"tests/test_app.py": MISSING_MODULE_TEST}),
        "no_tests": written({"tests/test_app.py": NO_TESTS}),
        "clean": written({"tests/test_app.py": CLEAN_TEST}),
        "escape": written({"tests/test_app.py": CLEAN_TEST}, base={**APP, str(outside): "written outside\n"}),
    }

    async def run_all() -> dict[str, list[str]]:
        results = await asyncio.gather(*(check(repo, "added tests") for repo in repos.values()), return_exceptions=True)
        # A check that raises shows as its exception in that case's report, not as an error of every test.
        return {
            name: [f"check() raised {result!r}"] if isinstance(result, BaseException) else result
            for name, result in zip(repos, results, strict=True)
        }

    with pytest.MonkeyPatch.context() as patch:
        for name, value in SECRETS.items():
            patch.setenv(name, value)
        results = asyncio.run(run_all())
    results["escaped_file_exists"] = [str(outside)] if outside.exists() else []
    return results


def test_a_test_importing_a_missing_module_is_a_collection_problem(reports: dict[str, list[str]]) -> None:
    problems = reports["missing_module"]

    assert len(problems) == 1
    assert problems[0].startswith("pytest could not collect the tests in tests/test_app.py:")
    assert "No module named 'no_such_module_xyz'" in problems[0]


def test_the_report_does_not_show_the_throwaway_folder(reports: dict[str, list[str]]) -> None:
    assert "selfheal-" not in reports["missing_module"][0]


def test_a_test_that_collects_cleanly_is_no_problem_and_sees_no_secret(reports: dict[str, list[str]]) -> None:
    # The parent process held the secrets while collecting (see the fixture).
    assert reports["clean"] == []


def test_a_test_file_without_tests_is_a_problem(reports: dict[str, list[str]]) -> None:
    problems = reports["no_tests"]

    assert len(problems) == 1
    assert problems[0].startswith("pytest collected no tests in tests/test_app.py:")


def test_collection_writes_no_file_outside_its_throwaway_folder(reports: dict[str, list[str]]) -> None:
    # The task's files come from the request and are not normalized: an absolute path among them
    # must not become a file written anywhere on the executor's disk.
    assert reports["escaped_file_exists"] == []
