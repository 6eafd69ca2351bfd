"""The server's state in GitHub's JSON shapes, with URLs on the server's own base.

API URLs are `{base}/repos/{owner}/{repo}/...` and page URLs `{base}/{owner}/{repo}/...`, as
`api.github.com` and `github.com` lay them out, so a pull request's `html_url` is
`{base}/{owner}/{repo}/pull/{number}`.
"""

from __future__ import annotations

import base64
import zlib
from typing import TypeVar
from urllib.parse import quote, urlsplit

from libs.githubserver import bodies
from libs.githubserver.git import Commit, Listed
from libs.githubserver.state import Pull, Repository

R = TypeVar("R", bound=bodies.Repository)
P = TypeVar("P", bound=bodies.PullSummary)

# GitHub wraps base64 content at 60 characters.
BASE64_LINE = 60

REPOSITORY_URLS = {
    "forks_url": "/forks",
    "keys_url": "/keys{/key_id}",
    "collaborators_url": "/collaborators{/collaborator}",
    "teams_url": "/teams",
    "hooks_url": "/hooks",
    "issue_events_url": "/issues/events{/number}",
    "events_url": "/events",
    "assignees_url": "/assignees{/user}",
    "branches_url": "/branches{/branch}",
    "tags_url": "/tags",
    "blobs_url": "/git/blobs{/sha}",
    "git_tags_url": "/git/tags{/sha}",
    "git_refs_url": "/git/refs{/sha}",
    "trees_url": "/git/trees{/sha}",
    "statuses_url": "/statuses/{sha}",
    "languages_url": "/languages",
    "stargazers_url": "/stargazers",
    "contributors_url": "/contributors",
    "subscribers_url": "/subscribers",
    "subscription_url": "/subscription",
    "commits_url": "/commits{/sha}",
    "git_commits_url": "/git/commits{/sha}",
    "comments_url": "/comments{/number}",
    "issue_comment_url": "/issues/comments{/number}",
    "contents_url": "/contents/{+path}",
    "compare_url": "/compare/{base}...{head}",
    "merges_url": "/merges",
    "archive_url": "/{archive_format}{/ref}",
    "downloads_url": "/downloads",
    "issues_url": "/issues{/number}",
    "pulls_url": "/pulls{/number}",
    "milestones_url": "/milestones{/number}",
    "notifications_url": "/notifications{?since,all,participating}",
    "labels_url": "/labels{/name}",
    "releases_url": "/releases{/id}",
    "deployments_url": "/deployments",
}


def numeric_id(name: str) -> int:
    return zlib.crc32(name.lower().encode())


def node_id(kind: str, id: int | str) -> str:
    return f"{kind}_{base64.b64encode(f'{kind}:{id}'.encode()).decode().rstrip('=')}"


def wrapped_base64(data: bytes) -> str:
    encoded = base64.b64encode(data).decode()
    return "".join(f"{encoded[i : i + BASE64_LINE]}\n" for i in range(0, len(encoded), BASE64_LINE))


class Renderer:
    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.host = urlsplit(self.base).netloc

    def api(self, repo: Repository) -> str:
        return f"{self.base}/repos/{repo.full_name}"

    def html(self, repo: Repository) -> str:
        return f"{self.base}/{repo.full_name}"

    def user(self, login: str, type: str = "User") -> bodies.User:
        api = f"{self.base}/users/{login}"
        id = numeric_id(login)
        return bodies.User(
            login=login,
            id=id,
            node_id=node_id("U", id),
            avatar_url=f"{self.base}/{login}.png",
            url=api,
            html_url=f"{self.base}/{login}",
            followers_url=f"{api}/followers",
            following_url=f"{api}/following{{/other_user}}",
            gists_url=f"{api}/gists{{/gist_id}}",
            starred_url=f"{api}/starred{{/owner}}{{/repo}}",
            subscriptions_url=f"{api}/subscriptions",
            organizations_url=f"{api}/orgs",
            repos_url=f"{api}/repos",
            events_url=f"{api}/events{{/privacy}}",
            received_events_url=f"{api}/received_events",
            type=type,
        )

    def repository(self, repo: Repository, shape: type[R]) -> R:
        api, html = self.api(repo), self.html(repo)
        open_pulls = sum(pull.state == "open" for pull in repo.pulls.values())
        return shape(
            id=repo.id,
            node_id=node_id("R", repo.id),
            name=repo.name,
            full_name=repo.full_name,
            owner=self.user(repo.owner),
            html_url=html,
            url=api,
            **{field: f"{api}{suffix}" for field, suffix in REPOSITORY_URLS.items()},
            created_at=repo.created_at,
            updated_at=repo.pushed_at,
            pushed_at=repo.pushed_at,
            git_url=f"git://{self.host}/{repo.full_name}.git",
            ssh_url=f"git@{self.host}:{repo.full_name}.git",
            clone_url=f"{html}.git",
            svn_url=html,
            size=sum(len(blob) for blob in repo.objects.blobs.values()) // 1024,
            open_issues_count=open_pulls,
            open_issues=open_pulls,
            default_branch=repo.default_branch,
        )

    # --- git data -----------------------------------------------------------------------------

    def ref(self, repo: Repository, name: str, sha: str) -> bodies.Ref:
        api = self.api(repo)
        return bodies.Ref(
            ref=name,
            node_id=node_id("REF", f"{repo.id}:{name}"),
            url=f"{api}/git/{name}",
            object=bodies.RefObject(sha=sha, url=f"{api}/git/commits/{sha}"),
        )

    def commit(self, repo: Repository, commit: Commit) -> bodies.Commit:
        api, html = self.api(repo), self.html(repo)
        return bodies.Commit(
            sha=commit.sha,
            node_id=node_id("C", commit.sha),
            url=f"{api}/git/commits/{commit.sha}",
            html_url=f"{html}/commit/{commit.sha}",
            author=bodies.Person(commit.author.name, commit.author.email, commit.author.date),
            committer=bodies.Person(commit.committer.name, commit.committer.email, commit.committer.date),
            tree=bodies.ObjectLink(commit.tree, f"{api}/git/trees/{commit.tree}"),
            message=commit.message,
            parents=[
                bodies.ParentLink(parent, f"{api}/git/commits/{parent}", f"{html}/commit/{parent}")
                for parent in commit.parents
            ],
        )

    def branch_with_protection(self, repo: Repository, name: str, commit: Commit) -> bodies.BranchWithProtection:
        api, html = self.api(repo), self.html(repo)
        branch_api = f"{api}/branches/{quote(name, safe='/')}"
        git = self.commit(repo, commit)  # the git commit inside, as `GET git/commits` shows it
        return bodies.BranchWithProtection(
            name=name,
            commit=bodies.RepositoryCommit(
                sha=git.sha,
                node_id=git.node_id,
                commit=bodies.CommitDetail(
                    author=git.author, committer=git.committer, message=git.message, tree=git.tree, url=git.url
                ),
                url=f"{api}/commits/{commit.sha}",
                html_url=git.html_url,
                comments_url=f"{api}/commits/{commit.sha}/comments",
                parents=[
                    bodies.ParentLink(parent, f"{api}/commits/{parent}", f"{html}/commit/{parent}")
                    for parent in commit.parents
                ],
            ),
            links=bodies.BranchLinks(self_=branch_api, html=f"{html}/tree/{quote(name, safe='/')}"),
            protection_url=f"{branch_api}/protection",
        )

    def tree(self, repo: Repository, sha: str, items: list[Listed]) -> bodies.Tree:
        api = self.api(repo)
        return bodies.Tree(
            sha=sha,
            url=f"{api}/git/trees/{sha}",
            tree=[
                bodies.TreeItem(
                    path=item.path,
                    mode=item.mode,
                    type=item.type,
                    sha=item.sha,
                    size=len(repo.objects.blobs[item.sha]) if item.type == "blob" else None,
                    url=f"{api}/git/{item.type}s/{item.sha}",
                )
                for item in items
            ],
        )

    def blob(self, repo: Repository, sha: str) -> bodies.Blob:
        content = repo.objects.blobs[sha]
        return bodies.Blob(
            content=wrapped_base64(content),
            url=f"{self.api(repo)}/git/blobs/{sha}",
            sha=sha,
            size=len(content),
            node_id=node_id("B", sha),
        )

    # --- contents -----------------------------------------------------------------------------

    def content_item(self, repo: Repository, item: Listed, ref: str) -> bodies.ContentItem:
        return bodies.ContentItem(**self._content_fields(repo, item, ref))

    def content_file(self, repo: Repository, item: Listed, ref: str) -> bodies.ContentFile:
        content = repo.objects.blobs[item.sha]
        return bodies.ContentFile(**self._content_fields(repo, item, ref), content=wrapped_base64(content))

    def _content_fields(self, repo: Repository, item: Listed, ref: str) -> dict[str, object]:
        api, html = self.api(repo), self.html(repo)
        is_file = item.type == "blob"
        url = f"{api}/contents/{quote(item.path)}?ref={quote(ref, safe='')}"
        git_url = f"{api}/git/{item.type}s/{item.sha}"
        html_url = f"{html}/{'blob' if is_file else 'tree'}/{ref}/{item.path}"
        return {
            "type": "file" if is_file else "dir",
            "size": len(repo.objects.blobs[item.sha]) if is_file else 0,
            "name": item.path.rsplit("/", 1)[-1],
            "path": item.path,
            "sha": item.sha,
            "url": url,
            "git_url": git_url,
            "html_url": html_url,
            "download_url": f"{html}/raw/{ref}/{item.path}" if is_file else None,
            "links": bodies.ContentLinks(self_=url, git=git_url, html=html_url),
        }

    # --- pull requests ------------------------------------------------------------------------

    def branch(self, repo: Repository, name: str) -> bodies.Branch:
        return bodies.Branch(
            label=f"{repo.owner}:{name}",
            ref=name,
            sha=repo.branch_sha(name) or "",
            user=self.user(repo.owner),
            repo=self.repository(repo, bodies.Repository),
        )

    def pull(self, repo: Repository, pull: Pull, shape: type[P]) -> P:
        api, html = self.api(repo), self.html(repo)
        pull_api, pull_html = f"{api}/pulls/{pull.number}", f"{html}/pull/{pull.number}"
        issue_api = f"{api}/issues/{pull.number}"
        head = self.branch(repo, pull.head)
        statuses = f"{api}/statuses/{head.sha}"
        fields: dict[str, object] = {
            "url": pull_api,
            "id": pull.id,
            "node_id": node_id("PR", pull.id),
            "html_url": pull_html,
            "diff_url": f"{pull_html}.diff",
            "patch_url": f"{pull_html}.patch",
            "issue_url": issue_api,
            "number": pull.number,
            "state": pull.state,
            "title": pull.title,
            "user": self.user(pull.user),
            "body": pull.body,
            "created_at": pull.created_at,
            "updated_at": pull.updated_at,
            "draft": pull.draft,
            "commits_url": f"{pull_api}/commits",
            "review_comments_url": f"{pull_api}/comments",
            "review_comment_url": f"{api}/pulls/comments{{/number}}",
            "comments_url": f"{issue_api}/comments",
            "statuses_url": statuses,
            "head": head,
            "base": self.branch(repo, pull.base),
            "links": bodies.PullLinks(
                self_=bodies.Link(pull_api),
                html=bodies.Link(pull_html),
                issue=bodies.Link(issue_api),
                comments=bodies.Link(f"{issue_api}/comments"),
                review_comments=bodies.Link(f"{pull_api}/comments"),
                review_comment=bodies.Link(f"{api}/pulls/comments{{/number}}"),
                commits=bodies.Link(f"{pull_api}/commits"),
                statuses=bodies.Link(statuses),
            ),
        }
        if issubclass(shape, bodies.Pull):
            changes = repo.changes(pull)
            fields |= {
                "maintainer_can_modify": pull.maintainer_can_modify,
                "commits": changes.commits,
                "additions": changes.additions,
                "deletions": changes.deletions,
                "changed_files": len(changes.changed) + len(changes.deleted),
            }
        return shape(**fields)

    def pull_view(self, repo: Repository, pull: Pull) -> bodies.PullView:
        changes = repo.changes(pull)
        return bodies.PullView(
            owner=repo.owner,
            repo=repo.name,
            number=pull.number,
            title=pull.title,
            body=pull.body,
            state=pull.state,
            head=pull.head,
            base=pull.base,
            head_sha=repo.branch_sha(pull.head),
            html_url=f"{self.html(repo)}/pull/{pull.number}",
            files=changes.files,
            changed=changes.changed,
            deleted=changes.deleted,
        )

    def repository_view(self, repo: Repository) -> bodies.RepositoryView:
        branches = {name.removeprefix("refs/heads/"): sha for name, sha in sorted(repo.refs.items())}
        return bodies.RepositoryView(
            owner=repo.owner, repo=repo.name, default_branch=repo.default_branch, branches=branches
        )


def pull_page(repo: Repository, pull: Pull) -> str:
    """The pull request's page, as plain text: where its `html_url` leads."""
    changes = repo.changes(pull)
    lines = [
        f"{repo.full_name} #{pull.number}: {pull.title} ({pull.state})",
        f"{repo.owner}:{pull.head} -> {pull.base}, {changes.commits} commit(s), "
        f"+{changes.additions} -{changes.deletions}",
        "",
        pull.body or "(no description)",
        "",
        *(f"changed: {path}" for path in changes.changed),
        *(f"deleted: {path}" for path in changes.deleted),
    ]
    return "\n".join(lines) + "\n"
