"""Files by digest on a real PostgreSQL: events never copy file contents (DESIGN invariant 10).

A task submitted with a 10 MB repository through the planner's submit handler appends small
events, and its files are stored once each; its dispatches, a self-heal retry and its approval
name them again and store nothing new.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import psycopg
import pytest

from contracts.commands import SubmitTasksCommand
from contracts.events import EventEnvelope
from libs.eventstore.blobs import BLOBS_TABLE, BlobCache, BlobStore, digest_of, stored
from libs.eventstore.recorder import MAX_EVENT_BYTES
from libs.eventstore.store import EVENTS_TABLE, EventStore
from services.planner.handlers import on_events, submit_tasks
from services.planner.plans import subtask_id
from tests.factories import task_request

pytestmark = pytest.mark.integration

WORKSPACE = "ws-blobs"
FILES = 1000
FILE_BYTES = 10_000  # 1000 files of 10 kB: a 10 MB repository


def big_repository() -> dict[str, str]:
    # Every file's content differs (its path leads it), so the blobs are one per file.
    return {f"src/pkg{i // 100}/module_{i}.py": f"# module {i}\n" + "x = 1\n" * (FILE_BYTES // 6) for i in range(FILES)}


def submit(store: EventStore, files: dict[str, str], workspace: str = WORKSPACE) -> str:
    request = task_request(repo={**task_request()["repo"], "files": files})
    raw = msgspec.json.encode(SubmitTasksCommand(workspace_id=workspace, tasks=[request]))
    reply = submit_tasks(raw, store)
    assert reply.error is None, reply.error
    (task_id,) = reply.task_ids
    return task_id


def event_sizes(url: str, after: int = 0) -> dict[int, tuple[str, int]]:
    """Each stored event's topic and size in bytes, as PostgreSQL holds it."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            f"SELECT notification_id, topic, octet_length(state) FROM {EVENTS_TABLE} WHERE notification_id > %s",
            (after,),
        ).fetchall()
    return {seq: (topic, size) for seq, topic, size in rows}


def blob_rows(url: str, workspace: str = WORKSPACE) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(f"SELECT digest, size FROM {BLOBS_TABLE} WHERE workspace_id = %s", (workspace,)).fetchall()
    return dict(rows)


def test_a_task_with_a_10_mb_repository_appends_small_events_and_stores_each_file_once(
    store: EventStore, postgres_url: str
) -> None:
    files = big_repository()
    total = sum(len(c.encode()) for c in files.values())
    assert total > 10_000_000

    task_id = submit(store, files)

    sizes = event_sizes(postgres_url)
    assert {topic.split(":")[-1] for topic, _ in sizes.values()} >= {"Task.Submitted", "Task.SubtaskDispatched"}
    assert all(size < MAX_EVENT_BYTES for _, size in sizes.values()), sizes
    assert sum(size for _, size in sizes.values()) < total / 20, "the log holds names, not contents"
    assert blob_rows(postgres_url) == {digest_of(c): len(c.encode()) for c in files.values()}

    # The events name each file by its digest; the contents load back from the blobs.
    (submitted, dispatched) = store.read(0, 2)
    named = submitted.payload["request"]["repo"]["files"]
    assert named == {p: {"digest": digest_of(c), "size": len(c.encode())} for p, c in files.items()}
    assert dispatched.payload["files"] == named
    (loaded,) = BlobStore(store.recorder.datastore, BlobCache()).files(WORKSPACE, named)
    assert loaded == files
    assert submitted.aggregate_id == task_id


def envelope(seq: int, type_: str, task_id: str, payload: dict[str, Any]) -> EventEnvelope:
    return EventEnvelope(seq, type_, WORKSPACE, str(uuid.uuid4()), 1, 0, {"task_id": task_id, **payload})


def test_dispatching_retrying_and_approving_the_task_store_no_blob_twice(store: EventStore, postgres_url: str) -> None:
    files = big_repository()
    task_id = submit(store, files)
    before, head = blob_rows(postgres_url), store.head()
    path = "src/pkg0/module_0.py"
    rewritten = files[path] + "y = 2\n"

    def run_end(seq: int, type_: str, subtask: str, attempt: int, changed: dict[str, str], **more: Any) -> None:
        """A run's end as the executor saves it: its changed files stored as blobs with the planner's reaction."""
        refs, blobs = stored(WORKSPACE, changed)
        output = {"files": refs, "summary": "done"}
        run = {"subtask_id": subtask, "provider": "anthropic", "model": "m", "usage": {}, "attempt": attempt}
        event = envelope(seq, type_, task_id, {**run, "output": output, **more})
        store.save(on_events([event], store), blobs=blobs)

    codegen, test = subtask_id(task_id, 0), subtask_id(task_id, 1)
    # The first attempt rewrites a file as it was (its blob is the repository's), and fails.
    run_end(head + 1, "run.failed", codegen, 1, {path: files[path]}, error="bad", retryable=True)
    # The retry changes that file; the same content, named by the retry's dispatch, the result,
    # the test subtask's dispatch and the approval, is stored once.
    run_end(head + 2, "run.succeeded", codegen, 2, {path: rewritten}, duration_ms=5)
    run_end(head + 3, "run.succeeded", test, 1, {path: rewritten}, duration_ms=5)
    store.save(on_events([envelope(head + 4, "gate.decided", task_id, {"decision": "approve"})], store))

    types = [e.type for e in store.read(head, 100)]
    assert types.count("task.subtask_dispatched") == 2 and "task.approved" in types
    assert blob_rows(postgres_url) == {**before, digest_of(rewritten): len(rewritten.encode())}
    assert all(size < MAX_EVENT_BYTES for _, size in event_sizes(postgres_url, head).values())
    (approved,) = [e for e in store.read(head, 100) if e.type == "task.approved"]
    assert approved.payload["changes"]["files"] == {
        path: {"digest": digest_of(rewritten), "size": len(rewritten.encode())}
    }


def test_a_workspace_cannot_load_another_workspaces_file_by_its_digest(store: EventStore) -> None:
    secret = "API_TOKEN = 'not yours'\n"
    submit(store, {"secret.py": secret}, workspace="ws-owner")
    blobs = BlobStore(store.recorder.datastore, BlobCache())

    assert blobs.load("ws-owner", [digest_of(secret)]) == {digest_of(secret): secret}
    assert blobs.load("ws-other", [digest_of(secret)]) == {}


def test_a_repository_every_task_names_crosses_to_the_store_once(store: EventStore, postgres_url: str) -> None:
    # A team's tasks on one repository: the second submission's files are stored already, so
    # its save sends none of them again, whether this process stored them or another one did.
    files = big_repository()
    refs, blobs = stored(WORKSPACE, files)
    submit(store, files)

    assert store.blobs.unstored(blobs) == [], "known to this process: no query, nothing sent"
    another_process = BlobStore(store.recorder.datastore, BlobCache())
    assert another_process.unstored(blobs) == [], "found in the store by one query: nothing sent"
    one_new = stored(WORKSPACE, {"src/new.py": "y = 2\n" * 20_000})[1]
    assert another_process.unstored([*blobs, *one_new]) == one_new
    assert len(refs) == FILES
