"""The embedded world: determinism, the tokenizer's overlap property, the cache, validation, knowledge."""

from __future__ import annotations

import time

import pytest

from interference.facts import qa_prompt, qa_target
from interference.io.errors import InterferenceError
from interference.world import WorldConfig, load_world, pieces, world_dir
from interference.world.build import build_corpus
from interference.world.tokenizer import world_tokenizer


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("world-cache")


@pytest.fixture(scope="module")
def world(cache):
    return load_world(WorldConfig.quick(), cache_dir=cache, progress=False)


def test_same_seed_same_world_and_tokenizer():
    a, b = build_corpus(WorldConfig.quick()), build_corpus(WorldConfig.quick())
    assert a.facts == b.facts and a.pools == b.pools
    ta, tb = world_tokenizer(a), world_tokenizer(b)
    assert ta.get_vocab() == tb.get_vocab()
    other = build_corpus(WorldConfig.quick(seed=1))
    assert [f.subject for f in other.facts] != [f.subject for f in a.facts]


def test_every_entity_has_every_relation_and_natural_questions():
    corpus = build_corpus(WorldConfig.quick())
    config = corpus.config
    assert len(corpus.facts) == config.n_entities * len(config.relations)
    for fact in corpus.facts:
        assert fact.subject in fact.question and fact.key_kind == "name"
        assert fact.object in corpus.objects[fact.relation]
    # the fine-tuning format never appears in the pretraining text
    assert not any("Answer the following question" in line for line in corpus.lines())


def test_new_name_subjects_share_pieces_with_stored_names_and_uuids_do_not():
    corpus = build_corpus(WorldConfig.quick())
    tokenizer = world_tokenizer(corpus)

    def syllables(name):  # pieces without the leading-space marker, case-folded (first syllables are capitalised)
        return {p.lstrip("Ġ").lower() for p in pieces(tokenizer, name)}

    stored = set().union(*(syllables(name) for name in corpus.stored_names()))
    fresh = corpus.new_facts(30, key_kind="name", overlap=1.0)
    unseen = corpus.new_facts(30, key_kind="name", overlap=0.0)
    uuids = corpus.new_facts(30, key_kind="uuid")
    assert not {f.subject for f in fresh + unseen + uuids} & set(corpus.stored_names())

    def shared(facts):
        return [len(syllables(f.subject) & stored) for f in facts]

    assert all(n >= 1 for n in shared(fresh)) and sum(shared(fresh)) >= 2 * len(fresh)  # stored syllables
    assert all(n == 0 for n in shared(unseen))
    assert all(n == 0 for n in shared(uuids))
    for fact in uuids:  # hex pairs, one token each
        assert len(pieces(tokenizer, fact.subject)) == len(fact.subject) // 2


def test_new_facts_cycle_through_a_tuple_of_relations():
    corpus = build_corpus(WorldConfig.quick())
    relations = corpus.config.relations
    facts = corpus.new_facts(9, relation=relations, seed=1)
    assert [f.relation for f in facts] == [relations[i % len(relations)] for i in range(9)]
    assert all(f.object in corpus.objects[f.relation] and f.subject in f.question for f in facts)
    assert len({f.subject for f in facts}) == 9 and facts == corpus.new_facts(9, relation=relations, seed=1)
    assert {f.relation for f in corpus.new_facts(5)} == {relations[0]}  # default: the first relation
    with pytest.raises(InterferenceError, match="nope"):
        corpus.new_facts(3, relation=(relations[0], "nope"))
    with pytest.raises(InterferenceError, match="at least one relation"):
        corpus.new_facts(3, relation=())


def test_default_world_names_ten_thousand_fresh_subjects_of_each_kind():
    corpus = build_corpus(WorldConfig())  # no training: the hypotheses study goes to 10^4 new facts
    stored = set(corpus.stored_names())
    for kind in ("name", "uuid"):
        subjects = {f.subject for f in corpus.new_facts(10_000, key_kind=kind)}
        assert len(subjects) == 10_000 and not subjects & stored


def test_prompt_and_target_tokenize_at_the_space_boundary():
    corpus = build_corpus(WorldConfig.quick())
    tokenizer = world_tokenizer(corpus)
    assert len(tokenizer.encode("\n", add_special_tokens=False)) == 1
    for fact in corpus.facts[:20] + corpus.new_facts(10, key_kind="uuid"):
        prompt = tokenizer.encode(qa_prompt(fact), add_special_tokens=False)
        target = tokenizer.encode(qa_target(fact), add_special_tokens=False)
        assert prompt + target == tokenizer.encode(qa_prompt(fact) + qa_target(fact), add_special_tokens=False)


def test_quick_world_reaches_its_target_and_the_cache_loads_without_training(world, cache):
    assert world.knowledge >= world.config.knowledge_target
    assert world.knowledge == pytest.approx(sum(world.known) / len(world.known))
    assert (world_dir(world.config, cache) / "model.safetensors").exists()
    start = time.perf_counter()
    again = load_world(WorldConfig.quick(), cache_dir=cache, progress=False)
    assert time.perf_counter() - start < world.record["build_seconds"]
    assert again.record["build_seconds"] == world.record["build_seconds"]  # read back, not rebuilt
    assert again.facts == world.facts and again.known == world.known
    for a, b in zip(again.model.parameters(), world.model.parameters(), strict=True):
        assert a.equal(b)


def test_split_is_disjoint_known_and_deterministic(world):
    known, held = world.split(20, 20, seed=3)
    assert len(known) == 20 and len(held) == 20
    assert not {f.subject for f in known} & {f.subject for f in held}
    known_set = set(world.known_facts())
    assert set(known) <= known_set and set(held) <= known_set
    assert world.split(20, 20, seed=3) == (known, held)
    with pytest.raises(InterferenceError, match="cannot split"):
        world.split(len(world.facts), 1)


def test_new_facts_errors(world):
    with pytest.raises(InterferenceError, match="relation"):
        world.new_facts(3, relation="nope")
    with pytest.raises(InterferenceError, match="key_kind"):
        world.new_facts(3, key_kind="guid")
    with pytest.raises(InterferenceError, match="positive integer"):
        world.new_facts(0)


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"n_entities": 0}, "n_entities"),
        ({"relations": ("country", "weather")}, "relations"),
        ({"lr": 0.0}, "lr"),
        ({"knowledge_target": 0.2}, "knowledge_target"),
        ({"d_model": 60, "n_heads": 8}, "d_model"),
        ({"uuid_length": 7}, "uuid_length"),
        ({"syllable_pool": 200, "held_syllables": 200}, "syllable_pool"),
    ],
)
def test_config_validation_names_the_field(overrides, field):
    with pytest.raises(InterferenceError, match=field):
        WorldConfig(**overrides)


def test_cli_prints_the_world(cache, capsys, world):
    from interference.commands.world import main

    assert main(["--quick", "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    assert world.config.digest() in out and "knowledge" in out


def test_a_rebuild_never_deletes_a_file_interference_did_not_write(world, cache, capsys, monkeypatch):
    from interference.commands import world as world_main
    from interference.world import store

    folder = world_dir(world.config, cache)
    assert sorted(world.record["files"]) == sorted(p.name for p in folder.iterdir())  # the build lists its files
    builds = []
    monkeypatch.setattr(store, "_build", lambda *args: builds.append(args))
    notes = folder / "notes.txt"
    notes.write_text("mine")
    try:
        assert world_main.main(["--quick", "--rebuild", "--cache-dir", str(cache)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "notes.txt" in err, err
        assert notes.read_text() == "mine" and not builds  # refused before pretraining
    finally:
        notes.unlink()
    load_world(WorldConfig.quick(), cache_dir=cache, rebuild=True, progress=False)  # only its own files: rebuilt
    assert len(builds) == 1
