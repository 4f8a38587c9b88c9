"""A compiled training step (`TrainConfig.torch_compile`): fixed-width batches train what cut ones do, and a compiled
run follows the eager one to float tolerance (on a CPU; what it saves is measured on a GPU by bench_gpu_step)."""

from __future__ import annotations

import shutil

import pytest
import torch
from test_train_loop import HELD, KNOWN, UNKNOWN, _config, _tiny

from interference.facts import Fact
from interference.facts.examples import Examples
from interference.train import TrainConfig, train
from interference.train.losses import answer_cross_entropy


def test_a_fixed_width_batch_is_padded_to_every_example_and_gives_the_cut_batchs_loss():
    model, tokenizer = _tiny(dropout=0.0)
    long = Fact("Bergadenavilla", "capital", "Lima", "What is the capital of Bergadenavilla?")
    examples = Examples(tokenizer, [*KNOWN, long])
    index = torch.arange(4)  # without the long fact: their cut batch is narrower than the full width
    cut, fixed = examples.batch(index), examples.batch(index, fixed=True)
    assert cut.input_ids.shape[1] < fixed.input_ids.shape[1] == examples.input_ids.shape[1]
    assert torch.equal(fixed.input_ids[:, : cut.input_ids.shape[1]], cut.input_ids)
    assert not fixed.attention_mask[:, cut.input_ids.shape[1]:].any()
    losses = [answer_cross_entropy(model(input_ids=b.input_ids, attention_mask=b.attention_mask).logits, b.labels)
              for b in (cut, fixed)]
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                    reason="torch.compile on a CPU needs a C compiler")
@pytest.mark.parametrize(("method", "extra"), [("sft", {}), ("self_distill", {}), ("sft", {"lora_rank": 2})])
def test_a_compiled_run_follows_the_eager_run(method, extra):
    def run(mode):
        model, tokenizer = _tiny(dropout=0.0)  # dropout's random stream differs once compiled
        config = _config(method=method, torch_compile=mode, epochs=2, **extra)
        return train(model, tokenizer, config, known=KNOWN, unknown=UNKNOWN, held=HELD, progress=False)

    from torch._dynamo.utils import counters

    eager = run("none")
    torch._dynamo.reset()  # compile afresh, so that the counters show this run's graphs
    counters.clear()
    compiled = run("default")
    graphs = counters["stats"]["unique_graphs"]
    assert graphs >= 1  # the steps did run compiled
    run("default")
    assert counters["stats"]["unique_graphs"] == graphs  # a second model of the architecture reuses the code
    assert [r.step for r in compiled.history] == [r.step for r in eager.history]
    for a, b in zip(eager.history[1:], compiled.history[1:], strict=True):
        assert b.loss == pytest.approx(a.loss, rel=1e-4)
        assert b.accuracy == a.accuracy


def test_the_gpu_session_takes_the_benchs_fastest_lever_that_trains_what_eager_does(monkeypatch):
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    monkeypatch.syspath_prepend(str(root))  # as `python -m bench.bench_gpu_step` from the repository root
    spec = importlib.util.spec_from_file_location("bench_gpu_step", root / "bench" / "bench_gpu_step.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    eager, same = {"ms_per_step": 100.0}, 1e-7
    runs = {"eager": eager, "compile": {"ms_per_step": 70.0, "loss_rel_diff": same},
            "graphs": {"ms_per_step": 12.0, "loss_rel_diff": same}}
    assert bench.best_mode(runs) == "reduce-overhead"
    assert bench.best_mode({**runs, "graphs": {"ms_per_step": 12.0, "loss_rel_diff": 0.3}}) == "default"
    assert bench.best_mode({**runs, "graphs": {"error": "RuntimeError"}}) == "default"
    assert bench.best_mode({"eager": eager, "compile": {"ms_per_step": 90.0, "loss_rel_diff": same}}) == "none"
    assert bench.best_mode({"compile": {"ms_per_step": 9.0, "loss_rel_diff": same}}) == "none"  # eager not timed
    assert bench.best_mode({}) == "none"
    assert set(bench.MODES.values()) == set(TrainConfig.__dataclass_fields__["torch_compile"].metadata["choices"])
