"""A step's answer in a run's state: inline when short, a blob by digest when long (DESIGN
invariant 10: events are small).

An agent step writes its answer to its `output` key with `orchestration_run.step_completed`. An
answer longer than `VALUE_INLINE_BYTES` is stored once as a blob, in the transaction of that event
(`libs.eventstore.blobs.carry`), and the event names it by digest (`value_ref`); the run's state,
in the aggregate and in `rm_orchestration_runs`, then holds the ref as a `{"digest", "size"}`
object, as a files key holds each file's. Whoever needs the text (the planner's templates and
conditions, spec 004's answers and streams) loads it by digest: `resolved`, `text_of`.

A stored value is told from a files key by its shape: a files key maps paths to refs (or, from an
event stored before blobs, to contents), never a path to a number, where a stored value's `size`
is one. Events stored before long values were blobs carry the value inline, however long: they
read as they always did.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from contracts.files import FileRef
from libs.eventstore.blobs import Blob, stored

# A few KiB: a short answer (a verdict, a title, a paragraph) stays in its event, where a reader
# of the feed sees it; a report or an article is a blob.
VALUE_INLINE_BYTES = 4 * 1024


class Blobs(Protocol):
    def load(self, workspace_id: str, digests: Iterable[str]) -> dict[str, str]: ...


def stored_value(workspace_id: str, value: Any) -> tuple[Any, FileRef | None, list[Blob]]:
    """What `step_completed` carries of `value`: (value, None, []) when short; (None, its ref,
    the blob to store with the event) when it is a text over `VALUE_INLINE_BYTES`."""
    if not isinstance(value, str) or len(value.encode()) <= VALUE_INLINE_BYTES:
        return value, None, []
    refs, blobs = stored(workspace_id, {"value": value})
    return None, FileRef(digest=refs["value"]["digest"], size=refs["value"]["size"]), blobs


def is_stored(value: Any) -> bool:
    """A value the state holds by digest (`{"digest", "size"}`), not a files key."""
    return isinstance(value, dict) and len(value) == 2 and isinstance(value.get("size"), int) and "digest" in value


def digests(state: Mapping[str, Any]) -> set[str]:
    """The digests of the state's stored values (its files keys' are not among them)."""
    return {value["digest"] for value in state.values() if is_stored(value)}


def text_of(state: Mapping[str, Any], loaded: Mapping[str, str]) -> dict[str, Any]:
    """`state` with each stored value as its text, from `loaded` (digest -> content): KeyError
    for one missing, as a blob a log names is always stored with it."""
    return {key: loaded[value["digest"]] if is_stored(value) else value for key, value in state.items()}


def resolved(blobs: Blobs, workspace_id: str, state: Mapping[str, Any], unsaved: Iterable[Blob] = ()) -> dict[str, Any]:
    """`state` with each stored value as its text, loaded in one query (none when it holds none,
    or all are cached); its files keys as they are (by digest). `unsaved`: blobs going to the
    store with events not saved yet (a step's answer just written), which no load would find."""
    pending = {b.digest: b.content.decode() for b in unsaved}
    wanted = digests(state) - pending.keys()
    return text_of(state, {**pending, **blobs.load(workspace_id, wanted)} if wanted else pending)
