"""`orchestrator-admin`: create workspaces, issue and revoke their API keys.

It talks to the gateway's admin API (`GATEWAY_URL`, default http://127.0.0.1:8080) with the
admin token from `ADMIN_TOKEN`, or from `<data dir>/admin-token`, which `./just up` keeps.
A key is printed once, when it is issued: the system keeps only its hash.
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


def _call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    base = os.environ.get("GATEWAY_URL", "http://127.0.0.1:8080").rstrip("/")
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {_token()}", "Content-Type": "application/json"},
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
        sys.exit(f"cannot reach the gateway at {base}: {exc.reason}")


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
    else:
        print(json.dumps(_call("GET", f"/admin/workspaces/{args.workspace_id}"), indent=2))


if __name__ == "__main__":
    main()
