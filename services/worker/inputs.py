"""The repository a claimed run starts from, fetched from the agent API by digest.

The claim's `input.files` are the files the run starts from; a retry's `input.previous` names the
changes of the attempt it retries, which are carried over as the executor does
(`libs.agent.starting`): the run starts from them as if it had made them. Each distinct content is
fetched once, however many paths (or the previous attempt) name it."""

from __future__ import annotations

import asyncio

from contracts.agent_tasks import FileToFetch, RunInput
from libs.agent.repository import Repository
from libs.agent.starting import carry_over
from services.worker.agent_api import AgentApi, Unavailable

# Files fetched at once; tried again on a failure this often before the run gives up.
PARALLEL_FETCHES = 8
FETCH_TRIES = 3


async def starting_repository(api: AgentApi, run: RunInput) -> Repository:
    previous = run.previous
    refs = [*run.files.values(), *(previous.files.values() if previous is not None else ())]
    loaded = await _fetch_all(api, {ref.digest: ref for ref in refs})
    repo = Repository({path: loaded[ref.digest] for path, ref in run.files.items()})
    if previous is not None:
        carry_over(repo, {path: loaded[ref.digest] for path, ref in previous.files.items()}, previous.deleted_files)
    return repo


async def _fetch_all(api: AgentApi, wanted: dict[str, FileToFetch]) -> dict[str, str]:
    gate = asyncio.Semaphore(PARALLEL_FETCHES)

    async def fetch(ref: FileToFetch) -> str:
        async with gate:
            for tried in range(1, FETCH_TRIES + 1):
                try:
                    return await api.file(ref.url, ref.digest)
                except Unavailable:
                    if tried == FETCH_TRIES:
                        raise
                    await asyncio.sleep(tried)
        raise AssertionError("unreachable")

    contents = await asyncio.gather(*(fetch(ref) for ref in wanted.values()))
    return dict(zip(wanted, contents, strict=True))
