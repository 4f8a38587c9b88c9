"""FFN concept promotion study: the forgotten/retained split, per-fact promotion vectors, the study's rows and
report, and the command line."""

from __future__ import annotations

import json

import pytest
import torch
from glance import assert_reads_at_a_glance

from analyses import ffn as cli
from interference.facts import qa_prompt, qa_target
from interference.io.errors import InterferenceError
from interference.measures.ffn import answer_promotion
from interference.measures.history import EpochRecord, TrainResult
from interference.report import CONDITION_FIELDS, load_results, validate_results
from interference.studies.ffn import METHODS, MODELS, PROMOTIONS, ffn_report, outcome_groups, promotion_vectors, run_ffn
from interference.studies.setup import ExperimentConfig, make_setup
from interference.train import TrainConfig


@pytest.fixture(scope="module")
def config():
    return ExperimentConfig.quick_preset(seeds=(0,), epochs=6, n_known=30, n_unknown=40, n_held=30)


@pytest.fixture(scope="module")
def study(config, world):
    return run_ffn(config, base=world, progress=False, top_k=4, n_vectors=3, dominant=5)


def _result(held: list[list[bool]]) -> TrainResult:
    history = [EpochRecord(epoch=e, step=e, accuracy={"known": 1.0, "unknown": 0.0, "held": sum(c) / len(c)},
                           correct={"known": [], "unknown": [], "held": c}) for e, c in enumerate(held)]
    return TrainResult(TrainConfig(), history, "epochs", [])


def test_outcome_groups_use_the_held_out_peak():
    # evaluation 1 is the peak (3 of 4 correct); fact 0 was wrong there, fact 3 was right at the start only
    result = _result([[False, True, False, True], [True, True, True, False], [False, True, False, False]])
    assert outcome_groups(result) == {"forgotten": [0, 2], "retained": [1]}
    assert outcome_groups(_result([[True, False], [True, False]])) == {"forgotten": [], "retained": [0]}


def test_promotion_vectors_sum_to_the_total_and_rank_by_contribution(config, world):
    setup = make_setup(config, 0, base=world, progress=False)
    facts = setup.held[:4]
    full, top, total, tokens = promotion_vectors(setup.model, setup.tokenizer, facts, 1, dominant=3)
    assert full.shape[0] == 4 and top.shape == (4, 3)
    assert torch.allclose(full.sum(dim=1), torch.tensor(total), atol=1e-4)
    for row, fact in enumerate(facts):
        single = answer_promotion(setup.model, setup.tokenizer, qa_prompt(fact), qa_target(fact), 1, top_k=3)
        assert top[row].tolist() == single.indices.tolist()
        assert torch.allclose(full[row, top[row]], single.promotion, atol=1e-5)
        assert tokens[row] == single.token and tokens[row].strip()
    with pytest.raises(InterferenceError, match="dominant must lie"):
        promotion_vectors(setup.model, setup.tokenizer, facts, 1, dominant=0)


def test_study_conditions_and_rows(study):
    assert [r["name"] for r in study.records] == list(METHODS)
    for record in study.records:
        assert all(field in record for field in CONDITION_FIELDS)
        assert record["seed"] == 0 and record["drift"] >= 0
    sft = study.record("sft")
    groups = {g: [f for f in study.facts if f["group"] == g] for g in ("forgotten", "retained")}
    assert len(groups["forgotten"]) == sft["n_forgotten_sft"]
    assert len(groups["retained"]) == sft["n_retained_sft"]
    assert study.facts, "the held-out facts known at the peak are either forgotten or retained"
    assert len(study.movement) == len(METHODS) * study.layers
    for row in study.movement:
        assert row["mean_relative"] > 0 and row["max_relative"] >= row["mean_relative"]
        assert -1 <= row["mean_cosine"] <= 1 and 0 < row["top_share"] <= 1
    assert len(study.moved) == len(METHODS) * study.layers * 3
    for row in study.moved:
        assert len(row["tokens_before"]) == len(row["tokens_after"]) == 4
    ranked = [r["distance"] for r in study.moved if r["method"] == "sft" and r["layer"] == 0]
    assert ranked == sorted(ranked, reverse=True)
    assert len(study.promotion) == study.layers * len(MODELS) * 2
    for row in study.promotion:
        assert all(row[kind] is not None for kind in PROMOTIONS) or row["facts"] == 0
        if row["model"] == "base":
            assert row["followed"] == row["dominant"] and row["dominant_shift"] is None
        elif row["facts"]:
            assert row["dominant_shift"] > 0
    for fact in study.facts:
        assert [p["layer"] for p in fact["promotion"]] == list(range(study.layers))
    group = "forgotten" if groups["forgotten"] else "retained"
    mean = sum(f["promotion"][1]["sft"]["dominant"] for f in groups[group]) / len(groups[group])
    assert study.mean_promotion("sft", group)[1] == pytest.approx(mean)


def test_report_validates_and_writes_both_files(study, tmp_path):
    report = ffn_report(study)
    data = report.to_dict()
    validate_results(data)
    assert [c["name"] for c in data["conditions"]] == list(METHODS)
    titles = [t["title"] for t in data["tables"]]
    assert "base → sft" in titles and "base → self_distill" in titles
    title = "Promotion of the held-out answer by dominant sub-updates"
    figure = next(f for f in data["figures"] if f["title"] == title)
    assert len(figure["traces"]) == len(MODELS) * 2
    out = report.write(tmp_path / "ffn")
    assert "≈15 % / ≈3 %" in assert_reads_at_a_glance((out / "report.html").read_text())
    assert load_results(out)["results"]["forgotten"] == study.record("sft")["n_forgotten_sft"]


def test_a_run_short_of_matched_acquisition_gets_no_verdict_and_says_why(study):
    from dataclasses import replace

    target = study.config.train.target_new_acc

    def headline(**acquired):
        records = [{**r, "new_acc": acquired[r["name"]]} for r in study.records]
        return ffn_report(replace(study, records=records)).to_dict()["headline"]

    short = headline(sft=target / 2, self_distill=target)
    assert short["verdict"] is None
    assert short["untested"] == (f"sft stayed below the acquisition target (mean acquisition {target / 2:.2f} < "
                                 f"{target:g}): the comparison is not at matched acquisition")
    assert headline(sft=target, self_distill=0.0)["untested"] == (
        "self_distill never learned the new facts (acquisition 0.00): the comparison needs acquisition")
    reached = headline(sft=target, self_distill=target)
    assert reached["untested"] is None
    assert reached["verdict"]["verdict"] in ("reproduces", "partly reproduces", "does not reproduce")


def test_command_writes_both_files(tmp_path, capsys):
    out = tmp_path / "report"
    assert cli.main(["--quick", "--out", str(out), "--epochs", "2", "--n-known", "12", "--n-unknown", "12",
                     "--n-held", "12", "--vectors", "2", "--no-progress"]) == 0
    data = json.loads((out / "results.json").read_text())
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert data["seeds"] == [0] and [c["name"] for c in data["conditions"]] == list(METHODS)
    assert "wall time" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--layer", "-1"], ["--epochs", "0"], ["--dominant", "0"]])
def test_command_rejects_bad_options(argv, capsys, tmp_path):
    assert cli.main(["--quick", "--out", str(tmp_path / "x"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
    assert not (tmp_path / "x").exists()
