"""SLiCK: category thresholds, few-shot prompts, categorisation on answers known by construction, tables, CLI."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tokenizers import decoders

from interference.facts import Fact
from interference.facts.datasets import DataError, load_entityquestions
from interference.facts.knowledge import (
    FactKnowledge,
    SlickConfig,
    categorize,
    category_counts,
    few_shot_prompts,
    load_knowledge_table,
    main,
    save_knowledge_table,
    slick_category,
)
from interference.io.errors import InterferenceError
from interference.models import char_tokenizer, load_model

ROOT = Path(__file__).resolve().parents[1]
MINI = Path(__file__).parent / "fixtures" / "entityquestions_mini"


# --- thresholds -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p_greedy", "p_sample", "category"),
    [
        (1.0, 1.0, "HighlyKnown"),
        (1.0, 0.0, "HighlyKnown"),
        (1.0, math.nan, "HighlyKnown"),
        (0.9, 0.0, "MaybeKnown"),
        (0.1, 1.0, "MaybeKnown"),
        (0.5, math.nan, "MaybeKnown"),
        (0.0, 0.05, "WeaklyKnown"),
        (0.0, 1.0, "WeaklyKnown"),
        (0.0, 0.0, "Unknown"),
    ],
)
def test_category_thresholds(p_greedy, p_sample, category):
    assert slick_category(p_greedy, p_sample) == category


@pytest.mark.parametrize(("p_greedy", "p_sample"), [(1.5, 0.0), (-0.1, 0.0), (0.5, 2.0), (0.0, math.nan)])
def test_category_rejects_impossible_values(p_greedy, p_sample):
    with pytest.raises(ValueError, match="must be a probability"):
        slick_category(p_greedy, p_sample)


# --- config -----------------------------------------------------------------------------------------------------


def test_presets():
    paper, fast = SlickConfig.paper(), SlickConfig.fast()
    assert (paper.n_prompts, paper.n_shots, paper.n_samples, paper.temperature, paper.top_k) == (10, 4, 16, 0.5, 40)
    assert (fast.n_prompts, fast.n_shots, fast.n_samples, fast.temperature, fast.top_k) == (4, 4, 4, 0.5, 40)
    assert SlickConfig() == paper and paper.preset_name == "paper" and fast.preset_name == "fast"
    assert SlickConfig.preset("fast", seed=3, batch_size=8) == SlickConfig.fast(seed=3, batch_size=8)
    assert SlickConfig.fast(n_samples=2).preset_name == "custom"
    with pytest.raises(InterferenceError, match="unknown SLiCK preset 'slow'"):
        SlickConfig.preset("slow")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_prompts": 0}, "n_prompts must be a positive integer"),
        ({"n_shots": 1.5}, "n_shots must be a positive integer"),
        ({"temperature": 0}, "temperature must be > 0"),
        ({"top_k": 0}, "top_k must be a positive integer or None"),
        ({"seed": None}, "seed must be an integer"),
        ({"sample_all": 1}, "sample_all must be True or False"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(InterferenceError, match=match):
        SlickConfig(**kwargs)


# --- prompts ----------------------------------------------------------------------------------------------------


def capital(subject: str, obj: str, *aliases: str) -> Fact:
    return Fact(subject, "capital", obj, f"What is the capital of {subject}?", aliases=aliases)


def country(subject: str, obj: str) -> Fact:
    return Fact(subject, "country", obj, f"Which country is {subject} in?")


CAPITALS = [capital(s, o) for s, o in [("Peru", "Lima"), ("Chile", "Santiago"), ("Kenya", "Nairobi"),
                                       ("Spain", "Madrid"), ("Italy", "Rome"), ("Egypt", "Cairo")]]  # fmt: skip
COUNTRIES = [country(s, o) for s, o in [("Lyon", "France"), ("Porto", "Portugal"), ("Osaka", "Japan"),
                                        ("Cusco", "Peru"), ("Turin", "Italy")]]  # fmt: skip


def shots(prompt: str) -> list[tuple[str, str]]:
    """The (question, answer) exemplars of a few-shot prompt, and check its overall shape."""
    *blocks, last = prompt.split("Q: ")[1:]
    assert prompt.startswith("Q: ") and last.endswith("\nA:") and "\n" not in last[: -len("\nA:")]
    pairs = []
    for block in blocks:
        question, answer = block.split("\nA: ")
        assert answer.endswith("\n")
        pairs.append((question, answer[:-1]))
    return pairs


def test_prompt_format_relation_and_exclusion():
    fact = CAPITALS[0]
    config = SlickConfig(n_prompts=6, n_shots=3)
    prompts = few_shot_prompts(fact, CAPITALS + COUNTRIES, config)  # the fact itself is among the exemplars
    assert len(prompts) == 6
    allowed = {(f.question, f.object) for f in CAPITALS[1:]}
    for prompt in prompts:
        assert prompt.endswith(f"Q: {fact.question}\nA:")
        pairs = shots(prompt)
        assert len(pairs) == 3 and len(set(pairs)) == 3
        assert set(pairs) <= allowed, "exemplars must come from the fact's relation and never be the fact"
    assert prompts[0] == "".join(f"Q: {q}\nA: {a}\n" for q, a in shots(prompts[0])) + f"Q: {fact.question}\nA:"
    assert len(set(prompts)) > 1, "prompts should draw different exemplars"


def test_prompts_are_seeded_per_fact():
    config = SlickConfig(n_prompts=5, n_shots=2)
    fact = CAPITALS[2]
    assert few_shot_prompts(fact, CAPITALS, config) == few_shot_prompts(fact, COUNTRIES + CAPITALS[::-1], config)
    assert few_shot_prompts(fact, CAPITALS, config) != few_shot_prompts(fact, CAPITALS, SlickConfig(5, 2, seed=1))


def test_too_few_exemplars():
    with pytest.raises(InterferenceError, match="relation capital: 3 exemplars besides 'Peru', need n_shots=4"):
        few_shot_prompts(CAPITALS[0], CAPITALS[:4] + COUNTRIES, SlickConfig(n_shots=4))
    with pytest.raises(InterferenceError, match="relation country: 0 exemplars"):
        categorize(None, None, [COUNTRIES[0]], CAPITALS, SlickConfig(), progress=False)


# --- categorisation on a model whose answers are known by construction ------------------------------------------


def fused_char_tokenizer():
    """The character tokenizer, decoding without spaces between characters."""
    tokenizer = char_tokenizer()
    tokenizer.backend_tokenizer.decoder = decoders.Fuse()
    return tokenizer


class LookupLM(torch.nn.Module):
    """A stand-in causal LM: `generate` answers the prompt's last question with `answer(prompt, sampling)`.

    It records every batch and checks that each exemplar in a prompt comes from the asked fact's relation and is
    not the asked fact.
    """

    def __init__(self, tokenizer, behaviours: dict, facts: list[Fact]):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.tokenizer, self.behaviours = tokenizer, behaviours
        self.relation_of = {f.question: f.relation for f in facts}
        self.calls: list[tuple[bool, list[str]]] = []

    def generate(self, input_ids, attention_mask, max_new_tokens, num_return_sequences, do_sample, pad_token_id, **_):
        prompts = [self.tokenizer.decode(row[mask.bool()]) for row, mask in zip(input_ids, attention_mask, strict=True)]
        self.calls.append((do_sample, prompts))
        rows = []
        for row, prompt in zip(input_ids, prompts, strict=True):
            question = prompt.rsplit("Q: ", 1)[1].removesuffix("\nA:")
            for exemplar, _answer in shots(prompt):
                assert exemplar != question and self.relation_of[exemplar] == self.relation_of[question]
            for _ in range(num_return_sequences):
                text = " " + self.behaviours[question](prompt, do_sample) + "\nQ: next"
                new = self.tokenizer.encode(text, add_special_tokens=False)[:max_new_tokens]
                rows.append(torch.cat([row, torch.tensor(new, dtype=row.dtype)]))
        width = max(len(r) for r in rows)
        return torch.stack([torch.nn.functional.pad(r, (0, width - len(r)), value=pad_token_id) for r in rows])


KEY = CAPITALS[3]  # the "maybe" fact is answered right only when this exemplar is in the prompt
FACTS = [
    capital("Japan", "Tokyo"),  # always right -> HighlyKnown
    capital("Samos", "Vathy", "Samos town"),  # always an alias, unnormalised -> HighlyKnown
    capital("Georgia", "Tbilisi"),  # right iff KEY is an exemplar -> MaybeKnown
    country("Kyoto", "Japan"),  # greedy wrong, sampled right half the time -> WeaklyKnown
    country("Dunedin", "New Zealand"),  # a near miss, always -> Unknown
    capital("Nepal", "Kathmandu"),  # always wrong -> Unknown
]
EXPECTED = ["HighlyKnown", "HighlyKnown", "MaybeKnown", "WeaklyKnown", "Unknown", "Unknown"]
BEHAVIOURS = {
    FACTS[0].question: lambda prompt, sampling: "Tokyo",
    FACTS[1].question: lambda prompt, sampling: "the Samos Town.",
    FACTS[2].question: lambda prompt, sampling: "Tbilisi" if KEY.question in prompt else "Batumi",
    FACTS[3].question: lambda prompt, sampling: "Japan" if sampling and torch.rand(()) < 0.5 else "China",
    FACTS[4].question: lambda prompt, sampling: "New Zealand's South Island",
    FACTS[5].question: lambda prompt, sampling: "Pokhara",
}
CONFIG = SlickConfig(n_prompts=10, n_shots=2, n_samples=3, batch_size=20, max_new_tokens=40)


def lookup_model():
    tokenizer = fused_char_tokenizer()
    return LookupLM(tokenizer, BEHAVIOURS, FACTS + CAPITALS + COUNTRIES), tokenizer


def test_categories_known_by_construction():
    model, tokenizer = lookup_model()
    rows = categorize(model, tokenizer, FACTS, CAPITALS + COUNTRIES + FACTS, CONFIG, progress=False)
    assert [r.fact for r in rows] == FACTS
    assert [r.category for r in rows] == EXPECTED
    assert category_counts(rows) == {"HighlyKnown": 2, "MaybeKnown": 1, "WeaklyKnown": 1, "Unknown": 2}
    maybe = rows[2]
    with_key = sum(KEY.question in p for p in few_shot_prompts(FACTS[2], CAPITALS + FACTS, CONFIG)) / 10
    assert 0 < with_key < 1  # the seed gives prompts with and without the key exemplar
    assert maybe.p_greedy == pytest.approx(with_key) and maybe.p_sample == pytest.approx(with_key)
    assert maybe.greedy_answers.count("Tbilisi") == round(with_key * 10)
    assert rows[0].greedy_answers == ("Tokyo",) * 10 and (rows[0].p_greedy, rows[0].p_sample) == (1.0, 1.0)
    assert rows[3].p_greedy == 0.0 and 0.2 < rows[3].p_sample < 0.8  # 30 samples at probability 0.5
    assert (rows[4].p_greedy, rows[4].p_sample) == (0.0, 0.0)


def test_prompts_of_many_facts_share_batches():
    model, tokenizer = lookup_model()
    categorize(model, tokenizer, FACTS, CAPITALS + COUNTRIES, CONFIG, progress=False)
    greedy = [prompts for sampling, prompts in model.calls if not sampling]
    sampled = [prompts for sampling, prompts in model.calls if sampling]
    assert [len(p) for p in greedy] == [20] * 3  # 6 facts x 10 prompts in batches of 20 sequences
    assert [len(p) for p in sampled] == [6] * 10  # 3 samples each: 6 prompts (18 sequences) per batch
    asked = {p.rsplit("Q: ", 1)[1] for p in greedy[0]}
    assert len(asked) > 1, "a batch should hold prompts of several facts"


def test_deterministic_for_a_seed():
    model, tokenizer = lookup_model()
    a = categorize(model, tokenizer, FACTS, CAPITALS + COUNTRIES, CONFIG, progress=False)
    b = categorize(model, tokenizer, FACTS, CAPITALS + COUNTRIES, CONFIG, progress=False)
    assert a == b
    config = SlickConfig(**{**vars(CONFIG), "seed": 7})
    c = categorize(model, tokenizer, FACTS, CAPITALS + COUNTRIES, config, progress=False)
    assert [r.category for r in c][:2] == EXPECTED[:2] and c[3].p_sample != a[3].p_sample


def test_sampling_only_unresolved_facts_keeps_the_categories():
    model, tokenizer = lookup_model()
    config = SlickConfig(**{**vars(CONFIG), "sample_all": False})
    rows = categorize(model, tokenizer, FACTS, CAPITALS + COUNTRIES, config, progress=False)
    assert [r.category for r in rows] == EXPECTED
    assert [math.isnan(r.p_sample) for r in rows] == [True, True, True, False, False, False]
    sampled = {p.rsplit("Q: ", 1)[1] for sampling, prompts in model.calls if sampling for p in prompts}
    assert sampled == {f"{f.question}\nA:" for f in FACTS[3:]}


def test_real_model_path_is_deterministic():
    """Through a real Hugging Face model (random tiny Llama): batched sampling with the KV cache, seeded."""
    model, tokenizer = load_model("tiny-llama", seed=0)
    config = SlickConfig(n_prompts=2, n_shots=2, n_samples=2, max_new_tokens=3, batch_size=4)
    first = categorize(model, tokenizer, FACTS[:3], CAPITALS, config, progress=False)
    again = categorize(model, tokenizer, FACTS[:3], CAPITALS, config, progress=False)
    assert first == again
    assert all(len(r.greedy_answers) == 2 for r in first)
    assert all(r.category == slick_category(r.p_greedy, r.p_sample) for r in first)


# --- tables -----------------------------------------------------------------------------------------------------


ROWS = [
    FactKnowledge(FACTS[1], 1.0, math.nan, "HighlyKnown", ("Vathy", "Samos town")),
    FactKnowledge(FACTS[2], 0.5, 0.25, "MaybeKnown", ("Tbilisi", "Batumi")),
    FactKnowledge(FACTS[3], 0.0, 0.125, "WeaklyKnown", ("China", "China")),
    FactKnowledge(FACTS[5], 0.0, 0.0, "Unknown", ("Pokhara", "Pokhara")),
]


def same_rows(a: list[FactKnowledge], b: list[FactKnowledge]) -> bool:
    key = lambda r: (r.fact, r.p_greedy, None if math.isnan(r.p_sample) else r.p_sample, r.category, r.greedy_answers)
    return [key(r) for r in a] == [key(r) for r in b]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_table_round_trip_records_model_and_preset(tmp_path, suffix):
    path = save_knowledge_table(ROWS, tmp_path / f"table{suffix}", "smollm2-135m", SlickConfig.fast(seed=2))
    assert same_rows(load_knowledge_table(path), ROWS)
    text = path.read_text()
    assert text.count("smollm2-135m") == len(ROWS) and text.count("fast") == len(ROWS)
    if suffix == ".jsonl":
        record = json.loads(text.splitlines()[0])
        assert record["p_sample"] is None and record["config"]["seed"] == 2 and record["config"]["n_samples"] == 4


def test_table_errors(tmp_path):
    with pytest.raises(InterferenceError, match="table must end in .jsonl or .csv"):
        save_knowledge_table(ROWS, tmp_path / "table.txt", "m", SlickConfig.fast())
    path = save_knowledge_table(ROWS, tmp_path / "table.jsonl", "m", SlickConfig.fast())
    lines = path.read_text().splitlines()
    record = json.loads(lines[1])
    path.write_text("\n".join([lines[0], json.dumps({**record, "category": "HighlyKnown"}), *lines[2:]]))
    where = re.escape(str(path))
    with pytest.raises(DataError, match=f"{where}:2: field 'category' is 'HighlyKnown' but .* make it 'MaybeKnown'"):
        load_knowledge_table(path)
    path.write_text("\n".join([lines[0], lines[1][:-5]]))
    with pytest.raises(DataError, match=f"{where}:2: malformed JSON"):
        load_knowledge_table(path)
    del record["p_greedy"]
    path.write_text(json.dumps(record))
    with pytest.raises(DataError, match=f"{where}:1: field 'p_greedy' missing"):
        load_knowledge_table(path)
    with pytest.raises(DataError, match="file not found"):
        load_knowledge_table(tmp_path / "none.csv")


# --- command line -----------------------------------------------------------------------------------------------


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--model", "--data", "--relations", "--limit", "--preset", "--out", "--skip-resolved", "--device",
                 "--dtype"):
        assert flag in out


def test_cli_bad_input_exits_2_with_one_line(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "interference.facts.knowledge", "--model", "tiny-llama", "--data",
               str(tmp_path / "no")]
    done = subprocess.run([*command, "--out", str(tmp_path / "t.jsonl")], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {tmp_path / 'no'}: EntityQuestions directory not found"


def test_cli_bad_inputs_in_process(tmp_path, capsys):
    base = ["--model", "tiny-llama", "--data", str(MINI), "--out", str(tmp_path / "t.jsonl")]
    for extra, message in [
        (["--relations", "P20"], "unknown relation 'P20'"),
        (["--limit", "0"], "--limit must be >= 1, got 0"),
        (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
        (["--max-new-tokens", "0"], "--max-new-tokens must be >= 1, got 0"),
        (["--exemplar-split", "train"], "no file P17.train.json"),
        (["--device", "foo"], "unknown device 'foo'"),
        *([(["--device", "cuda"], "CUDA is not available")] if not torch.cuda.is_available() else []),
    ]:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert main([*base[:-1], str(tmp_path / "t.txt")]) == 2
    capsys.readouterr()
    assert main([*base, "--preset", "slow"]) == 2  # argparse's own refusals are one line too
    err = capsys.readouterr().err
    assert err.startswith("error: argument --preset: invalid choice") and err.count("\n") == 1


def test_cli_writes_the_table(tmp_path, capsys):
    out = tmp_path / "table.jsonl"
    argv = ["--model", "tiny-llama", "--data", str(MINI), "--relations", "P36", "--limit", "2", "--out", str(out)]
    assert main([*argv, "--batch-size", "8", "--max-new-tokens", "3"]) == 0
    rows = load_knowledge_table(out)
    assert [r.fact for r in rows] == load_entityquestions(MINI, "test", ["P36"], 2)
    assert all(len(r.greedy_answers) == 4 for r in rows)  # the fast preset: 4 prompts
    record = json.loads(out.read_text().splitlines()[0])
    assert (record["model"], record["preset"], record["config"]["max_new_tokens"]) == ("tiny-llama", "fast", 3)
    printed = capsys.readouterr().out
    assert "2 facts (P36), preset fast" in printed and "questions/s" in printed


# --- tables cached on disk and tables passed in -----------------------------------------------------------------


@pytest.fixture
def counted_categorize(tmp_path, monkeypatch):
    """The cache under tmp_path, and the number of facts SLiCK categorised so far."""
    import interference.facts.knowledge_cache as cache

    monkeypatch.setenv("INTERFERENCE_CACHE", str(tmp_path / "cache"))
    calls = []

    def counting(model, tokenizer, facts, exemplars, config, progress=True):
        calls.append(len(facts))
        return categorize(model, tokenizer, facts, exemplars, config, progress=progress)

    monkeypatch.setattr(cache, "categorize", counting)
    return calls


def test_categorised_facts_are_cached_by_what_made_them(counted_categorize, tmp_path):
    from interference.facts.knowledge_cache import cache_dir, categorised_facts

    model, tokenizer = load_model("tiny-llama")
    ask = dict(model=model, tokenizer=tokenizer, relations=["P36"], limit_per_relation=2, preset="fast", seed=0,
               batch_size=8, progress=False)
    first, path = categorised_facts("tiny-llama", MINI, **ask)
    assert counted_categorize == [2] and path.parent == cache_dir() and path.is_file()
    again, same_path = categorised_facts("tiny-llama", MINI, **{**ask, "batch_size": 4})  # speed only: same table
    assert counted_categorize == [2] and same_path == path and same_rows(again, first)
    for change in ({"seed": 1}, {"limit_per_relation": 1}, {"relations": ["P36", "P17"]}, {"preset": "paper"}):
        _, other = categorised_facts("tiny-llama", MINI, **{**ask, **change})
        assert other != path
    assert len(counted_categorize) == 5
    _, other_model = categorised_facts("tiny-qwen2", MINI, **{**ask, "model": load_model("tiny-qwen2")[0]})
    assert other_model != path


def test_cache_key_follows_the_data_files(tmp_path):
    import shutil

    from interference.facts.knowledge_cache import cache_key

    copy = shutil.copytree(MINI, tmp_path / "eq")
    key = dict(relations=["P36"], limit_per_relation=2, preset="fast", seed=0)
    before = cache_key("tiny-llama", copy, **key)
    assert cache_key("tiny-llama", copy, **key) == before
    with (copy / "test" / "P36.test.json").open("a") as handle:
        handle.write(" ")
    assert cache_key("tiny-llama", copy, **key) != before
    assert cache_key("tiny-llama", copy, **key, dtype=torch.bfloat16)["dtype"] == "bfloat16"


def test_a_saved_table_is_read_for_its_own_model_only(tmp_path):
    from interference.facts.knowledge_cache import is_table, knowledge_source

    path = save_knowledge_table(ROWS, tmp_path / "t.jsonl", "smollm2-135m", SlickConfig.fast())
    assert is_table(path) and not is_table(tmp_path)
    assert same_rows(knowledge_source(path, "smollm2-135m"), ROWS)
    assert {r.fact.relation for r in knowledge_source(path, "smollm2-135m", relations=["country"])} == {"country"}
    assert len(knowledge_source(path, "smollm2-135m", limit_per_relation=1)) == len({r.fact.relation for r in ROWS})
    with pytest.raises(InterferenceError, match="categorised with model smollm2-135m, not 'tiny-llama'"):
        knowledge_source(path, "tiny-llama")
    with pytest.raises(DataError, match="no rows of relation P20"):
        knowledge_source(path, "smollm2-135m", relations=["P20"])
    with pytest.raises(DataError, match="not found"):
        knowledge_source(tmp_path / "none.jsonl", "smollm2-135m")


# --- a real model -----------------------------------------------------------------------------------------------


@pytest.mark.smollm2
def test_smollm2_knows_some_capitals_and_not_others(smollm2, entityquestions_dir):
    """The fast preset on a slice of EntityQuestions P36 (sampling only the facts greedy decoding misses, which
    leaves the categories unchanged) finds capitals SmolLM2-135M knows and capitals it does not."""
    model, tokenizer = smollm2
    facts = load_entityquestions(entityquestions_dir, "test", ["P36"], limit_per_relation=16)
    exemplars = load_entityquestions(entityquestions_dir, "dev", ["P36"])
    rows = categorize(model, tokenizer, facts, exemplars, SlickConfig.fast(sample_all=False), progress=False)
    counts = category_counts(rows)
    assert counts["HighlyKnown"] >= 1 and counts["Unknown"] >= 1, counts
