"""Synthetic new facts for a real model (`interference.facts.new_facts`): name-like keys from the model's tokens of real
names, UUID keys, answers from the relation's answer set, determinism, exclusions, limits and speed."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

from interference.facts.new_facts import DEFAULT_SUBJECTS, NewFacts, load_relation, name_pieces
from interference.io.errors import InterferenceError

MINI = Path(__file__).parent / "fixtures" / "entityquestions_mini"
#: Real place names (ASCII, so the test can read the tokenizer's pieces back from its byte-level tokens) with their
#: countries: the train split of the test's P17.
PLACES = {
    "Painblanc": "France", "Bergen": "Norway", "Pasadena": "United States of America", "Wolfsburg": "Germany",
    "Eindhoven": "Netherlands", "Valladolid": "Spain", "Montpellier": "France", "Heidelberg": "Germany",
    "Tamworth": "Australia", "Kalamazoo": "United States of America", "Rotorua": "New Zealand",
    "Fredericton": "Canada", "Barcelona": "Spain", "Salamanca": "Spain", "Gothenburg": "Sweden",
    "Lillehammer": "Norway", "Trondheim": "Norway", "Bratislava": "Slovakia", "Ljubljana": "Slovenia",
    "Timisoara": "Romania", "Plovdiv": "Bulgaria", "Debrecen": "Hungary", "Bydgoszcz": "Poland",
    "Wroclaw": "Poland", "Rzeszow": "Poland", "Kaunas": "Lithuania", "Tartu": "Estonia", "Daugavpils": "Latvia",
    "Vinnytsia": "Ukraine", "Mogilev": "Belarus", "Samarkand": "Uzbekistan", "Karaganda": "Kazakhstan",
    "Isfahan": "Iran", "Tabriz": "Iran", "Mashhad": "Iran", "Peshawar": "Pakistan", "Hyderabad": "India",
    "Coimbatore": "India", "Chittagong": "Bangladesh", "Mandalay": "Myanmar", "Chiang Mai": "Thailand",
    "Battambang": "Cambodia", "Davao City": "Philippines", "Surabaya": "Indonesia", "Kumamoto": "Japan",
    "Sapporo": "Japan", "Daejeon": "South Korea", "Harbin": "China", "Ulaanbaatar": "Mongolia",
    "Marrakesh": "Morocco", "Timbuktu": "Mali", "Kumasi": "Ghana", "Ibadan": "Nigeria", "Mombasa": "Kenya",
    "Arusha": "Tanzania", "Bulawayo": "Zimbabwe", "Stellenbosch": "South Africa", "Valparaiso": "Chile",
    "Cochabamba": "Bolivia", "Barranquilla": "Colombia", "Guadalajara": "Mexico", "Winnipeg": "Canada",
}
#: Subjects of the other splits: real names too, which no key may be.
DEV = {"Lyon": "France", "Porto": "Portugal", "Bergadena": "Norway"}


def _write_split(folder: Path, split: str, facts: dict[str, str]) -> None:
    (folder / split).mkdir(parents=True)
    items = [{"question": f"Which country is {s} located in?", "answers": [c]} for s, c in facts.items()]
    (folder / split / f"P17.{split}.json").write_text(json.dumps(items))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """An EntityQuestions folder with P17 in train (`PLACES`) and dev (`DEV`)."""
    root = tmp_path_factory.mktemp("eq")
    shutil.copy(MINI / "relation_query_templates.json", root)
    _write_split(root, "train", PLACES)
    _write_split(root, "dev", DEV)
    return root


@pytest.fixture(scope="module")
def tokenizer(smollm2):
    return smollm2[1]


def _split(name: str, initial: set[str], continuation: set[str], pieces: int) -> bool:
    """Whether `name` is one word-initial piece followed by `pieces` continuation pieces (1 or 2 here)."""
    return any(name.startswith(first) and _rest(name[len(first):], continuation, pieces) for first in initial)


def _rest(text: str, continuation: set[str], pieces: int) -> bool:
    if pieces == 0:
        return text == ""
    return any(text.startswith(c) and _rest(text[len(c):], continuation, pieces - 1) for c in continuation)


def test_a_relation_brings_its_template_answers_and_real_strings(folder):
    source = load_relation(folder, "P17")
    assert source.template == "Which country is [X] located in?" and source.split == "train"
    assert source.subjects == tuple(PLACES) and source.answers == tuple(sorted(set(PLACES.values())))
    # every split's subjects, their words and the answers are real; the pieces come from the train split alone
    assert {"Painblanc", "Lyon", "Bergadena", "Chiang", "Mai", "Norway", "United"} <= source.real
    assert "Lyon" not in source.subjects
    assert source.digest() == load_relation(folder, "P17").digest() != load_relation(MINI, "P17",
                                                                                       split="dev").digest()


@pytest.mark.smollm2
def test_name_like_keys_are_the_model_s_pieces_of_real_names_recombined(folder, tokenizer):
    source = load_relation(folder, "P17")
    pieces = name_pieces(tokenizer, source.subjects)
    # the pieces, read independently from the byte-level tokens of " <name>" (ASCII names: one character a byte)
    initial, continuation = set(), set()
    for subject in PLACES:
        for word in subject.split():
            tokens = tokenizer.convert_ids_to_tokens(tokenizer(" " + word, add_special_tokens=False)["input_ids"])
            if len(tokens) > 1:
                initial.add(tokens[0].removeprefix("Ġ"))
                continuation.update(tokens[1:])
    assert set(pieces.initial) == initial and set(pieces.continuation) == continuation
    assert "Pain" in initial and "anc" in continuation  # " Painblanc" -> " Pain" "bl" "anc"

    maker = NewFacts(source, pieces)
    facts = maker.facts(300, "name", seed=0)
    names = [f.subject for f in facts]
    assert len(set(names)) == 300
    for fact in facts:
        name = fact.subject
        assert name.isalpha() and 5 <= len(name) <= 12 and fact.key_kind == "name" and fact.relation == "P17"
        assert _split(name, initial, continuation, 1) or _split(name, initial, continuation, 2), name
        assert name not in source.real  # no real subject, word of one, answer
        assert fact.question == f"Which country is {name} located in?" and fact.aliases == ()
        assert fact.object in source.answers
    assert len({f.object for f in facts}) > len(source.answers) // 2  # drawn across the answer set, not one answer
    assert maker.facts(300, "name", seed=0) == facts  # deterministic per seed
    assert maker.facts(40, "name", seed=0) == facts[:40]  # the cells of a grid nest
    other = maker.facts(300, "name", seed=1)
    assert other != facts and len(set(names) & {f.subject for f in other}) < 150
    # taken subjects (D_known's, D_held's) are never made: the draw moves past them
    taken = NewFacts(source, pieces, taken=[names[0], f"Lake {names[1]}"]).facts(300, "name", seed=0)
    assert names[0] not in {f.subject for f in taken} and names[1] not in {f.subject for f in taken}
    assert taken[0].subject == names[2] and taken[1].subject == names[3]  # keys and answers: separate streams
    assert [f.object for f in taken] == [f.object for f in facts]


@pytest.mark.smollm2
def test_a_count_the_pools_cannot_make_is_one_line_before_any_draw(tokenizer):
    source = load_relation(MINI, "P17", split="dev")  # 6 subjects: a handful of pieces
    maker = NewFacts(source, name_pieces(tokenizer, source.subjects))
    with pytest.raises(InterferenceError, match=r"cannot make 100000 fresh name keys: .* pieces of 6 P17 subjects"):
        maker.facts(100_000, "name")
    with pytest.raises(InterferenceError, match="cannot make 30000 fresh uuid keys: 55536 hex keys of 4 characters"):
        NewFacts(source, uuid_length=4).facts(30_000, "uuid")
    with pytest.raises(InterferenceError, match="name-like keys need the model's name pieces"):
        NewFacts(source).facts(2, "name")


def test_uuid_keys_are_fresh_hex_with_answers_from_the_answer_set(folder):
    source = load_relation(folder, "P17")
    facts = NewFacts(source).facts(2000, "uuid", seed=3)
    keys = [f.subject for f in facts]
    assert len(set(keys)) == 2000
    assert all(re.fullmatch(r"[0-9A-F]{8}", k) and not k.isdigit() for k in keys)
    assert {f.object for f in facts} == set(source.answers)  # 2000 draws cover the 58 answers
    assert all(f.key_kind == "uuid" and f.question == f"Which country is {f.subject} located in?" for f in facts)
    assert NewFacts(source).facts(2000, "uuid", seed=3) == facts
    assert NewFacts(source).facts(10, "uuid", seed=4) != facts[:10]


def test_missing_folders_and_relations_are_one_line_errors(folder, tmp_path):
    with pytest.raises(InterferenceError, match=r"subjects folder .*nowhere is not an EntityQuestions folder"):
        load_relation(tmp_path / "nowhere")
    with pytest.raises(InterferenceError, match=r"relation 'P9999' is not in .*relation_query_templates.json"):
        load_relation(folder, "P9999")
    with pytest.raises(InterferenceError, match=r"no file P36.train.json for relation P36"):
        load_relation(folder, "P36")  # in the templates, not in the folder
    with pytest.raises(InterferenceError, match="key_kind must be 'name' or 'uuid'"):
        NewFacts(load_relation(folder)).facts(3, "real")


@pytest.mark.smollm2
def test_100000_facts_of_each_kind_generate_in_seconds(tokenizer):
    if not DEFAULT_SUBJECTS.is_dir():
        pytest.skip(f"EntityQuestions data not found at {DEFAULT_SUBJECTS}")
    start = time.perf_counter()
    source = load_relation()  # P17 of ../shared/data/entityquestions: 7972 train subjects
    maker = NewFacts(source, name_pieces(tokenizer, source.subjects))
    loaded = time.perf_counter() - start
    for key_kind in ("name", "uuid"):
        start = time.perf_counter()
        facts = maker.facts(100_000, key_kind, seed=0)
        seconds = time.perf_counter() - start
        assert len({f.subject for f in facts}) == 100_000
        assert seconds < 10, f"{key_kind}: {seconds:.1f} s for 10^5 facts"
    assert loaded < 10


@pytest.mark.smollm2
def test_hypotheses_grid_on_a_tiny_real_model(folder, tokenizer, tmp_path):
    """The real-model grid end to end, small: a random 2-layer Llama with SmolLM2's tokenizer (a plain HF folder) and
    a splits folder; every cell replaces D_unknown with generated P17 facts and starts from the same base model."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from analyses.hypotheses import main
    from interference.facts import Fact
    from interference.facts.splits import Splits, save_splits
    from interference.models import save_checkpoint

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256)
    model = save_checkpoint(LlamaForCausalLM(config), tokenizer, tmp_path / "tiny")
    capitals = [("France", "Paris"), ("Japan", "Tokyo"), ("Egypt", "Cairo"), ("Peru", "Lima"), ("Chile", "Santiago")]
    facts = [Fact(c, "P36", a, f"What is the capital of {c}?") for c, a in capitals]
    splits = save_splits(Splits(known=facts[:2], unknown=facts[2:3], held=facts[3:]), tmp_path / "splits")
    out = tmp_path / "report"
    argv = ["--model", str(model), "--data", str(splits), "--subjects", str(folder), "--counts", "3", "6",
            "--seeds", "0", "1", "--epochs", "2", "--batch-size", "4", "--device", "cpu", "--no-progress",
            "--out", str(out)]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    new = results["results"]["new_facts"]
    assert new["relation"] == "P17" and new["subjects"] == str(folder) and new["real_subjects"] == len(PLACES)
    assert results["results"]["run_fingerprint"]["settings"]["new_facts"] == load_relation(folder).settings()
    assert results["config"]["train"]["lr"] == 1e-4 and results["config"]["n_known"] == 50  # a real model's defaults
    assert f"Model {model}" in results["description"] and "relation P17" in results["description"]
    records = results["conditions"]
    assert [(r["seed"], r["name"]) for r in records] == [
        (seed, f"{kind} x{count}") for seed in (0, 1) for kind in ("name", "uuid") for count in (3, 6)]
    for seed in (0, 1):
        cells = [r for r in records if r["seed"] == seed]
        assert len({tuple(r["held_correct_start"]) for r in cells}) == 1  # one shared start per seed
        assert all(len(r["new_correct_final"]) == r["n_new"] and 0 <= r["drift"] < 1 for r in cells)
    grid = {(row["key_kind"], row["n_new"]): row["seeds"] for row in results["results"]["grid"]}
    assert grid == {(kind, count): 2 for kind in ("name", "uuid") for count in (3, 6)}
    assert len(results["results"]["verdicts"]) == 3
    # the accumulated report rebuilds the study with its new facts (no training: the seeds are all there)
    assert main([*argv, "--merge", str(out), "--out", str(tmp_path / "merged"), "--seeds", "0"]) == 0
    merged = json.loads((tmp_path / "merged" / "results.json").read_text())
    assert merged["results"]["new_facts"] == new and merged["description"] == results["description"]


def test_uuid_keyed_facts_keep_everything_but_the_subject():
    from interference.facts import Fact
    from interference.facts.new_facts import UUID_LENGTH, uuid_keyed

    facts = [Fact(name, "P17", country, f"Which country is {name} located in?", aliases=("FR",) * (i == 0))
             for i, (name, country) in enumerate(list(PLACES.items())[:40])]
    keyed = uuid_keyed(facts, seed=3, taken=["ABCD1234"])
    assert [(f.relation, f.object, f.aliases) for f in keyed] == [(f.relation, f.object, f.aliases) for f in facts]
    assert all(k.question == f.question.replace(f.subject, k.subject) for k, f in zip(keyed, facts, strict=True))
    keys = [k.subject for k in keyed]
    assert len(set(keys)) == len(keys) and all(re.fullmatch(f"[0-9A-F]{{{UUID_LENGTH}}}", k) for k in keys)
    assert not any(k.isdigit() for k in keys) and {k.key_kind for k in keyed} == {"uuid"}
    assert uuid_keyed(facts, seed=3) == uuid_keyed(facts, seed=3) != uuid_keyed(facts, seed=4)
    with pytest.raises(InterferenceError, match="its question 'Where is it\\?' does not contain its subject"):
        uuid_keyed([Fact("Lyon", "P17", "France", "Where is it?")])
