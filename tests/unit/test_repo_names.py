"""What a task's repository may be named, checked against git's and GitHub's own rules, and
said in words when refused."""

from __future__ import annotations

import shutil
import subprocess

import msgspec
import pytest

from contracts.repos import (
    BRANCH_PATTERN,
    OWNER_PATTERN,
    REPO_PATTERN,
    path_problem,
    valid_branch,
    valid_owner,
    valid_repo,
)
from contracts.tasks import SubmitTasks
from tests.factories import task_request

BRANCHES = [
    "main", "agent/validation", "release/1.2", "feature/ü#1", "a@b", "@x", "x.lockx", "a/b.c/d", "...",
    "a..b", "a b", "x/", "/x", "x.", "a//b", "a@{b", "@", ".x", "a/.b", "x.lock", "a.lock/b", "a/..b",
    "a~b", "a^b", "a:b", "a?b", "a*b", "a[b", "a\\b", "a\tb", "a\x7fb", "a..lock",
]  # fmt: skip


@pytest.mark.skipif(shutil.which("git") is None, reason="git is what the rule is checked against")
@pytest.mark.parametrize("name", BRANCHES)
def test_a_branch_name_is_valid_exactly_when_git_says_so(name: str) -> None:
    git = subprocess.run(["git", "check-ref-format", f"refs/heads/{name}"], capture_output=True, check=False)
    assert valid_branch(name) == (git.returncode == 0)


@pytest.mark.parametrize("name", ["-x", "HEAD"])
def test_names_git_branch_refuses_to_create_are_refused(name: str) -> None:
    assert not valid_branch(name)


@pytest.mark.parametrize("name", ["acme", "Acme-Corp", "a", "user_name", "x" * 39])
def test_github_owner_names_are_accepted(name: str) -> None:
    assert valid_owner(name)


@pytest.mark.parametrize("name", ["", "..", ".", "a/b", "-acme", "a.b", "a b", "a%2Fb", "x" * 40, "ü"])
def test_owner_names_github_would_not_have_are_refused(name: str) -> None:
    assert not valid_owner(name)


@pytest.mark.parametrize("name", ["api", ".github", "my.repo", "a_b-c", "..x", "x" * 100])
def test_github_repository_names_are_accepted(name: str) -> None:
    assert valid_repo(name)


@pytest.mark.parametrize("name", ["", ".", "..", "...", "a/b", "a b", "a%2Fb", "x" * 101])
def test_repository_names_github_would_not_have_are_refused(name: str) -> None:
    assert not valid_repo(name)


@pytest.mark.parametrize(
    "path", ["a.py", "src/app/main.py", ".gitignore", ".github/workflows/ci.yml", "a/...", "dir.git/x", "ü.txt"]
)
def test_relative_paths_inside_the_repository_are_accepted(path: str) -> None:
    assert path_problem(path) is None


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("", "empty"),
        ("/etc/passwd", "absolute"),
        ("../x", "'..'"),
        ("a/../../x", "'..'"),
        ("./a", "'.'"),
        ("a/.", "'.'"),
        (".git/config", ".git"),
        ("src/.GIT/hooks/pre-commit", ".git"),
        ("a\\b", "backslash"),
        ("a//b", "empty part"),
        ("src/", "empty part"),
        ("x" * 4097, "longer than"),
    ],
)
def test_paths_outside_the_repository_are_refused_saying_why(path: str, why: str) -> None:
    problem = path_problem(path)
    assert problem is not None
    assert why in problem


def _submission(**repo: object) -> dict:
    return {"tasks": [{**task_request(), "repo": {**task_request()["repo"], **repo}}]}


def test_a_refused_path_is_named_with_where_it_was() -> None:
    with pytest.raises(msgspec.ValidationError) as refused:
        msgspec.convert(_submission(files={"ok.py": "", "../../x": ""}), SubmitTasks)
    assert str(refused.value) == (
        "the file path '../../x' is refused: it has a '.' or '..' part: every file must be inside the "
        "repository - at `$.tasks[0].repo`"
    )


def test_a_branch_that_is_its_base_is_refused_at_submission() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"repo\.branch 'main' is the base branch"):
        msgspec.convert(_submission(branch="main"), SubmitTasks)


def test_the_openapi_document_shows_the_patterns_that_are_checked() -> None:
    from exports.documents import openapi

    repo = openapi()["components"]["schemas"]["RepoContext"]["properties"]
    shown = {field: repo[field]["pattern"] for field in ("owner", "repo", "branch", "baseBranch")}
    assert shown == {
        "owner": OWNER_PATTERN,
        "repo": REPO_PATTERN,
        "branch": BRANCH_PATTERN,
        "baseBranch": BRANCH_PATTERN,
    }
