"""Fact loaders: the EntityQuestions layout and JSONL, and their one-line errors naming file, line and field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from interference.facts import Fact
from interference.facts.datasets import (
    DataError,
    load_entityquestions,
    load_facts_jsonl,
    load_templates,
    save_facts_jsonl,
)
from interference.io.errors import InterferenceError

MINI = Path(__file__).parent / "fixtures" / "entityquestions_mini"


@pytest.fixture
def eq(tmp_path) -> Path:
    """A writable copy of the miniature EntityQuestions directory."""
    return Path(shutil.copytree(MINI, tmp_path / "eq"))


def write_items(path: Path, items: list) -> Path:
    """Write a relation file the way EntityQuestions does (an indented JSON list)."""
    path.write_text(json.dumps(items, indent=4) + "\n", encoding="utf-8")
    return path


def item_line(path: Path, index: int) -> int:
    """The line on which item `index` of an indented JSON list starts."""
    lines = path.read_text(encoding="utf-8").split("\n")
    starts = [n for n, line in enumerate(lines, start=1) if line[:5] in ("    {", "    [")]
    return starts[index]


def one_line_error(call) -> str:
    with pytest.raises(DataError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message, message
    assert isinstance(err.value, InterferenceError)
    return message


def test_loads_the_layout_into_facts():
    facts = load_entityquestions(MINI, "test")
    assert [f.relation for f in facts] == ["P17"] * 3 + ["P36"] * 4  # relations in id order, items in file order
    samos = next(f for f in facts if f.subject == "Samos")
    assert samos == Fact("Samos", "P36", "Vathy", "What is the capital of Samos?", aliases=("Samos town",))
    assert next(f for f in facts if f.subject == "Marin County").object == "San Rafael"
    templates = load_templates(MINI)
    for fact in facts:
        assert templates[fact.relation].replace("[X]", fact.subject) == fact.question


def test_relations_order_and_limit():
    facts = load_entityquestions(MINI, "test", relations=["P36", "P17"], limit_per_relation=2)
    assert [(f.relation, f.subject) for f in facts] == [
        ("P36", "France"),
        ("P36", "Marin County"),
        ("P17", "Lake Bled"),
        ("P17", "Kyoto"),
    ]
    assert len(load_entityquestions(MINI, "dev")) == 12
    assert [f.object for f in load_entityquestions(MINI, "train")] == ["Cairo"]


def test_ambiguous_subjects_are_dropped_and_exact_repeats_kept_once(eq):
    q = "What is the capital of {}?".format
    write_items(
        eq / "test" / "P36.test.json",
        [
            {"question": q("Georgia"), "answers": ["Tbilisi"]},
            {"question": q("Peru"), "answers": ["Lima"]},
            {"question": q("Georgia"), "answers": ["Atlanta"]},
            {"question": q("Peru"), "answers": ["Lima"]},
        ],
    )
    facts = load_entityquestions(eq, "test", ["P36"])
    assert [(f.subject, f.object) for f in facts] == [("Peru", "Lima")]


def test_real_entityquestions_layout_loads(entityquestions_dir):
    templates = load_templates(entityquestions_dir)
    assert templates["P36"] == "What is the capital of [X]?"
    facts = load_entityquestions(entityquestions_dir, "test", relations=["P36", "P17"], limit_per_relation=50)
    assert [f.relation for f in facts] == ["P36"] * 50 + ["P17"] * 50
    assert len({f.key for f in facts}) == 100
    for fact in facts:
        assert templates[fact.relation].replace("[X]", fact.subject) == fact.question
        assert fact.object and fact.object not in fact.aliases
    dev = load_entityquestions(entityquestions_dir, "dev")
    assert len({f.relation for f in dev}) >= 10 and len(dev) > 5000


# --- EntityQuestions errors -------------------------------------------------------------------------------------


def test_malformed_json_names_file_and_line(eq):
    path = eq / "test" / "P36.test.json"
    lines = path.read_text().split("\n")
    assert lines[9].strip() == '"answers": ['
    lines[9] = lines[9].replace('"answers":', '"answers"')  # line 10 loses its colon
    path.write_text("\n".join(lines))
    message = one_line_error(lambda: load_entityquestions(eq, "test", ["P36"]))
    assert f"{path}:10: malformed JSON" in message


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        ({"answers": ["Lima"]}, "field 'question' missing"),
        ({"question": "What is the capital of Peru?"}, "field 'answers' missing"),
        ({"question": "What is the capital of Peru?", "answers": []}, "field 'answers' must be a non-empty list"),
        ({"question": "What is the capital of Peru?", "answers": "Lima"}, "field 'answers' must be a non-empty list"),
        ({"question": "What is the capital of Peru?", "answers": [""]}, "field 'answers' must hold non-empty"),
        ({"question": "", "answers": ["Lima"]}, "field 'question' must be a non-empty string"),
        ({"question": "Who founded Peru?", "answers": ["Lima"]}, "field 'question' does not match the P36 template"),
        (["Peru", "Lima"], "expected a JSON object, got list"),
    ],
)
def test_bad_items_name_file_line_item_and_field(eq, item, problem):
    good = {"question": "What is the capital of Chile?", "answers": ["Santiago"]}
    path = write_items(eq / "test" / "P36.test.json", [good, good, item])
    message = one_line_error(lambda: load_entityquestions(eq, "test", ["P36"]))
    assert message.startswith(f"{path}:{item_line(path, 2)}: item 2: ")
    assert problem in message


def test_item_line_numbers_follow_the_text(eq):
    path = eq / "test" / "P36.test.json"
    text = '[{"question": "What is the capital of Chile?", "answers": ["Santiago"]},\n\n\n  {"answers": []}]'
    path.write_text(text)
    assert f"{path}:4: item 1: field 'question' missing" in one_line_error(lambda: load_entityquestions(eq, "test"))


def test_not_a_list(eq):
    path = eq / "test" / "P17.test.json"
    path.write_text('{"question": "Which country is Kyoto located in?"}')
    assert f"{path}: expected a JSON list" in one_line_error(lambda: load_entityquestions(eq, "test"))


def test_unknown_relation_in_a_file_name_and_in_the_request(eq):
    write_items(eq / "test" / "P99.test.json", [{"question": "Who is X?", "answers": ["Y"]}])
    message = one_line_error(lambda: load_entityquestions(eq, "test"))
    assert "P99.test.json: unknown relation 'P99'" in message
    (eq / "test" / "P99.test.json").unlink()
    message = one_line_error(lambda: load_entityquestions(eq, "test", ["P36", "P20"]))
    assert "relation_query_templates.json: unknown relation 'P20'" in message
    message = one_line_error(lambda: load_entityquestions(eq, "test", ["P19"]))  # has a template, has no file
    assert "no file P19.test.json" in message


def test_missing_directory_split_folder_and_templates(eq, tmp_path):
    assert "EntityQuestions directory not found" in one_line_error(lambda: load_entityquestions(tmp_path / "nope"))
    shutil.rmtree(eq / "dev")
    assert f"{eq / 'dev'}: split folder not found" in one_line_error(lambda: load_entityquestions(eq, "dev"))
    assert "unknown split 'validation'" in one_line_error(lambda: load_entityquestions(eq, "validation"))
    (eq / "relation_query_templates.json").unlink()
    assert "relation_query_templates.json: templates file not found" in one_line_error(lambda: load_entityquestions(eq))


def test_bad_templates(eq):
    path = eq / "relation_query_templates.json"
    path.write_text(json.dumps({"P36": "What is the capital?"}))
    message = one_line_error(lambda: load_templates(eq))
    assert f"{path}: relation 'P36': template must be a string with exactly one [X]" in message


def test_empty_split(eq):
    for path in (eq / "test").glob("*.json"):
        path.unlink()
    assert "empty split, no P*.test.json files" in one_line_error(lambda: load_entityquestions(eq, "test"))
    write_items(eq / "test" / "P36.test.json", [])
    assert "split 'test' holds no facts" in one_line_error(lambda: load_entityquestions(eq, "test"))


def test_bad_limit():
    assert "limit_per_relation must be a positive integer" in one_line_error(
        lambda: load_entityquestions(MINI, "test", limit_per_relation=0)
    )


# --- JSONL ------------------------------------------------------------------------------------------------------


def test_jsonl_round_trip(tmp_path):
    facts = [
        Fact("Bergadena", "country", "Morvania", "Which country is Bergadena in?", key_kind="name"),
        Fact("Samos", "P36", "Vathy", "What is the capital of Samos?", aliases=("Samos town",)),
        Fact("a3f9", "country", "Zélande", "Which country is a3f9 in?", key_kind="uuid"),
    ]
    path = save_facts_jsonl(facts, tmp_path / "sub" / "facts.jsonl")
    assert load_facts_jsonl(path) == facts
    assert not list(path.parent.glob(".*.tmp")), "temporary file left behind"


def test_jsonl_answers_form_and_relation_check(tmp_path):
    path = tmp_path / "facts.jsonl"
    record = {"subject": "Peru", "relation": "P36", "question": "What is the capital of Peru?"}
    path.write_text(json.dumps({**record, "answers": ["Lima", "Ciudad de los Reyes"]}) + "\n\n")
    (fact,) = load_facts_jsonl(path)
    assert fact.object == "Lima" and fact.aliases == ("Ciudad de los Reyes",)
    assert f"{path}:1: field 'relation': unknown relation 'P36'" in one_line_error(
        lambda: load_facts_jsonl(path, relations={"P17"})
    )


PERU = {"subject": "Peru", "relation": "P36", "question": "What is the capital of Peru?"}


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({"subject": "Peru", "relation": "P36", "object": "Lima"}, "field 'question' missing"),
        (PERU, "field 'object' (or 'answers') missing"),
        ({**PERU, "answers": []}, "field 'answers' must be a non-empty list"),
        ({**PERU, "answers": [3]}, "field 'answers' must hold non-empty strings"),
        ({**PERU, "subject": " ", "object": "Lima"}, "field 'subject' must be a non-empty string"),
        ({**PERU, "object": "Lima", "aliases": "Ciudad"}, "field 'aliases' must be a list"),
        ({**PERU, "object": "Lima", "colour": "red"}, "unknown field 'colour'"),
        ({**PERU, "object": "Lima", "answers": ["Lima"]}, "give one or the other"),
        (["Peru"], "expected a JSON object, got list"),
    ],
)
def test_jsonl_bad_records_name_file_line_and_field(tmp_path, record, problem):
    good = {"subject": "Chile", "relation": "P36", "object": "Santiago", "question": "What is the capital of Chile?"}
    path = tmp_path / "facts.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(record) + "\n")
    message = one_line_error(lambda: load_facts_jsonl(path))
    assert message.startswith(f"{path}:2: ") and problem in message


def test_jsonl_malformed_missing_and_empty(tmp_path):
    path = tmp_path / "facts.jsonl"
    good = {"subject": "Chile", "relation": "P36", "object": "Santiago", "question": "What is the capital of Chile?"}
    path.write_text(json.dumps(good) + "\n\n" + '{"subject": "Peru",\n')
    assert f"{path}:3: malformed JSON" in one_line_error(lambda: load_facts_jsonl(path))
    assert "file not found" in one_line_error(lambda: load_facts_jsonl(tmp_path / "missing.jsonl"))
    path.write_text("\n")
    assert f"{path}: no facts in file" in one_line_error(lambda: load_facts_jsonl(path))
    path.write_bytes(b"\xff\xfe\x00")
    assert "not UTF-8" in one_line_error(lambda: load_facts_jsonl(path))
