"""A person's response to a human step, checked against the step's fields (spec 004's resume).

A response is an object of field name -> value, or a plain string when the step has a single
text field. Each value must fit its field's type (a select's one of its options); a required
field must be given and not empty. The checked response names every field: one not given is
null, so two resumes that say the same thing compare equal.
"""

from __future__ import annotations

from typing import Any

from contracts.orchestrations import HumanField

MAX_TEXT = 100_000


def checked(fields: list[HumanField], response: Any) -> dict[str, Any] | str:
    """The response as field name -> value, or what is wrong with it (naming the field)."""
    names = [f.name for f in fields]
    if isinstance(response, str):
        if len(fields) != 1 or fields[0].type != "text":
            return f"response must be an object with the fields {', '.join(names)}"
        response = {fields[0].name: response}
    if not isinstance(response, dict):
        return f"response must be an object with the fields {', '.join(names)}"
    unknown = sorted(set(response) - set(names))
    if unknown:
        return f"response.{unknown[0]} is not a field of this step (its fields: {', '.join(names)})"
    values: dict[str, Any] = {}
    for field in fields:
        value = response.get(field.name)
        problem = _problem(field, value)
        if problem:
            return f"response.{field.name} {problem}"
        values[field.name] = value
    return values


def _problem(field: HumanField, value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return "is required" if field.required else None
    if field.type == "text":
        if not isinstance(value, str):
            return "must be a string"
        if len(value) > MAX_TEXT or "\x00" in value:
            return f"must be text of at most {MAX_TEXT} characters"
    elif field.type == "select":
        if value not in field.options:
            return f"must be one of: {', '.join(field.options)}"
    elif field.type == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
    elif not isinstance(value, bool):
        return "must be true or false"
    return None
