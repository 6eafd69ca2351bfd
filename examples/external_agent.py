"""An agent process outside the orchestrator, in about 80 lines: it works a workspace's queue
over spec 002's HTTP API exactly as the built-in executor does.

    ORCHESTRATOR_RUNTIME_URL=http://127.0.0.1:8080 SESSION_TOKEN=ags_... python examples/external_agent.py

(the product's one base URL, the gateway's; the runtime's own port, 8082, works the same)

It claims the oldest run it may take (long-polling while the queue is empty), fetches the files
the claim names, heartbeats while it works, and completes the run with the files it changed and
what its model calls used. Its "work" here is a stand-in (it puts a header comment on each Python
file): put your model calls there. Stop it with Ctrl-C; a run it held then goes back to the queue.
"""

from __future__ import annotations

import os
import threading

import httpx

RUNTIME = os.environ.get("ORCHESTRATOR_RUNTIME_URL", "http://127.0.0.1:8080")
TOKEN = os.environ["SESSION_TOKEN"]  # made by a key holder: POST /api/v1/workspaces/{ws}/agent-sessions
LEASE_S = 30


def work(claim: dict, files: dict[str, str]) -> tuple[dict[str, str], str]:
    """Your agent: what it changed (path -> whole new content) and a summary of what it did."""
    header = f"# {claim['input']['description'].splitlines()[0][:80]}\n"
    changed = {p: header + c for p, c in files.items() if p.endswith(".py") and not c.startswith(header)}
    return changed, f"added a header to {len(changed)} file(s)"


def heartbeat(api: httpx.Client, run_id: str, token: str, stop: threading.Event) -> None:
    """Keeps the lease while the agent works: every third of its length."""
    while not stop.wait(LEASE_S / 3):
        api.post(f"/api/agent/tasks/{run_id}/heartbeat", json={"claim_token": token}).raise_for_status()


def run_one(api: httpx.Client) -> bool:
    answer = api.post("/api/agent/tasks/claim-next", json={"lease_ttl_seconds": LEASE_S, "wait_seconds": 20})
    if answer.status_code == 204:
        return False  # nothing ready for 20 s: ask again
    answer.raise_for_status()
    claim = answer.json()["claim"]
    run_id, token = claim["run"]["id"], claim["claim_token"]
    files = {path: api.get(ref["url"]).json()["content"] for path, ref in claim["input"]["files"].items()}
    stop = threading.Event()
    beating = threading.Thread(target=heartbeat, args=(api, run_id, token, stop), daemon=True)
    beating.start()
    try:
        changed, summary = work(claim, files)
    except BaseException as exc:
        # Given back, not failed: another session (or this one, later) takes the same attempt.
        stop.set()
        api.post(f"/api/agent/tasks/{run_id}/release", json={"claim_token": token, "reason": repr(exc)})
        raise
    stop.set()
    usage = {"model": "", "input_tokens": 0, "output_tokens": 0}  # what your model calls used
    result = {"files": changed, "summary": summary, "usage": usage}
    done = api.post(f"/api/agent/tasks/{run_id}/complete", json={"claim_token": token, "result": result})
    done.raise_for_status()
    print(f"run {run_id}: {done.json()['run']['status']} ({summary})")
    return True


def main() -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=RUNTIME, headers=headers, timeout=60) as api:
        me = api.get("/api/agent/me").raise_for_status().json()["me"]
        print(f"session {me['session']['id']} ({me['session']['name']}) working workspace {me['workspace']['id']}")
        while True:
            run_one(api)


if __name__ == "__main__":
    main()
