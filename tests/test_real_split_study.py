"""Real splits without categorising: the shared SLiCK table of SmolLM2-135M through the commands, at tiny sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from interference.io.errors import InterferenceError

TABLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "slick" / "smollm2-135m-fast.jsonl"
#: HighlyKnown fractions of the shared table, as its README states them (519 questions a relation).
README_FRACTIONS = {"P36": 0.162, "P17": 0.139, "P407": 0.179, "P495": 0.356}


@pytest.fixture(scope="module")
def table() -> Path:
    if not TABLE.is_file():
        pytest.skip(f"the shared SLiCK table is not at {TABLE} (it sits in ../shared beside the repo)")
    return TABLE


def test_the_shared_table_splits_whole_with_the_paper_s_filter(table):
    from interference.facts.knowledge_cache import knowledge_source
    from interference.facts.splits import SplitConfig, build_splits

    rows = knowledge_source(table, "smollm2-135m")
    assert len(rows) == 2076
    splits = build_splits([r.fact for r in rows], rows, SplitConfig(n_known=24, n_unknown=24, n_held=40))
    summary = splits.knowledge_summary()
    assert summary["known_fractions"] == pytest.approx(README_FRACTIONS, abs=1e-3)
    assert summary["relations"] == ["P495"] and summary["min_known_fraction"] == 0.3
    lower = build_splits([r.fact for r in rows], rows, SplitConfig(n_known=24, n_unknown=24, n_held=40,
                                                                   min_known_fraction=0.1))
    assert set(lower.relations) == set(README_FRACTIONS)


def test_a_table_of_another_model_is_refused_before_loading(table):
    from interference.studies.setup import data_setup

    with pytest.raises(InterferenceError, match="categorised with model smollm2-135m, not 'tiny-llama'"):
        data_setup("tiny-llama", table, n_known=2, n_unknown=2, n_held=2)


def test_knowledge_and_a_different_data_are_refused(table, tmp_path, capsys):
    from analyses.forgetting import main

    argv = ["--model", "smollm2-135m", "--knowledge", str(table), "--data", str(tmp_path), "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    assert "--knowledge TABLE or --data" in capsys.readouterr().err


@pytest.mark.smollm2
def test_forgetting_study_end_to_end_from_the_shared_table(table, smollm2, tmp_path):
    """sft and self_distill on real SmolLM2 splits from the table: same start, records list the relation filter."""
    from analyses.forgetting import main

    out = tmp_path / "report"
    argv = ["--model", "smollm2-135m", "--knowledge", str(table), "--n-known", "2", "--n-unknown", "2",
            "--n-held", "2", "--seeds", "0", "--methods", "sft", "self_distill", "--epochs", "1", "--lr", "1e-4",
            "--batch-size", "4", "--device", "cpu", "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["data"] == str(table) and results["config"]["device"] == "cpu"
    conditions = {c["name"]: c for c in results["conditions"]}
    assert set(conditions) == {"sft", "self_distill"}
    assert conditions["sft"]["held_acc_start"] == conditions["self_distill"]["held_acc_start"]  # one shared start
    for record in conditions.values():
        assert record["relation_filter"]["relations"] == ["P495"]
        assert record["relation_filter"]["known_fractions"] == pytest.approx(README_FRACTIONS, abs=1e-3)
        assert 0 <= record["held_acc_final"] <= 1 and 0 <= record["new_acc"] <= 1
        assert record["held_relations"] == ["P495", "P495"] and record["new_relations"] == ["P495", "P495"]


def test_the_hypotheses_grid_refuses_bad_subjects_before_loading_the_model(table, tmp_path, capsys):
    from analyses.hypotheses import main

    real = ["--model", "smollm2-135m", "--knowledge", str(table), "--out", str(tmp_path / "r"), "--no-progress"]
    assert main([*real, "--subjects", str(tmp_path / "none")]) == 2
    assert "is not an EntityQuestions folder" in capsys.readouterr().err
    assert main([*real, "--relation", "P9999"]) == 2  # the default folder, ../shared/data/entityquestions
    assert "relation 'P9999' is not in" in capsys.readouterr().err
    assert main(["--quick", "--relation", "P17", "--out", str(tmp_path / "w")]) == 2
    assert "--relation and --subjects need a real --model" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
@pytest.mark.smollm2
def test_hypotheses_grid_on_smollm2_from_the_shared_table(table, smollm2, tmp_path):
    """The command of the issue at tiny size: name-like and UUID cells on real SmolLM2 splits of the shared table,
    generated P17 facts from the default EntityQuestions folder, one shared start, verdicts (the grid's mechanics are
    tested fast in test_new_facts.py; this is the real model and table, about 30 s)."""
    from analyses.hypotheses import main
    from interference.facts.new_facts import DEFAULT_SUBJECTS

    if not DEFAULT_SUBJECTS.is_dir():
        pytest.skip(f"EntityQuestions data not found at {DEFAULT_SUBJECTS}")
    out = tmp_path / "report"
    argv = ["--model", "smollm2-135m", "--knowledge", str(table), "--n-known", "2", "--n-held", "2",
            "--counts", "2", "--seeds", "0", "--epochs", "1", "--batch-size", "8", "--device", "cpu",
            "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["train"]["lr"] == 1e-4  # a real model's default
    new = results["results"]["new_facts"]
    assert new["relation"] == "P17" and new["template"] == "Which country is [X] located in?"
    assert new["real_subjects"] > 7000 and new["initial_pieces"] > 1000
    assert results["results"]["run_fingerprint"]["settings"]["new_facts"]["relation"] == "P17"
    conditions = {c["name"]: c for c in results["conditions"]}
    assert set(conditions) == {"name x2", "uuid x2"}
    starts = {tuple(c["held_correct_start"]) for c in conditions.values()}
    assert len(starts) == 1  # every cell from the same base model and D_held
    for name, record in conditions.items():
        assert record["key_kind"] == name.split()[0] and len(record["new_correct_final"]) == record["n_new"]
        assert record["relation_filter"]["relations"] == ["P495"]  # D_known/D_held: real HighlyKnown facts
        assert 0 <= record["drift"] < 1
    assert [v["hypothesis"] for v in results["results"]["verdicts"]] == ["capacity limits", "behaviour cloning",
                                                             "localized interference"]
    description = results["description"]
    assert "smollm2-135m" in description and "relation P17" in description
