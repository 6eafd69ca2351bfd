"""What a task's repository may be named: GitHub's owner and repository names, git's branch names,
and the paths of the files it carries.

These names end up in the paths of GitHub API calls made with the product's own credentials, and
in the folders self-heal writes a snapshot to: a name like `..` or `a/b` would point those at
something else. Each rule is one regular expression, used both to validate (msgspec) and in the
OpenAPI and JSON Schema documents, so the documents say exactly what the server accepts; `why`
turns a refusal into words.
"""

from __future__ import annotations

import re
from typing import Annotated

import msgspec

# GitHub's user and organization names: letters, digits and hyphens, at most 39 characters, not
# starting with a hyphen. Underscores are allowed too: GitHub Enterprise makes them from its
# identity provider's names. No dot and no slash, so no name can climb out of `/repos/{owner}`.
OWNER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
MAX_OWNER = 39
# GitHub's repository names: letters, digits, `.`, `_` and `-`, at most 100, and not only dots
# (`.` and `..` are refused by GitHub, and would be path segments of their own meaning).
REPO_PATTERN = r"^\.*[A-Za-z0-9_-][A-Za-z0-9._-]*$"
MAX_REPO = 100
# git's own rules for a branch (`git check-ref-format --branch`): no `..`, `@{`, `//`, control
# characters, space, `~ ^ : ? * [ \`; no part starting with `.` or ending with `.lock`; not
# starting with `-` or `/`, not ending with `/` or `.`; not `HEAD`.
BRANCH_PATTERN = (
    r"^(?!-)(?!/)(?!HEAD$)(?!.*/$)(?!.*\.$)(?!.*\.\.)(?!.*//)(?!.*@\{)(?!(?:.*/)?\.)"
    r"(?!.*\.lock(?:/|$))[^\x00-\x20\x7f~^:?*\[\\]+$"
)
MAX_BRANCH = 255
# A file's path in the snapshot: relative, `/`-separated, no empty, `.` or `..` part (nothing
# outside the repository), no `.git` part in any case (git's own folder: GitHub refuses it in a
# tree, and self-heal must never write there), no backslash (read as a separator elsewhere).
PATH_PATTERN = r"^(?!/)(?!.*//)(?!.*/$)(?!(?:.*/)?\.\.?(?:/|$))(?!(?:.*/)?\.[Gg][Ii][Tt](?:/|$))[^\x00\\]+$"
MAX_PATH = 4096
# A repository as `owner/name` (a list's filter): the two names above, joined by one slash.
REPOSITORY_PATTERN = "^" + OWNER_PATTERN[1:-1] + "/" + REPO_PATTERN[1:-1] + "$"

Owner = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=MAX_OWNER,
        pattern=OWNER_PATTERN,
        description="A GitHub user or organization name: letters, digits, `-` and `_`, not starting with `-`.",
    ),
]
RepoName = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=MAX_REPO,
        pattern=REPO_PATTERN,
        description="A GitHub repository name: letters, digits, `.`, `_` and `-`, not only dots.",
    ),
]
Branch = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=MAX_BRANCH,
        pattern=BRANCH_PATTERN,
        description="A git branch name, as `git check-ref-format --branch` accepts it.",
    ),
]

# A repository a workspace allows its agents to work on (`allowedRepositories`): `owner/name`, or
# `owner/*` for every repository of the owner; each part as GitHub names it (above).
ALLOWED_REPOSITORY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,38}/(?:\*|(?=[^/]{1,100}$)\.*[A-Za-z0-9_-][A-Za-z0-9._-]*)$"

# What msgspec's refusal ("Expected `str` matching regex ...") means, in words for people.
PATTERN_WORDS = {
    OWNER_PATTERN: "a GitHub owner name (letters, digits, '-' and '_', not starting with '-')",
    REPO_PATTERN: "a GitHub repository name (letters, digits, '.', '_' and '-', not only dots)",
    REPOSITORY_PATTERN: "a GitHub repository as owner/name, such as acme/api",
    BRANCH_PATTERN: (
        "a git branch name (no '..', '@{', '//', space, control character or any of ~ ^ : ? * [ \\; "
        "no part starting with '.' or ending with '.lock'; not starting with '-' or '/', nor ending with '/' or '.')"
    ),
    ALLOWED_REPOSITORY_PATTERN: "'owner/name' or 'owner/*', each part as GitHub names it",
}

_owner = re.compile(OWNER_PATTERN)
_repo = re.compile(REPO_PATTERN)
_branch = re.compile(BRANCH_PATTERN)
_path = re.compile(PATH_PATTERN)


def valid_owner(name: str) -> bool:
    return 0 < len(name) <= MAX_OWNER and _owner.search(name) is not None


def valid_repo(name: str) -> bool:
    return 0 < len(name) <= MAX_REPO and _repo.search(name) is not None


def valid_branch(name: str) -> bool:
    return 0 < len(name) <= MAX_BRANCH and _branch.search(name) is not None


def valid_path(path: str) -> bool:
    return 0 < len(path) <= MAX_PATH and _path.search(path) is not None


def path_problem(path: str) -> str | None:
    """Why `path` may not name a file of the snapshot, or None when it may."""
    if valid_path(path):
        return None
    parts = path.split("/")
    if not path:
        why = "it is empty"
    elif len(path) > MAX_PATH:
        why = f"it is longer than {MAX_PATH} characters"
    elif path.startswith("/"):
        why = "it is absolute: give it relative to the repository's root"
    elif any(part in (".", "..") for part in parts):
        why = "it has a '.' or '..' part: every file must be inside the repository"
    elif any(part.lower() == ".git" for part in parts):
        why = "it is inside '.git', git's own folder"
    elif "\\" in path:
        why = "it has a backslash: separate folders with '/'"
    elif "\x00" in path:
        why = "it has a U+0000 character"
    else:
        why = "it has an empty part ('//', or a '/' at the end)"
    return f"the file path {path[:200]!r} is refused: {why}"


def names_problem(owner: str, repo: str, branch: str, base: str) -> str | None:
    """Why these names cannot be a pull request's, or None: what the publisher checks again for
    a task stored before its names were validated at submission."""
    checks = [
        ("owner", owner, valid_owner, "GitHub owner"),
        ("repo", repo, valid_repo, "GitHub repository"),
        ("branch", branch, valid_branch, "git branch"),
        ("baseBranch", base, valid_branch, "git branch"),
    ]
    for field, value, valid, kind in checks:
        if not valid(value):
            return f"repo.{field} {value[:200]!r} is not a valid {kind} name"
    if branch == base:
        return same_branch(branch)
    return None


def same_branch(branch: str) -> str:
    return f"repo.branch {branch[:200]!r} is the base branch: a pull request needs a branch of its own"
