"""The Dockerfile's worker target runs a console script the project declares (docker itself is not
needed: the Dockerfile and pyproject.toml are read as text), and a build without a target is the
services' image, with no command of its own, as compose.yaml and deploy/k8s expect."""

from __future__ import annotations

import importlib
import json
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def stages() -> list[tuple[str, str, list[str]]]:
    """(name, base, instructions) per stage, in order; continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    found: list[tuple[str, str, list[str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if (start := re.fullmatch(r"FROM\s+(\S+)\s+AS\s+(\S+)", line, re.IGNORECASE)) is not None:
            found.append((start[2], start[1], []))
        elif found:
            found[-1][2].append(line)
    return found


def command(instructions: list[str]) -> list[str] | None:
    cmds = [i for i in instructions if i.upper().startswith("CMD ")]
    return json.loads(cmds[-1][4:]) if cmds else None


def test_the_worker_target_runs_a_console_script_the_project_declares() -> None:
    by_name = {name: (base, instructions) for name, base, instructions in stages()}
    base, instructions = by_name["worker"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]

    assert base == "runtime", "the worker image is the services' image with another command"
    assert command(instructions) == ["orchestrator-worker"], "exec form, so SIGTERM reaches the worker"
    module, _, function = scripts["orchestrator-worker"].partition(":")
    assert callable(getattr(importlib.import_module(module), function))
    # The package is in the image: the builder copies the services' source.
    assert any(i.split()[:2] == ["COPY", "services"] for i in by_name["builder"][1])


def test_a_build_without_a_target_is_the_services_image_with_no_command() -> None:
    name, base, instructions = stages()[-1]

    assert (name, base) == ("services", "runtime") and command(instructions) is None
