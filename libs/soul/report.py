"""Where a diagnostic points: character offsets in the document turned into the 1-based line and
column an editor shows, and the list of diagnostics one reading collects."""

from __future__ import annotations

from bisect import bisect_right

from libs.soul.model import Section, Severity, SoulDiagnostic

BOM = "\ufeff"


class Lines:
    """Offsets into the document's text (byte-order mark removed, line endings made "\\n") as
    lines and columns. Only "\\n" ends a line here: after the line endings are made one, that is
    what every editor counts, whatever YAML itself would call a line break."""

    def __init__(self, text: str) -> None:
        self._starts = [0]
        at = text.find("\n")
        while at != -1:
            self._starts.append(at + 1)
            at = text.find("\n", at + 1)

    def position(self, offset: int) -> tuple[int, int]:
        index = bisect_right(self._starts, offset) - 1
        return index + 1, offset - self._starts[index] + 1

    def start_of(self, line: int) -> int:
        """The offset of a 1-based line's first character."""
        return self._starts[line - 1]


def position_of_prefix(prefix: str) -> tuple[int, int]:
    """The line and column just after `prefix`, a head of the document as written (so still with
    its byte-order mark and line endings): used where the text is not readable as a whole, like
    the place where an oversize document passes its limit or an undecodable byte."""
    text = normalize(prefix.removeprefix(BOM))
    return text.count("\n") + 1, len(text) - (text.rfind("\n") + 1) + 1


def normalize(text: str) -> str:
    """One line ending: CRLF and a lone CR become LF, so a document saved on Windows reads the same."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


class Report:
    """The diagnostics of one reading, in the order they were found (`sorted` puts them in
    document order for the reader)."""

    def __init__(self, source_path: str, lines: Lines | None = None) -> None:
        self.source_path = source_path
        self.lines = lines or Lines("")
        self.found: list[SoulDiagnostic] = []

    def add(
        self,
        code: str,
        severity: Severity,
        message: str,
        *,
        section: Section,
        offset: int | None = None,
        at: tuple[int, int] | None = None,
        field: str = "",
    ) -> None:
        line, column = at if at is not None else self.lines.position(offset or 0)
        self.found.append(
            SoulDiagnostic(
                code=code,
                severity=severity,
                message=message,
                line=line,
                column=column,
                field=field,
                section=section,
                source_path=self.source_path,
            )
        )

    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.found)

    def sorted(self) -> tuple[SoulDiagnostic, ...]:
        # Stable: diagnostics at the same place keep the order they were found in.
        return tuple(sorted(self.found, key=lambda d: (d.line, d.column)))
