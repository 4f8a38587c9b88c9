"""`bench.bench_train` runs the chosen variants on any loadable model and reports only the ratios it measured (what
the numbers are is the bench's business, never a test's)."""

from __future__ import annotations

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
