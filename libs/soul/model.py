"""What reading a soul document yields: the front matter's fields, the body, the limits it was
read under, and every diagnostic, each placed on the line and column a person would look at."""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

from contracts.agent_context import ValidationStatus

Severity = Literal["info", "warning", "error"]
Section = Literal["document", "frontmatter", "body"]

OWNER_SURFACE: Final = "soul"
DEFAULT_SOURCE_PATH: Final = "SOUL.md"

# The stable codes a diagnostic carries; clients match on these, never on the message.
# Document-wide problems.
DOCUMENT_EMPTY: Final = "document_empty"
DOCUMENT_TOO_LARGE: Final = "document_too_large"
ENCODING_INVALID: Final = "encoding_invalid"
NUL_CHARACTER: Final = "nul_character"
BYTE_ORDER_MARK: Final = "byte_order_mark"
# The front matter's frame and its YAML.
FRONTMATTER_MISSING: Final = "frontmatter_missing"
FRONTMATTER_UNCLOSED: Final = "frontmatter_unclosed"
FRONTMATTER_NOT_MAPPING: Final = "frontmatter_not_mapping"
YAML_SYNTAX: Final = "yaml_syntax"
# The front matter's fields.
FIELD_REQUIRED: Final = "field_required"
FIELD_TYPE: Final = "field_type"
FIELD_EMPTY: Final = "field_empty"
FIELD_COERCED: Final = "field_coerced"
DUPLICATE_FIELD: Final = "duplicate_field"
UNKNOWN_FIELD: Final = "unknown_field"
# The markdown body.
BODY_EMPTY: Final = "body_empty"
BODY_TOO_LARGE: Final = "body_too_large"
BODY_TRUNCATED: Final = "body_truncated"

CODES: Final = (
    DOCUMENT_EMPTY,
    DOCUMENT_TOO_LARGE,
    ENCODING_INVALID,
    NUL_CHARACTER,
    BYTE_ORDER_MARK,
    FRONTMATTER_MISSING,
    FRONTMATTER_UNCLOSED,
    FRONTMATTER_NOT_MAPPING,
    YAML_SYNTAX,
    FIELD_REQUIRED,
    FIELD_TYPE,
    FIELD_EMPTY,
    FIELD_COERCED,
    DUPLICATE_FIELD,
    UNKNOWN_FIELD,
    BODY_EMPTY,
    BODY_TOO_LARGE,
    BODY_TRUNCATED,
)

Positive = Annotated[int, msgspec.Meta(ge=1)]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]


class SoulLimits(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Sizes in UTF-8 bytes. The projection is what reaches a prompt or a context view: a soul may
    be long to read, but every run pays for the part it carries, so that part is capped apart."""

    max_bytes: Positive = 64 * 1024  # the whole document, as stored
    max_body_bytes: Positive = 32 * 1024  # the markdown after the front matter
    context_projection_bytes: NonNegative = 4 * 1024  # the head of the body a prompt carries

    def __post_init__(self) -> None:
        # Limits come from configuration, read once at start-up: a nonsense value should stop
        # the service there rather than refuse (or let through) every document later.
        if self.max_bytes < 1 or self.max_body_bytes < 1 or self.context_projection_bytes < 0:
            raise ValueError(f"soul limits must be positive sizes in bytes, got {self!r}")


DEFAULT_LIMITS: Final = SoulLimits()


class SoulDiagnostic(msgspec.Struct, frozen=True):
    code: str
    severity: Severity
    message: str
    line: int  # 1-based, in the document as written (a byte-order mark is not a character)
    column: int  # 1-based, in characters (code points), as an editor counts them
    field: str  # the front-matter key, `principles[2]` for a list item; "" outside the front matter
    section: Section
    source_path: str
    owner_surface: str = OWNER_SURFACE


class SoulFrontmatter(msgspec.Struct, frozen=True):
    """The front matter's known fields. When the document is invalid this still holds every field
    that could be read, so an editor can show them next to the diagnostics."""

    role: str = ""
    tone: tuple[str, ...] = ()
    principles: tuple[str, ...] = ()
    constraints: tuple[str, ...] = ()
    collaboration: tuple[str, ...] = ()
    memory_policy: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    version: str = ""


class Soul(msgspec.Struct, frozen=True):
    present: bool
    valid: bool
    validation_status: ValidationStatus
    source_path: str
    limits: SoulLimits
    digest: str = ""  # "sha256:<hex>" of the document's bytes exactly as given
    frontmatter: SoulFrontmatter = SoulFrontmatter()
    body: str = ""  # the markdown after the front matter, line endings as "\n"
    projection: str = ""  # the body's head (stripped), at most limits.context_projection_bytes
    truncated: bool = False  # the projection is shorter than the stripped body
    diagnostics: tuple[SoulDiagnostic, ...] = ()

    @property
    def errors(self) -> tuple[SoulDiagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == "error")
