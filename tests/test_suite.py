"""The suite command at tiny size on the quick world: the plan and estimate before the work, seeds split over
worker processes and merged into the report one process would write, seeds accumulating over runs, and the index."""

from __future__ import annotations

import json
import re

import pytest

from analyses.suite import _part_args, main, match_relations
from interference.studies.suite import Cell, estimate, plan, rate_from_records

TINY = ["--quick", "--no-progress", "--epochs", "6", "--n-known", "24", "--n-unknown", "24", "--n-held", "24"]


def test_the_plan_counts_each_part_s_conditions_and_the_estimate_scales_with_them():
    cells = plan(["forgetting", "hypotheses", "freezing"], n_known=10, n_unknown=20, n_held=30,
                 layers=30, counts=[100, 1000], band=6)
    assert [(c.part, c.conditions, c.trained, c.evaluated) for c in cells] == [
        ("forgetting", 6, 30, 60), ("hypotheses", 2, 110, 140), ("hypotheses", 2, 1010, 1040),
        ("freezing", 11, 30, 60)]
    costs = estimate(cells, {"forgetting": 5, "hypotheses": 1, "freezing": 0}, rate=0.01, epochs=2)
    assert costs == pytest.approx({"forgetting": 5 * 6 * 0.01 * 2 * 60, "hypotheses": 2 * 0.01 * 2 * (140 + 1040),
                                   "freezing": 0.0})
    with pytest.raises(Exception, match="unknown suite part 'ffn'"):
        plan(["ffn"], n_known=1, n_unknown=1, n_held=1, layers=2, counts=[1], band=1)
    assert Cell("x", 1, 1, 1).conditions == 1
    remedies = plan(["remedies"], n_known=20, n_unknown=10, n_held=30, layers=2, counts=[1], band=1, remedies=5,
                    attribution_steps=4)
    assert [(c.conditions, c.evaluated, c.passes) for c in remedies] == [(5, 60, 4 * 30 + 10)]  # Fisher: 50 / 5
    freezing = plan(["freezing"], n_known=20, n_unknown=10, n_held=30, layers=2, counts=[1], band=1,
                    attribution_steps=4)
    assert [(c.conditions, c.passes) for c in freezing] == [(5, 4 * 30)]  # the path integral of every condition
    assert estimate(remedies, {"remedies": 2}, rate=0.01, epochs=3) == pytest.approx(
        {"remedies": 2 * 5 * 0.01 * (3 * 60 + 130)})


def test_the_rate_from_earlier_records_sizes_a_grid_cell_by_its_own_new_facts(tmp_path):
    def results(part, config, records):
        folder = tmp_path / part
        folder.mkdir()
        rows = [{"name": "sft", "seed": 0, "task_acc": 1.0, "new_acc": 0.9, "held_acc_peak": 0.9,
                 "held_acc_final": 0.8, "forgetting": 0.1, **r} for r in records]
        (folder / "results.json").write_text(json.dumps({
            "title": part, "config": config, "seeds": [0], "conditions": rows,
            "versions": dict.fromkeys(("python", "torch", "transformers", "interference"), "x")}))

    sizes = {"n_known": 200, "n_unknown": 300, "n_held": 200}
    assert rate_from_records(tmp_path) is None
    results("forgetting", sizes, [{"seconds": 70.0, "epochs": 5}])  # 5 epochs of 700 facts: 0.02 s a fact-epoch
    assert rate_from_records(tmp_path) == pytest.approx((0.02, 5.0, 1))
    # a 10⁴ cell of the grid at the same rate: 5 epochs of 200 + 10,000 + 200 facts, not of the config's 700
    results("hypotheses", sizes, [{"seconds": 0.02 * 5 * 10_400, "epochs": 5, "n_new": 10_000}])
    assert rate_from_records(tmp_path) == pytest.approx((0.02, 5.0, 2))


def test_estimate_only_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "suite"
    assert main([*TINY, "--seeds", "0", "--estimate-only", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "estimate (calibrated here:" in err and re.search(r"forgetting +6 conditions", err)
    assert re.search(r"freezing +5 conditions", err)  # full SFT + train-only and freeze for each of 2 one-layer blocks
    assert not out.exists()


def test_a_compiled_step_is_calibrated_compiled_and_its_compiling_is_counted(tmp_path, capsys):
    out = tmp_path / "suite"
    assert main([*TINY, "--parts", "forgetting", "--seeds", "0", "--torch-compile", "default", "--estimate-only",
                 "--out", str(out)]) == 0
    assert re.search(r"compiling the step took \d+ s, counted once a part", capsys.readouterr().err)
    assert not out.exists()


def test_max_minutes_refuses_a_plan_over_budget_before_any_work(tmp_path, capsys):
    out = tmp_path / "suite"
    assert main([*TINY, "--seeds", "0", "1", "--max-minutes", "0.001", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert re.search(r"error: the estimate \([\d.]+ min\) exceeds --max-minutes 0.001", err)
    assert not out.exists()
    assert main([*TINY, "--max-minutes", "0", "--out", str(out)]) == 2
    assert "--max-minutes must be positive" in capsys.readouterr().err


def test_a_part_s_options_are_checked_by_its_own_command_before_any_work(tmp_path, capsys):
    out = tmp_path / "suite"
    assert main([*TINY, "--lora-lr", "1e-3", "--out", str(out)]) == 2  # the default parts have no LoRA
    assert "--lora-lr is the remedies' LoRA rate: add remedies to --parts" in capsys.readouterr().err
    assert main([*TINY, "--parts", "remedies", "--lora-lr", "-1", "--out", str(out)]) == 2
    assert "lora_lr" in capsys.readouterr().err  # analyses.remedies' own check, before the plan
    assert main([*TINY, "--parts", "hypotheses", "--relation", "P17", "--out", str(out)]) == 2
    assert "--relation and --subjects need a real --model" in capsys.readouterr().err
    assert main([*TINY, "--parts", "freezing", "--band", "0", "--out", str(out)]) == 2
    assert "--band must be >= 1, got 0" in capsys.readouterr().err
    assert not out.exists()


def test_workers_merge_into_one_report_and_seeds_accumulate(tmp_path, capsys):
    from analyses.forgetting import main as forgetting

    out = tmp_path / "suite"
    assert main([*TINY, "--parts", "forgetting", "--seeds", "0", "1", "--workers", "2", "--out", str(out)]) == 0
    assert not (out / ".workers").exists()  # the workers' reports are merged, then removed
    assert forgetting([*TINY, "--seeds", "0", "1", "--out", str(tmp_path / "one")]) == 0
    merged, one = (json.loads((p / "results.json").read_text()) for p in (out / "forgetting", tmp_path / "one"))
    def stable(records):  # timings differ between two runs of a seed, and threads between processes
        return [{k: v for k, v in r.items() if k not in ("seconds", "machine")} for r in records]

    assert stable(merged["conditions"]) == stable(one["conditions"])
    assert merged["headline"] == one["headline"]

    capsys.readouterr()
    assert main([*TINY, "--parts", "forgetting", "--seeds", "1", "2", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "from the 12 conditions already in" in err and re.search(r"forgetting +6 conditions", err)  # seed 2 only
    index = json.loads((out / "suite.json").read_text())
    assert index["parts"][0]["seeds"] == [0, 1, 2] and index["parts"][0]["conditions"] == 18
    assert [p["verdict"] for p in index["parts"][1:]] == ["not run"] * 4
    assert "forgetting/report.html" in (out / "index.html").read_text()

    before = (out / "forgetting" / "results.json").read_text()
    assert main([*TINY, "--parts", "forgetting", "--seeds", "3", "--lr", "0.002", "--out", str(out)]) == 2
    assert "holds a run with other settings (train.lr: 0.001 there, 0.002 now)" in capsys.readouterr().err
    assert (out / "forgetting" / "results.json").read_text() == before


def test_the_remedies_part_runs_on_request_and_its_seeds_accumulate(tmp_path, capsys):
    out = tmp_path / "suite"
    tiny = [*TINY, "--epochs", "3", "--parts", "remedies", "--seeds", "0", "--out", str(out)]
    assert main(tiny) == 0
    err = capsys.readouterr().err
    assert re.search(r"remedies +9 conditions", err)  # eight trained methods and WiSE-FT's sweep
    index = json.loads((out / "suite.json").read_text())
    assert [p["part"] for p in index["parts"]][-1] == "remedies" and index["parts"][-1]["seeds"] == [0]
    assert json.loads((out / "remedies" / "results.json").read_text())["seeds"] == [0]
    # the suite's fingerprint of the part is the one analyses.remedies recorded: the same seed again is found there
    assert main(tiny) == 0
    assert "remedies: seeds 0 are all in" in capsys.readouterr().err
    # LoRA's own rate is another experiment: refused there before any work, and passed on to analyses.remedies
    assert main([*tiny, "--lora-lr", "1e-3"]) == 2
    assert "remedies.lora_lr: None there, 0.001 now" in capsys.readouterr().err
    assert _part_args("remedies", ["--lr", "1e-4"], [10], 1, {}, 1e-3) == ["--lr", "1e-4", "--lora-lr", "0.001"]


def test_overlap_tracing_and_freezing_add_one_seed_a_run_under_the_fingerprints_their_commands_record(tmp_path,
                                                                                                       capsys):
    out = tmp_path / "suite"
    parts = ("overlap", "tracing", "freezing")
    tiny = [*TINY, "--epochs", "3", "--parts", *parts, "--layer", "1", "--seeds", "0", "1", "--out", str(out)]
    for run, seeds in enumerate(([0], [0, 1])):
        assert main(tiny) == 0
        err = capsys.readouterr().err
        assert re.search(r"tracing +3 conditions", err)  # one seed: SFT, self-distillation and the UUID control
        assert re.search(r"freezing +5 conditions", err)  # full SFT + train-only and freeze of 2 one-layer blocks
        for part in parts:
            records = json.loads((out / part / "results.json").read_text())["conditions"]
            assert sorted({r["seed"] for r in records}) == seeds, (run, part)
    assert main(tiny) == 0  # --layer is passed to overlap and freezing, not to tracing: each run's folder is found
    err = capsys.readouterr().err
    assert all(f"{part}: seeds 0 1 are all in" in err for part in parts), err
    assert [p["seeds"] for p in json.loads((out / "suite.json").read_text())["parts"]
            if p["part"] in parts] == [[0, 1]] * 3


def test_the_overlap_part_is_matched_by_relation_on_a_real_model_unless_told_otherwise(tmp_path, capsys):
    assert match_relations(None, "smollm2-135m") and not match_relations(None, "world")
    assert match_relations(True, "world") and not match_relations(False, "smollm2-135m")
    assert _part_args("overlap", ["--lr", "1e-4"], [10], 1, {}, None, True) == ["--lr", "1e-4", "--match-relations"]
    assert _part_args("tracing", [], [10], 1, {}, None, True) == []  # only overlap takes it
    out = tmp_path / "suite"
    assert main([*TINY, "--parts", "overlap", "--match-relations", "--estimate-only", "--out", str(out)]) == 0
    assert "overlap's causal test matched by relation" in capsys.readouterr().err
    assert main([*TINY, "--parts", "overlap", "--estimate-only", "--out", str(out)]) == 0
    assert "matched by relation" not in capsys.readouterr().err  # the world's default
    assert main([*TINY, "--parts", "forgetting", "--match-relations", "--out", str(out)]) == 2
    assert "--match-relations sets the overlap part's causal test" in capsys.readouterr().err
    assert not out.exists()


def test_tracing_which_traces_every_layer_is_passed_no_layer_in_either_spelling():
    assert _part_args("tracing", ["--layer=3", "--lr", "1e-4", "--layer", "2"], [10], 1, {}) == ["--lr", "1e-4"]
    assert _part_args("overlap", ["--layer=3"], [10], 1, {}) == ["--layer=3"]


def test_a_worker_killed_by_a_signal_fails_its_part(tmp_path, capsys, monkeypatch):
    import analyses.suite as suite

    class Worker:
        def __init__(self, code):
            self.code = code

        def wait(self):
            return self.code

    calls = []

    def fake(part, argv, *, workers=1, wait=True):  # the second worker ends as the OOM killer ends a process
        calls.append(argv)
        return Worker(-9 if len(calls) == 2 else 0) if not wait else 0

    monkeypatch.setattr(suite, "_analysis", fake)
    out = tmp_path / "suite"
    assert main([*TINY, "--parts", "forgetting", "--seeds", "0", "1", "--workers", "2", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "forgetting: the worker of seeds 1 was killed by signal 9; nothing was merged" in err
    assert "failed: forgetting" in err
    assert not any("--merge" in argv for argv in calls)  # nothing pooled from a dead worker
    assert json.loads((out / "suite.json").read_text())["exit_codes"] == {"forgetting": 137}
