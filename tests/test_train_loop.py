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

from interference import numerics
from interference.commands.train import main
from interference.facts import Fact
from interference.io import atomic
from interference.io.errors import InterferenceError
from interference.io.outputs import MARKER
from interference.io.run_folder import SNAPSHOT, STATE
from interference.measures.metrics import first_reaching
from interference.models import load_model
from interference.train import TrainConfig, train

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


def test_another_batch_order_starts_from_the_same_snapshot_and_trains_differently():
    a, b = _run(_config()), _run(_config(order_shift=1000))
    assert _trace(a)[:1] == _trace(b)[:1]  # the same start: the snapshot's order is the seed's
    assert [r.loss for r in b.history[1:]] != [r.loss for r in a.history[1:]]
    assert _trace(_run(_config(order_shift=1000))) == _trace(b)  # deterministic given seed and shift


def test_training_forwards_build_no_kv_cache(monkeypatch):
    """A training step never reuses a KV cache; building one anyway costs dispatches (the GPU step's bound)."""
    from transformers.cache_utils import DynamicCache

    built, original = [], DynamicCache.__init__

    def spy(self, *args, **kwargs):
        built.append(torch.is_grad_enabled())  # generation and evaluation run without gradients
        original(self, *args, **kwargs)

    monkeypatch.setattr(DynamicCache, "__init__", spy)
    _run(_config(method="l2", epochs=1))  # SFT steps, the teacher and l2's matching probe (with gradients)
    assert built and not any(built)  # greedy evaluation still decodes with a cache


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
    epoch_checks = dict(epochs=12, eval_every_steps=100)  # more steps than an epoch has: checks at epoch ends only
    free = _run(_config(epochs=12), known=known, unknown=unknown, held=held)
    target = next((acc for acc in free.curve("unknown") if acc > 0), None)  # reached exactly: >= matters
    assert target is not None, free.curve("unknown")
    reached = first_reaching(free.curve("unknown"), target)
    assert 0 < reached < 12
    stopped = _run(_config(**epoch_checks, target_new_acc=target), known=known, unknown=unknown, held=held)
    assert stopped.stopped == "target" and stopped.epochs == reached
    assert _trace(stopped) == _trace(free)[: reached + 1]
    assert free.stopped == "epochs" and free.epochs == 12


def test_acquisition_checks_inside_an_epoch_stop_at_the_first_step_reaching_the_target():
    known, unknown, held = _facts(8, 0, ["Oslo", "Rome"]), _facts(8, 1, ["Oslo", "Rome"]), _facts(4, 2)
    splits = dict(known=known, unknown=unknown, held=held)
    by_epoch = _run(_config(epochs=12, target_new_acc=0.5, eval_every_steps=100), **splits)
    by_step = _run(_config(epochs=12, target_new_acc=0.5, eval_every_steps=1), **splits)
    assert by_epoch.stopped == by_step.stopped == "target", (by_epoch.curve("unknown"), by_step.curve("unknown"))
    last = by_step.history[-1]
    assert last.accuracy["unknown"] >= 0.5 and last.step <= by_epoch.history[-1].step
    # Until the epoch it stopped in, the run with finer checks is the same run.
    assert _trace(by_step)[:-1] == _trace(by_epoch)[: len(by_step.history) - 1]
    assert by_step.summary()["steps"] == last.step and by_step.summary()["start"] == "snapshot"


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
    original = atomic.write_with
    monkeypatch.setattr(atomic, "write_with", lambda path, write: writes.append(path) or original(path, write))
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
    metrics_writes = [p for p in writes if str(p) == str(tmp_path / "metrics.json")]
    assert len(metrics_writes) == 5  # step 0, 3 epochs, end
    final = json.loads((tmp_path / "metrics.json").read_text())
    assert final["finished"] is True and final["summary"]["stopped"] == "epochs"
    assert final["summary"]["forgetting"] == (None if math.isnan(result.forgetting) else result.forgetting)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([MARKER, "metrics.json", "model", SNAPSHOT, STATE])


@pytest.fixture
def split_dir(tmp_path):
    from interference.facts.splits import Splits, save_splits

    return save_splits(Splits(known=KNOWN, unknown=UNKNOWN, held=HELD, relations=("capital",)), tmp_path / "splits")


def test_cli_help_lists_the_options():
    done = subprocess.run(
        [sys.executable, "-m", "interference.train", "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0
    options = "--method --target-new-acc --eval-every-steps --kd-weighting --freeze --train-only --teacher-cache " \
        "--train-splits --mixed-precision --report-to --resume --overwrite --device --dtype"
    for option in options.split():
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
        (["--eval-every-steps", "2"], "target_new_acc, which is not set"),
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


def test_an_fsdp_launch_is_refused_before_the_model_loads(split_dir, tmp_path, capsys, monkeypatch):
    import interference.models

    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # what `accelerate launch` sets from an FSDP config
    monkeypatch.setattr(interference.models, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    assert main(["--model", "tiny-llama", "--splits", str(split_dir), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: FSDP is not supported") and "\n" not in err and not (tmp_path / "run").exists()


def test_launched_processes_that_formed_no_group_are_refused(monkeypatch):
    from types import SimpleNamespace

    from interference.io.errors import InterferenceError
    from interference.models.devices import check_launch

    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(InterferenceError, match="2 processes were launched but accelerate joined 1"):
        check_launch(SimpleNamespace(distributed_type="NO", num_processes=1))
    check_launch(SimpleNamespace(distributed_type="MULTI_CPU", num_processes=2))
    with pytest.raises(InterferenceError, match="FSDP is not supported"):
        check_launch(SimpleNamespace(distributed_type="FSDP", num_processes=2))


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


def _cli(split_dir, out, *extra):
    return main(["--model", "tiny-llama", "--splits", str(split_dir), "--out", str(out), "--epochs", "2",
                 "--batch-size", "4", "--lr", "1e-2", "--quiet", *extra])


def test_a_folder_with_files_the_toolkit_did_not_write_is_refused_and_the_files_are_kept(split_dir, tmp_path, capsys):
    out = tmp_path / "run"
    (out / "model").mkdir(parents=True)
    (out / "checkpoint-final").mkdir()
    (out / "model" / "notes.txt").write_text("mine")
    (out / "checkpoint-final" / "best.bin").write_text("mine too")
    before = _listing(out)
    assert _cli(split_dir, out) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "--overwrite" in err
    # --overwrite never replaces a file the toolkit did not write: model/ would be, so it is refused too.
    assert _cli(split_dir, out, "--overwrite") == 2
    assert "notes.txt" in capsys.readouterr().err
    assert _listing(out) == before
    # A user's file beside the run is kept through a run with --overwrite.
    (out / "model" / "notes.txt").rename(out / "notes.txt")
    (out / "model").rmdir()
    (out / "checkpoint-final" / "best.bin").unlink()
    (out / "checkpoint-final").rmdir()
    assert _cli(split_dir, out) == 2 and _cli(split_dir, out, "--overwrite") == 0
    assert (out / "notes.txt").read_text() == "mine" and (out / "model").is_dir()


def test_resume_refuses_other_splits_or_another_model(split_dir, tmp_path, capsys):
    from interference.facts.splits import Splits, save_splits

    config = _config(method="self_distill")
    with pytest.raises(KeyboardInterrupt):
        _run(config, out_dir=tmp_path / "cut", on_epoch_end=lambda r: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(InterferenceError, match="the splits differ"):
        _run(config, out_dir=tmp_path / "cut", resume=True, held=HELD[:3])
    model, tokenizer = _tiny()
    with torch.no_grad():
        model.lm_head.weight.add_(1.0)
    with pytest.raises(InterferenceError, match="the model differs"):
        train(model, tokenizer, config, known=KNOWN, unknown=UNKNOWN, held=HELD, out_dir=tmp_path / "cut",
              resume=True, progress=False)
    # The command line: the same through --splits.
    other = save_splits(Splits(known=KNOWN, unknown=UNKNOWN[:5], held=HELD, relations=("capital",)),
                        tmp_path / "other")
    out = tmp_path / "cli"
    assert _cli(split_dir, out, "--epochs", "1") == 0
    (out / STATE).write_text((out / STATE).read_text().replace('"finished": true', '"finished": false'))
    assert _cli(other, out, "--epochs", "1", "--resume") == 2
    assert "the splits differ" in capsys.readouterr().err


def test_a_second_run_into_a_folder_being_written_is_refused(split_dir, tmp_path, capsys):
    from interference.io.outputs import claim_output

    out = tmp_path / "run"
    with claim_output(out, "train"):  # another run holds the folder
        assert _cli(split_dir, out) == 2
        err = capsys.readouterr().err.strip()
        assert "another run is writing" in err and "\n" not in err
    assert not (out / "metrics.json").exists()


def test_parameters_are_checked_finite_after_the_last_step_before_any_save(split_dir, tmp_path, capsys, monkeypatch):
    original = torch.optim.AdamW.step
    calls = []

    def step(self, *args, **kwargs):  # the last step of the run leaves a non-finite weight (its loss was finite)
        result = original(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 5:  # snapshot: 6 known facts in batches of 4 (2 steps); then 12 facts (steps 3-5)
            with torch.no_grad():
                self.param_groups[0]["params"][0].fill_(float("inf"))
        return result

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    out = tmp_path / "run"
    assert _cli(split_dir, out, "--epochs", "1") == 2
    err = capsys.readouterr().err.strip()
    assert "not finite" in err and "\n" not in err
    assert not (out / "model").exists() and not list(out.glob("checkpoint-*"))
    assert json.loads((out / "metrics.json").read_text())["finished"] is False


def test_finished_is_written_only_after_the_model_is_saved(split_dir, tmp_path, monkeypatch):
    from transformers import PreTrainedModel

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(PreTrainedModel, "save_pretrained", killed)
        with pytest.raises(KeyboardInterrupt):
            _run(_config(epochs=1), out_dir=out)
    assert not (out / "model").exists()
    assert json.loads((out / "metrics.json").read_text())["finished"] is False
    resumed = _run(_config(epochs=1), out_dir=out, resume=True)  # the last epoch's checkpoint is there
    assert json.loads((out / "metrics.json").read_text())["finished"] is True and (out / "model").is_dir()
    assert _trace(resumed) == _trace(_run(_config(epochs=1)))


def test_no_temporary_files_after_a_resume_and_quiet_is_quiet(split_dir, tmp_path, capsys):
    out = tmp_path / "run"
    config = _config(method="self_distill")
    with pytest.raises(KeyboardInterrupt):
        _run(config, out_dir=out, on_epoch_end=lambda r: (_ for _ in ()).throw(KeyboardInterrupt()))
    (out / ".train_state.json.x.interference-tmp").write_text("left by a killed run")
    _run(config, out_dir=out, resume=True)
    assert not [p for p in out.rglob("*") if "tmp" in p.name], sorted(p.name for p in out.rglob("*"))
    capsys.readouterr()
    assert _cli(split_dir, tmp_path / "quiet") == 0
    assert capsys.readouterr().err == ""


def test_a_tracker_logs_under_the_run_folder_and_the_run_can_be_replaced(split_dir, tmp_path, capsys, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "run"
    assert _cli(split_dir, out, "--epochs", "1", "--report-to", "wandb") == 0
    assert list((out / "logs").rglob("*.wandb")), sorted(p.name for p in out.rglob("*"))
    assert _cli(split_dir, out, "--epochs", "1", "--overwrite") == 0  # the tracker's files are the toolkit's


def test_bf16_autocast_trains_and_gives_back_the_plain_model():
    if failure := numerics.cpu_attention_failure(torch.bfloat16):
        pytest.skip(f"PyTorch's bfloat16 CPU attention fails on this machine ({failure}): the next test checks the "
                    "error")
    result = _run(_config(method="self_distill", mixed_precision="bf16", epochs=2))
    assert all(math.isfinite(r.loss) and r.kl > 0 for r in result.history[1:])
    assert result.model.forward.__func__ is type(result.model).forward  # the autocast wrapper is gone
    assert all(p.dtype == torch.float32 for p in result.model.parameters())


def test_mixed_precision_the_cpus_attention_cannot_run_is_refused_in_one_line_before_training(monkeypatch):
    monkeypatch.setattr(numerics, "cpu_attention_failure", lambda dtype: "pack_vnni2 is only supported when avx512 is "
                        "supported" if dtype == torch.bfloat16 else None)
    with pytest.raises(InterferenceError, match=r"^mixed precision bf16 fails in PyTorch's CPU attention on this "
                       r"machine \(pack_vnni2 .*\): train in float32 \(--mixed-precision no\)") as raised:
        _run(_config(mixed_precision="bf16", epochs=1))
    assert "\n" not in str(raised.value)
    assert ("INTERFERENCE_NUMERICS=native" in str(raised.value)) == (not numerics.mode().startswith("native"))
