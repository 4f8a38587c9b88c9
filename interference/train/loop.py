"""The training loop: SFT, self-distillation and the L2 control, with evaluation, stop rules and resume.

One process uses plain PyTorch on whatever device the model is on. Launched as N processes (`torchrun` or
`accelerate launch`, see `interference.train.distributed`), every process trains the same snapshot and measures
the same μ and then takes rank 0's values (broadcast), the student is wrapped in DDP, each process takes every N-th
batch of the epoch (the effective batch is N × batch_size), every process evaluates all facts (so all take the
same stop decision) and only rank 0 writes files and shows progress bars.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .. import atomic
from ..errors import InterferenceError
from ..evaluation import accuracy, fact_correctness
from ..facts import Fact
from . import checkpoint
from .batches import Batch, Examples, epoch_order
from .config import TrainConfig
from .distributed import Runtime
from .freezing import apply_trainable, resolve_trainable, restore_flags
from .losses import answer_cross_entropy, l2_distance, matched_mu, self_distill_objective
from .result import EpochRecord, TrainResult, format_accuracy
from .teacher import OnTheFlyTeacher, Snapshot, TeacherCache, teacher_module

log = logging.getLogger("interference.train")


class _Objective:
    """The method's loss on one batch: CE, plus λ·τ²·KL (self_distill) or μ·‖θ − θ₀‖² (l2)."""

    def __init__(
        self,
        method: str,
        *,
        teacher=None,
        lam: float = 1.0,
        tau: float = 0.5,
        mu: float = 0.0,
        params: Sequence[torch.Tensor] = (),
        anchors: Sequence[torch.Tensor] = (),
    ):
        self.method, self.teacher, self.lam, self.tau, self.mu = method, teacher, lam, tau, mu
        self.params, self.anchors = list(params), list(anchors)

    def __call__(self, logits: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        ce = answer_cross_entropy(logits, batch.labels)
        if self.method == "self_distill":
            kl = self.teacher.kl(logits, batch)
            return self_distill_objective(ce, kl, self.lam, self.tau), {"ce": ce, "kl": kl}
        if self.method == "l2":
            dist = l2_distance(self.params, self.anchors)
            return ce + self.mu * dist, {"ce": ce, "l2": dist}
        return ce, {"ce": ce}


def _optimizer(params: list[torch.Tensor], config: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def _step(forward, batch: Batch, objective: _Objective, params, optimizer, max_grad_norm):
    logits = forward(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    loss, parts = objective(logits, batch)
    loss.backward()
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach(), {k: v.detach() for k, v in parts.items()}


def _check_finite(value: float, epoch: int, step: int) -> None:
    if not math.isfinite(value):
        raise InterferenceError(
            f"the loss became {value} in epoch {epoch} (step {step}): training diverged; lower the learning rate"
        )


def make_snapshot(
    model: torch.nn.Module, tokenizer, known: Sequence[Fact], config: TrainConfig, *, progress: bool = True
) -> Snapshot:
    """θ_snapshot: a copy of `model` after `config.snapshot_epochs` epochs of SFT on D_known, all parameters
    trainable (format learning; the model passed in is not changed)."""
    if not known:
        raise InterferenceError("the snapshot is trained on D_known, which is empty")
    student = copy.deepcopy(model).train().requires_grad_(True)
    device = next(student.parameters()).device
    examples = Examples(tokenizer, known)
    params = list(student.parameters())
    optimizer = _optimizer(params, config)
    objective = _Objective("sft")
    torch.manual_seed(config.seed)
    for epoch in range(1, config.snapshot_epochs + 1):
        order = epoch_order(len(examples), config.batch_size, seed=config.seed, epoch=epoch)
        for index in tqdm(order, desc=f"snapshot epoch {epoch}", disable=not progress, leave=False):
            loss, _ = _step(
                student, examples.batch(index).to(device), objective, params, optimizer, config.max_grad_norm
            )
        _check_finite(loss.item(), epoch, len(order))
    return Snapshot.of(student, config.snapshot_epochs)


def _eval_tokens(tokenizer, facts: Sequence[Fact], config: TrainConfig) -> int:
    if config.eval_max_new_tokens is not None:
        return config.eval_max_new_tokens
    answers = [a for f in facts for a in f.answers]
    if not answers:
        return 16
    ids = tokenizer([" " + a for a in answers], add_special_tokens=False)["input_ids"]
    return max(len(i) for i in ids) + 8


def _evaluate(
    model, tokenizer, splits: dict[str, Sequence[Fact]], config: TrainConfig, max_new_tokens: int, progress: bool
) -> tuple[dict[str, float], dict[str, list[bool]], float]:
    start = time.perf_counter()
    correct = {
        name: fact_correctness(
            model,
            tokenizer,
            facts,
            batch_size=config.eval_batch_size,
            max_new_tokens=max_new_tokens,
            desc=f"eval {name}" if progress else None,
        )
        for name, facts in splits.items()
    }
    return {k: accuracy(v) for k, v in correct.items()}, correct, time.perf_counter() - start


def _measure_mu(
    model, examples: Examples, config: TrainConfig, params, anchors, teacher, device, progress: bool
) -> float:
    """μ matching ‖∇ μ‖θ−θ₀‖²‖ to ‖∇ λτ²KL‖ after a short SFT probe from the start (see `TrainConfig.l2_mu`);
    the weights are put back afterwards. Runs on the unwrapped model: every process computes the same μ."""
    start = [p.detach().clone() for p in params]
    model.train()
    optimizer = _optimizer(params, config)
    sft = _Objective("sft")
    steps = config.l2_match_steps or math.ceil(len(examples) / config.batch_size)
    torch.manual_seed(config.seed)
    done, epoch = 0, 0
    bar = tqdm(total=steps, desc="matching mu", disable=not progress, leave=False)
    while done < steps:
        epoch += 1
        for index in epoch_order(len(examples), config.batch_size, seed=config.seed, epoch=epoch)[: steps - done]:
            _step(model, examples.batch(index).to(device), sft, params, optimizer, config.max_grad_norm)
            done += 1
            bar.update()
    bar.close()
    kd = _Objective("self_distill", teacher=teacher, lam=config.kd_lambda, tau=config.kd_tau)
    norms = []
    for index in epoch_order(len(examples), config.batch_size, seed=config.seed, epoch=1)[: config.l2_match_batches]:
        batch = examples.batch(index).to(device)
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        term = config.kd_lambda * config.kd_tau**2 * kd(logits, batch)[1]["kl"]
        grads = torch.autograd.grad(term, params, allow_unused=True)
        norms.append(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)).item())
    distance = math.sqrt(l2_distance(params, anchors).item())
    with torch.no_grad():
        for p, s in zip(params, start, strict=True):
            p.copy_(s)
    if distance == 0:
        raise InterferenceError(
            "l2_mu='match_kd': the SFT probe left θ at θ_snapshot, so μ cannot be matched; "
            "raise lr or l2_match_steps, or give l2_mu as a number"
        )
    mu = matched_mu(sum(norms) / len(norms), distance)
    log.info(
        "l2: matched mu = %.4g (KD grad norm %.4g, distance %.4g after %d SFT steps)",
        mu,
        sum(norms) / len(norms),
        distance,
        steps,
    )
    return mu


def train(
    model: torch.nn.Module,
    tokenizer,
    config: TrainConfig,
    *,
    known: Sequence[Fact],
    unknown: Sequence[Fact],
    held: Sequence[Fact],
    out_dir: str | os.PathLike | None = None,
    snapshot: Snapshot | None = None,
    teacher_cache: TeacherCache | None = None,
    resume: bool = False,
    progress: bool = True,
    on_epoch_end: Callable[[EpochRecord], None] | None = None,
) -> TrainResult:
    """Fine-tune `model` in place on D_known ∪ D_unknown (`config.train_splits`) by `config.method`.

    Evaluates greedy exact match on known / unknown / held at step 0 and after every epoch; stops after
    `config.epochs` or as soon as acc(unknown) >= `config.target_new_acc`. `snapshot` and `teacher_cache` (from
    `make_snapshot` and `TeacherCache.build`) may be passed to share them between runs; otherwise they are built
    here. With `out_dir`, writes metrics.json after every epoch, resumable checkpoints and the final model there
    (see `interference.train.checkpoint`); `resume=True` continues an interrupted run in `out_dir`, giving the same
    result as an uninterrupted one. `on_epoch_end` is called with each record after it is saved.
    """
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and out.exists() and not out.is_dir():
        raise InterferenceError(f"output folder {out} is a file")
    if resume and out is None:
        raise InterferenceError("resume needs the output folder of the run to continue")
    if out is not None and not resume and checkpoint.has_state(out):
        raise InterferenceError(f"{out} already holds a run: resume it or choose another output folder")
    state = checkpoint.load(out) if resume else None
    if state is not None and state["config"] != config.to_dict():
        diff = next(k for k, v in config.to_dict().items() if state["config"].get(k) != v)
        raise InterferenceError(f"cannot resume {out}: option {diff!r} differs from the interrupted run")
    if teacher_cache is not None and config.teacher_cache == "none":
        raise InterferenceError("a teacher cache was given but the config says teacher_cache='none'")

    runtime = Runtime()
    progress = progress and runtime.is_main
    splits = {"known": list(known), "unknown": list(unknown), "held": list(held)}
    train_facts = [f for name in config.train_splits for f in splits[name]]
    examples = Examples(tokenizer, train_facts)
    max_new_tokens = _eval_tokens(tokenizer, [f for s in splits.values() for f in s], config)
    device = runtime.device or next(model.parameters()).device
    model.to(device)
    trainable = resolve_trainable(model, freeze=config.freeze, train_only=config.train_only)

    if config.needs_snapshot and snapshot is None and state is not None:
        snapshot = checkpoint.load_snapshot(out)
    if config.needs_snapshot and snapshot is None:
        snapshot = make_snapshot(model, tokenizer, splits["known"], config, progress=progress)
        runtime.broadcast(snapshot.params.values())
    if state is not None:
        checkpoint.load_weights(model, out / state["checkpoint"])
    elif config.start == "snapshot":
        snapshot.load_into(model)

    flags = apply_trainable(model, trainable)
    named = dict(model.named_parameters())
    params = [named[n] for n in trainable]
    try:
        teacher = None
        if config.method == "self_distill" or (config.method == "l2" and config.l2_mu == "match_kd" and state is None):
            teacher = _teacher(model, examples, snapshot, teacher_cache, config, state is None, device, progress)
        anchors = snapshot.anchors(trainable, device) if config.method == "l2" else []
        mu = None
        if config.method == "l2":
            if state is not None:
                mu = state["mu"]
            elif config.l2_mu == "match_kd":
                mu = _measure_mu(model, examples, config, params, anchors, teacher, device, progress)
                shared = torch.tensor([mu], dtype=torch.float64, device=device)
                runtime.broadcast([shared])
                mu = shared.item()
            else:
                mu = float(config.l2_mu)
        objective = _Objective(
            config.method,
            teacher=teacher,
            lam=config.kd_lambda,
            tau=config.kd_tau,
            mu=mu or 0.0,
            params=params,
            anchors=anchors,
        )
        optimizer = _optimizer(params, config)
        history: list[EpochRecord] = []
        if state is not None:
            optimizer.load_state_dict(state["optimizer"])
            history = [EpochRecord(**r) for r in state["history"]]
            checkpoint.set_rng_state(state["rng"])
        else:
            if config.needs_snapshot and out is not None and runtime.is_main:
                checkpoint.save_snapshot(out, snapshot)  # the first write: every input has been checked by now
            torch.manual_seed(config.seed)
            acc, correct, seconds = _evaluate(model, tokenizer, splits, config, max_new_tokens, progress)
            history.append(EpochRecord(0, 0, acc, correct, eval_seconds=seconds))
            _write_metrics(out, runtime, config, trainable, mu, history, None)
        forward = runtime.place(model)
        run = _Run(model, forward, tokenizer, examples, splits, config, objective, params, optimizer, trainable, mu,
                   out, runtime, max_new_tokens, progress, on_epoch_end)
        result = _run_epochs(run, history)
    finally:
        model.eval()
        restore_flags(model, flags)
    if out is not None and runtime.is_main:
        from ..models import save_checkpoint

        save_checkpoint(model, tokenizer, out / "model")
        checkpoint.finish(out, _state(config, history, mu, trainable, None, result.history[-1]))
    runtime.wait()
    return result


def _teacher(model, examples, snapshot, cache, config, fresh_start, device, progress):
    """The KD teacher: the given or a newly built cache, or an on-the-fly frozen copy ("none")."""
    if config.teacher_cache == "none" or config.method == "l2":
        return OnTheFlyTeacher(teacher_module(model, snapshot), config.kd_tau)
    if cache is not None:
        cache.check(examples, config.kd_tau)
        if cache.mode != config.teacher_cache:
            raise InterferenceError(f"the teacher cache is {cache.mode!r} but teacher_cache={config.teacher_cache!r}")
        return cache.to(device)
    # The student holds exactly θ_snapshot before its first step: use it as the teacher instead of a copy.
    at_snapshot = fresh_start and config.start == "snapshot"
    return _cache(model if at_snapshot else teacher_module(model, snapshot), examples, config, progress)


def _cache(teacher, examples: Examples, config: TrainConfig, progress: bool) -> TeacherCache:
    return TeacherCache.build(teacher, examples, tau=config.kd_tau, mode=config.teacher_cache, k=config.teacher_topk,
                              batch_size=config.eval_batch_size, progress=progress)


def _state(config, history, mu, trainable, optimizer, last: EpochRecord) -> dict:
    return {
        "epoch": last.epoch,
        "config": config.to_dict(),
        "history": [r.to_dict() for r in history],
        "mu": mu,
        "trainable": list(trainable),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "rng": checkpoint.rng_state(),
    }


def _write_metrics(out, runtime, config, trainable, mu, history, stopped) -> None:
    if out is None or not runtime.is_main:
        return
    result = TrainResult(config, history, stopped or "running", trainable, mu)
    atomic.write_json(out / "metrics.json", {**result.to_dict(), "finished": stopped is not None})


def _reached(config: TrainConfig, record: EpochRecord) -> bool:
    target = config.target_new_acc
    return target is not None and not math.isnan(record.accuracy["unknown"]) and record.accuracy["unknown"] >= target


@dataclass
class _Run:
    """What the epoch loop needs, fixed for the whole run."""

    model: torch.nn.Module
    forward: torch.nn.Module
    tokenizer: object
    examples: Examples
    splits: dict
    config: TrainConfig
    objective: _Objective
    params: list
    optimizer: torch.optim.Optimizer
    trainable: list
    mu: float | None
    out: Path | None
    runtime: object
    max_new_tokens: int
    progress: bool
    on_epoch_end: object


def _run_epochs(run: _Run, history: list[EpochRecord]) -> TrainResult:
    model, forward, tokenizer, examples, splits = run.model, run.forward, run.tokenizer, run.examples, run.splits
    config, objective, params, optimizer, out = run.config, run.objective, run.params, run.optimizer, run.out
    trainable, mu, runtime, progress = run.trainable, run.mu, run.runtime, run.progress
    max_new_tokens, on_epoch_end = run.max_new_tokens, run.on_epoch_end
    device = next(model.parameters()).device
    bar = tqdm(
        total=config.epochs, initial=history[-1].epoch, desc=f"{config.method}", unit="epoch", disable=not progress
    )
    bar.set_postfix_str(format_accuracy(history[-1].accuracy))
    step = history[-1].step
    while history[-1].epoch < config.epochs and not _reached(config, history[-1]):
        epoch = history[-1].epoch + 1
        model.train()
        start = time.perf_counter()
        order = runtime.shard(epoch_order(len(examples), config.batch_size, seed=config.seed, epoch=epoch))
        sums: dict[str, torch.Tensor] = {}
        inner = tqdm(order, desc=f"epoch {epoch}", unit="step", disable=not progress, leave=False)
        for i, index in enumerate(inner, 1):
            loss, parts = _step(
                forward, examples.batch(index).to(device), objective, params, optimizer, config.max_grad_norm
            )
            for key, value in {"loss": loss, **parts}.items():
                sums[key] = sums[key] + value if key in sums else value
            step += 1
            if i % config.log_every == 0 or i == len(order):
                means = {k: v.item() / i for k, v in sums.items()}
                _check_finite(means["loss"], epoch, step)
                inner.set_postfix({k: f"{v:.3f}" for k, v in means.items()})
        inner.close()
        seconds = time.perf_counter() - start
        means = {k: v.item() / len(order) for k, v in sums.items()}
        acc, correct, eval_seconds = _evaluate(model, tokenizer, splits, config, max_new_tokens, progress)
        record = EpochRecord(
            epoch,
            step,
            acc,
            correct,
            means["loss"],
            means["ce"],
            means.get("kl"),
            means.get("l2"),
            seconds,
            eval_seconds,
        )
        history.append(record)
        log.info("epoch %d: %s loss %.4f (%.1fs)", epoch, format_accuracy(acc), means["loss"], seconds)
        bar.update()
        bar.set_postfix_str(f"loss {means['loss']:.3f} " + format_accuracy(acc))
        _write_metrics(out, runtime, config, trainable, mu, history, None)
        if out is not None and runtime.is_main and epoch % config.checkpoint_every == 0:
            checkpoint.save(out, model, tokenizer, _state(config, history, mu, trainable, optimizer, record))
        runtime.wait()
        if on_epoch_end is not None:
            on_epoch_end(record)
    bar.close()
    stopped = "target" if _reached(config, history[-1]) else "epochs"
    _write_metrics(out, runtime, config, trainable, mu, history, stopped)
    return TrainResult(config, history, stopped, trainable, mu, model)


def examples_for(tokenizer, config: TrainConfig, *, known: Sequence[Fact], unknown: Sequence[Fact]) -> Examples:
    """The training examples `train` builds for these splits (to build a `TeacherCache` shared between runs)."""
    splits = {"known": list(known), "unknown": list(unknown)}
    return Examples(tokenizer, [f for name in config.train_splits for f in splits[name]])


def build_teacher_cache(
    model: torch.nn.Module,
    tokenizer,
    config: TrainConfig,
    snapshot: Snapshot,
    *,
    known: Sequence[Fact],
    unknown: Sequence[Fact],
    progress: bool = True,
) -> TeacherCache:
    """The teacher cache `train` would build for this config and snapshot, for sharing between runs."""
    if config.teacher_cache == "none":
        raise InterferenceError("teacher_cache='none' keeps no cache to share")
    examples = examples_for(tokenizer, config, known=known, unknown=unknown)
    return _cache(teacher_module(model, snapshot), examples, config, progress)
