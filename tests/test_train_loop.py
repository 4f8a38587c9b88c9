"""The training loop on tiny models: determinism, resume, stop rules, known-only training, the l2 method's μ,
divergence, per-epoch metrics files and the command line."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from tokenizers import decoders

from interference import atomic
from interference.errors import InterferenceError
from interference.facts import Fact
from interference.metrics import first_reaching
from interference.models import load_model
from interference.train import TrainConfig, train
from interference.train.__main__ import main
from interference.train.checkpoint import SNAPSHOT, STATE

CAPITALS = ["Oslo", "Rome", "Lima"]


def _facts(n: int, seed: int, objects=CAPITALS) -> list[Fact]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        subject = "".join(rng.choice("bcdfglmnprstv") + rng.choice("aeiou") for _ in range(3)).title()
        out.append(Fact(subject, "capital", objects[i % len(objects)], f"What is the capital of {subject}?"))
    return out


KNOWN, UNKNOWN, HELD = _facts(6, 0), _facts(6, 1), _facts(4, 2)


def _tiny(dropout: float = 0.1):
    """tiny-llama with attention dropout (so that resuming must restore the RNG) and a tokenizer whose decoding
    joins characters without spaces (so that generated answers can match the gold ones)."""
    model, tokenizer = load_model("tiny-llama")
    tokenizer.backend_tokenizer.decoder = decoders.Fuse()
    for layer in model.model.layers:
        layer.self_attn.attention_dropout = dropout
    return model, tokenizer


def _config(**kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 3, "lr": 1e-2, "batch_size": 4, "eval_max_new_tokens": 6, **kw})


def _run(config: TrainConfig, **kw):
    model, tokenizer = _tiny()
    splits = {"known": KNOWN, "unknown": UNKNOWN, "held": HELD}
    return train(model, tokenizer, config, **{**splits, **kw}, progress=False)


def _trace(result) -> list[tuple]:
    return [(r.epoch, r.step, r.loss, r.ce, r.kl, r.l2, r.accuracy, r.correct) for r in result.history]


def _weights(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _listing(folder) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def test_same_seed_gives_the_same_run_and_another_seed_does_not():
    config = _config(method="self_distill")
    a, b = _run(config), _run(config)
    assert _trace(a) == _trace(b)
    assert all(torch.equal(x, y) for x, y in zip(_weights(a.model).values(), _weights(b.model).values(), strict=True))
    c = _run(_config(method="self_distill", seed=1))
    assert [r.loss for r in c.history[1:]] != [r.loss for r in a.history[1:]]


@pytest.mark.parametrize("method", ["self_distill", "l2"])
def test_resume_after_an_interruption_gives_the_uninterrupted_result(tmp_path, method):
    config = _config(method=method, teacher_cache="topk", teacher_topk=8)
    whole = _run(config, out_dir=tmp_path / "whole")

    def interrupt(record):
        if record.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(config, out_dir=tmp_path / "cut", on_epoch_end=interrupt)
    assert (tmp_path / "cut" / STATE).exists() and not (tmp_path / "cut" / "model").exists()
    with pytest.raises(InterferenceError, match="already holds a run"):
        _run(config, out_dir=tmp_path / "cut")
    with pytest.raises(InterferenceError, match="'lr' differs"):
        _run(
            _config(method=method, teacher_cache="topk", teacher_topk=8, lr=2e-2), out_dir=tmp_path / "cut", resume=True
        )
    resumed = _run(config, out_dir=tmp_path / "cut", resume=True)
    assert _trace(resumed) == _trace(whole)
    assert resumed.mu == whole.mu
    for (name, x), y in zip(_weights(whole.model).items(), _weights(resumed.model).values(), strict=True):
        assert torch.equal(x, y), name
    saved = [json.loads((tmp_path / run / "metrics.json").read_text()) for run in ("whole", "cut")]
    for run in saved:
        for epoch in run["epochs"]:
            del epoch["train_seconds"], epoch["eval_seconds"]
    assert saved[0] == saved[1] and saved[0]["finished"]
    with pytest.raises(InterferenceError, match="already finished"):
        _run(config, out_dir=tmp_path / "cut", resume=True)


def test_stops_at_the_first_epoch_reaching_the_target_acquisition():
    # One object for every fact: the tiny model picks up the new facts within a few epochs.
    known, unknown, held = _facts(4, 0, ["Oslo"]), _facts(4, 1, ["Oslo"]), _facts(4, 2, ["Oslo"])
    free = _run(_config(epochs=12), known=known, unknown=unknown, held=held)
    target = next((acc for acc in free.curve("unknown") if acc > 0), None)  # reached exactly: >= matters
    assert target is not None, free.curve("unknown")
    reached = first_reaching(free.curve("unknown"), target)
    assert 0 < reached < 12
    stopped = _run(_config(epochs=12, target_new_acc=target), known=known, unknown=unknown, held=held)
    assert stopped.stopped == "target" and stopped.epochs == reached
    assert _trace(stopped) == _trace(free)[: reached + 1]
    assert free.stopped == "epochs" and free.epochs == 12


def test_known_only_training_never_trains_on_the_unknown_facts():
    config = _config(train_splits=("known",), batch_size=4)
    known_only = _run(config)
    assert [r.step for r in known_only.history] == [0, 2, 4, 6]  # 6 known facts in batches of 4
    assert not math.isnan(known_only.final["unknown"])  # D_unknown is still evaluated
    # The same as a run whose D_unknown is empty: identical losses and known / held outcomes.
    without = _run(_config(), unknown=[])
    assert [r.loss for r in known_only.history] == [r.loss for r in without.history]
    assert [(r.correct["known"], r.correct["held"]) for r in known_only.history] == [
        (r.correct["known"], r.correct["held"]) for r in without.history
    ]


def test_l2_with_matched_mu_has_a_finite_positive_mu_and_the_penalty_in_its_loss():
    result = _run(_config(method="l2", l2_mu="match_kd", l2_match_steps=2))
    assert result.mu is not None and math.isfinite(result.mu) and result.mu > 0
    for record in result.history[1:]:
        assert record.l2 > 0 and record.kl is None
        assert record.loss == pytest.approx(record.ce + result.mu * record.l2, rel=1e-5)
    fixed = _run(_config(method="l2", l2_mu=0.0))
    plain = _run(_config(method="sft", start="snapshot"))
    assert [r.loss for r in fixed.history[1:]] == pytest.approx([r.loss for r in plain.history[1:]], rel=1e-6)


def test_a_nan_loss_stops_training_with_a_one_line_error(tmp_path):
    model, tokenizer = _tiny()

    def poison(record):
        if record.epoch == 1:
            with torch.no_grad():
                model.lm_head.weight.fill_(float("nan"))

    with pytest.raises(InterferenceError, match="diverged") as err:
        train(
            model,
            tokenizer,
            _config(log_every=1),
            known=KNOWN,
            unknown=UNKNOWN,
            held=HELD,
            out_dir=tmp_path,
            progress=False,
            on_epoch_end=poison,
        )
    assert "\n" not in str(err.value) and "epoch 2" in str(err.value)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert [e["epoch"] for e in saved["epochs"]] == [0, 1] and saved["finished"] is False


def test_metrics_json_is_rewritten_atomically_after_every_epoch(tmp_path, monkeypatch):
    writes = []
    original = atomic.write_text
    monkeypatch.setattr(atomic, "write_text", lambda path, text: writes.append(path) or original(path, text))
    seen = []

    def read(record):
        saved = json.loads((tmp_path / "metrics.json").read_text())
        seen.append(([e["epoch"] for e in saved["epochs"]], saved["finished"], saved["epochs"][-1]["loss"]))
        assert saved["epochs"][-1]["correct"]["held"] == record.correct["held"]

    result = _run(_config(method="self_distill"), out_dir=tmp_path, on_epoch_end=read)
    assert seen == [
        ([0, 1], False, result.history[1].loss),
        ([0, 1, 2], False, result.history[2].loss),
        ([0, 1, 2, 3], False, result.history[3].loss),
    ]
    assert {str(p) for p in writes} == {str(tmp_path / "metrics.json")} and len(writes) == 5  # step 0, 3 epochs, end
    final = json.loads((tmp_path / "metrics.json").read_text())
    assert final["finished"] is True and final["summary"]["stopped"] == "epochs"
    assert final["summary"]["forgetting"] == (None if math.isnan(result.forgetting) else result.forgetting)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["metrics.json", "model", SNAPSHOT, STATE])


@pytest.fixture
def split_dir(tmp_path):
    from interference.splits import Splits, save_splits

    return save_splits(Splits(known=KNOWN, unknown=UNKNOWN, held=HELD, relations=("capital",)), tmp_path / "splits")


def test_cli_help_lists_the_options():
    done = subprocess.run(
        [sys.executable, "-m", "interference.train", "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0
    for option in "--method --target-new-acc --freeze --train-only --teacher-cache --resume --known-only".split():
        assert option in done.stdout


def test_cli_trains_and_prints_the_summary(split_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = "--method self_distill --epochs 2 --lr 1e-2 --batch-size 4 --freeze embeddings --quiet".split()
    code = main(["--model", "tiny-llama", "--splits", str(split_dir), "--out", str(out), *args])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["method"] == "self_distill" and summary["epochs"] == 2 and summary["stopped"] == "epochs"
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["config"]["freeze"] == "embeddings" and "model.embed_tokens.weight" not in saved["trainable"]
    assert [len(e["correct"]["held"]) for e in saved["epochs"]] == [len(HELD)] * 3
    # The final model is saved; the frozen embeddings kept the snapshot's values, the rest trained on from it.
    model, _ = load_model(out / "model")
    snapshot = load_file(str(out / SNAPSHOT))
    assert torch.equal(model.model.embed_tokens.weight, snapshot["model.embed_tokens.weight"])
    assert not torch.equal(model.lm_head.weight, snapshot["lm_head.weight"])


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--freeze", "mlp"], "unknown parameter group 'mlp'"),
        (["--kd-tau", "0"], "kd_tau must be a finite number > 0"),
        (["--model", "no-such-model"], "no-such-model"),
        (["--splits", "missing"], "not found"),
        (["--resume"], "nothing to resume"),
        (["--method", "self_distill", "--train-only", "ffn@5"], "layer 5 out of range"),
        (["--device", "cuda:0"], "CUDA is not available"),
    ],
)
def test_cli_bad_input_is_a_one_line_error_with_no_output(split_dir, tmp_path, capsys, extra, message):
    if extra[0] == "--device" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    out = tmp_path / "run"
    args = ["--model", "tiny-llama", "--splits", str(split_dir), "--out", str(out), "--epochs", "1", "--quiet"]
    if extra[0] == "--splits":
        extra = ["--splits", str(tmp_path / "missing")]
    assert main(args + extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err and message in err
    assert not out.exists()


def test_cli_refuses_to_overwrite_a_run(split_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--model", "tiny-llama", "--splits", str(split_dir), "--out", str(out), "--epochs", "1", "--quiet"]
    assert main(args) == 0
    before = _listing(out)
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "already holds a run" in err and "\n" not in err
    assert _listing(out) == before
    assert main(args + ["--resume"]) == 2
    assert "already finished" in capsys.readouterr().err
    file = tmp_path / "file"
    file.write_text("x")
    assert main(["--model", "tiny-llama", "--splits", str(split_dir), "--out", str(file), "--quiet"]) == 2
    assert "is a file" in capsys.readouterr().err and file.read_text() == "x"
