"""Files by digest: the feed names a task's files and its runs' outputs by digest, `GET /tasks/{id}`
still shows their contents, and the files endpoint serves a digest to its own workspace only."""

from __future__ import annotations

import hashlib

import httpx

from libs.devstack.stack import Stack
from tests.e2e.helpers import bearer, in_review_and_charged, new_workspace, sse_events, submit, task_request, wait_for

FILE = "src/register.py"


def files_url(stack: Stack, workspace: str, digest: str) -> str:
    return f"{stack.gateway_url}/api/v1/workspaces/{workspace}/orchestration/files/{digest}"


def feed(stack: Stack, workspace: str, headers: dict[str, str], task_id: str) -> list[dict]:
    """The workspace's feed from the start, up to the task's review."""
    url = f"{stack.stream_url}/api/v1/workspaces/{workspace}/orchestration/events?since_seq=0"
    frames: list[dict] = []
    with httpx.stream("GET", url, headers=headers, timeout=30) as response:
        assert response.status_code == 200
        for frame in sse_events(response):
            frames.append(frame["data"])
            if frame["event"] == "task.review_requested":
                break
    return frames


def test_the_feed_names_files_by_digest_and_the_files_endpoint_serves_them_to_their_workspace(stack: Stack) -> None:
    mine, other = new_workspace(stack, "files"), new_workspace(stack, "files-other")
    content = "def register(user):\n    return user\n"
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=bearer(mine["apiKey"])) as api:
        (task_id,) = submit(api, task_request())
        task = wait_for(api, task_id, in_review_and_charged)

    # GET /tasks/{id} shows the contents, as spec 000 has it.
    assert task["request"]["repo"]["files"] == {FILE: content}
    outputs = [r["output"]["files"] for r in task["results"].values()]
    assert outputs and all(isinstance(text, str) for files in outputs for text in files.values())

    # The feed shows digests where a payload names files.
    frames = feed(stack, mine["workspaceId"], bearer(mine["apiKey"]), task_id)
    (submitted,) = [f for f in frames if f["type"] == "task.submitted"]
    ref = submitted["payload"]["request"]["repo"]["files"][FILE]
    digest = "sha256:" + hashlib.sha256(content.encode()).hexdigest()
    assert ref == {"digest": digest, "size": len(content.encode())}
    succeeded = [f for f in frames if f["type"] == "run.succeeded"]
    assert succeeded and all(isinstance(r, dict) for f in succeeded for r in f["payload"]["output"]["files"].values())

    served = httpx.get(files_url(stack, mine["workspaceId"], digest), headers=bearer(mine["apiKey"]), timeout=10)
    assert served.status_code == 200, served.text
    assert served.json() == {"digest": digest, "size": len(content.encode()), "content": content}

    # Another workspace's key, on its own workspace's path, finds no such file.
    elsewhere = httpx.get(files_url(stack, other["workspaceId"], digest), headers=bearer(other["apiKey"]), timeout=10)
    assert elsewhere.status_code == 404, elsewhere.text
    # Nor may it ask under the workspace that holds it.
    across = httpx.get(files_url(stack, mine["workspaceId"], digest), headers=bearer(other["apiKey"]), timeout=10)
    assert across.status_code == 404
    missing = "sha256:" + "0" * 64
    unknown = httpx.get(files_url(stack, mine["workspaceId"], missing), headers=bearer(mine["apiKey"]), timeout=10)
    assert unknown.status_code == 404 and unknown.json()["error"]
