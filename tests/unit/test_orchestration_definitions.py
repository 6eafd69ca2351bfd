"""Orchestration definitions (spec 004): the shipped examples load, and each kind of mistake in a
file is refused at start with the file, the line, the step and the field named."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.orchestrations import AgentStep, ConditionStep, HumanStep
from libs.config import DEFAULT_ORCHESTRATIONS_DIR, Settings
from libs.orchestrations.definitions import DefinitionError, Problem, digest_of, load_dir, parse
from services.gateway.app import create_app

VALID = """\
id: orch-demo
name: Demo
description: A small flow
state_schema:
  topic: {}
  draft: {}
  decision: {}
steps:
  - id: step-write
    type: agent
    name: Write
    prompt: "Write about {{ topic }}"
    output: draft
  - id: step-approve
    type: human
    name: Approve
    prompt: Approve the draft?
    agent_context: "{{ draft }}"
    fields:
      - {name: decision, type: select, label: Decision, options: [approve, reject]}
  - id: step-again
    type: condition
    name: Again?
    key: decision
    equals: reject
    goto: step-write
"""


def problems_of(text: str) -> list[Problem]:
    with pytest.raises(DefinitionError) as caught:
        parse(text, "demo.yaml")
    return caught.value.problems


def only_problem(text: str) -> Problem:
    (problem,) = problems_of(text)
    return problem


def test_the_shipped_examples_load() -> None:
    catalogue = load_dir(Path(DEFAULT_ORCHESTRATIONS_DIR))
    summaries = {s.id: s for s in catalogue.summaries()}

    research = summaries["orch-research-report"]
    assert (research.name, research.description, research.steps) == (
        "Research → Report",
        "Research a topic and generate a report",
        5,
    )
    assert "orch-code-change" in summaries
    detail = catalogue.detail("orch-research-report")
    assert detail is not None and detail.digest.startswith("sha256:")
    kinds = [type(s) for s in detail.steps]
    assert kinds == [AgentStep, AgentStep, HumanStep, ConditionStep, AgentStep]
    approve = detail.steps[2]
    assert isinstance(approve, HumanStep)
    assert [(f.name, f.type, f.options) for f in approve.fields] == [
        ("decision", "select", ["approve", "reject"]),
        ("notes", "text", []),
    ]
    code = catalogue.detail("orch-code-change")
    assert code is not None and any(isinstance(s, AgentStep) and "write_file" in s.tools for s in code.steps)
    assert catalogue.detail("orch-nothing") is None


def test_a_valid_definition_has_defaults_and_a_digest_of_what_it_says() -> None:
    definition = parse(VALID, "demo.yaml")
    write, _, again = definition.orchestration.steps

    assert isinstance(write, AgentStep) and write.tools == [] and write.max_turns >= 1
    assert isinstance(again, ConditionStep) and again.max_visits == 3
    assert definition.digest == digest_of(definition.orchestration)
    # Layout and comments are not what a definition says; a changed prompt is.
    relaid = "# a comment\n" + VALID.replace("name: Demo", "name:   Demo")
    assert parse(relaid, "demo.yaml").digest == definition.digest
    assert parse(VALID.replace("Write about", "Write on"), "demo.yaml").digest != definition.digest


def test_an_unknown_step_kind_names_the_step_and_the_line() -> None:
    problem = only_problem(VALID.replace("type: agent", "type: robot"))

    assert (problem.file, problem.step, problem.field, problem.line) == ("demo.yaml", "step-write", "type", 10)
    assert "robot" in problem.message
    assert str(problem).startswith("demo.yaml:10: step 'step-write': type:")


def test_a_missing_field_is_named() -> None:
    problem = only_problem(VALID.replace("    output: draft\n", ""))

    assert (problem.step, problem.field) == ("step-write", "output")
    assert "missing" in problem.message


def test_an_unknown_field_is_named() -> None:
    problem = only_problem(VALID.replace("    output: draft\n", "    output: draft\n    temprature: 0\n"))

    assert (problem.step, problem.field) == ("step-write", "temprature")


def test_a_template_naming_a_key_not_in_the_state_schema() -> None:
    problem = only_problem(VALID.replace("{{ topic }}", "{{ subject }}"))

    assert (problem.step, problem.field, problem.line) == ("step-write", "prompt", 12)
    assert "subject" in problem.message


def test_a_malformed_placeholder() -> None:
    problem = only_problem(VALID.replace('"{{ draft }}"', '"{{ draft }"'))

    assert (problem.step, problem.field) == ("step-approve", "agent_context")


def test_an_output_not_in_the_state_schema() -> None:
    problem = only_problem(VALID.replace("output: draft", "output: article"))

    assert (problem.step, problem.field) == ("step-write", "output")


def test_a_condition_going_to_an_unknown_step() -> None:
    problem = only_problem(VALID.replace("goto: step-write", "goto: step-rewrite"))

    assert (problem.step, problem.field, problem.line) == ("step-again", "goto", 26)
    assert "step-rewrite" in problem.message


def test_a_condition_comparing_a_key_with_a_value_of_another_type() -> None:
    problem = only_problem(VALID.replace("equals: reject", "equals: 3"))

    assert (problem.step, problem.field) == ("step-again", "equals")


def test_duplicate_step_ids() -> None:
    problem = only_problem(VALID.replace("id: step-approve", "id: step-write"))

    assert (problem.step, problem.field) == ("step-write", "id")
    assert "steps[0]" in problem.message


def test_a_select_without_options() -> None:
    problem = only_problem(VALID.replace(", options: [approve, reject]", ""))

    assert (problem.step, problem.field, problem.line) == ("step-approve", "fields[0].options", 20)


def test_options_on_a_field_that_is_not_a_select() -> None:
    problem = only_problem(VALID.replace("type: select", "type: text"))

    assert (problem.step, problem.field) == ("step-approve", "fields[0].options")


def test_a_field_of_an_unknown_type() -> None:
    problem = only_problem(VALID.replace("type: select", "type: date"))

    assert (problem.step, problem.field) == ("step-approve", "fields[0].type")


def test_tools_need_a_files_state_key() -> None:
    with_tools = VALID.replace("    output: draft\n", "    output: draft\n    tools: [read_file]\n")
    assert only_problem(with_tools).field == "files"
    on_text = with_tools.replace("tools: [read_file]", "tools: [read_file]\n    files: topic")
    problem = only_problem(on_text)
    assert (problem.field, "type string" in problem.message) == ("files", True)
    ok = on_text.replace("files: topic", "files: repo").replace(
        "  decision: {}", "  decision: {}\n  repo: {type: files}"
    )
    assert parse(ok, "demo.yaml").orchestration.steps[0] == AgentStep(
        id="step-write",
        name="Write",
        prompt="Write about {{ topic }}",
        output="draft",
        tools=["read_file"],
        files="repo",
    )


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    found = problems_of(VALID.replace("{{ topic }}", "{{ subject }}").replace("goto: step-write", "goto: nowhere"))

    assert [(p.step, p.field) for p in found] == [("step-write", "prompt"), ("step-again", "goto")]


def test_a_file_that_is_not_yaml_or_not_a_mapping() -> None:
    broken = only_problem("id: [unclosed\n")
    assert broken.line is not None and "not valid YAML" in broken.message
    assert "mapping" in only_problem("- just\n- a list\n").message


def test_a_key_given_twice() -> None:
    problem = only_problem(VALID.replace("    output: draft\n", "    output: draft\n    output: topic\n"))

    assert (problem.line, "twice" in problem.message) == (14, True)


def test_two_files_with_one_id_and_a_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(VALID)
    (tmp_path / "b.yml").write_text(VALID)
    (tmp_path / "notes.txt").write_text("not a definition")

    with pytest.raises(DefinitionError) as caught:
        load_dir(tmp_path)
    (problem,) = caught.value.problems
    assert problem.file == str(tmp_path / "b.yml") and "orch-demo" in problem.message
    assert str(tmp_path / "a.yaml") in problem.message

    with pytest.raises(DefinitionError, match="does not exist"):
        load_dir(tmp_path / "absent")


def test_the_gateway_does_not_start_with_a_definition_that_is_not_valid(tmp_path: Path) -> None:
    (tmp_path / "demo.yaml").write_text(VALID.replace("goto: step-write", "goto: nowhere"))
    settings = Settings(service="gateway", database_url="postgresql://unused", orchestrations_dir=str(tmp_path))

    with pytest.raises(DefinitionError, match=r"demo.yaml:26: step 'step-again': goto: goes to 'nowhere'"):
        create_app(settings)
