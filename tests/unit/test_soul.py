"""An agent's soul document: what a person sees when they set one or ask for it to be checked
(the fields read, each diagnostic's code and place), and what reaches the agent's prompt."""

from __future__ import annotations

import hashlib

import msgspec
import pytest

from libs.soul import DEFAULT_LIMITS, Soul, SoulLimits, missing, parse, system_prompt_section
from libs.soul.model import CODES
from libs.soul.view import config_provenance, soul_summary, soul_view

VALID = """---
role: Careful backend engineer for the billing service
tone: [plain, direct]
principles:
  - Read the code around a change before making it
  - Prefer the smallest change that works
constraints:
  - Never touch the migrations folder
collaboration:
  - Ask before changing a public API
memory_policy:
  - Remember the team's naming conventions
tags: [backend, billing]
version: "1.2"
---

# How I work

I keep changes small and explain them.
"""


def where(soul: Soul) -> list[tuple[str, str, int, int, str]]:
    """Each diagnostic as a person reads it in an editor's problem list."""
    return [(d.code, d.severity, d.line, d.column, d.field) for d in soul.diagnostics]


def test_a_valid_document_gives_back_every_field() -> None:
    soul = parse(VALID, source_path="souls/billing.md")

    assert (soul.present, soul.valid, soul.validation_status) == (True, True, "valid")
    assert soul.diagnostics == ()
    fm = soul.frontmatter
    assert fm.role == "Careful backend engineer for the billing service"
    assert fm.tone == ("plain", "direct")
    assert fm.principles == ("Read the code around a change before making it", "Prefer the smallest change that works")
    assert fm.constraints == ("Never touch the migrations folder",)
    assert fm.collaboration == ("Ask before changing a public API",)
    assert fm.memory_policy == ("Remember the team's naming conventions",)
    assert fm.tags == ("backend", "billing")
    assert fm.version == "1.2"
    assert soul.body == "\n# How I work\n\nI keep changes small and explain them.\n"
    assert soul.projection == "# How I work\n\nI keep changes small and explain them."
    assert soul.truncated is False
    assert soul.source_path == "souls/billing.md"
    assert soul.digest == "sha256:" + hashlib.sha256(VALID.encode()).hexdigest()


def test_no_document_is_missing_not_invalid() -> None:
    for soul in (parse(None), missing()):
        assert (soul.present, soul.valid, soul.validation_status) == (False, False, "missing")
        assert soul.diagnostics == () and soul.digest == "" and soul.body == ""
        assert system_prompt_section(soul) == ""


BODY = "---\nrole: a\n---\nbody\n"

# One document per problem: (document, limits, code, severity, line, column, field).
PROBLEMS = [
    ("", None, "document_empty", "error", 1, 1, ""),
    ("---\nrole: abc\n---\nbody text\n", SoulLimits(max_bytes=16), "document_too_large", "error", 3, 3, ""),
    (b"---\nrole: caf\xe9\n---\nbody\n", None, "encoding_invalid", "error", 2, 10, ""),
    ("---\nrole: a\x00b\n---\nbody\n", None, "nul_character", "error", 2, 8, ""),
    ("\ufeff" + BODY, None, "byte_order_mark", "info", 1, 1, ""),
    ("# Just markdown\n", None, "frontmatter_missing", "error", 1, 1, ""),
    ("---\nrole: a\nbody\n", None, "frontmatter_unclosed", "error", 1, 1, ""),
    ("---\n- a\n- b\n---\nbody\n", None, "frontmatter_not_mapping", "error", 2, 1, ""),
    ("---\nrole: a\n  tone: b\n---\nbody\n", None, "yaml_syntax", "error", 3, 7, ""),
    ("---\ntone: [calm]\n---\nbody\n", None, "field_required", "error", 1, 1, "role"),
    ("---\nrole: [a, b]\n---\nbody\n", None, "field_type", "error", 2, 7, "role"),
    ("---\nrole: ''\n---\nbody\n", None, "field_empty", "error", 2, 7, "role"),
    ("---\nrole: a\nversion: 1.0\n---\nbody\n", None, "field_coerced", "warning", 3, 10, "version"),
    ("---\nrole: a\nrole: b\n---\nbody\n", None, "duplicate_field", "error", 3, 1, "role"),
    ("---\nrole: a\nprinciple: [x]\n---\nbody\n", None, "unknown_field", "warning", 3, 1, "principle"),
    ("---\nrole: a\n---\n\n  \n", None, "body_empty", "warning", 4, 1, ""),
    ("---\nrole: a\n---\n0123456789\n", SoulLimits(max_body_bytes=8), "body_too_large", "error", 4, 9, ""),
    ("---\nrole: a\n---\n\nabcdefgh\n", SoulLimits(context_projection_bytes=4), "body_truncated", "info", 5, 5, ""),
]


@pytest.mark.parametrize(
    ("document", "limits", "code", "severity", "line", "column", "field"),
    PROBLEMS,
    ids=[p[2] for p in PROBLEMS],
)
def test_each_problem_is_reported_where_it_is(
    document: str | bytes, limits: SoulLimits | None, code: str, severity: str, line: int, column: int, field: str
) -> None:
    soul = parse(document, limits=limits or DEFAULT_LIMITS)

    assert (code, severity, line, column, field) in where(soul)
    found = next(d for d in soul.diagnostics if d.code == code)
    assert found.message and found.owner_surface == "soul" and found.source_path == "SOUL.md"
    assert soul.present is True
    # Only an error makes a soul invalid; a warning or a note leaves it usable.
    assert soul.valid is (severity != "error")
    assert soul.validation_status == ("invalid" if severity == "error" else "valid")


def test_every_code_has_a_document_that_produces_it() -> None:
    assert sorted({p[2] for p in PROBLEMS}) == sorted(CODES)


def test_a_diagnostic_says_which_section_it_is_about() -> None:
    sections = {d.code: d.section for p in PROBLEMS for d in parse(p[0], limits=p[1] or DEFAULT_LIMITS).diagnostics}

    assert sections["yaml_syntax"] == sections["unknown_field"] == "frontmatter"
    assert sections["body_too_large"] == sections["body_empty"] == "body"
    assert sections["document_too_large"] == sections["encoding_invalid"] == "document"


def test_list_items_are_named_by_their_index_and_only_good_ones_are_kept() -> None:
    soul = parse("---\nrole: a\nprinciples:\n  - ok\n  - 3\n  - {x: y}\n  - ''\n  -\n---\nbody\n")

    assert where(soul) == [
        ("field_coerced", "warning", 5, 5, "principles[1]"),
        ("field_type", "error", 6, 5, "principles[2]"),
        ("field_empty", "error", 7, 5, "principles[3]"),
        ("field_empty", "error", 8, 4, "principles[4]"),
    ]
    assert soul.frontmatter.principles == ("ok", "3")
    assert soul.valid is False


def test_what_is_taken_with_a_warning() -> None:
    soul = parse("---\nrole: a\ntone: warm\ntags:\nversion: 1.10\ntone_of_voice: x\n---\nbody\n")

    assert soul.valid is True
    assert soul.frontmatter.tone == ("warm",)  # one text, taken as a one-item list
    assert soul.frontmatter.tags == ()  # left empty: as if not given
    assert soul.frontmatter.version == "1.10"  # the text written, not the number 1.1
    assert [(d.code, d.field, d.severity) for d in soul.diagnostics] == [
        ("field_coerced", "tone", "warning"),
        ("field_empty", "tags", "warning"),
        ("field_coerced", "version", "warning"),
        ("unknown_field", "tone_of_voice", "warning"),
    ]


def test_an_empty_role_points_at_its_key() -> None:
    soul = parse("---\nrole:\n---\nbody\n")

    assert where(soul) == [("field_empty", "error", 2, 1, "role")]


def test_yaml_syntax_errors_are_placed_in_the_document_and_worded_plainly() -> None:
    soul = parse("---\nrole: a\ntone: [calm, direct\n---\nbody\n")

    [problem] = soul.diagnostics
    assert (problem.code, problem.line, problem.column) == ("yaml_syntax", 4, 1)
    assert "the end of the front matter" in problem.message
    assert "line 3, column 7" in problem.message  # where the unclosed list starts


def test_a_document_without_front_matter_is_refused_and_its_text_kept_as_body() -> None:
    soul = parse("Be kind.\n")

    assert where(soul) == [("frontmatter_missing", "error", 1, 1, "")]
    assert soul.body == "Be kind.\n"
    assert system_prompt_section(soul) == ""


def test_front_matter_after_blank_lines_says_where_it_starts() -> None:
    soul = parse("\n\n---\nrole: a\n---\nbody\n")

    assert where(soul) == [("frontmatter_missing", "error", 1, 1, "")]
    assert "line 3" in soul.diagnostics[0].message


def test_an_unclosed_front_matter_reads_no_field() -> None:
    soul = parse("---\nrole: a\ntone: [calm]\n\nThe body, or is it?\n")

    assert where(soul) == [("frontmatter_unclosed", "error", 1, 1, "")]
    assert soul.frontmatter.role == "" and soul.body == ""


def test_front_matter_that_is_a_list_is_refused() -> None:
    soul = parse("---\n- role: a\n---\nbody\n")

    assert where(soul) == [("frontmatter_not_mapping", "error", 2, 1, "")]
    assert "a list" in soul.diagnostics[0].message


def test_empty_front_matter_lacks_its_role() -> None:
    assert where(parse("---\n---\nbody\n")) == [("field_required", "error", 1, 1, "role")]


def test_crlf_line_endings_read_like_lf_and_keep_their_own_digest() -> None:
    crlf = VALID.replace("\n", "\r\n")
    soul, lf = parse(crlf), parse(VALID)

    assert soul.valid and soul.frontmatter == lf.frontmatter and soul.body == lf.body
    assert soul.digest == "sha256:" + hashlib.sha256(crlf.encode()).hexdigest() != lf.digest
    # Positions are the same as with LF endings.
    bad = "---\r\nrole: a\r\nversion: 1.0\r\n---\r\nbody\r\n"
    assert where(parse(bad)) == [("field_coerced", "warning", 3, 10, "version")]


def test_a_byte_order_mark_is_skipped_by_every_position_but_kept_in_the_digest() -> None:
    document = "\ufeff---\nrole: a\nversion: 1.0\n---\nbody\n"
    soul = parse(document.encode())

    assert where(soul) == [("byte_order_mark", "info", 1, 1, ""), ("field_coerced", "warning", 3, 10, "version")]
    assert soul.valid and soul.frontmatter.role == "a"
    assert soul.digest == "sha256:" + hashlib.sha256(document.encode()).hexdigest()


def test_an_oversize_document_is_refused_unread() -> None:
    document = "---\nrole: a\n---\n" + "x" * (DEFAULT_LIMITS.max_bytes + 1)
    soul = parse(document)

    assert [d.code for d in soul.diagnostics] == ["document_too_large"]
    assert soul.valid is False and soul.body == "" and soul.frontmatter.role == ""
    assert str(len(document)) in soul.diagnostics[0].message


def test_an_oversize_body_is_refused_but_the_front_matter_is_still_checked() -> None:
    limits = SoulLimits(max_body_bytes=8)
    soul = parse("---\nrole: a\ncolour: red\n---\n" + "é" * 10 + "\n", limits=limits)

    assert [d.code for d in soul.diagnostics] == ["unknown_field", "body_too_large"]
    # 8 bytes hold four 2-byte characters: the limit is passed at the fifth, column 5.
    assert where(soul)[1] == ("body_too_large", "error", 5, 5, "")
    assert system_prompt_section(soul) == ""


def test_the_projection_never_splits_a_character() -> None:
    body = "aé€😀" * 5  # 1, 2, 3 and 4 bytes in UTF-8
    for limit in range(len(body.encode()) + 2):
        soul = parse(f"---\nrole: a\n---\n{body}\n", limits=SoulLimits(context_projection_bytes=limit))
        projected = soul.projection.encode()

        assert body.startswith(soul.projection)
        assert len(projected) <= limit
        # The longest head that fits: the next whole character would not.
        rest = body[len(soul.projection) :]
        assert not rest or len(projected) + len(rest[0].encode()) > limit
        assert soul.truncated is bool(rest) and soul.valid


def test_bad_input_never_raises() -> None:
    documents: list[str | bytes] = [
        "---\nrole: " + "[" * 5000 + "\n---\n",  # deeper than the YAML reader can go
        "---\nrole: a\x01\n---\n",  # a control character YAML refuses
        "---\nrole: a\n<<: 1\n---\n",  # a merge of something not a mapping
        "---\nrole: a\nversion: 2001-02-30\n---\n",  # a date that is not one
        "---\nrole: a\n[1, 2]: x\n? {a: b}\n: y\n---\n",  # keys that are not names
        "---\nrole: !!python/object/apply:os.system ['true']\n---\n",
        "---\nrole: a\ud800\n---\n",  # a lone surrogate: not UTF-8 at all
        b"\xff\xfe\x00\x00",
        "---",
        "---\n---",
        "\r\r\r",
    ]
    for document in documents:
        soul = parse(document)
        assert soul.present and soul.diagnostics, document


def test_a_tag_yaml_would_act_on_is_refused_as_text() -> None:
    soul = parse("---\nrole: !!python/object/apply:os.system ['true']\n---\nbody\n")

    assert where(soul) == [("field_type", "error", 2, 7, "role")]


def test_a_date_in_place_of_text_is_kept_as_written() -> None:
    soul = parse("---\nrole: a\nversion: 2001-02-30\n---\nbody\n")

    assert soul.frontmatter.version == "2001-02-30" and soul.valid


def test_diagnostics_come_in_document_order() -> None:
    soul = parse("---\nrolle: a\ntone: 3\n---\n")

    assert [(d.line, d.code) for d in soul.diagnostics] == [
        (1, "field_required"),
        (2, "unknown_field"),
        (3, "field_coerced"),
        (3, "field_coerced"),
        (5, "body_empty"),
    ]


def test_the_prompt_section_of_a_valid_soul() -> None:
    section = system_prompt_section(parse(VALID))

    assert section == (
        "Your soul, set for you in this workspace. Follow it in everything you do:\n"
        "Role: Careful backend engineer for the billing service\n"
        "Tone: plain, direct\n"
        "\n"
        "Principles:\n"
        "- Read the code around a change before making it\n"
        "- Prefer the smallest change that works\n"
        "\n"
        "Constraints:\n"
        "- Never touch the migrations folder\n"
        "\n"
        "Collaboration:\n"
        "- Ask before changing a public API\n"
        "\n"
        "# How I work\n"
        "\n"
        "I keep changes small and explain them."
    )
    # The product's own fields stay out of what the model reads.
    assert "naming conventions" not in section and "billing]" not in section and "1.2" not in section


def test_the_prompt_section_says_when_the_body_was_cut() -> None:
    soul = parse("---\nrole: a\n---\nabcdefgh\n", limits=SoulLimits(context_projection_bytes=4))

    assert system_prompt_section(soul) == (
        "Your soul, set for you in this workspace. Follow it in everything you do:\nRole: a\n\n"
        "abcd\n(The rest of this soul is cut to fit.)"
    )


def test_an_invalid_soul_adds_nothing_to_the_prompt() -> None:
    assert system_prompt_section(parse("---\nrole: a\nrole: b\n---\nbody\n")) == ""
    assert system_prompt_section(parse("---\nrole: a\n---\nbody\n")) != ""


def test_limits_that_make_no_sense_are_refused_where_they_are_set() -> None:
    with pytest.raises(ValueError):
        SoulLimits(max_bytes=0)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"context_projection_bytes": -1}', type=SoulLimits)


SPEC_VIEW = {
    "active",
    "agent_name",
    "body",
    "config_provenance",
    "created_at",
    "diagnostics",
    "digest",
    "enabled",
    "frontmatter",
    "limits",
    "present",
    "revision_id",
    "snapshot_id",
    "source_path",
    "truncated",
    "valid",
    "validation_status",
}
SPEC_SUMMARY = {
    "active",
    "config_digest",
    "digest",
    "enabled",
    "max_body_bytes",
    "max_bytes",
    "present",
    "principles",
    "role",
    "snapshot_id",
    "source_path",
    "tone",
    "truncated",
    "valid",
    "validation_status",
}


def test_the_api_views_carry_the_spec_fields_exactly() -> None:
    soul = parse("---\nrole: a\nversion: 1.0\n---\nbody\n")
    provenance = config_provenance(soul.limits, enabled=True, source="default")

    shown = msgspec.json.decode(msgspec.json.encode(soul_view(soul, agent_name="reviewer", provenance=provenance)))
    summary = msgspec.json.decode(msgspec.json.encode(soul_summary(soul, provenance=provenance)))

    assert set(shown) == SPEC_VIEW and set(summary) == SPEC_SUMMARY
    assert set(shown["config_provenance"]) == {
        "context_projection_bytes",
        "digest",
        "enabled",
        "max_body_bytes",
        "source",
    }
    assert set(shown["diagnostics"][0]) == {
        "code",
        "column",
        "field",
        "line",
        "message",
        "owner_surface",
        "section",
        "severity",
        "source_path",
    }
    assert set(shown["frontmatter"]) == {
        "collaboration",
        "constraints",
        "memory_policy",
        "principles",
        "role",
        "tags",
        "tone",
        "version",
    }
    assert set(shown["limits"]) == {"context_projection_bytes", "max_body_bytes", "max_bytes"}
    assert shown["active"] is True and summary["config_digest"] == provenance.digest


def test_a_disabled_or_invalid_soul_is_not_active() -> None:
    valid, invalid = parse("---\nrole: a\n---\nbody\n"), parse("---\n---\nbody\n")
    on = config_provenance(DEFAULT_LIMITS, enabled=True, source="default")
    off = config_provenance(DEFAULT_LIMITS, enabled=False, source="default")

    assert soul_view(valid, agent_name="a", provenance=off).active is False
    assert soul_view(invalid, agent_name="a", provenance=on).active is False
    assert soul_summary(missing(), provenance=on).active is False
    # The settings' digest follows the settings, not where they came from.
    assert config_provenance(DEFAULT_LIMITS, enabled=True, source="workspace").digest == on.digest != off.digest
