"""The forgetting, overlap and hypotheses studies on the quick world: records, determinism, reports, commands."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch
from glance import assert_reads_at_a_glance

from interference.facts.answers import exact_match
from interference.report import CONDITION_FIELDS, validate_results
from interference.report.fact_pairs import fact_pair_summary
from interference.studies.forgetting import forgetting_report, run_forgetting
from interference.studies.hypotheses import hypotheses_report, run_hypotheses
from interference.studies.overlap import overlap_report, run_overlap
from interference.studies.setup import ExperimentConfig, make_setup, run_condition

SMALL = dict(seeds=(0,), n_known=16, n_unknown=16, n_held=16, epochs=2)


@pytest.fixture(scope="module")
def config():
    return ExperimentConfig.quick_preset(**SMALL)


@pytest.fixture(scope="module")
def forgetting(config, world):
    return run_forgetting(config, ["sft", "attention-only", "known-only"], base=world, progress=False)


def test_forgetting_records_carry_the_required_fields(forgetting, config, world):
    assert [r["name"] for r in forgetting.records] == ["sft", "attention-only", "known-only"]
    for record in forgetting.records:
        assert set(CONDITION_FIELDS) <= set(record) and record["seed"] == 0
        assert 0 <= record["held_acc_final"] <= record["held_acc_peak"] <= 1
        assert math.isclose(record["forgetting"],
                            (record["held_acc_peak"] - record["held_acc_final"]) / record["held_acc_peak"])
        assert len(record["curves"]["held"]) == record["epochs"] + 1
        # every held-out and new fact's relation, in split order (the report's forgetting by relation)
        assert len(record["held_relations"]) == len(record["held_correct_final"]) == config.n_held
        assert len(record["new_relations"]) == len(record["new_correct_final"]) == config.n_unknown
        assert set(record["held_relations"]) <= set(world.config.relations)
    by_name = {r["name"]: r for r in forgetting.records}
    assert by_name["known-only"]["new_acc"] is None
    # each held-out fact's loss where every method starts (one start) and at its end, for the per-fact views
    assert len({tuple(r["held_losses_start"]) for r in forgetting.records}) == 1
    for record in forgetting.records:
        assert len(record["held_losses_final"]) == config.n_held
        assert sum(record["held_losses_final"]) / config.n_held == pytest.approx(record["held_loss_final"], abs=1e-5)
    assert by_name["sft"]["held_losses_final"] != by_name["sft"]["held_losses_start"]
    # conditions that cannot reach the target train as long as SFT did
    assert by_name["attention-only"]["epochs"] == by_name["known-only"]["epochs"] == by_name["sft"]["epochs"]


class _Bar:
    """What a study's tqdm bar is told: every postfix in order."""

    def __init__(self):
        self.postfixes = []

    def set_postfix_str(self, text):
        self.postfixes.append(text)


def test_a_condition_tells_the_study_bar_its_name_and_each_epochs_accuracies(config, world):
    bar = _Bar()
    condition = run_condition(make_setup(config, 0, base=world, progress=False), "sft",
                              config.train_config(0, method="sft", target_new_acc=None), bar=bar)
    history = condition.result.history
    assert bar.postfixes[0] == "seed 0 sft" and len(bar.postfixes) == len(history) == config.train.epochs + 1
    last = history[-1].accuracy
    assert bar.postfixes[-1] == (f"seed 0 sft · epoch {history[-1].epoch}: known {last['known']:.2f} "
                                 f"unknown {last['unknown']:.2f} held {last['held']:.2f}")


def test_forgetting_is_deterministic_for_a_seed(forgetting, config, world):
    again = run_forgetting(config, ["sft"], base=world, progress=False)
    first = {k: v for k, v in forgetting.of("sft")[0].items() if k != "seconds"}
    assert {k: v for k, v in again.records[0].items() if k != "seconds"} == first


def test_forgetting_report_validates_and_summarises(forgetting, tmp_path):
    out = forgetting_report(forgetting).write(tmp_path / "forgetting")
    data = json.loads((out / "results.json").read_text())
    validate_results(data)
    summary = {row["method"]: row for row in data["results"]["summary"]}
    assert summary["sft"]["forgetting"] == pytest.approx(forgetting.of("sft")[0]["forgetting"])
    page = (out / "report.html").read_text()
    assert "<script src=" not in page
    headline = assert_reads_at_a_glance(page)
    assert "Verdict: not tested" in headline  # self_distill was not run: no verdict, and the page says why
    assert "attention-only: acquisition (Table 1)" in headline and "1.0 %" in headline  # the paper's number
    paired = {(d["condition"], d["measure"]) for d in data["results"]["paired"]}
    assert ("attention-only", "held_acc_final") in paired and ("known-only", "new_acc") not in paired
    assert "Forgetting by relation" in page
    by_relation = {(row["relation"], row["condition"]): row for row in data["results"]["by_relation"]}
    sft = forgetting.of("sft")[0]
    # one seed: the mean is that seed's share, here of the first relation with a held-out fact right at the start
    first = next(r for r, right in zip(sft["held_relations"], sft["held_correct_start"], strict=True) if right)
    known = [i for i, r in enumerate(sft["held_relations"]) if r == first and sft["held_correct_start"][i]]
    forgot = sum(not sft["held_correct_final"][i] for i in known) / len(known)
    assert by_relation[(first, "sft")]["forgotten_mean"] == pytest.approx(forgot)
    # the world's new facts are all of its first relation: inside against outside, known-only as the control
    assert [row["condition"] for row in data["results"]["relation_contrast"]] == ["sft", "attention-only", "known-only"]
    pairs = fact_pair_summary(forgetting.records, forgetting.methods, "sft")  # every method beside sft, fact by fact
    assert data["results"]["held_fact_pairs"] == pairs and set(pairs["methods"]) == set(forgetting.methods) - {"sft"}
    assert "Which held-out facts each method lost, beside sft" in page
    assert all(p["loss_seeds"] == 1 for p in pairs["methods"].values())  # each fact's loss ranked beside sft's


def test_unknown_method_is_a_clear_error(config, world):
    from interference.io.errors import InterferenceError

    with pytest.raises(InterferenceError, match="unknown method 'dpo'"):
        run_forgetting(config, ["dpo"], base=world, progress=False)


def test_overlap_study_measures_every_held_fact_and_the_causal_split(config, world, tmp_path):
    study = run_overlap(config, base=world, top_k=4, progress=False)
    n_layers = world.config.n_layers
    assert len(study.facts) == config.n_held and len(study.cka[0]) == n_layers
    assert {r["name"] for r in study.records} == {"sft", "self_distill", "uuid-sft", "high-overlap sft",
                                                  "low-overlap sft"}
    for record in study.records:
        assert len(record["drift_per_layer"]) == n_layers and record["drift"] >= 0
    causal = study.causal()
    assert causal["high_overlap"] > causal["low_overlap"]  # the selection does what it says
    assert causal["equal_epochs"].n == len(config.seeds)
    # a net drop from the peak needs at least that many facts that were right at the peak and are wrong now
    record = study.of("sft")[0]
    net_drop = round((record["held_acc_peak"] - record["held_acc_final"]) * config.n_held)
    assert sum(f["forgotten_sft"] for f in study.facts) >= net_drop
    # what a forgotten fact becomes: recorded for exactly the facts SFT forgot, each answer wrong for its own fact
    replaced = [f for f in study.facts if "answer_sft" in f]
    assert replaced and all(f["forgotten_sft"] for f in replaced)
    assert len(replaced) == sum(f["forgotten_sft"] for f in study.facts)
    held = {(f.subject, f.relation): f for seed in config.seeds for f in make_setup(config, seed, base=world).held}
    assert not any(exact_match(f["answer_sft"], held[f["subject"], f["relation"]].answers) for f in replaced)
    assert {f["nearest_relation"] for f in replaced} == {f.relation for f in make_setup(config, 0, base=world).unknown}
    new = {(seed, f.subject): f.answers for seed in config.seeds for f in make_setup(config, seed, base=world).unknown}
    # the shuffled null deals the nearest new facts of the seed's forgotten facts (this tiny run forgets few, so
    # it checks the wiring; tests/test_replacement.py checks the dealing on decks of several)
    for fact in replaced:
        deck = [new[f["seed"], f["nearest_new_subject"]] for f in replaced
                if (f["seed"], f["nearest_relation"]) == (fact["seed"], fact["nearest_relation"])]
        assert fact["takes_nearest"] == exact_match(fact["answer_sft"], new[fact["seed"], fact["nearest_new_subject"]])
        assert fact["nearest_shuffled"] == pytest.approx(
            sum(exact_match(fact["answer_sft"], answers) for answers in deck) / len(deck))
    out = overlap_report(study).write(tmp_path / "overlap")
    data = json.loads((out / "results.json").read_text())
    validate_results(data)
    names = list(dict.fromkeys(r["name"] for r in study.records))
    assert data["results"]["held_fact_pairs"] == fact_pair_summary(study.records, names, "sft")
    uuid = data["results"]["held_fact_pairs"]["methods"]["uuid-sft"]  # does the UUID control lose sft's facts?
    assert uuid["answer_seeds"] == uuid["loss_seeds"] == len(config.seeds)  # and move the same facts' loss?
    headline = assert_reads_at_a_glance((out / "report.html").read_text())
    assert "38–41 %" in headline and "0–4 %" in headline
    # two epochs: every condition short of the target (uuid-sft learned least), so no verdict, and the page says why
    target, lowest = config.train.target_new_acc, min(r["new_acc"] for r in study.records)
    assert 0 < lowest < target
    assert data["headline"]["verdict"] is None
    assert data["headline"]["untested"].startswith("sft stayed below the acquisition target")
    assert "Verdict: not tested" in headline
    reached = replace(study, config=ExperimentConfig.quick_preset(**SMALL, target_new_acc=lowest))
    assert overlap_report(reached).to_dict()["headline"]["verdict"]["verdict"] in (
        "reproduces", "partly reproduces", "does not reproduce")
    uuid = next(d for d in data["results"]["paired"]
                if d["condition"] == "uuid-sft" and d["measure"] == "held_acc_final")
    record = {r["name"]: r for r in data["conditions"]}
    assert uuid["difference"] == pytest.approx(record["uuid-sft"]["held_acc_final"] - record["sft"]["held_acc_final"])
    assert data["results"]["replacement"]["forgotten"] == len(replaced)
    assert data["results"]["replacement"]["left_out"] == 0  # one precision, no LoRA: the same decoding as the run's
    page = (out / "report.html").read_text()
    assert "What a forgotten fact becomes" in page
    dealt = [f for f in replaced if sum((g["seed"], g["nearest_relation"]) == (f["seed"], f["nearest_relation"])
                                        for g in replaced) > 1]  # a fact alone in its deck is left out of that null
    assert data["results"]["replacement"]["dealt"] == len(dealt)
    assert ("taken − shuffled, per seed" in page) == bool(dealt)


def test_hypotheses_grid_and_verdicts(config, world, tmp_path):
    # at this learning rate two epochs teach a cell some of its new facts, short of the target (name x4: 0.5 here)
    config = replace(config, train=replace(config.train, lr=3e-4))
    study = run_hypotheses(config, [4, 12], base=world, progress=False)
    assert len(study.records) == 4 and {(r["key_kind"], r["n_new"]) for r in study.records} == {
        ("name", 4), ("name", 12), ("uuid", 4), ("uuid", 12)}
    verdicts = study.verdicts()
    assert [v["hypothesis"] for v in verdicts] == ["capacity limits", "behaviour cloning", "localized interference"]
    assert all(v["verdict"] in ("supported", "not supported", "rejected", "not rejected") for v in verdicts)
    out = hypotheses_report(study).write(tmp_path / "hypotheses")
    data = json.loads((out / "results.json").read_text())
    validate_results(data)
    # a cell short of the target: the headline gives no verdict and names the first such cell
    short = [r for r in study.records if r["new_acc"] < config.train.target_new_acc]
    assert short and data["headline"]["verdict"] is None
    assert data["headline"]["untested"].startswith(f"{short[0]['key_kind']} x{short[0]['n_new']} ")
    assert "acquisition" in data["headline"]["untested"]
    assert "0–4 %" in assert_reads_at_a_glance((out / "report.html").read_text())


def test_overlap_command_writes_both_files_and_rejects_bad_input(tmp_path, world, capsys):
    from analyses.overlap import main

    out = tmp_path / "report"
    assert main(["--quick", "--out", str(out), "--seeds", "0", "--epochs", "1", "--n-known", "12",
                 "--n-unknown", "12", "--n-held", "12", "--no-progress"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        ".interference.json", "conditions.csv", "manifest.json", "report.html", "results.json"]
    bad = tmp_path / "bad"
    assert main(["--quick", "--out", str(bad), "--epochs", "0"]) == 2
    err = capsys.readouterr().err
    assert "error: epochs must be an integer >= 1" in err and "Traceback" not in err
    assert not bad.exists()


def test_a_real_model_runs_from_a_splits_folder(tmp_path):
    from interference.facts import Fact
    from interference.facts.splits import Splits, save_splits
    from interference.io.errors import InterferenceError

    def facts(prefix, n):
        return [Fact(f"{prefix}{i}", "P36", f"c{i % 3}", f"What is the capital of {prefix}{i}?") for i in range(n)]

    folder = save_splits(Splits(facts("Ka", 6), facts("Un", 6), facts("He", 6)), tmp_path / "splits")
    config = ExperimentConfig.build(model="tiny-llama", data=str(folder), seeds=(0,), n_known=4, n_unknown=4, n_held=4,
                              epochs=1, lr=1e-3)
    study = run_forgetting(config, ["sft"], progress=False)
    record = study.records[0]
    assert record["name"] == "sft" and set(CONDITION_FIELDS) <= set(record)
    assert len(record["curves"]["held"]) == 2  # step 0 and one epoch, on the 4 held facts the sizes cut it to
    with pytest.raises(InterferenceError, match="needs --data"):
        ExperimentConfig(model="tiny-llama")
    with pytest.raises(InterferenceError, match=r"subjects folder .*missing is not an EntityQuestions folder"):
        run_hypotheses(config, [2], subjects=tmp_path / "missing", progress=False)  # before the model loads


def test_overlap_on_a_real_model_has_the_uuid_control_and_a_causal_test_from_its_unknown_facts(tmp_path,
                                                                                                   monkeypatch):
    from interference.facts import Fact
    from interference.facts.knowledge import FactKnowledge
    from interference.facts.realdata import RealData
    from interference.facts.splits import Splits, save_splits
    from interference.io.errors import InterferenceError
    from interference.models import load_model
    from interference.studies import overlap as overlap_study

    def facts(prefix, n, relation="P36"):
        return [Fact(f"{prefix}{i}", relation, f"c{i % 3}", f"What is the capital of {prefix}{i}?") for i in range(n)]

    known, unknown = facts("Ka", 10) + facts("Kb", 10, "P17"), facts("Un", 12) + facts("Uo", 12, "P17")
    rows = [FactKnowledge(f, 1.0, 1.0, "HighlyKnown") for f in known] + [
        FactKnowledge(f, 0.0, 0.0, "Unknown") for f in unknown]
    model, tokenizer = load_model("tiny-llama")
    base = RealData("tiny-llama", model, tokenizer, rows=rows)
    folder = save_splits(Splits(known[:4], unknown[:4], known[4:8]), tmp_path / "splits")
    config = ExperimentConfig.build(model="tiny-llama", data=str(folder), seeds=(0,), n_known=4, n_unknown=4,
                                    n_held=4, epochs=1, lr=1e-3, min_known_fraction=0.1)
    study = run_overlap(config, base=base, top_k=2, progress=False)
    assert [r["name"] for r in study.records] == ["sft", "self_distill", "uuid-sft", "high-overlap sft",
                                                  "low-overlap sft"]
    chosen = [r["selection_relations"] for r in study.records[3:]]
    assert [sum(c.values()) for c in chosen] == [4, 4] and set().union(*chosen) <= {"P36", "P17"}
    assert study.causal()["high_overlap"] > study.causal()["low_overlap"]
    per_relation = study.by_relation()  # the held-out facts are P36 and P17: one row each, every fact counted once
    assert [r["relation"] for r in per_relation] == sorted({f["relation"] for f in study.facts})
    assert sum(r["facts"] for r in per_relation) == len(study.facts) == 4
    assert sum(r["forgotten"] for r in per_relation) == sum(f["forgotten_sft"] for f in study.facts)
    assert json.dumps(overlap_report(study).results["overlap_by_relation"]) == json.dumps(per_relation)  # NaN too
    candidates = base.unknown_candidates(100, exclude=unknown[:5], seed=7, min_known_fraction=0.1)
    assert len(candidates) == 19 and not set(candidates) & set(unknown[:5]) and set(candidates) <= set(unknown)
    assert candidates == base.unknown_candidates(100, exclude=unknown[:5], seed=7, min_known_fraction=0.1)
    one = {f.relation for f in unknown}.pop()  # with new facts of one relation, candidates of that relation alone
    alone = base.unknown_candidates(100, exclude=unknown[:5], seed=7, min_known_fraction=0.1, new_relation=one)
    assert alone and {f.relation for f in alone} == {one} and set(alone) <= set(candidates)
    with pytest.raises(InterferenceError, match="the causal test needs 30 Unknown facts beyond D_unknown, the data "
                                                "has 9: lower --n-unknown"):
        run_overlap(replace(config, n_unknown=15), base=base, progress=False)  # before any training
    # relation-matched: both sets take the same relations (the unmatched split above may differ in its mix)
    matched = run_overlap(replace(config, n_unknown=4), base=base, top_k=2, match_relations=True, progress=False)
    high, low = (r["selection_relations"] for r in matched.records[3:])
    assert high == low and sum(high.values()) == 4 and matched.match_relations
    assert "relation-matched" in overlap_report(matched).description
    # candidates of many relations with one fact each cannot be matched: refused before any training
    lone = [Fact(f"Lo{i}", f"P{100 + i}", "c0", f"Where is Lo{i}?") for i in range(12)]
    scattered = RealData("tiny-llama", model, tokenizer, rows=rows[:20] + [
        FactKnowledge(f, 0.0, 0.0, "Unknown") for f in unknown[:12] + lone])
    with monkeypatch.context() as patch, pytest.raises(InterferenceError, match="need at least 10 candidates that "
                                                                                  "pair within their relations"):
        patch.setattr(overlap_study, "run_condition", lambda *a, **k: pytest.fail("training started"))
        run_overlap(replace(config, n_unknown=5, min_known_fraction=0.0), base=scattered, match_relations=True,
                    progress=False)
    # a splits folder holds no candidates beyond its D_unknown: the UUID control, no causal test
    splits = RealData("tiny-llama", model, tokenizer, splits=Splits(known[:4], unknown[:4], known[4:8]))
    assert splits.unknown_candidates(10) == []
    study = run_overlap(config, base=splits, top_k=2, progress=False)
    assert [r["name"] for r in study.records] == ["sft", "self_distill", "uuid-sft"] and study.causal() is None
    assert "uuid-sft trains the same facts with each subject replaced" in overlap_report(study).description


def test_the_uuid_control_keys_a_real_model_s_own_new_facts_and_generates_the_world_s(tmp_path, config, world):
    import re

    from interference.facts import Fact
    from interference.facts.realdata import RealData
    from interference.facts.splits import Splits
    from interference.models import load_model
    from interference.studies.setup import uuid_new_facts

    def facts(prefix, n):
        return [Fact(f"{prefix}{i}", "P36", f"c{i % 3}", f"What is the capital of {prefix}{i}?") for i in range(n)]

    model, tokenizer = load_model("tiny-llama")
    base = RealData("tiny-llama", model, tokenizer, splits=Splits(facts("Ka", 4), facts("Un", 4), facts("He", 4)))
    real = ExperimentConfig.build(model="tiny-llama", data=str(tmp_path), seeds=(0,), n_known=4, n_unknown=4,
                                  n_held=4)
    setup = make_setup(real, 0, base=base, progress=False)
    keyed = uuid_new_facts(base, setup, seed=0)
    assert [(f.relation, f.object) for f in keyed] == [(f.relation, f.object) for f in setup.unknown]
    assert all(re.fullmatch(r"[0-9A-F]{8}", f.subject) and f.subject in f.question for f in keyed)
    assert not {f.subject for f in keyed} & {f.subject for f in setup.known + setup.unknown + setup.held}
    assert keyed == uuid_new_facts(base, setup, seed=0) != uuid_new_facts(base, setup, seed=1)
    world_setup = make_setup(config, 0, base=world, progress=False)
    generated = uuid_new_facts(world, world_setup, seed=0)
    assert len(generated) == len(world_setup.unknown) and {f.key_kind for f in generated} == {"uuid"}
    assert not {f.subject for f in generated} & {f.subject for f in world_setup.unknown}


def test_tracing_on_a_real_model_traces_the_uuid_control_too(tmp_path, monkeypatch):
    from interference.facts import Fact
    from interference.facts.splits import Splits, save_splits
    from interference.io.errors import InterferenceError
    from interference.studies import tracing as tracing_study
    from interference.studies.tracing import GROUPS, run_tracing

    def facts(prefix, n):
        return [Fact(f"{prefix}{i}", "P36", f"c{i % 3}", f"What is the capital of {prefix}{i}?") for i in range(n)]

    folder = save_splits(Splits(facts("Ka", 6), facts("Un", 6), facts("He", 6)), tmp_path / "splits")
    config = ExperimentConfig.build(model="tiny-llama", data=str(folder), seeds=(0,), n_known=6, n_unknown=6,
                                    n_held=6, epochs=2, lr=3e-3, target_new_acc=None)
    study = run_tracing(config, samples=2, progress=False)
    assert [r["name"] for r in study.records] == ["sft", "self_distill", "uuid-sft"]
    uuid = study.records[2]
    assert "uuid-sft forgotten" in uuid["traced"] and uuid["traced_forgotten"] + uuid["retained"] <= 6
    assert set(GROUPS) >= {g for r in study.records for g in r["traced"]}
    # a new fact whose question does not name its subject cannot be UUID-keyed: refused before any training
    odd = Splits(facts("Ka", 6), facts("Un", 5) + [Fact("Zed", "P36", "c0", "What is its capital?")], facts("He", 6))
    bad = replace(config, data=str(save_splits(odd, tmp_path / "odd")))
    with monkeypatch.context() as patch, pytest.raises(InterferenceError, match="cannot UUID-key the fact"):
        patch.setattr(tracing_study, "run_condition", lambda *a, **k: pytest.fail("training started"))
        run_tracing(bad, samples=2, progress=False)


def test_a_forgetting_run_short_of_matched_acquisition_gets_no_verdict_and_says_why(config, world):
    from dataclasses import replace

    study = run_forgetting(config, ["sft", "self_distill"], base=world, progress=False)
    acquired = study.mean("sft", "new_acc")
    assert 0 < acquired < config.train.target_new_acc  # two epochs: short of the target
    headline = forgetting_report(study).to_dict()["headline"]
    assert headline["verdict"] is None
    assert headline["untested"].startswith(f"sft stayed below the acquisition target (mean acquisition "
                                           f"{acquired:.2f} < {config.train.target_new_acc:g})")
    never = replace(study, records=[{**r, "new_acc": 0.0} for r in study.records])
    assert forgetting_report(never).to_dict()["headline"]["untested"] == (
        "sft never learned the new facts (acquisition 0.00): the comparison needs acquisition")
    # the same records judged against a target sft reached get a verdict
    reached = replace(study, config=ExperimentConfig.quick_preset(**SMALL, target_new_acc=acquired))
    assert forgetting_report(reached).to_dict()["headline"]["verdict"]["verdict"] in (
        "reproduces", "partly reproduces", "does not reproduce")


@pytest.mark.parametrize("within_effect", [False, True])
def test_the_overlap_rule_reads_the_slope_within_seed_and_relation(config, within_effect):
    """Relations that differ in both overlap and forgetting make a pooled slope; the rule must not pass on it alone."""
    import numpy as np

    from interference.studies.overlap import OverlapStudy, overlap_checks

    rng, facts = np.random.default_rng(11), []
    for seed in (0, 1):
        for relation, (centre, rate) in {"P17": (0.70, 0.05), "P36": (0.80, 0.2), "P495": (0.90, 0.45)}.items():
            overlap = rng.normal(centre, 0.05, 150)
            logit = np.log(rate / (1 - rate)) + (40.0 * (overlap - centre) if within_effect else 0.0)
            forgotten = rng.random(150) < 1 / (1 + np.exp(-logit))
            facts += [{"seed": seed, "relation": relation, "max_cosine": float(o), "forgotten_sft": bool(f)}
                      for o, f in zip(overlap, forgotten, strict=True)]
    study = OverlapStudy(config=config, layer=1, top_k=4,
                         records=[{"name": "sft", "seed": 0, "drift": 0.1, "held_facts": facts}])
    relation = study.overlap_vs_forgetting()
    pooled, within = relation["logistic"], relation["logistic_within"]
    assert pooled.p_value < 1e-6 and within.strata == within.strata_used == 6
    rule = next(c for c in overlap_checks(study, study.records, relation) if c.rule.startswith("overlap predicts"))
    assert rule.passed is within_effect and (within.p_value < 0.05) is within_effect
    assert "6 of 6 seed × relation strata" in rule.observed and f"pooled slope {pooled.slope:.2f}" in rule.observed


def test_the_causal_test_after_the_same_number_of_epochs(config):
    from interference.studies.overlap import OverlapStudy

    def run(name, seed, held, stopped="target"):
        return {"name": name, "seed": seed, "held_acc_start": held[0], "epochs": len(held) - 1, "stopped": stopped,
                "curve_epochs": list(range(len(held))), "curves": {"held": held}}

    records = [run("high-overlap sft", 0, [0.9, 0.8, 0.7, 0.6]), run("low-overlap sft", 0, [0.9, 0.85, 0.8]),
               run("high-overlap sft", 1, [1.0, 0.9]), run("low-overlap sft", 1, [1.0, 0.95, 0.9, 0.8]),
               run("high-overlap sft", 2, [1.0, 0.9, 0.8]), run("low-overlap sft", 2, [1.0, 0.95], "epochs"),
               run("high-overlap sft", 3, [1.0, 0.5, 0.4])]
    equal = OverlapStudy(config=config, layer=1, top_k=4, records=records).causal_at_equal_epochs()
    # a run stopped at its target stopped within its last epoch, so only the epochs before it are completed:
    # seed 0 at epoch 1 (drops 0.1 and 0.05), seed 2 at epoch 1 (its low run used all its epochs: 0.1 and 0.05);
    # seed 1 completed no epoch in common but the start, and seed 3 has no low-overlap run: both left out
    assert equal.n == 2 and equal.mean == pytest.approx(0.05)
    del records[0]["curve_epochs"]  # records from before the curves were kept
    assert OverlapStudy(config=config, layer=1, top_k=4, records=records).causal_at_equal_epochs() is None


def test_a_ratio_of_drops_says_why_it_is_undefined():
    from interference.report.headline import drop_ratio

    def text(drops):
        records = [{"name": "sft", "seed": 0, "absolute_drop": drops[0]},
                   {"name": "uuid-sft", "seed": 0, "absolute_drop": drops[1]}]
        return drop_ratio(records, "sft", "uuid-sft", labels=("real-subject", "UUID")).text()

    assert text((-0.033, 0.01)) == ("undefined: mean absolute drops real-subject -0.033, UUID +0.010 (a ratio of drops "
                                    "needs a positive real-subject drop); real-subject drop -0.033 (one seed: no "
                                    "interval)")
    assert text((-0.033, -0.05)).startswith("undefined: mean absolute drops real-subject -0.033, UUID -0.050")
    assert text((0.12, 0.0)) == ("∞ (mean absolute drops real-subject +0.120, UUID +0.000); real-subject drop +0.120 "
                                  "(one seed: no interval)")
    assert text((0.12, 0.04)).startswith("3.00 (mean absolute drops real-subject +0.120, UUID +0.040); real-subject "
                                         "drop +0.120 (")
    assert text((None, 0.04)) == "no drops to compare; real-subject drop —"


def test_table_1s_drop_ratio_rule_needs_an_sft_drop_beyond_noise():
    from interference.studies.forgetting import forgetting_checks

    def rule(sft_drops, sd_drop=-0.01):
        records = [{"name": name, "seed": seed, "absolute_drop": drop, "held_acc_start": 0.9,
                    "held_acc_final": 0.9 - drop, "new_acc": 0.9}
                   for seed, sft in enumerate(sft_drops) for name, drop in (("sft", sft), ("self_distill", sd_drop))]
        return next(c for c in forgetting_checks(records) if c.rule.startswith("absolute drop"))

    noisy = rule([0.10, -0.08, 0.03, -0.02])  # self_distill's drop is negative: ∞ over an sft drop of +0.008
    assert noisy.observed.startswith("∞") and "sft drop +0.008 [" in noisy.observed and not noisy.passed
    assert rule([0.10, 0.08, 0.12, 0.09]).passed
    assert not rule([0.10, 0.08, 0.12, 0.09], sd_drop=0.05).passed  # a real drop, but a ratio of 1.95 < 3
    assert not rule([0.30]).passed  # one seed: no interval, so no drop beyond noise


def test_the_key_ratio_rule_needs_a_real_subject_drop_beyond_noise(config):
    from types import SimpleNamespace

    from interference.studies.overlap import OverlapStudy, overlap_checks

    def verdict(sft_drops):
        records = [{"name": name, "seed": seed, "absolute_drop": drop, "held_acc_final": 0.9 - drop, "drift": 0.1}
                   for seed, sft in enumerate(sft_drops) for name, drop in (("sft", sft), ("uuid-sft", -0.05))]
        study = OverlapStudy(config=config, layer=1, top_k=4, records=records)
        fit = SimpleNamespace(note="no informative stratum", strata=0, strata_used=0)
        checks = overlap_checks(study, records, {"logistic_within": fit, "logistic": fit})
        return next(c for c in checks if c.rule.startswith("absolute drop"))

    noisy = verdict([0.10, -0.08, 0.03, -0.02])  # UUID's drop is negative: the ratio is ∞ over a drop of +0.008
    assert noisy.observed.startswith("∞") and "name-like drop +0.008 [" in noisy.observed and not noisy.passed
    assert verdict([0.10, 0.08, 0.12, 0.09]).passed


def test_a_condition_starts_from_the_snapshot_or_from_the_base_model(config, world):
    from interference.studies.setup import start_model

    setup = make_setup(config, 0, base=world)
    base = dict(setup.model.named_parameters())

    def same_as_base(model) -> bool:
        return all(torch.equal(p, base[n]) for n, p in model.named_parameters())

    assert same_as_base(start_model(setup, config.train_config(0, method="sft", start="base")))
    snapshot = start_model(setup, config.train_config(0, method="sft"))
    assert not same_as_base(snapshot) and not snapshot.training
