"""Self-heal checks: what a run's output must pass before it counts as done.

Python files compile; JSON, YAML and TOML files parse; test files the agent wrote are
collected by pytest without errors (when the repository is Python); and the run ended with a
summary. The problems found go back to the next attempt word for word.

Collecting tests imports code the agent wrote, so it runs in a child process, in a throwaway
folder holding only the repository snapshot, with an environment that carries no secret, CPU,
memory and file-size limits, a timeout, and its whole process group killed at the end. The
child cannot read the services' keys from /proc: they mark themselves not dumpable
(`libs/hardening.py`), and the child holds no capability (as root, it would otherwise be
allowed to read any process's /proc files) and can gain none.
Network access stays open: for repositories you do not trust, run the executor in a sandbox
(gVisor, a VM) or set SELF_HEAL_COLLECT_TESTS=false.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import sys
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import yaml

from libs.agent.repository import PathError, Repository, normalize
from libs.hardening import drop_capabilities

COLLECT_TIMEOUT_S = 60.0
COLLECT_MEMORY_BYTES = 1024 * 1024 * 1024
COLLECT_CPU_S = 60
COLLECT_FILE_BYTES = 64 * 1024 * 1024
MAX_REPORT_CHARS = 4000


def syntax_problems(path: str, content: str) -> str | None:
    """The first problem that stops `path` from being read as its file type, if any."""
    suffix = PurePosixPath(path).suffix.lower()
    try:
        if suffix == ".py":
            compile(content, path, "exec", dont_inherit=True)
        elif suffix == ".json" and not _json_with_comments(path):
            json.loads(content)
        elif suffix in (".yaml", ".yml"):
            # Composed, not constructed: application tags (CloudFormation's !Sub, mkdocs'
            # !!python/name) are valid YAML that only their own tools know how to build.
            list(yaml.compose_all(content, Loader=yaml.SafeLoader))
        elif suffix == ".toml":
            tomllib.loads(content)
    except SyntaxError as exc:
        return f"{path}:{exc.lineno}: SyntaxError: {exc.msg}"
    except (ValueError, yaml.YAMLError) as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        return f"{path}: not valid {suffix[1:].upper()}: {_one_line(str(exc))}"
    except (RecursionError, MemoryError):
        # Nested past what the parser can follow (`[[[[...`, `- - - -...`, `------1`): no tool
        # of the project's would read it either. (Not libyaml's faster loader: nested so, it
        # overflows the C stack and takes the whole process down.)
        return f"{path}: nested too deeply to be read as {suffix[1:].upper()}"
    return None


# JSON files their tools read with comments allowed (JSONC): a strict parse would fail them.
_JSONC_NAMES = frozenset({"tsconfig.json", "jsconfig.json", ".eslintrc.json", "devcontainer.json"})


def _json_with_comments(path: str) -> bool:
    pure = PurePosixPath(path)
    return pure.name in _JSONC_NAMES or pure.name.startswith("tsconfig.") or ".vscode" in pure.parts


def _syntax_of(files: dict[str, str]) -> list[str]:
    return [p for path, content in files.items() if (p := syntax_problems(path, content))]


def is_test_file(path: str) -> bool:
    name = PurePosixPath(path).name
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


async def check(
    repo: Repository,
    summary: str | None,
    collect_tests: bool = True,
    before_collecting: Callable[[], None] | None = None,
) -> list[str]:
    """What is wrong with the agent's output; `before_collecting` is called before the wait for
    pytest's collection (the run's records go to the store meanwhile)."""
    problems: list[str] = []
    if not summary:
        problems.append("the agent did not finish with a summary (call finish)")
    changed = repo.changes().files
    # Off the event loop: parsing megabytes takes seconds, and the loop carries every other
    # run's heartbeats and model calls meanwhile.
    problems += await asyncio.to_thread(_syntax_of, changed)
    tests = sorted(p for p in changed if is_test_file(p))
    if collect_tests and tests and not problems:
        if before_collecting is not None:
            before_collecting()
        report = await collect(repo.current(), tests)
        if report:
            problems.append(report)
    return problems


async def collect(files: dict[str, str], tests: list[str]) -> str | None:
    """None when pytest collects `tests` cleanly; else its report, shortened."""
    with tempfile.TemporaryDirectory(prefix="selfheal-") as folder:
        root = Path(folder)
        _materialize(root, files)
        roots = [str(root)] + ([str(root / "src")] if (root / "src").is_dir() else [])
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": folder,
            "PYTHONPATH": os.pathsep.join(roots),
            "PYTHONDONTWRITEBYTECODE": "1",
            # The executor's own pytest plugins are not the repository's: load none of them
            # (faster, and collection sees the repository as its own CI would, bare).
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        }
        argv = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "--rootdir", folder]
        process = await asyncio.create_subprocess_exec(
            *argv,
            *tests,
            cwd=folder,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=_limits,
            start_new_session=True,
        )
        try:
            async with asyncio.timeout(COLLECT_TIMEOUT_S):
                output, _ = await process.communicate()
        except TimeoutError:
            return f"pytest did not finish collecting {', '.join(tests)} within {COLLECT_TIMEOUT_S:.0f} s"
        finally:
            # Whatever the collected code started (its own session: the child's pid is the group).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    if process.returncode == 0:
        return None
    text = output.decode(errors="replace").replace(folder + os.sep, "").replace(folder, ".")
    what = "collected no tests" if process.returncode == 5 else "could not collect the tests"
    return f"pytest {what} in {', '.join(tests)}:\n{_tail(text)}"


def _materialize(root: Path, files: dict[str, str]) -> None:
    """Writes the snapshot under `root`, and nothing outside it: a request's own paths are not
    checked at the edge, so one that is absolute, escapes, or clashes with another is left out."""
    for given, content in files.items():
        try:
            target = root / normalize(given)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        except (PathError, OSError):
            continue


def _limits() -> None:
    # In the child, before exec: bounded CPU, memory and file sizes for code nobody reviewed,
    # and no capabilities, now or after exec (root's CAP_SYS_PTRACE would open every process's
    # /proc files, whether it is dumpable or not).
    resource.setrlimit(resource.RLIMIT_CPU, (COLLECT_CPU_S, COLLECT_CPU_S))
    resource.setrlimit(resource.RLIMIT_AS, (COLLECT_MEMORY_BYTES, COLLECT_MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_FSIZE, (COLLECT_FILE_BYTES, COLLECT_FILE_BYTES))
    drop_capabilities()


def _tail(text: str) -> str:
    return text if len(text) <= MAX_REPORT_CHARS else "[...]\n" + text[-MAX_REPORT_CHARS:]


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]
