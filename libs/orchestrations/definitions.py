"""Orchestration definitions (spec 004), loaded from a folder of YAML files at the gateway's start.

Every problem of every file is found in one pass and reported together, each naming the file,
its line, the step and the field, so a person fixes them all before the gateway starts. A loaded
definition carries its digest: a run records it, so a later edit never changes what a past run did.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec

from contracts.orchestrations import Orchestration, OrchestrationDetail, OrchestrationSummary
from libs.orchestrations.checks import Found, check
from libs.orchestrations.yamlfile import YamlProblem, line_of, parse_path, read

SUFFIXES = (".yaml", ".yml")
MAX_FILE_BYTES = 1_000_000


class Problem(msgspec.Struct, frozen=True):
    file: str
    message: str
    line: int | None = None
    step: str | None = None  # the step's id, or its place (`steps[2]`) when it has none
    field: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        step = f" step {self.step!r}:" if self.step else ""
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{step}{field} {self.message}"


class DefinitionError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


class Definition(msgspec.Struct, frozen=True):
    orchestration: Orchestration
    digest: str  # "sha256:<hex>" of the canonical JSON
    source: str  # the file it was read from


class Catalogue(msgspec.Struct, frozen=True):
    """The definitions the gateway serves, by id."""

    definitions: dict[str, Definition] = {}

    def summaries(self) -> list[OrchestrationSummary]:
        return [
            OrchestrationSummary(o.id, o.name, o.description, len(o.steps))
            for o in (self.definitions[k].orchestration for k in sorted(self.definitions))
        ]

    def detail(self, orch_id: str) -> OrchestrationDetail | None:
        found = self.definitions.get(orch_id)
        if found is None:
            return None
        return OrchestrationDetail(**msgspec.structs.asdict(found.orchestration), digest=found.digest)


def digest_of(orchestration: Orchestration) -> str:
    """Its canonical form: JSON with every key sorted, so layout, comments and key order in the
    file do not change it; what the definition says does."""
    return "sha256:" + hashlib.sha256(msgspec.json.encode(orchestration, order="sorted")).hexdigest()


def files_key(orchestration: Orchestration) -> str | None:
    """The state key a run's `files` go to: the first of type `files` (None: it takes none)."""
    return next((name for name, key in orchestration.state_schema.items() if key.type == "files"), None)


def load_dir(folder: Path) -> Catalogue:
    """Every `*.yaml` / `*.yml` file of `folder` (not its subfolders); DefinitionError with all
    problems found when any file is not a valid definition or two share an id."""
    if not folder.is_dir():
        raise DefinitionError([Problem(str(folder), "the orchestrations folder does not exist")])
    problems: list[Problem] = []
    definitions: dict[str, Definition] = {}
    for path in sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES and p.is_file()):
        try:
            definition = load_file(path)
        except DefinitionError as exc:
            problems += exc.problems
            continue
        orch_id = definition.orchestration.id
        if orch_id in definitions:
            first = definitions[orch_id].source
            problems.append(Problem(str(path), f"the id {orch_id!r} is also the id of {first}", 1, field="id"))
            continue
        definitions[orch_id] = definition
    if problems:
        raise DefinitionError(problems)
    return Catalogue(definitions)


def load_file(path: Path) -> Definition:
    name = str(path)
    raw = path.read_bytes()
    if len(raw) > MAX_FILE_BYTES:
        raise DefinitionError([Problem(name, f"the file is larger than {MAX_FILE_BYTES} bytes")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DefinitionError([Problem(name, "the file is not UTF-8")]) from None
    return parse(text, name)


def parse(text: str, name: str) -> Definition:
    """One definition from the text of the file `name` (named in its problems)."""
    try:
        data, node = read(text)
    except YamlProblem as exc:
        raise DefinitionError([Problem(name, exc.message, exc.line)]) from None
    if not isinstance(data, dict):
        raise DefinitionError([Problem(name, "a definition is a mapping (id, name, state_schema, steps, ...)", 1)])
    try:
        orchestration = msgspec.convert(data, Orchestration)
    except msgspec.ValidationError as exc:
        raise DefinitionError([_schema_problem(name, str(exc), data, node)]) from None
    found = check(orchestration)
    if found:
        raise DefinitionError([_placed(name, f, data, node) for f in found])
    return Definition(orchestration, digest_of(orchestration), name)


def _schema_problem(name: str, text: str, data: dict[str, object], node: object) -> Problem:
    """msgspec's `<what> - at `$.steps[1].prompt`` as a problem naming the step and the field."""
    message, _, at = text.rpartition(" - at ")
    if not message:
        message, at = text, ""
    location = at.strip("`")
    # A mapping key's problem reads "at `key` in `$.state_schema`".
    if location.startswith("key` in `"):
        location = location.removeprefix("key` in `")
    path = parse_path(location)
    field = _named(path[2:] if path[:1] == ("steps",) else path)
    # "Object missing required field `prompt`" and its kin say which field themselves.
    if "field `" in message:
        named = message.split("field `", 1)[1].split("`", 1)[0]
        field = f"{field}.{named}" if field else named
    return _placed(name, Found(message, path, field or None), data, node)


def _named(path: tuple[str | int, ...]) -> str:
    """("fields", 0, "type") as a person reads it: `fields[0].type`."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _placed(name: str, found: Found, data: dict[str, object], node: object) -> Problem:
    step = None
    if len(found.path) >= 2 and found.path[0] == "steps" and isinstance(found.path[1], int):
        steps = data.get("steps")
        index = found.path[1]
        entry = steps[index] if isinstance(steps, list) and index < len(steps) else None
        step_id = entry.get("id") if isinstance(entry, dict) else None
        step = step_id if isinstance(step_id, str) else f"steps[{index}]"
    return Problem(name, found.message, line_of(node, found.path), step, found.field)  # type: ignore[arg-type]
