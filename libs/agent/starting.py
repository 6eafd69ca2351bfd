"""The repository a dispatched run starts from: the files its dispatch names, then the changes
of the attempt it retries (a self-heal attempt starts from them, as if it had made them).

The executor's agents and an agent session's `complete` start from the same snapshot, so the
checks see the same files whoever ran the subtask."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from contracts.events import Event, typed
from contracts.payloads.shapes import Files, RunOutput
from contracts.payloads.task import TaskSubtaskDispatched
from libs.agent.repository import Repository
from libs.eventstore.blobs import contents, digests_in
from libs.eventstore.store import EventStore

Dispatch = Event[TaskSubtaskDispatched]


def refs(files: Files) -> dict[str, Any]:
    """A payload's files as the blob helpers read them: path -> `{"digest", "size"}` (or an
    old event's inline content)."""
    found: dict[str, Any] = msgspec.to_builtins(files)
    return found


def wanted(p: TaskSubtaskDispatched) -> set[str]:
    """The digests of every file the run starts from (its snapshot, and the previous attempt's
    changes): what to load, in one query, before `starting_repository`."""
    previous = refs(p.previous_output.files) if p.previous_output is not None else None
    return digests_in(refs(p.files), previous)


def starting_repository(p: TaskSubtaskDispatched, loaded: dict[str, str]) -> Repository:
    """The snapshot the dispatch `p` names, from `loaded` (digest -> content)."""
    repo = Repository(contents(refs(p.files), loaded))
    _carry_over(repo, p.previous_output, loaded)
    return repo


def _carry_over(repo: Repository, previous: RunOutput | None, loaded: dict[str, str]) -> None:
    if previous is None:
        return
    carry_over(repo, contents(refs(previous.files), loaded), previous.deleted_files)


def carry_over(repo: Repository, files: Mapping[str, str], deleted: Iterable[str]) -> None:
    """An earlier attempt's changes (`files`, path -> content, and the `deleted` paths) made to
    `repo` as its own. Deletions first: a deleted file may have become a folder."""
    for path in deleted:
        if repo.read(path) is not None:
            repo.delete(path)
    for path, content in files.items():
        repo.write(path, content)


def dispatch_at(store: EventStore, seq: int) -> Dispatch | None:
    """The `task.subtask_dispatched` at `seq`: the run's input, as the executor reads it."""
    found = store.read(seq - 1, 1)
    if not found or found[0].seq != seq or found[0].type != "task.subtask_dispatched":
        return None
    event: Dispatch = typed(found[0])
    return event
