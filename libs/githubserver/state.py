"""What the local GitHub server holds: repositories with their git objects, refs and pull requests.

All in memory and changed only from the event loop, so each operation is atomic. Operations raise
`GitHubError` with the status and message GitHub answers in the same case.

A repository used before it was created is created then, with one commit on `main` (a README),
and is lenient: reading a branch it lacks (`git/ref/heads/<name>` or `branches/<name>`) creates
that branch from `main`, so a task may name any base branch without setup. A repository created with
`Hosting.create_repository` (`POST /_repos`) is strict: it has exactly the branch it was given.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import msgspec

from libs.githubserver.accounts import Accounts, App
from libs.githubserver.bodies import NewSignature, NewTreeEntry
from libs.githubserver.common import EMAIL, LOGIN, GitHubError, not_found, now
from libs.githubserver.git import BLOB_MODES, FILE_MODE, Commit, Entry, Listed, ObjectStore, Signature

DEFAULT_BRANCH = "main"
BAD_OBJECT_STATE = "GitRPC::BadObjectState"
SHA_OR_CONTENT = "Must supply either tree.sha or tree.content. Request will be rejected if both are present."


RATE_LIMIT = 5000


def rate_limited(until: float) -> GitHubError:
    """GitHub's answer once the primary rate limit is used up, until it resets at `until`."""
    headers = {
        "x-ratelimit-limit": str(RATE_LIMIT),
        "x-ratelimit-remaining": "0",
        "x-ratelimit-used": str(RATE_LIMIT),
        "x-ratelimit-reset": str(math.ceil(until)),
        "x-ratelimit-resource": "core",
    }
    return GitHubError(403, "API rate limit exceeded for user ID 1.", headers=headers)


def validation_failed(code: str, field: str | None = None, message: str | None = None) -> GitHubError:
    error = {"resource": "PullRequest", "code": code}
    if field is not None:
        error["field"] = field
    if message is not None:
        error["message"] = message
    return GitHubError(422, "Validation Failed", [error])


def signature(given: NewSignature | None, default: Signature) -> Signature:
    if given is None:
        return default
    return Signature(given.name, given.email, given.date or default.date)


@dataclass
class Pull:
    number: int
    id: int
    title: str
    body: str | None
    head: str
    base: str
    user: str
    draft: bool
    maintainer_can_modify: bool
    created_at: datetime
    updated_at: datetime
    state: str = "open"


@dataclass
class Comment:
    id: int
    body: str
    user: str
    user_type: str  # "User", or "Bot" for an App's installation
    created_at: datetime
    updated_at: datetime


@dataclass
class Issue:
    number: int
    id: int
    title: str
    body: str | None
    user: str
    created_at: datetime
    updated_at: datetime
    state: str = "open"
    comments: list[Comment] = field(default_factory=list)


@dataclass(frozen=True)
class Changes:
    """What a pull request proposes: its head compared with where it left its base."""

    files: dict[str, str]
    changed: list[str]
    deleted: list[str]
    commits: int
    additions: int
    deletions: int


def line_counts(before: str, after: str) -> tuple[int, int]:
    added = removed = 0
    for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0):
        if line.startswith("+") and not line.startswith("+++"):
            added += 1
        elif line.startswith("-") and not line.startswith("---"):
            removed += 1
    return added, removed


def valid_path(path: str) -> bool:
    return all(part not in ("", ".", "..") for part in path.split("/"))


class Repository:
    def __init__(self, id: int, owner: str, name: str, default_branch: str, *, lenient: bool) -> None:
        self.id = id
        self.owner = owner
        self.name = name
        self.default_branch = default_branch
        self.lenient = lenient
        self.created_at = self.pushed_at = now()
        self.objects = ObjectStore()
        self.refs: dict[str, str] = {}
        self.pulls: dict[int, Pull] = {}
        self.issues: dict[int, Issue] = {}
        self.roles: dict[str, str] = {}  # lowercased login -> admin | maintain | write | triage | read

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    def author(self) -> Signature:
        return Signature(LOGIN, EMAIL, now())

    def seed(self, files: dict[str, str], message: str) -> None:
        tree = self.objects.add_tree(
            {path: Entry(FILE_MODE, self.objects.add_blob(text.encode())) for path, text in files.items()}
        )
        commit = self.objects.add_commit(tree, (), message, self.author(), self.author())
        self.refs[f"refs/heads/{self.default_branch}"] = commit.sha

    # --- reading ------------------------------------------------------------------------------

    def commit(self, sha: str) -> Commit:
        commit = self.objects.commits.get(sha)
        if commit is None:
            raise not_found()
        return commit

    def branch_sha(self, branch: str) -> str | None:
        return self.refs.get(f"refs/heads/{branch}")

    def ref(self, ref: str) -> tuple[str, str]:
        """`heads/main` -> (`refs/heads/main`, its commit); a lenient repository grows missing branches."""
        name = f"refs/{ref}"
        if name not in self.refs and self.lenient and ref.startswith("heads/") and valid_path(ref):
            self.refs[name] = self.refs[f"refs/heads/{self.default_branch}"]
        if name not in self.refs:
            raise not_found()
        return name, self.refs[name]

    def matching_refs(self, prefix: str) -> list[tuple[str, str]]:
        start = f"refs/{prefix}" if prefix else "refs/"
        return sorted((name, sha) for name, sha in self.refs.items() if name.startswith(start))

    def resolve(self, ref: str | None) -> str:
        """A commit from what `?ref=` may name: a branch, `heads/<branch>`, a full ref or a commit sha."""
        ref = ref or self.default_branch
        for name in (f"refs/heads/{ref}", f"refs/{ref}", ref):
            if name in self.refs:
                return self.refs[name]
        if ref in self.objects.commits:
            return ref
        raise GitHubError(404, f"No commit found for the ref {ref}")

    def files_at(self, ref: str | None) -> dict[str, Entry]:
        return dict(self.objects.trees[self.commit(self.resolve(ref)).tree].files)

    def contents(self, ref: str | None, path: str) -> Listed | list[Listed]:
        """What `contents/{path}` shows at a ref: the file, or the entries of the directory."""
        tree, prefix = self.commit(self.resolve(ref)).tree, ""
        for part in [part for part in path.split("/") if part]:
            found = next((item for item in self.objects.trees[tree].listing if item.path == part), None)
            if found is None:
                raise not_found()
            if found.type == "blob":
                if f"{prefix}{part}" != path.strip("/"):
                    raise not_found()
                return Listed(f"{prefix}{part}", found.mode, found.type, found.sha)
            tree, prefix = found.sha, f"{prefix}{part}/"
        return [
            Listed(f"{prefix}{item.path}", item.mode, item.type, item.sha) for item in self.objects.trees[tree].listing
        ]

    # --- writing git objects ------------------------------------------------------------------

    def create_blob(self, content: str, encoding: str) -> str:
        if encoding == "base64":
            try:
                data = base64.b64decode(content, validate=False)
            except binascii.Error:
                raise GitHubError(422, "content is not valid Base64") from None
        elif encoding in ("utf-8", "utf8"):
            data = content.encode()
        else:
            raise GitHubError(422, f"encoding must be utf-8 or base64, not {encoding!r}")
        return self.objects.add_blob(data)

    def create_tree(self, entries: Iterable[NewTreeEntry], base_tree: str | None) -> str:
        files: dict[str, Entry] = {}
        if base_tree is not None:
            base = self.objects.trees.get(base_tree)
            if base is None:
                raise GitHubError(422, "Invalid tree info")
            files = dict(base.files)
        for entry in entries:
            self._apply(files, entry)
        return self.objects.add_tree(files)

    def _apply(self, files: dict[str, Entry], entry: NewTreeEntry) -> None:
        path = entry.path
        if not valid_path(path):
            raise GitHubError(422, f"tree.path contains a malformed path component: {path!r}")
        if (entry.sha is msgspec.UNSET) == (entry.content is msgspec.UNSET):
            raise GitHubError(422, SHA_OR_CONTENT)
        if entry.type not in ("blob", "tree"):
            raise GitHubError(422, f"tree.type {entry.type} is not supported by the local GitHub server")
        inside = f"{path}/"
        under = [existing for existing in files if existing.startswith(inside)]
        if entry.sha is None:
            # Deleting what is not there is an error on GitHub too.
            if entry.type == "tree" and under:
                for existing in under:
                    del files[existing]
            elif entry.type != "tree" and path in files:
                del files[path]
            else:
                raise GitHubError(422, BAD_OBJECT_STATE)
            return
        sha = entry.sha if isinstance(entry.sha, str) else None
        subtree = self.objects.trees.get(sha) if sha is not None and entry.type == "tree" else None
        if entry.type == "tree" and subtree is None:
            raise GitHubError(422, f"tree.sha {sha} is not a valid tree")
        if entry.type == "blob" and entry.mode not in BLOB_MODES:
            raise GitHubError(422, f"tree.mode {entry.mode} is not a valid blob mode")
        if entry.type == "blob" and isinstance(entry.content, str):
            sha = self.objects.add_blob(entry.content.encode())
        elif entry.type == "blob" and sha not in self.objects.blobs:
            raise GitHubError(422, f"tree.sha {sha} is not a valid blob")
        # What the entry replaces: a directory of that name, or files where its directories go.
        for existing in under:
            del files[existing]
        parts = path.split("/")
        for depth in range(1, len(parts)):
            files.pop("/".join(parts[:depth]), None)
        if subtree is not None:
            files.pop(path, None)
            files.update({f"{inside}{sub}": item for sub, item in subtree.files.items()})
        elif sha is not None:
            files[path] = Entry(entry.mode, sha)

    def create_commit(
        self,
        message: str,
        tree: str,
        parents: list[str],
        author: NewSignature | None,
        committer: NewSignature | None,
    ) -> Commit:
        if tree not in self.objects.trees:
            raise GitHubError(422, "Tree SHA does not exist")
        if any(parent not in self.objects.commits for parent in parents):
            raise GitHubError(422, "Parent SHA does not exist or is not a commit object")
        written_by = signature(author, self.author())
        return self.objects.add_commit(tree, tuple(parents), message, written_by, signature(committer, written_by))

    # --- refs ---------------------------------------------------------------------------------

    def create_ref(self, ref: str, sha: str) -> tuple[str, str]:
        if not ref.startswith("refs/") or ref.count("/") < 2 or not valid_path(ref):
            raise GitHubError(422, f"{ref} is not a valid ref name.")
        if sha not in self.objects.commits:
            raise GitHubError(422, "Object does not exist")
        if ref in self.refs:
            raise GitHubError(422, "Reference already exists")
        self.refs[ref] = sha
        self.pushed_at = now()
        return ref, sha

    def update_ref(self, ref: str, sha: str, force: bool) -> tuple[str, str]:
        name = f"refs/{ref}"
        if name not in self.refs:
            raise GitHubError(422, "Reference does not exist")
        if sha not in self.objects.commits:
            raise GitHubError(422, "Object does not exist")
        if not force and self.refs[name] not in set(self.objects.ancestors(sha)):
            raise GitHubError(422, "Update is not a fast forward")
        self.refs[name] = sha
        self.pushed_at = now()
        return name, sha

    # --- pull requests ------------------------------------------------------------------------

    def list_pulls(self, state: str, head: str | None, base: str | None) -> list[Pull]:
        pulls = sorted(self.pulls.values(), key=lambda pull: pull.number, reverse=True)
        if state != "all":
            pulls = [pull for pull in pulls if pull.state == state]
        # As on GitHub, a head without its `owner:` is silently ignored.
        if head is not None and ":" in head:
            owner, _, branch = head.partition(":")
            same_owner = owner.lower() == self.owner.lower()
            pulls = [pull for pull in pulls if same_owner and pull.head == branch]
        if base is not None:
            pulls = [pull for pull in pulls if pull.base == base]
        return pulls

    def pull(self, number: int) -> Pull:
        pull = self.pulls.get(number)
        if pull is None:
            raise not_found()
        return pull

    def open_pull(
        self,
        title: str | None,
        head: str,
        base: str,
        body: str | None,
        draft: bool,
        maintainer_can_modify: bool,
        id: int,
    ) -> Pull:
        owner, colon, branch = head.rpartition(":")
        if colon and owner.lower() != self.owner.lower():
            raise validation_failed("invalid", "head")
        if not title:
            raise validation_failed("missing_field", "title")
        head_sha, base_sha = self.branch_sha(branch), self.branch_sha(base)
        if base_sha is None:
            raise validation_failed("invalid", "base")
        if head_sha is None:
            raise validation_failed("invalid", "head")
        if any(pull.head == branch and pull.base == base for pull in self.list_pulls("open", None, None)):
            raise validation_failed("custom", message=f"A pull request already exists for {self.owner}:{branch}.")
        if head_sha in set(self.objects.ancestors(base_sha)):
            raise validation_failed("custom", message=f"No commits between {base} and {branch}")
        number = self.next_number()
        opened = now()
        pull = Pull(number, id, title, body, branch, base, LOGIN, draft, maintainer_can_modify, opened, opened)
        self.pulls[number] = pull
        return pull

    def next_number(self) -> int:
        """Issues and pull requests share one sequence of numbers in a repository, as on GitHub."""
        return max([*self.pulls, *self.issues], default=0) + 1

    # --- issues -------------------------------------------------------------------------------

    def open_issue(self, title: str, body: str | None, user: str, id: int) -> Issue:
        if not title:
            raise GitHubError(
                422, "Validation Failed", [{"resource": "Issue", "code": "missing_field", "field": "title"}]
            )
        opened = now()
        issue = Issue(self.next_number(), id, title, body, user, opened, opened)
        self.issues[issue.number] = issue
        return issue

    def issue(self, number: int) -> Issue:
        issue = self.issues.get(number)
        if issue is None:
            raise not_found()
        return issue

    def comment(self, number: int, body: str, user: str, user_type: str, id: int) -> tuple[Issue, Comment]:
        issue = self.issue(number)
        if not body:
            raise GitHubError(
                422, "Validation Failed", [{"resource": "IssueComment", "code": "missing_field", "field": "body"}]
            )
        written = now()
        comment = Comment(id, body, user, user_type, written, written)
        issue.comments.append(comment)
        issue.updated_at = written
        return issue, comment

    def role_of(self, login: str) -> str | None:
        """A user's role here: as set, else admin for the owner's own repository; None for none."""
        if login.lower() in self.roles:
            return self.roles[login.lower()]
        return "admin" if login.lower() == self.owner.lower() else None

    def update_pull(self, number: int, title: str | None, body: str | None, state: str | None) -> Pull:
        pull = self.pull(number)
        if state is not None and state not in ("open", "closed"):
            raise validation_failed("invalid", "state")
        if title is not None:
            pull.title = title
        if body is not None:
            pull.body = body
        if state is not None:
            pull.state = state
        pull.updated_at = now()
        return pull

    def changes(self, pull: Pull) -> Changes:
        head_sha = self.branch_sha(pull.head)
        base_sha = self.branch_sha(pull.base)
        if head_sha is None or base_sha is None:
            return Changes({}, [], [], 0, 0, 0)
        on_base = set(self.objects.ancestors(base_sha))
        own = list(itertools.takewhile(lambda sha: sha not in on_base, self.objects.ancestors(head_sha)))
        fork_point = next((sha for sha in self.objects.ancestors(head_sha) if sha in on_base), None)
        before = self.files_at(fork_point) if fork_point else {}
        after = self.files_at(head_sha)
        changed = sorted(path for path, entry in after.items() if before.get(path) != entry)
        deleted = sorted(path for path in before if path not in after)
        additions = deletions = 0
        for path in changed:
            old = self.objects.text(before[path].sha) if path in before else ""
            added, removed = line_counts(old, self.objects.text(after[path].sha))
            additions, deletions = additions + added, deletions + removed
        deletions += sum(len(self.objects.text(before[path].sha).splitlines()) for path in deleted)
        files = {path: self.objects.text(entry.sha) for path, entry in sorted(after.items())}
        return Changes(files, changed, deleted, len(own), additions, deletions)


class Hosting:
    """Every repository of the server, the token configured for them, and the accounts, the App
    and the credentials it issued (`accounts`)."""

    def __init__(self, token: str, app: App | None = None) -> None:
        self.token = token
        self.accounts = Accounts(app or App.generate())
        self.repositories: dict[tuple[str, str], Repository] = {}
        self._ids = itertools.count(1)
        self.rate_limited_until = 0.0  # epoch seconds: every API call is refused until then

    def next_id(self) -> int:
        return next(self._ids)

    def repository(self, owner: str, name: str) -> Repository:
        """The repository, created on first use (lenient, one commit on `main`)."""
        key = (owner.lower(), name.lower())
        repository = self.repositories.get(key)
        if repository is None:
            repository = Repository(self.next_id(), owner, name, DEFAULT_BRANCH, lenient=True)
            repository.seed({"README.md": f"# {name}\n"}, "Initial commit")
            self.repositories[key] = repository
        return repository

    def create_repository(self, owner: str, name: str, branch: str, files: dict[str, str]) -> Repository:
        """A strict repository holding `files` in one commit on `branch`, replacing any of that name."""
        repository = Repository(self.next_id(), owner, name, branch, lenient=False)
        repository.seed(files, "Initial commit")
        self.repositories[(owner.lower(), name.lower())] = repository
        return repository

    def reset(self) -> None:
        self.repositories.clear()
        self.accounts.reset()
        self.rate_limited_until = 0.0
