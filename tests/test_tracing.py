from __future__ import annotations

import math
import re

import pytest
import torch

from interference.facts import Fact
from interference.io.errors import InterferenceError
from interference.measures.tracing import (
    PatchEffects,
    causal_trace,
    encode_facts,
    gold_probability,
    greedy_correct,
    nanmean,
    random_donors,
    recovery,
    restore,
    score_facts,
)
from interference.models import load_model
from interference.models.architectures import decoder_layers
from interference.models.views import SITES

FACTS = [
    Fact("Bergadena", "country", "Norway", "Which country is Bergadena located in?"),
    Fact("Ulm", "country", "Peru", "Which country is Ulm located in?"),
    Fact("Kasotiru Vel", "capital", "Oslo", "What is the capital of Kasotiru Vel?"),
]


def test_recovery_is_the_closed_fraction_of_the_gap():
    p_from, p_to = torch.tensor([0.1, 0.2, 0.5, 0.3]), torch.tensor([0.9, 0.6, 0.5, 0.32])
    got = recovery(torch.tensor([0.9, 0.4, 0.7, 0.31]), p_from, p_to, min_gap=0.05)
    assert got[:2].tolist() == pytest.approx([1.0, 0.5])
    assert math.isnan(got[2]) and math.isnan(got[3])  # no gap; a gap below min_gap
    assert recovery(p_from, p_from, p_to)[:2].tolist() == [0.0, 0.0]
    assert recovery(torch.tensor([0.0]), torch.tensor([0.5]), torch.tensor([0.3])).isnan().all()  # negative gap
    assert nanmean(torch.tensor([[1.0, float("nan"), 3.0], [float("nan")] * 3])).tolist()[0] == 2.0
    assert math.isnan(nanmean(torch.tensor([[float("nan")] * 2]))[0])


def test_gold_probability_and_greedy_correctness_read_the_answer_positions():
    _, tokenizer = load_model("tiny-llama")
    encoded = encode_facts(tokenizer, FACTS[:2])
    vocab = len(tokenizer)
    logits = torch.zeros(2, encoded.input_ids.shape[1], vocab)
    for i in range(2):  # a model that predicts every next gold token with certainty ...
        for t in range(int(encoded.answer_start[i]), int(encoded.answer_end[i])):
            logits[i, t - 1, encoded.input_ids[i, t]] = 50.0
    assert greedy_correct(logits, encoded).tolist() == [True, True]
    assert gold_probability(logits, encoded).tolist() == pytest.approx([1.0, 1.0])
    first_wrong = logits.clone()  # ... except the second answer token of fact 1
    t = int(encoded.answer_start[1]) + 1
    first_wrong[1, t - 1, encoded.input_ids[1, t]] = 0.0
    assert greedy_correct(first_wrong, encoded).tolist() == [True, False]
    no_stop = logits.clone()  # fact 0 does not stop after its answer, unless a newline counts as a stop
    end = int(encoded.answer_end[0]) - 1
    no_stop[0, end - 1] = 0.0
    newline = tokenizer("\n", add_special_tokens=False)["input_ids"][0]
    no_stop[0, end - 1, newline] = 50.0
    assert greedy_correct(no_stop, encoded).tolist() == [False, True]
    assert greedy_correct(no_stop, encoded, stop_ids=[newline]).tolist() == [True, True]
    spans = encoded.subject.tolist()
    assert ["".join(tokenizer.decode(encoded.input_ids[i, s:e])) for i, (s, e) in enumerate(spans)] == [
        "Bergadena", "Ulm"]


def _base_and_finetuned(name="tiny-llama"):
    base, tokenizer = load_model(name, seed=1)
    tuned = load_model(name, seed=1)[0]
    with torch.no_grad():  # decoder layers move; embeddings, final norm and unembedding stay
        for param in decoder_layers(tuned).parameters():
            param.add_(0.1 * torch.randn_like(param))
    return base, tuned, tokenizer


def test_restoring_the_start_state_recovers_fully_and_own_states_change_nothing(capsys):
    torch.manual_seed(0)
    base, tuned, tokenizer = _base_and_finetuned()
    effects = restore(tuned, base, tokenizer, FACTS, batch_size=2, desc="restoring")
    n = len(FACTS)
    assert re.search(rf"restoring: .* \d+/{2 * 2 * 2 * len(SITES)} ", capsys.readouterr().err)  # 2 batches x 2 modes
    # x 2 layers x the sites
    assert effects.p_patched.shape == (2, 2, len(SITES), n)
    assert (effects.p_from - effects.p_to).abs().max() > 1e-4  # the fine-tuned copy differs
    # the last layer's residual at the prompt's last token equals the start state there, and everything after it is
    # shared: the start model's probability exactly, i.e. recovery 1 wherever it is defined
    last = effects.p_patched[effects.modes.index("last"), -1, SITES.index("resid")]
    torch.testing.assert_close(last, effects.p_to, atol=1e-6, rtol=0)
    # recovery is defined where the start model is the more confident one; the reverse direction covers the rest
    reverse = restore(base, tuned, tokenizer, FACTS, sites=("resid",), modes=("last",))
    rec = torch.stack([effects.recovery()[effects.modes.index("last"), -1, SITES.index("resid")],
                       reverse.recovery()[0, -1, 0]])
    assert (~rec.isnan()).sum(0).tolist() == [1] * len(FACTS)
    torch.testing.assert_close(rec[~rec.isnan()], torch.ones(len(FACTS)), atol=1e-4, rtol=0)
    assert torch.equal(effects.correct_patched[effects.modes.index("last"), -1, SITES.index("resid")],
                       effects.correct_to)
    # patching the model with its own states is an identity
    same = restore(tuned, tuned, tokenizer, FACTS, sites=("resid", "mlp"))
    torch.testing.assert_close(same.p_patched, same.p_from.expand_as(same.p_patched), atol=1e-6, rtol=0)
    assert same.recovery().isnan().all()  # nothing to recover
    # another fact's state is a different intervention
    donated = restore(tuned, base, tokenizer, FACTS, donors=[1, 2, 0], sites=("resid",))
    torch.testing.assert_close(donated.p_to, effects.p_to)
    assert (donated.p_patched[0] - effects.p_patched[0, :, [SITES.index("resid")]]).abs().max() > 1e-4


def test_restoration_agrees_across_backends():
    torch.manual_seed(0)
    base, tuned, tokenizer = _base_and_finetuned("tiny-gpt2")
    ref = restore(tuned, base, tokenizer, FACTS, sites=("attn_out", "mlp"))
    for backend in ("transformer_lens", "nnsight"):
        got = restore(tuned, base, tokenizer, FACTS, sites=("attn_out", "mlp"), backend=backend)
        torch.testing.assert_close(got.p_patched, ref.p_patched, atol=1e-5, rtol=0)
        assert torch.equal(got.correct_patched, ref.correct_patched)


def test_causal_trace_restoring_the_clean_embeddings_or_output_state_recovers_fully():
    model, tokenizer = load_model("tiny-llama", seed=2)
    trace = causal_trace(model, tokenizer, FACTS, samples=3, seed=0)
    again = causal_trace(model, tokenizer, FACTS, samples=3, seed=0)
    assert torch.equal(trace.p_patched, again.p_patched)  # seeded
    subject, last = trace.modes.index("subject"), trace.modes.index("last")
    torch.testing.assert_close(trace.p_patched[subject, 0, SITES.index("resid_pre")], trace.p_to, atol=1e-6, rtol=0)
    torch.testing.assert_close(trace.p_patched[last, -1, SITES.index("resid")], trace.p_to, atol=1e-6, rtol=0)
    assert (trace.p_from - trace.p_to).abs().max() > 1e-5  # the noise does corrupt
    assert trace.correct_patched is None and trace.restored() is None


def test_bad_tracing_arguments_are_named():
    model, tokenizer = load_model("tiny-llama")
    with pytest.raises(InterferenceError, match="unknown site"):
        restore(model, model, tokenizer, FACTS, sites=("attn",))
    with pytest.raises(InterferenceError, match="unknown position mode"):
        causal_trace(model, tokenizer, FACTS, modes=("first",))
    with pytest.raises(InterferenceError, match="donors"):
        restore(model, model, tokenizer, FACTS, donors=[0, 5, 1])
    with pytest.raises(InterferenceError, match="at least one fact"):
        encode_facts(tokenizer, [])


def test_random_donors_are_other_subjects_and_seeded():
    facts = [*FACTS, Fact("Ulm", "capital", "Lima", "What is the capital of Ulm?")]
    donors = random_donors(facts, seed=3)
    assert donors == random_donors(facts, seed=3)
    assert all(facts[d].subject != f.subject for f, d in zip(facts, donors, strict=True))
    with pytest.raises(InterferenceError, match="another subject"):
        random_donors(facts[1:2] + facts[3:], seed=0)


def test_score_facts_matches_restoration_baselines():
    torch.manual_seed(0)
    base, tuned, tokenizer = _base_and_finetuned()
    effects = restore(tuned, base, tokenizer, FACTS, sites=("resid",), modes=("last",))
    p, ok = score_facts(tuned, tokenizer, FACTS, batch_size=2)
    torch.testing.assert_close(p, effects.p_from)
    assert torch.equal(ok, effects.correct_from)


def test_analysis_writes_report_and_tracing_section(tmp_path):
    import json

    from analyses.tracing import main

    out = tmp_path / "tracing"
    assert main(["--quick", "--out", str(out), "--seeds", "0", "--n-known", "16", "--n-unknown", "24",
                 "--n-held", "32", "--epochs", "6", "--samples", "2", "--max-retained", "3", "--no-progress"]) == 0
    assert (out / "report.html").stat().st_size > 0
    sft = next(r for r in json.loads((out / "results.json").read_text())["conditions"] if r["name"] == "sft")
    assert sft["traced_retained"] == min(3, sft["retained"]) and sft["retained"] > 3  # the control, capped
    tracing = json.loads((out / "results.json").read_text())["results"]["tracing"]
    assert tracing["sites"] == list(SITES) and tracing["modes"] == ["subject", "last"]
    groups = {row["group"] for row in tracing["cells"]}
    assert "causal trace (start model)" in groups and "sft retained" in groups
    for group in groups:  # every group has one row per mode x layer x site
        assert len([r for r in tracing["cells"] if r["group"] == group]) == 2 * tracing["n_layers"] * len(SITES)
    assert tracing["headline"]["verdict"] in ("supports", "partly", "does not", "not tested")


def test_seeds_of_tracing_runs_pool_into_the_report_of_all_of_them(tmp_path, capsys):
    """A run of seed 0, then seed 1 added with --accumulate, gives the report a run of both seeds gives; --merge of
    two one-seed runs made elsewhere gives it too, without training; other settings are refused in one line."""
    import json

    from analyses.tracing import main

    size = ["--quick", "--n-known", "16", "--n-unknown", "24", "--n-held", "32", "--epochs", "6", "--samples", "2",
            "--no-progress"]

    def tracing(folder):
        data = json.loads((tmp_path / folder / "results.json").read_text())
        return data["results"]["tracing"], data["seeds"]

    assert main([*size, "--seeds", "0", "1", "--out", str(tmp_path / "both")]) == 0
    assert main([*size, "--seeds", "0", "--out", str(tmp_path / "zero")]) == 0
    assert main([*size, "--seeds", "1", "--out", str(tmp_path / "one")]) == 0
    assert main([*size, "--seeds", "0", "1", "--merge", str(tmp_path / "both"), str(tmp_path / "one"),
                 "--out", str(tmp_path / "twice")]) == 2  # seed 1 twice
    assert main([*size, "--seeds", "0", "1", "--merge", str(tmp_path / "zero"), str(tmp_path / "one"),
                 "--out", str(tmp_path / "merged")]) == 0
    assert "pooled seeds 0 1 (0 run now)" in capsys.readouterr().err
    assert main([*size, "--seeds", "0", "1", "--accumulate", "--out", str(tmp_path / "zero")]) == 0
    whole, seeds = tracing("both")
    assert seeds == [0, 1] and any(row["seeds"] == 2 for row in whole["cells"])
    for folder in ("zero", "merged"):
        pooled, pooled_seeds = tracing(folder)
        assert pooled_seeds == seeds
        assert pooled["cells"] == whole["cells"] and pooled["headline"] == whole["headline"]
        assert pooled["facts"] == whole["facts"]
    assert main([*size, "--seeds", "2", "--min-gap", "0.1", "--accumulate", "--out", str(tmp_path / "zero")]) == 2
    assert tracing("zero")[1] == [0, 1]


def test_analysis_rejects_bad_options_before_work(tmp_path, capsys):
    from analyses.tracing import main

    assert main(["--quick", "--out", str(tmp_path / "x"), "--samples", "0"]) == 2
    assert "error: --samples" in capsys.readouterr().err
    assert main(["--quick", "--out", str(tmp_path / "x"), "--max-retained", "0"]) == 2
    assert "error: --max-retained must be >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def _effects(recovered: float, noise: float, seed: int, n_layers: int = 2, n: int = 4) -> PatchEffects:
    """Synthetic effects: p 0 -> 1, and the patch at (subject, layer 0, resid) recovers `recovered` (± noise)."""
    from interference.measures.tracing import MODES

    generator = torch.Generator().manual_seed(seed)
    p = torch.zeros(len(MODES), n_layers, len(SITES), n)
    p[0, 0, SITES.index("resid")] = recovered + noise * torch.randn(n, generator=generator)
    ok = torch.zeros_like(p, dtype=torch.bool)
    return PatchEffects(MODES, SITES, torch.zeros(n), torch.ones(n), p, torch.zeros(n, dtype=torch.bool),
                        torch.ones(n, dtype=torch.bool), ok)


@pytest.mark.parametrize(("own", "other", "verdict"), [(0.9, 0.0, "supports"), (0.3, 0.0, "partly"),
                                                        (0.1, 0.2, "does not")])
def test_verdict_needs_recovery_above_the_other_fact_control(own, other, verdict):
    from interference.studies.setup import ExperimentConfig
    from interference.studies.tracing import SeedCells, TracingStudy

    study = TracingStudy.from_effects(ExperimentConfig.quick_preset(), {
        "sft forgotten": {s: _effects(own, 0.05, s) for s in range(3)},
        "sft forgotten, other fact's state": {s: _effects(other, 0.05, 10 + s) for s in range(3)},
    })
    assert study.n_layers == 2 and [r["seed"] for r in study.records] == [0, 1, 2]
    back = SeedCells.from_json(study.records[0]["traced"]["sft forgotten"])  # what results.json holds, read back
    torch.testing.assert_close(back.recovery, _effects(own, 0.05, 0).mean_recovery().double(), atol=1e-6, rtol=0)
    best = study.best("sft forgotten", "subject")
    assert (best["layer"], best["site"]) == (0, "resid")
    assert study.verdict()[0] == verdict
    assert len(study.cells("sft forgotten")) == 2 * 2 * len(SITES)
