"""What a definition must hold beyond its schema: every state key a step names is declared, every
step a condition goes to exists, a select has options, each value fits the key it is written to.
A definition that passes can be run without a run finding a hole in it."""

from __future__ import annotations

import re
from collections.abc import Callable

import msgspec

from contracts.orchestrations import AgentStep, ConditionStep, HumanStep, Orchestration, StateKey
from libs.orchestrations.yamlfile import Path

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
# What a human field's answer is, as a state key's type.
# Reports a problem: its message, then the field within the step, part by part.
Report = Callable[..., None]
FIELD_TYPES = {"text": "string", "select": "string", "number": "number", "bool": "boolean"}


class Found(msgspec.Struct, frozen=True):
    message: str
    path: Path  # where in the file: ("steps", 2, "fields", 0, "options")
    field: str | None  # the field as a person names it within its step: "fields[0].options"


def placeholders(template: str) -> list[str]:
    return PLACEHOLDER.findall(template)


def check(orchestration: Orchestration) -> list[Found]:
    schema = orchestration.state_schema
    found: list[Found] = []
    first_key, first = next(iter(schema.items()))
    if first.type != "string":
        # A run's `message` is written to the first state key.
        found.append(
            Found(
                f"the first state key ({first_key}) takes the run's message: type string",
                ("state_schema", first_key),
                "state_schema",
            )
        )
    ids = [s.id for s in orchestration.steps]
    for index, step in enumerate(orchestration.steps):
        here: Path = ("steps", index)

        def problem(message: str, *field: str | int, at: Path = here) -> None:
            name = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in field).lstrip(".")
            found.append(Found(message, at + field, name or None))

        if ids.index(step.id) != index:
            problem(f"the step id {step.id!r} is also the id of steps[{ids.index(step.id)}]", "id")
        if isinstance(step, AgentStep):
            _template(step.prompt, schema, problem, "prompt")
            _key(step.output, schema, problem, "output", want="string")
            if step.tools and step.files is None:
                problem("tools work on files: name the state key of type files that holds them", "files")
            if step.files is not None:
                _key(step.files, schema, problem, "files", want="files")
        elif isinstance(step, HumanStep):
            _template(step.prompt, schema, problem, "prompt")
            if step.agent_context is not None:
                _template(step.agent_context, schema, problem, "agent_context")
            names = [f.name for f in step.fields]
            for i, field in enumerate(step.fields):
                if names.index(field.name) != i:
                    problem(f"the field {field.name!r} is given twice", "fields", i, "name")
                _key(field.name, schema, problem, "fields", i, "name", want=FIELD_TYPES[field.type])
                if field.type == "select" and not field.options:
                    problem("a select needs options", "fields", i, "options")
                if field.type != "select" and field.options:
                    problem(f"only a select has options, not a {field.type}", "fields", i, "options")
                if len(set(field.options)) != len(field.options):
                    problem("an option is given twice", "fields", i, "options")
        elif isinstance(step, ConditionStep):
            if _key(step.key, schema, problem, "key"):
                _equals(step, schema[step.key], problem)
            if step.goto not in ids:
                problem(f"goes to {step.goto!r}, which is no step of this orchestration", "goto")
            elif step.goto == step.id:
                problem("a condition cannot go to itself", "goto")
    return found


def _key(name: str, schema: dict[str, StateKey], problem: Report, *field: str | int, want: str | None = None) -> bool:
    if name not in schema:
        problem(f"{name!r} is not a key of state_schema ({', '.join(schema)})", *field)
        return False
    if want is not None and schema[name].type != want:
        problem(f"the state key {name!r} is of type {schema[name].type}; this needs {want}", *field)
        return False
    return True


def _template(template: str, schema: dict[str, StateKey], problem: Report, field: str) -> None:
    for name in placeholders(template):
        if name not in schema:
            problem(f"the template names {{{{ {name} }}}}, which is not a key of state_schema", field)
    rest = PLACEHOLDER.sub("", template)
    if "{{" in rest or "}}" in rest:
        problem("a placeholder is written {{ key }}, with a state key's name inside", field)


def _equals(step: ConditionStep, key: StateKey, problem: Report) -> None:
    value = step.equals
    fits = {
        "string": isinstance(value, str),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "files": False,
    }[key.type]
    if not fits:
        problem(f"compares the {key.type} state key {step.key!r} with {value!r}", "equals")
