"""Reading a whole soul document: its size and encoding, the frame of its front matter, its body.

A document that cannot be read (too large, not UTF-8, no front matter) is refused with a
diagnostic, never with an exception: the validate endpoint shows a person what to fix.
"""

from __future__ import annotations

import hashlib

from libs.soul.frontmatter import read_frontmatter
from libs.soul.model import (
    BODY_EMPTY,
    BODY_TOO_LARGE,
    BODY_TRUNCATED,
    BYTE_ORDER_MARK,
    DEFAULT_LIMITS,
    DEFAULT_SOURCE_PATH,
    DOCUMENT_EMPTY,
    DOCUMENT_TOO_LARGE,
    ENCODING_INVALID,
    FRONTMATTER_MISSING,
    FRONTMATTER_UNCLOSED,
    NUL_CHARACTER,
    Soul,
    SoulFrontmatter,
    SoulLimits,
)
from libs.soul.report import BOM, Lines, Report, normalize, position_of_prefix

FENCE = "---"


def missing(source_path: str = DEFAULT_SOURCE_PATH, limits: SoulLimits = DEFAULT_LIMITS) -> Soul:
    """No soul set for this agent: not an error, the agent runs with its plain system prompt."""
    return Soul(present=False, valid=False, validation_status="missing", source_path=source_path, limits=limits)


def parse(
    text: str | bytes | None,
    source_path: str = DEFAULT_SOURCE_PATH,
    limits: SoulLimits = DEFAULT_LIMITS,
) -> Soul:
    """Read a soul document. `None` means none is set; bytes are decoded as UTF-8 here, so a
    document that is not UTF-8 gets a diagnostic rather than an exception in the caller."""
    if text is None:
        return missing(source_path, limits)
    # surrogatepass: a str with a lone surrogate still has bytes to count and digest; it is
    # refused below as not UTF-8.
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    report = Report(source_path)
    read = _Reading(raw, report, limits)
    frontmatter, body = read.document()
    projection, truncated = "", False
    if read.body_start is not None:
        projection, truncated = read.project(body)
    diagnostics = report.sorted()
    valid = not any(d.severity == "error" for d in diagnostics)
    return Soul(
        present=True,
        valid=valid,
        validation_status="valid" if valid else "invalid",
        source_path=source_path,
        limits=limits,
        digest="sha256:" + hashlib.sha256(raw).hexdigest(),
        frontmatter=frontmatter,
        body=body,
        projection=projection,
        truncated=truncated,
        diagnostics=diagnostics,
    )


class _Reading:
    def __init__(self, raw: bytes, report: Report, limits: SoulLimits) -> None:
        self.raw, self.report, self.limits = raw, report, limits
        self.text = ""
        self.body_start: int | None = None  # the body's offset in self.text, once it is known

    def document(self) -> tuple[SoulFrontmatter, str]:
        if len(self.raw) > self.limits.max_bytes:
            # Refused unread: the limit is what keeps a huge document from costing a parse.
            head = self.raw[: self.limits.max_bytes].decode("utf-8", "ignore")
            message = (
                f"The document is {len(self.raw)} bytes; a soul may be at most {self.limits.max_bytes} bytes. "
                "It passes the limit at this line and column."
            )
            self.report.add(DOCUMENT_TOO_LARGE, "error", message, section="document", at=position_of_prefix(head))
            return SoulFrontmatter(), ""
        text = self._decode()
        if text is None:
            return SoulFrontmatter(), ""
        if text.startswith(BOM):
            # Some editors write one; it is not part of the text, and every position skips it.
            self.report.add(BYTE_ORDER_MARK, "info", "The byte-order mark at the start is ignored.", section="document")
            text = text[1:]
        self.text = text = normalize(text)
        self.report.lines = Lines(text)
        if "\x00" in text:
            # PostgreSQL text cannot hold U+0000: refuse it, and read on with U+FFFD in its place
            # so every other problem is shown at once.
            count = text.count("\x00")
            message = f"The document holds {count} NUL character(s) (U+0000); remove them."
            self.report.add(NUL_CHARACTER, "error", message, section="document", offset=text.index("\x00"))
            self.text = text = text.replace("\x00", "\ufffd")
        if not text.strip():
            self.report.add(DOCUMENT_EMPTY, "error", "The document is empty.", section="document")
            return SoulFrontmatter(), ""
        return self._split()

    def _decode(self) -> str | None:
        try:
            return self.raw.decode("utf-8")
        except UnicodeDecodeError as e:
            at = position_of_prefix(self.raw[: e.start].decode("utf-8"))
            message = f"The document is not valid UTF-8 (byte 0x{self.raw[e.start]:02X} at offset {e.start})."
            self.report.add(ENCODING_INVALID, "error", message, section="document", at=at)
            return None

    def _split(self) -> tuple[SoulFrontmatter, str]:
        text, report = self.text, self.report
        lines = text.split("\n")
        if not _is_fence(lines[0]):
            fence = next((n for n, line in enumerate(lines, 1) if _is_fence(line)), None)
            leading_blank = fence is not None and all(not line.strip() for line in lines[: fence - 1])
            if leading_blank:
                where = f"it starts on line {fence}; remove the lines before it"
            else:
                where = "the first line must be `---`, then the YAML, then a closing `---` line"
            message = f"The document has no front matter: {where}."
            report.add(FRONTMATTER_MISSING, "error", message, section="frontmatter", at=(1, 1))
            # Without a frame the whole document is body: its size is still worth reporting.
            self.body_start = 0
            return SoulFrontmatter(), self._body(text)
        closing = next((n for n in range(1, len(lines)) if _is_fence(lines[n])), None)
        if closing is None:
            message = "The front matter opened on line 1 is never closed: add a line `---` after the YAML."
            report.add(FRONTMATTER_UNCLOSED, "error", message, section="frontmatter", at=(1, 1))
            return SoulFrontmatter(), ""
        # Front matter: from line 2 to the line before the closing fence (line closing + 1).
        start, end = report.lines.start_of(2), report.lines.start_of(closing + 1)
        frontmatter = read_frontmatter(text[start:end], start, report)
        after = end + len(lines[closing]) + 1
        self.body_start = min(after, len(text))
        return frontmatter, self._body(text[self.body_start :])

    def _body(self, body: str) -> str:
        assert self.body_start is not None
        size = len(body.encode("utf-8"))
        if size > self.limits.max_body_bytes:
            head = _utf8_head(body, self.limits.max_body_bytes)
            message = (
                f"The body is {size} bytes; it may be at most {self.limits.max_body_bytes} bytes. "
                "It passes the limit at this line and column."
            )
            offset = self.body_start + len(head)
            self.report.add(BODY_TOO_LARGE, "error", message, section="body", offset=offset)
        elif not body.strip():
            # Usable (the front matter alone shapes the prompt), but probably not what was meant.
            message = "The body after the front matter is empty: the soul is its front matter alone."
            self.report.add(BODY_EMPTY, "warning", message, section="body", offset=self.body_start)
        return body

    def project(self, body: str) -> tuple[str, bool]:
        """The head of the body a prompt carries: surrounding blank space dropped, then cut to the
        limit between two characters, never inside one's UTF-8 bytes."""
        assert self.body_start is not None
        stripped = body.strip()
        projection = _utf8_head(stripped, self.limits.context_projection_bytes)
        truncated = len(projection) < len(stripped)
        if truncated:
            offset = self.body_start + (len(body) - len(body.lstrip())) + len(projection)
            message = (
                f"Only the first {self.limits.context_projection_bytes} bytes of the body reach the agent's "
                "prompt; the rest, from this line and column, is left out."
            )
            self.report.add(BODY_TRUNCATED, "info", message, section="body", offset=offset)
        return projection, truncated


def _is_fence(line: str) -> bool:
    # Trailing blanks are invisible in an editor, so `--- ` still counts as the fence.
    return line.rstrip(" \t") == FENCE


def _utf8_head(text: str, max_bytes: int) -> str:
    """The longest head of `text` that is at most `max_bytes` in UTF-8: a multi-byte character
    that does not fit whole is left out whole ("ignore" drops its partial bytes)."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", "ignore")
