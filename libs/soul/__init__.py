"""An agent's soul: a markdown document, set per workspace and agent name, that shapes the
agent's system prompt (spec 002: `GET /api/agent/soul`, `POST /api/agent/soul/validate`).

The format: a first line `---`, YAML front matter, a closing line `---`, then the markdown body.

    ---
    role: Careful backend engineer for the billing service
    tone: [plain, direct]
    principles:
      - Read the code around a change before making it
    constraints:
      - Never touch the migrations folder
    collaboration:
      - Ask before changing a public API
    memory_policy:
      - Remember the team's naming conventions
    tags: [backend, billing]
    version: "1.2"
    ---
    Free markdown: how this agent works, in the workspace's own words.

`role` is required; the other keys are optional. Sizes are capped (`SoulLimits`), and only the
head of the body (the projection) reaches a prompt. Reading never raises on a bad document:
every problem is a diagnostic with a stable code, a line and a column; the soul is valid when
none of them is an error. This package is pure: no I/O, no service, no storage.
"""

from libs.soul.document import missing, parse
from libs.soul.model import DEFAULT_LIMITS, Soul, SoulDiagnostic, SoulFrontmatter, SoulLimits
from libs.soul.prompt import system_prompt_section

__all__ = [
    "DEFAULT_LIMITS",
    "Soul",
    "SoulDiagnostic",
    "SoulFrontmatter",
    "SoulLimits",
    "missing",
    "parse",
    "system_prompt_section",
]
