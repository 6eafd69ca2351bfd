"""The part of an agent's system prompt a soul contributes.

The executor appends this section to the agent type's own system prompt. Only a valid soul
speaks: a document with an error may say something else than its writer meant, and a missing one
says nothing. `memory_policy`, `tags` and `version` are for the product, not the model, and stay
out of the prompt.
"""

from __future__ import annotations

from libs.soul.model import Soul

HEADING = "Your soul, set for you in this workspace. Follow it in everything you do:"
TRUNCATION_NOTE = "(The rest of this soul is cut to fit.)"


def system_prompt_section(soul: Soul) -> str:
    """The section's text, without leading or trailing blank lines; "" when the soul is missing
    or invalid, so the caller can append it unconditionally when it is non-empty."""
    if not soul.present or not soul.valid:
        return ""
    fm = soul.frontmatter
    who = [HEADING, f"Role: {fm.role}"] + ([f"Tone: {', '.join(fm.tone)}"] if fm.tone else [])
    parts = ["\n".join(who)]
    for title, items in (
        ("Principles", fm.principles),
        ("Constraints", fm.constraints),
        ("Collaboration", fm.collaboration),
    ):
        if items:
            parts.append(f"{title}:\n" + "\n".join(f"- {_one_line(item)}" for item in items))
    if soul.projection:
        body = soul.projection + (f"\n{TRUNCATION_NOTE}" if soul.truncated else "")
        parts.append(body)
    return "\n\n".join(parts)


def _one_line(item: str) -> str:
    # A multi-line item (a YAML block scalar) stays one bullet: its later lines are indented.
    return item.replace("\n", "\n  ")
