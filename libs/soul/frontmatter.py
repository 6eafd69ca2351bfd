"""The front matter's YAML, read into the soul's known fields.

The YAML is composed, never constructed: `yaml.compose` with PyYAML's safe loader builds the node
tree only (no Python object, no tag acted on, which is safer still than `yaml.safe_load`), and
every node keeps the place it was written, so each diagnostic points at the key or value at
fault. Reading the nodes also shows what a loaded value would hide: the text a number was
written as (`version: 1.10` stays "1.10", not 1.1) and a key given twice.

What is taken with a warning, and what is refused:
- a single text where a list is expected is taken as a one-item list (warning);
- a number, boolean or date where text is expected (`version: 1.0`, an item `- yes`) is taken
  as the text written (warning): YAML reads such words as other types, the writer meant text;
- an optional field left empty (`tags:`) counts as not given (warning);
- an unknown key is ignored (warning), with the known key it may be a misspelling of;
- a missing or empty `role`, an empty list item, a list or mapping where text is expected, a
  value with an explicit tag other than `!!str`, and a key given twice are refused (error).
"""

from __future__ import annotations

import difflib
from typing import Final

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from libs.soul.model import (
    DUPLICATE_FIELD,
    FIELD_COERCED,
    FIELD_EMPTY,
    FIELD_REQUIRED,
    FIELD_TYPE,
    FRONTMATTER_NOT_MAPPING,
    UNKNOWN_FIELD,
    YAML_SYNTAX,
    Severity,
    SoulFrontmatter,
)
from libs.soul.report import Report

LIST_FIELDS: Final = ("tone", "principles", "constraints", "collaboration", "memory_policy", "tags")
KNOWN_FIELDS: Final = ("role", *LIST_FIELDS, "version")

_TAG = "tag:yaml.org,2002:"
_STR, _NULL, _MERGE = _TAG + "str", _TAG + "null", _TAG + "merge"
# Plain words YAML reads as another type; where text is expected, the writer meant the words.
_TEXT_LIKE = {
    _TAG + "int": "a number",
    _TAG + "float": "a number",
    _TAG + "bool": "a yes/no value",
    _TAG + "timestamp": "a date",
}


def read_frontmatter(source: str, base: int, report: Report) -> SoulFrontmatter:
    """`source` is the YAML between the two `---` lines; `base` its offset in the document."""
    root = _compose(source, base, report)
    if root is None:
        # Unreadable YAML was reported; empty front matter still lacks its role.
        if not report.has_errors():
            _required(report)
        return SoulFrontmatter()
    if not isinstance(root, MappingNode):
        kind = "a list" if isinstance(root, SequenceNode) else "a single value"
        report.add(
            FRONTMATTER_NOT_MAPPING,
            "error",
            f"The front matter must be a set of `key: value` lines; it is {kind}.",
            section="frontmatter",
            offset=base + root.start_mark.index,
        )
        return SoulFrontmatter()
    return _Fields(root, source, base, report).read()


def _compose(source: str, base: int, report: Report) -> Node | None:
    def syntax(message: str, offset: int) -> None:
        report.add(YAML_SYNTAX, "error", message, section="frontmatter", offset=base + offset)

    try:
        return yaml.compose(source, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = e.problem or e.context or "unreadable YAML"
        if e.context and e.context_mark and e.problem:
            line, column = report.lines.position(base + e.context_mark.index)
            problem += f" ({e.context} that starts at line {line}, column {column})"
        syntax(f"The front matter is not valid YAML: {_plain(problem)}.", mark.index if mark else 0)
    except yaml.reader.ReaderError as e:
        # PyYAML refuses control characters before it parses anything; `position` is the offset.
        syntax(f"The front matter holds a character YAML does not allow (U+{e.character:04X}).", e.position)
    except RecursionError:
        syntax("The front matter's YAML nests too deeply to read.", 0)
    except yaml.YAMLError as e:
        syntax(f"The front matter is not valid YAML: {e}.", 0)
    return None


# PyYAML names the tokens it expected or found; a person knows the places they stand for.
_TOKENS = {
    "stream end": "the end of the front matter",
    "block end": "the end of an indented block",
    "block mapping start": "a new indented block",
    "block sequence start": "a new list",
    "scalar": "a value",
}


def _plain(problem: str) -> str:
    for token, words in _TOKENS.items():
        problem = problem.replace(f"'<{token}>'", words).replace(f"<{token}>", words)
    return problem


def _required(report: Report) -> None:
    # A missing key has no place of its own: point at the opening `---`.
    report.add(
        FIELD_REQUIRED,
        "error",
        "The front matter must give `role`: one line saying who the agent is.",
        section="frontmatter",
        at=(1, 1),
        field="role",
    )


class _Fields:
    """Walks the front matter's mapping once, collecting the known fields' values."""

    def __init__(self, root: MappingNode, source: str, base: int, report: Report) -> None:
        self.root, self.source, self.base, self.report = root, source, base, report

    def _add(self, code: str, severity: Severity, message: str, node: Node, field: str) -> None:
        self.report.add(
            code,
            severity,
            message,
            section="frontmatter",
            offset=self.base + node.start_mark.index,
            field=field,
        )

    def read(self) -> SoulFrontmatter:
        fields = self._pairs()
        values: dict[str, object] = {}
        for name, (key, value) in fields.items():
            if name not in KNOWN_FIELDS:
                self._unknown(name, key)
            elif name in LIST_FIELDS:
                values[name] = self._list(name, key, value)
            else:
                values[name] = self._text(name, key, value, required=name == "role") or ""
        if "role" not in fields:
            _required(self.report)
        return SoulFrontmatter(**values)  # type: ignore[arg-type]

    def _pairs(self) -> dict[str, tuple[Node, Node]]:
        """Each key's node and value node, the last one winning as in `safe_load`; a key given
        twice is refused all the same, since which one the writer meant is a guess."""
        first: dict[str, Node] = {}
        for key, _ in self.root.value:
            if key.tag == _MERGE:
                continue
            name = self._name(key)
            if name in first:
                line, _ = self.report.lines.position(self.base + first[name].start_mark.index)
                message = f"`{name}` is given twice (first on line {line}); keep one."
                self._add(DUPLICATE_FIELD, "error", message, key, name)
            else:
                first[name] = key
        if any(key.tag == _MERGE for key, _ in self.root.value):
            # `<<: *defaults` merges another mapping's keys, as safe_load would.
            try:
                SafeConstructor().flatten_mapping(self.root)
            except yaml.MarkedYAMLError as e:
                mark = e.problem_mark or self.root.start_mark
                message = f"The front matter is not valid YAML: {e.problem}."
                self.report.add(YAML_SYNTAX, "error", message, section="frontmatter", offset=self.base + mark.index)
        return {self._name(key): (key, value) for key, value in self.root.value if key.tag != _MERGE}

    def _name(self, key: Node) -> str:
        if isinstance(key, ScalarNode):
            return key.value
        # A list or mapping used as a key: name it by what was written, on one line, kept short.
        written = " ".join(self.source[key.start_mark.index : key.end_mark.index].split())
        return written[:40] or "?"

    def _unknown(self, name: str, key: Node) -> None:
        close = difflib.get_close_matches(name.lower(), KNOWN_FIELDS, n=1, cutoff=0.75)
        hint = f" Did you mean `{close[0]}`?" if close else f" Known keys: {', '.join(KNOWN_FIELDS)}."
        self._add(UNKNOWN_FIELD, "warning", f"`{name}` is not a soul field and is ignored.{hint}", key, name)

    def _text(self, field: str, key: Node, node: Node, *, required: bool) -> str | None:
        """The text a value gives, or None when it gives none (each case reported)."""
        if isinstance(node, ScalarNode):
            if node.tag == _NULL or (node.tag == _STR and not node.value.strip()):
                # `role:` has no value of its own to point at: point at its key.
                where = key if node.tag == _NULL and not node.value else node
                severity: Severity = "error" if required else "warning"
                consequence = "it must say something" if required else "it counts as not given"
                self._add(FIELD_EMPTY, severity, f"`{field}` is empty; {consequence}.", where, field)
                return None
            if node.tag == _STR:
                return node.value.strip()
            if node.tag in _TEXT_LIKE:
                message = (
                    f'`{field}` reads as {_TEXT_LIKE[node.tag]} in YAML; it is taken as the text "{node.value}". '
                    "Quote it to say so."
                )
                self._add(FIELD_COERCED, "warning", message, node, field)
                return node.value
            message = f"`{field}` must be text; it is a value tagged `{node.tag}`."
        else:
            kind = "a list" if isinstance(node, SequenceNode) else "a mapping"
            message = f"`{field}` must be text; it is {kind}."
        self._add(FIELD_TYPE, "error", message, node, field)
        return None

    def _list(self, field: str, key: Node, node: Node) -> tuple[str, ...]:
        if isinstance(node, SequenceNode):
            # Items are numbered from 0, as in the list the API returns when no item is refused.
            items = (self._text(f"{field}[{i}]", item, item, required=True) for i, item in enumerate(node.value))
            return tuple(item for item in items if item is not None)
        if isinstance(node, MappingNode):
            self._add(FIELD_TYPE, "error", f"`{field}` must be a list of texts; it is a mapping.", node, field)
            return ()
        text = self._text(field, key, node, required=False)
        if text is None:
            return ()
        message = f"`{field}` should be a list; the single text was taken as a one-item list."
        self._add(FIELD_COERCED, "warning", message, node, field)
        return (text,)
