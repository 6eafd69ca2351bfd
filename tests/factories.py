"""Test data shared by the unit, integration and end-to-end suites."""

from __future__ import annotations

from typing import Any

import msgspec

from contracts.tasks import TaskRequest


def task_request(description: str = "Add input validation", agent_type: str = "codegen", **extra: Any) -> dict:
    """A spec 000 task as a client sends it (defaults left out)."""
    return {
        "description": description,
        "agentType": agent_type,
        "repo": {
            "owner": "acme",
            "repo": "api",
            "branch": "agent/validation",
            "baseBranch": "main",
            "files": {"src/register.py": "def register(user):\n    return user\n"},
        },
        **extra,
    }


def stored_request(description: str = "Add input validation", agent_type: str = "codegen") -> dict[str, Any]:
    """The same task as the planner stores it: validated, with every default filled in."""
    return msgspec.to_builtins(msgspec.convert(task_request(description, agent_type), TaskRequest))
