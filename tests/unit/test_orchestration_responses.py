"""A person's response to a human step is checked against its fields: types, a select's
options, required fields, unknown names, and a plain string for a single text field."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.orchestrations import HumanField
from libs.orchestrations.responses import checked

DECISION = HumanField(name="decision", type="select", label="Decision", options=["approve", "reject"])
NOTES = HumanField(name="notes", type="text", label="Notes", required=False)
COPIES = HumanField(name="copies", type="number", label="Copies", required=False)
URGENT = HumanField(name="urgent", type="bool", label="Urgent", required=False)
FIELDS = [DECISION, NOTES, COPIES, URGENT]


def test_a_response_names_every_field_and_an_optional_one_not_given_is_null() -> None:
    assert checked(FIELDS, {"decision": "approve", "copies": 2.5, "urgent": False}) == {
        "decision": "approve",
        "notes": None,
        "copies": 2.5,
        "urgent": False,
    }


@pytest.mark.parametrize(
    ("response", "problem"),
    [
        ({}, "response.decision is required"),
        ({"decision": " "}, "response.decision is required"),
        ({"decision": "maybe"}, "response.decision must be one of: approve, reject"),
        ({"decision": "approve", "notes": 3}, "response.notes must be a string"),
        ({"decision": "approve", "copies": "3"}, "response.copies must be a number"),
        ({"decision": "approve", "copies": True}, "response.copies must be a number"),
        ({"decision": "approve", "urgent": "yes"}, "response.urgent must be true or false"),
        ({"decision": "approve", "colour": "red"}, "response.colour is not a field of this step"),
        ("approve", "response must be an object with the fields decision, notes, copies, urgent"),
        ([1], "response must be an object with the fields decision, notes, copies, urgent"),
    ],
)
def test_what_does_not_fit_the_fields_is_named(response: Any, problem: str) -> None:
    found = checked(FIELDS, response)
    assert isinstance(found, str) and found.startswith(problem), found


def test_a_plain_string_answers_a_single_text_field() -> None:
    comment = HumanField(name="comment", type="text", label="Comment")
    assert checked([comment], "looks good") == {"comment": "looks good"}
    assert checked([comment], "") == "response.comment is required"
