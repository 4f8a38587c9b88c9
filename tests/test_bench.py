"""`bench.bench_train` runs the chosen variants on any loadable model and reports only the ratios it measured (what
the numbers are is the bench's business, never a test's)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from interference.train import loop as loop_module

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def bench_train(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))  # as `python -m bench.bench_train` from the repository root
    monkeypatch.setattr(loop_module, "time", loop_module.time)  # the bench repoints the loop's clock: restore it
    from bench import bench_train

    return bench_train


def test_the_training_bench_times_chosen_variants_on_a_loaded_model(bench_train, tmp_path):
    out = tmp_path / "bench.json"
    report = bench_train.main(["--model", "tiny-llama", "--facts", "16", "--epochs", "1", "--rounds", "1",
                               "--variants", "lora rank 8", "plain PyTorch sft", "--out", str(out)])
    assert report["setup"]["model"] == "tiny-llama"
    assert report["setup"]["layers"] == 2 and report["setup"]["facts"] == 16
    assert set(report["epoch_seconds"]) == {"sft", "lora rank 8", "plain PyTorch sft"}  # sft always: ratios are to it
    assert all(len(times) == 1 and times[0] > 0 for times in report["epoch_seconds"].values())
    assert set(report["ratios"]) == {"lora rank 8 / sft", "our sft loop / plain PyTorch"}
    assert json.loads(out.read_text())["ratios"] == report["ratios"]


def test_the_training_bench_refuses_an_unknown_variant_before_any_work(bench_train, capsys):
    with pytest.raises(SystemExit) as exit_:
        bench_train.main(["--variants", "sft + ewc", "lora rank 4"])
    assert exit_.value.code == 2
    assert "unknown variant 'lora rank 4'" in capsys.readouterr().err


def _bench_module(monkeypatch, name: str):
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.chdir(ROOT)  # the children run `python -m bench.<name>` from the repository root
    return importlib.import_module(f"bench.{name}")


@pytest.fixture
def bench_threads(monkeypatch):
    return _bench_module(monkeypatch, "bench_threads")


def test_the_weights_digest_sees_one_changed_bit_and_not_the_order_of_parameters(bench_threads):
    import torch

    params = {"b": torch.arange(6.0).reshape(2, 3), "a": torch.ones(4)}
    digest = bench_threads.weights_sha256(params)
    assert digest == bench_threads.weights_sha256(dict(reversed(params.items())))
    nudged = {**params, "a": torch.nextafter(params["a"], torch.tensor(2.0))}  # one ulp up
    assert bench_threads.weights_sha256(nudged) != digest
    assert bench_threads.weights_sha256({**params, "b": params["b"].reshape(3, 2)}) != digest  # same bytes, shape


def test_the_thread_comparison_names_where_runs_part(bench_threads):
    run = {"threads": 1, "snapshot_sha256": "s", "weights_sha256": "w", "curves": {"held": [0.5]}, "epochs": 3,
           "stopped": "target"}
    verdicts = bench_threads.compare([run, {**run, "threads": 2},
                                      {**run, "threads": 3, "weights_sha256": "x"},
                                      {**run, "threads": 4, "snapshot_sha256": "t", "weights_sha256": "x",
                                       "curves": {"held": [0.6]}}])
    assert verdicts == {"2": {"parts_at": "same bits", "same_accuracies": True},
                        "3": {"parts_at": "trained weights", "same_accuracies": True},
                        "4": {"parts_at": "snapshot", "same_accuracies": False}}


def test_the_thread_bench_trains_under_each_count_in_its_own_process(bench_threads, tmp_path, capsys):
    out = tmp_path / "threads.json"
    assert bench_threads.main(["--threads", "1", "2", "--n-known", "8", "--n-unknown", "8", "--n-held", "8",
                               "--epochs", "2", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [r["threads"] for r in report["runs"]] == [1, 2]
    assert [r["torch_threads"] for r in report["runs"]] == [1, 2]  # each child really ran under its count
    assert report["identical"] == (report["against_first"]["2"]["parts_at"] == "same bits")
    assert "across [1, 2] threads" in capsys.readouterr().out


@pytest.mark.parametrize("threads", [["1"], ["2", "2"], ["0", "1"]])
def test_the_thread_bench_refuses_fewer_than_two_counts_before_any_work(bench_threads, threads, capsys):
    with pytest.raises(SystemExit) as exit_:
        bench_threads.main(["--threads", *threads])
    assert exit_.value.code == 2
    assert "--threads needs at least two different counts" in capsys.readouterr().err


def test_the_thread_bench_refuses_bad_facts_before_starting_a_child(bench_threads, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench_threads, "spawn", lambda *a: pytest.fail("a child started"))
    assert bench_threads.main(["--model", "tiny-llama", "--knowledge", str(tmp_path / "missing.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing.jsonl" in err and len(err.strip().splitlines()) == 1


@pytest.fixture
def bench_bits(monkeypatch):
    return _bench_module(monkeypatch, "bench_bits")


def test_a_fingerprint_matches_a_known_one_on_every_figure_both_have(bench_bits):
    known = [{"machine": "A", "mode": "portable", "dates": "d", "product": "p", "start": "s", "snapshot": "n"},
             {"machine": "B", "mode": "portable", "dates": "d", "product": None, "start": "s", "snapshot": "m"},
             {"machine": "C", "mode": "strict", "dates": "d", "product": "q", "start": None, "snapshot": None}]
    assert [m["machine"] for m in bench_bits.matches({"product": "p", "start": "s", "snapshot": "n"}, known)] == ["A"]
    assert bench_bits.matches({"product": "p"}, known) == [{"machine": "A", "mode": "portable", "dates": "d",
                                                            "compared": ["product"]}]
    assert bench_bits.matches({"product": "x", "start": "s", "snapshot": "m"}, known)[0]["machine"] == "B"
    assert bench_bits.matches({"start": "s"}, known[2:]) == []  # nothing in common: no match


def test_the_fixed_inputs_are_exact_and_centred(bench_bits):
    import torch

    matrix = bench_bits.fixed_matrix(3, 4, 0.25)
    assert matrix.dtype == torch.float32 and matrix.shape == (3, 4)
    assert matrix.flatten()[:5].tolist() == [-0.5, -0.25, 0.0, 0.25, -0.5]


def test_the_bits_bench_fingerprints_each_mode_in_its_own_process(bench_bits, tmp_path, capsys):
    out = tmp_path / "bits.json"
    assert bench_bits.main(["--no-model", "--modes", "portable", "strict", "--out", str(out)]) == 0
    runs = json.loads(out.read_text())["runs"]
    assert [r["mode"] for r in runs] == ["portable", "strict"]  # each child ran under its own mode
    assert runs[1]["mkl"] in ("COMPATIBLE", None) and all(len(r["product"]) == 16 for r in runs)
    assert "snapshot" not in runs[0] and "matches:" in capsys.readouterr().out


def test_the_bits_bench_refuses_a_missing_table_before_any_child(bench_bits, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench_bits, "spawn", lambda *a: pytest.fail("a child started"))
    assert bench_bits.main(["--table", str(tmp_path / "missing.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: SLiCK table") and len(err.strip().splitlines()) == 1
