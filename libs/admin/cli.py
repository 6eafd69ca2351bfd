"""`orchestrator-admin`: create workspaces, issue and revoke their API keys, make agent sessions.

It talks to the gateway's admin API (`GATEWAY_URL`, default http://127.0.0.1:8080) with the
admin token from `ADMIN_TOKEN`, or from `<data dir>/admin-token`, which `./just up` keeps.
A key is printed once, when it is issued: the system keeps only its hash.

Agent sessions (spec 002) are a workspace's own: `create-session` and `stop-session` talk to the
runtime's workspace API (`RUNTIME_URL`, default the gateway's URL, which forwards it under
`./just up` and compose, and the ingress routes in Kubernetes) with a key of that workspace from
`ORCHESTRATOR_API_KEY`. A session's token is printed once, too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def _token() -> str:
    token = os.environ.get("ADMIN_TOKEN")
    if token:
        return token
    path = Path(os.environ.get("ORCHESTRATOR_DATA_DIR", ".data")) / "admin-token"
    if path.exists():
        return path.read_text().strip()
    sys.exit("no admin token: set ADMIN_TOKEN (or run from the folder `./just up` keeps its data in)")


def _api_key() -> str:
    key = os.environ.get("ORCHESTRATOR_API_KEY")
    if not key:
        sys.exit("no API key: set ORCHESTRATOR_API_KEY to a key of the workspace")
    return key


def _gateway_url() -> str:
    return os.environ.get("GATEWAY_URL", "http://127.0.0.1:8080")


def _call(method: str, path: str, body: dict[str, Any] | None = None, runtime: bool = False) -> Any:
    """The gateway's admin API with the admin token, or (`runtime`) the runtime service's
    workspace API with a key of the workspace."""
    if runtime:
        base, token = (os.environ.get("RUNTIME_URL") or _gateway_url()).rstrip("/"), _api_key()
    else:
        base, token = _gateway_url().rstrip("/"), _token()
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            error = json.loads(exc.read())
            detail = f"{error.get('error')}: {error.get('message')}"
        except ValueError:
            detail = exc.reason
        sys.exit(f"{method} {path}: {exc.code} {detail}")
    except urllib.error.URLError as exc:
        sys.exit(f"cannot reach {'the runtime service' if runtime else 'the gateway'} at {base}: {exc.reason}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="orchestrator-admin", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-workspace", help="a new workspace and its first key")
    create.add_argument("workspace_id", nargs="?", help="its id (letters, digits, _ and -); generated if left out")
    create.add_argument("--name")
    issue = commands.add_parser("issue-key", help="a new key for a workspace")
    issue.add_argument("workspace_id")
    issue.add_argument("--label")
    revoke = commands.add_parser("revoke-key", help="revoke a key: it is refused (403) from now on")
    revoke.add_argument("workspace_id")
    revoke.add_argument("key_id")
    show = commands.add_parser("show", help="a workspace and its keys (ids and labels, never the keys)")
    show.add_argument("workspace_id")
    _session_commands(commands)
    args = parser.parse_args(argv)

    if args.command == "create-workspace":
        body = {k: v for k, v in {"workspaceId": args.workspace_id, "name": args.name}.items() if v}
        issued = _call("POST", "/admin/workspaces", body)
        print(f"workspace {issued['workspaceId']}\nkey id    {issued['keyId']}\napi key   {issued['apiKey']}")
        print("(the key is shown this once)", file=sys.stderr)
    elif args.command == "issue-key":
        body = {"label": args.label} if args.label else {}
        issued = _call("POST", f"/admin/workspaces/{args.workspace_id}/keys", body)
        print(f"key id    {issued['keyId']}\napi key   {issued['apiKey']}")
        print("(the key is shown this once)", file=sys.stderr)
    elif args.command == "revoke-key":
        _call("DELETE", f"/admin/workspaces/{args.workspace_id}/keys/{args.key_id}")
        print(f"revoked {args.key_id}")
    elif args.command == "create-session":
        made = _call("POST", f"/api/v1/workspaces/{args.workspace_id}/agent-sessions", _new_session(args), runtime=True)
        print(f"session   {made['session']['id']}\ntoken     {made['token']}")
        print("(the token is shown this once)", file=sys.stderr)
    elif args.command == "stop-session":
        path = f"/api/v1/workspaces/{args.workspace_id}/agent-sessions/{args.session_id}"
        stopped = _call("DELETE", path, runtime=True)
        print(f"stopped {stopped['id']}")
    else:
        print(json.dumps(_call("GET", f"/admin/workspaces/{args.workspace_id}"), indent=2))


PERMISSIONS = ("tool", "skill", "mcp-server", "network-channel", "sandbox-profile", "workspace-path")
BUDGET = ("max-children", "max-depth", "max-active-per-workspace", "ttl-seconds")


def _session_commands(commands: Any) -> None:
    create = commands.add_parser(
        "create-session", help="an agent session of the workspace (ORCHESTRATOR_API_KEY); its token is printed once"
    )
    create.add_argument("workspace_id")
    create.add_argument("--name", required=True)
    create.add_argument("--agent-name")
    create.add_argument("--model")
    create.add_argument("--provider")
    create.add_argument("--capability", action="append", default=[], help="repeat for each")
    for permission in PERMISSIONS:
        create.add_argument(f"--{permission}", action="append", default=[], help="a permission; repeat for each")
    for limit in BUDGET:
        create.add_argument(f"--{limit}", type=int, help="spawn budget (the workspace's when left out)")
    stop = commands.add_parser("stop-session", help="stop an agent session, and the children that stop with it")
    stop.add_argument("workspace_id")
    stop.add_argument("session_id")


def _new_session(args: argparse.Namespace) -> dict[str, Any]:
    def named(option: str) -> str:
        return option.replace("-", "_")

    body: dict[str, Any] = {"name": args.name, "capabilities": args.capability}
    body |= {k: v for k in ("agent_name", "model", "provider") if (v := getattr(args, k))}
    body["permissions"] = {f"{named(p)}s": getattr(args, named(p)) for p in PERMISSIONS}
    body["spawn_budget"] = {named(b): v for b in BUDGET if (v := getattr(args, named(b))) is not None}
    return body


if __name__ == "__main__":
    main()
