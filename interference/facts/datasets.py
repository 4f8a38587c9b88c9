"""Fact loaders: the EntityQuestions directory layout and the toolkit's own JSONL format.

EntityQuestions (Sciavolino et al. 2021) ships as `<dir>/{train,dev,test}/P<id>.<split>.json`, each a JSON list of
`{"question": ..., "answers": [...]}`, plus `relation_query_templates.json` mapping relation ids to question
templates in which `[X]` marks the subject. A loaded `Fact` takes its relation from the file name, its subject from
matching the question against the relation's template, its object from the first answer and its aliases from the
rest. The same subject asked twice with different answers (two entities sharing a name) is ambiguous: every copy is
dropped. Exact repeats are kept once.

Every problem with the input is a `DataError` whose one-line message names the file, the line or item, and the field.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path

from ..io import atomic
from ..io.errors import InterferenceError
from .fact import Fact

SPLITS = ("train", "dev", "test")
TEMPLATES_FILE = "relation_query_templates.json"
SUBJECT_SLOT = "[X]"
_FILE_PATTERN = re.compile(r"^(?P<relation>P\d+)\.(?P<split>[a-z]+)\.json$")
_JSONL_FIELDS = ("subject", "relation", "object", "question", "aliases", "key_kind")


class DataError(InterferenceError):
    """A data file is missing, malformed or inconsistent; the message names the file, line or item, and field."""


def load_templates(directory: str | os.PathLike) -> dict[str, str]:
    """The relation id -> question template map of an EntityQuestions directory (each template has one `[X]`)."""
    path = Path(directory) / TEMPLATES_FILE
    if not path.is_file():
        raise DataError(f"{path}: templates file not found")
    data = _read_json(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object mapping relation ids to templates")
    for relation, template in data.items():
        if not isinstance(template, str) or template.count(SUBJECT_SLOT) != 1:
            raise DataError(f"{path}: relation {relation!r}: template must be a string with exactly one {SUBJECT_SLOT}")
    return dict(data)


def entityquestions_relations(directory: str | os.PathLike, split: str = "test") -> list[str]:
    """The relations of an EntityQuestions directory that have `split` questions and a template, read from the file
    names alone (no question is parsed)."""
    directory = Path(directory)
    found = {m["relation"] for f in (directory / split).glob("*.json") if (m := _FILE_PATTERN.match(f.name))
             and m["split"] == split}
    return sorted(found & set(load_templates(directory)))


def load_entityquestions(
    directory: str | os.PathLike,
    split: str = "test",
    relations: Sequence[str] | None = None,
    limit_per_relation: int | None = None,
) -> list[Fact]:
    """Facts of one EntityQuestions split, relation by relation (in the order of `relations`, else by id).

    Args:
        directory: the dataset root holding `relation_query_templates.json` and the split folders.
        split: "train", "dev" or "test".
        relations: relation ids to load (e.g. ["P36", "P17"]); all relations present in the split when None.
        limit_per_relation: keep at most this many facts of each relation (the first ones in file order).
    """
    root = Path(directory)
    if not root.is_dir():
        raise DataError(f"{root}: EntityQuestions directory not found")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r} (choose one of {', '.join(SPLITS)})")
    if limit_per_relation is not None and (not isinstance(limit_per_relation, int) or limit_per_relation < 1):
        raise DataError(f"limit_per_relation must be a positive integer, got {limit_per_relation!r}")
    templates = load_templates(root)
    split_dir = root / split
    if not split_dir.is_dir():
        raise DataError(f"{split_dir}: split folder not found")
    files = _relation_files(split_dir, split, templates)
    if relations is None:
        chosen = sorted(files, key=lambda r: (int(r[1:]), r))
    else:
        chosen = list(dict.fromkeys(relations))
        for relation in chosen:
            if relation not in templates:
                raise DataError(f"{root / TEMPLATES_FILE}: unknown relation {relation!r}")
            if relation not in files:
                raise DataError(f"{split_dir}: no file {relation}.{split}.json for relation {relation}")
    facts: list[Fact] = []
    for relation in chosen:
        loaded = _load_relation_file(files[relation], relation, templates[relation])
        facts.extend(loaded[:limit_per_relation] if limit_per_relation else loaded)
    if not facts:
        raise DataError(f"{split_dir}: split {split!r} holds no facts")
    return facts


def load_facts_jsonl(path: str | os.PathLike, relations: Collection[str] | None = None) -> list[Fact]:
    """Facts from a JSONL file, one object per line.

    Each line holds the fields written by `save_facts_jsonl` (`subject`, `relation`, `object`, `question`, optional
    `aliases` and `key_kind`), or `answers` (object first, then aliases) in place of `object` and `aliases`.
    When `relations` is given, a fact of any other relation is an error.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    facts: list[Fact] = []
    for number, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{number}: malformed JSON ({err.msg})") from err
        facts.append(fact_from_record(record, f"{path}:{number}", relations))
    if not facts:
        raise DataError(f"{path}: no facts in file")
    return facts


def save_facts_jsonl(facts: Iterable[Fact], path: str | os.PathLike) -> Path:
    """Write `facts` to `path` as JSONL, atomically; returns the path."""
    lines = [json.dumps(fact_record(f), ensure_ascii=False) for f in facts]
    return atomic.write_text(path, "".join(line + "\n" for line in lines))


def fact_record(fact: Fact) -> dict:
    """The JSON-ready dict of one fact (the JSONL line format)."""
    return {
        "subject": fact.subject,
        "relation": fact.relation,
        "object": fact.object,
        "question": fact.question,
        "aliases": list(fact.aliases),
        "key_kind": fact.key_kind,
    }


def fact_from_record(record: object, where: str, relations: Collection[str] | None = None) -> Fact:
    """The `Fact` of one JSONL record (see `load_facts_jsonl`); errors name `where` (e.g. "file.jsonl:3")."""
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    unknown = sorted(set(record) - set(_JSONL_FIELDS) - {"answers"})
    if unknown:
        raise DataError(f"{where}: unknown field {unknown[0]!r}")
    if "answers" in record:
        if "object" in record or "aliases" in record:
            raise DataError(f"{where}: field 'answers' replaces 'object' and 'aliases'; give one or the other")
        answers = record["answers"]
        if not isinstance(answers, list) or not answers:
            raise DataError(f"{where}: field 'answers' must be a non-empty list")
        if not all(isinstance(a, str) and a.strip() for a in answers):
            raise DataError(f"{where}: field 'answers' must hold non-empty strings")
        record = {**record, "object": answers[0], "aliases": answers[1:]}
    for name in ("subject", "relation", "question", "object"):
        if name not in record:
            hint = " (or 'answers')" if name == "object" else ""
            raise DataError(f"{where}: field {name!r}{hint} missing")
        value = record[name]
        if not isinstance(value, str) or not value.strip():
            raise DataError(f"{where}: field {name!r} must be a non-empty string")
    if relations is not None and record["relation"] not in relations:
        raise DataError(f"{where}: field 'relation': unknown relation {record['relation']!r}")
    aliases = record.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a.strip() for a in aliases):
        raise DataError(f"{where}: field 'aliases' must be a list of non-empty strings")
    key_kind = record.get("key_kind", "real")
    if not isinstance(key_kind, str) or not key_kind.strip():
        raise DataError(f"{where}: field 'key_kind' must be a non-empty string")
    return Fact(
        subject=record["subject"].strip(),
        relation=record["relation"].strip(),
        object=record["object"].strip(),
        question=record["question"].strip(),
        aliases=tuple(a.strip() for a in aliases),
        key_kind=key_kind,
    )


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason})") from err
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror})") from err


def _read_json(path: Path) -> object:
    return _parse_json(path, _read_text(path))


def _parse_json(path: Path, text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}: malformed JSON ({err.msg})") from err


def _json_list_items(path: Path) -> list[tuple[int, object]]:
    """The items of a JSON file holding one list, each with the line its text starts on."""
    text = _read_text(path)
    data = _parse_json(path, text)
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of {{'question', 'answers'}} objects")
    # The text is valid JSON, so between items there is only whitespace and one comma.
    decoder = json.JSONDecoder()
    position, line, counted = text.index("[") + 1, 1, 0
    items: list[tuple[int, object]] = []
    for _ in data:
        while text[position] in " \t\r\n,":
            position += 1
        line += text.count("\n", counted, position)
        counted = position
        item, position = decoder.raw_decode(text, position)
        items.append((line, item))
    return items


def _relation_files(split_dir: Path, split: str, templates: dict[str, str]) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in sorted(split_dir.glob("*.json")):
        match = _FILE_PATTERN.match(path.name)
        if not match or match["split"] != split:
            continue
        relation = match["relation"]
        if relation not in templates:
            raise DataError(f"{path}: unknown relation {relation!r} (not in {TEMPLATES_FILE})")
        files[relation] = path
    if not files:
        raise DataError(f"{split_dir}: empty split, no P*.{split}.json files")
    return files


def _load_relation_file(path: Path, relation: str, template: str) -> list[Fact]:
    prefix, suffix = template.split(SUBJECT_SLOT)
    facts: list[Fact] = []
    answers_of: dict[str, tuple[str, ...]] = {}
    for index, (line, item) in enumerate(_json_list_items(path)):
        where = f"{path}:{line}: item {index}"
        if not isinstance(item, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(item).__name__}")
        if "question" not in item:
            raise DataError(f"{where}: field 'question' missing")
        question, answers = item["question"], item.get("answers")
        if not isinstance(question, str) or not question.strip():
            raise DataError(f"{where}: field 'question' must be a non-empty string")
        if "answers" not in item:
            raise DataError(f"{where}: field 'answers' missing")
        if not isinstance(answers, list) or not answers:
            raise DataError(f"{where}: field 'answers' must be a non-empty list")
        if not all(isinstance(a, str) and a.strip() for a in answers):
            raise DataError(f"{where}: field 'answers' must hold non-empty strings")
        subject = _subject(question, prefix, suffix)
        if subject is None:
            raise DataError(f"{where}: field 'question' does not match the {relation} template {template!r}")
        answers = tuple(dict.fromkeys(a.strip() for a in answers))
        if subject in answers_of:
            if answers_of[subject] != answers:
                answers_of[subject] = ()  # ambiguous: the same subject with different answers
            continue
        answers_of[subject] = answers
        facts.append(Fact(subject, relation, answers[0], question.strip(), aliases=answers[1:]))
    return [f for f in facts if answers_of[f.subject]]


def _subject(question: str, prefix: str, suffix: str) -> str | None:
    question = question.strip()
    if len(question) <= len(prefix) + len(suffix) or not question.startswith(prefix) or not question.endswith(suffix):
        return None
    subject = question[len(prefix) : len(question) - len(suffix)].strip()
    return subject or None
