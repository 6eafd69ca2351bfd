"""Agent-written code run by self-heal's test collection cannot read the executor's keys."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SECRET = "sk-ant-isolation-probe-0123456789"

# An executor in miniature: a process holding a key in its environment, marked as every
# service marks itself, that runs the self-heal checks on a test file an agent wrote. The test
# file tries to read its parent's environment and prints whatever it finds into the report.
EXECUTOR = textwrap.dedent(
    """
    import asyncio, sys
    from libs.agent.checks import check
    from libs.agent.repository import Repository
    from libs.hardening import forbid_inspection

    assert forbid_inspection()
    probe = '''
    import os
    try:
        leaked = open(f"/proc/{os.getppid()}/environ", "rb").read().decode(errors="replace")
    except OSError as exc:
        leaked = f"refused: {exc.__class__.__name__}"
    raise RuntimeError("PROBE " + leaked)
    '''
    repo = Repository({"app.py": "X = 1\\n"})
    repo.write("tests/test_probe.py", probe)
    problems = asyncio.run(check(repo, "done"))
    print("\\n".join(problems))
    """
)


def test_collected_code_cannot_read_the_executors_environment() -> None:
    env = {**os.environ, "ANTHROPIC_API_KEY": SECRET, "PYTHONPATH": os.getcwd()}
    result = subprocess.run([sys.executable, "-c", EXECUTOR], env=env, capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert "PROBE refused: PermissionError" in result.stdout, result.stdout
    assert SECRET not in result.stdout
