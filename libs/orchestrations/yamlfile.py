"""Reading one definition file: its data, and where in the file each value is, so a problem found
in the data can name its line."""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Path = tuple[str | int, ...]
_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[\.\.\.\]")


class YamlProblem(Exception):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message, self.line = message, line


def read(text: str) -> tuple[Any, Node | None]:
    """The document's data and its node tree. A duplicated key is refused: PyYAML would keep the
    last one silently, and a definition would not say what its author sees."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            _refuse_duplicates(node)
        return (loader.construct_document(node) if node is not None else None), node
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlProblem(f"not valid YAML: {exc.problem or exc.context}", mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(f"not valid YAML: {exc}", None) from None
    finally:
        loader.dispose()


def _refuse_duplicates(node: Node) -> None:
    pending = [node]
    while pending:
        item = pending.pop()
        if isinstance(item, MappingNode):
            seen: set[str] = set()
            for key, value in item.value:
                if isinstance(key, ScalarNode):
                    if key.value in seen:
                        raise YamlProblem(f"the key `{key.value}` is given twice", key.start_mark.line + 1)
                    seen.add(key.value)
                pending.append(value)
        elif isinstance(item, SequenceNode):
            pending.extend(item.value)


def line_of(node: Node | None, path: Path) -> int | None:
    """The line (from 1) of the value at `path`, or of the nearest enclosing one the file has."""
    if node is None:
        return None
    for part in path:
        child: Node | None = None
        if isinstance(node, MappingNode) and isinstance(part, str):
            child = next((v for k, v in node.value if isinstance(k, ScalarNode) and k.value == part), None)
        elif isinstance(node, SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        if child is None:
            break
        node = child
    return int(node.start_mark.line) + 1


def parse_path(text: str) -> Path:
    """msgspec's `$.steps[2].fields[0]` as ("steps", 2, "fields", 0); a mapping's `[...]` ends it."""
    parts: list[str | int] = []
    for match in _PART.finditer(text.removeprefix("$")):
        if match.group(1) is not None:
            parts.append(match.group(1))
        elif match.group(2) is not None:
            parts.append(int(match.group(2)))
        else:
            break
    return tuple(parts)
