"""The training loop on `accelerate`: snapshot, teacher, then epochs of steps with acquisition checks and evaluation.

`batch_size` is global: process r of N trains on facts r, r + N, … of each batch (README, "Several GPUs").
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from collections.abc import Callable, Sequence

import torch
from tqdm.auto import tqdm

from ..facts.examples import Examples, epoch_order, replay_draw, training_rows
from ..facts.fact import Fact
from ..facts.splits import check_disjoint
from ..io.errors import InterferenceError
from ..io.run_folder import RunFolder, check_finite, check_finite_loss, fingerprint
from ..measures.evaluation import SplitEvaluator, accuracy
from ..measures.fisher import diagonal_fisher
from ..measures.history import EpochRecord, TrainResult
from ..models.adapters import add_lora, merge_lora
from ..models.devices import check_launch
from ..models.generation import forward_logits, no_cache
from ..models.parameter_groups import apply_trainable, resolve_trainable, restore_flags
from ..models.weights import Snapshot
from .config import TrainConfig
from .losses import answer_cross_entropy, ewc_penalty, l2_distance, matched_mu, self_distill_objective
from .teacher import OnTheFlyTeacher, TeacherCache, make_teacher, teacher_module

log = logging.getLogger("interference.train")


def make_accelerator(config: TrainConfig, device: torch.device, out=None):
    """One process keeps the model where it is; under `accelerate launch` its settings apply."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    if single := int(os.environ.get("WORLD_SIZE", "1")) == 1:
        AcceleratorState._reset_state(True)  # so that each run in a process may choose its own precision
    accelerator = Accelerator(cpu=single and device.type == "cpu", device_placement=False, log_with=config.report_to,
                              mixed_precision=None if config.mixed_precision == "no" else config.mixed_precision,
                              project_dir=None if out is None else os.path.join(out, "logs"))
    check_launch(accelerator)
    return accelerator


def objective(config: TrainConfig, method: str, teacher=None, mu: float = 0.0, params=(), anchors=(),
              fisher=None) -> Callable:
    """loss(logits, batch, weights) → (loss, parts): CE, + λτ²·KL (self_distill) or + μ‖θ − θ₀‖² (l2), and with a
    Fisher + λ_ewc·Σ F(θ − θ₀)²; the CE and KL scaled by `weights` (so that their means over processes are the whole
    batch's)."""

    def loss(logits, batch, weights=(1.0, 1.0)):
        ce = answer_cross_entropy(logits, batch.labels) * weights[0]
        total, parts = ce, {"ce": ce}
        if method == "self_distill":
            parts["kl"] = teacher.kl(logits, batch, config.kd_weighting) * weights[1]
            total = self_distill_objective(ce, parts["kl"], config.kd_lambda, config.kd_tau)
        if method == "l2":
            parts["l2"] = l2_distance(params, anchors)
            total = total + mu * parts["l2"]
        if fisher is not None:
            parts["ewc"] = ewc_penalty(params, anchors, fisher)
            total = total + config.ewc_lambda * parts["ewc"]
        return total, parts

    return loss


def _step(accelerator, forward, loss_fn, examples, index, params, optimizer, config) -> dict[str, torch.Tensor]:
    """One optimiser step on this process's part of the global batch `index`."""
    weights = (1.0, 1.0)
    if accelerator.num_processes > 1:
        index, weights = examples.share(index, accelerator.process_index, accelerator.num_processes,
                                        config.kd_weighting)
    batch = examples.batch(index, fixed=config.torch_compile != "none").to(params[0].device)
    logits = forward(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    loss, parts = loss_fn(logits, batch, weights)
    accelerator.backward(loss)
    if config.max_grad_norm is not None:
        parts["grad_norm"] = accelerator.clip_grad_norm_(params, config.max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return {"loss": loss.detach(), **{k: v.detach() for k, v in parts.items()}}


def _optimizer(params: list[torch.nn.Parameter], config: TrainConfig, lr: float | None = None) -> torch.optim.AdamW:
    """AdamW over `params` at `lr` (default `config.lr`): the fused CUDA kernel where the parameters are on a GPU (one
    launch per step instead of several per tensor), torch's default implementation elsewhere."""
    fused = params[0].device.type == "cuda"
    return torch.optim.AdamW(params, lr or config.lr, weight_decay=config.weight_decay, fused=fused or None)


def step_forward(model: torch.nn.Module, mode: str = "none") -> Callable:
    """`model` without a KV cache (`no_cache`), compiled as `TrainConfig.torch_compile` says (dynamic batch size)."""
    options = no_cache(model)
    if mode == "none":
        return (lambda **inputs: model(**inputs, **options)) if options else model
    compiled = torch.compile(model, mode=mode, dynamic=True)
    return lambda **inputs: torch.compiler.cudagraph_mark_step_begin() or compiled(**inputs, **options)


def _sft(accelerator, model, examples, config, steps: int, desc: str, progress: bool) -> None:
    """`steps` steps of SFT of `model` on `examples` (epochs in their seeded orders)."""
    params, per_epoch = [p for p in model.parameters() if p.requires_grad], math.ceil(len(examples) / config.batch_size)
    forward, optimizer = accelerator.prepare(model, _optimizer(params, config))
    forward = step_forward(forward, config.torch_compile)
    torch.manual_seed(config.seed)
    for s in tqdm(range(steps), desc=desc, disable=not progress, leave=False):
        epoch = s // per_epoch + 1
        index = epoch_order(len(examples), config.batch_size, seed=config.seed, epoch=epoch)[s % per_epoch]
        loss = _step(accelerator, forward, objective(config, "sft"), examples, index, params, optimizer, config)
        if (s + 1) % per_epoch == 0 or s + 1 == steps:
            check_finite_loss(loss["loss"].item(), epoch, s + 1)
    accelerator.free_memory()


def make_snapshot(model: torch.nn.Module, tokenizer, known: Sequence[Fact], config: TrainConfig, *,
                  progress: bool = True, accelerator=None) -> Snapshot:
    """θ_snapshot: a copy of `model` after `snapshot_epochs` of SFT on D_known, all parameters trainable."""
    if not known:
        raise InterferenceError("the snapshot is trained on D_known, which is empty")
    student, examples = copy.deepcopy(model).train().requires_grad_(True), Examples(tokenizer, known)
    accelerator = accelerator or make_accelerator(config, next(model.parameters()).device)
    _sft(accelerator, student, examples, config, config.snapshot_epochs * math.ceil(len(examples) / config.batch_size),
         "snapshot", progress)
    check_finite(student, "after the snapshot's training")
    return Snapshot.of(student, config.snapshot_epochs)


def _matched_mu(accelerator, model, examples, config, trainable, anchors, snapshot) -> float:
    """μ with ‖∇ μ‖θ−θ₀‖²‖ = ‖∇ λτ²KL‖, both measured on a copy of the student after a short SFT probe."""
    teacher = OnTheFlyTeacher(teacher_module(model, snapshot), config.kd_tau)
    probe = copy.deepcopy(model).train()
    _sft(accelerator, probe, examples, config, config.l2_match_steps or math.ceil(len(examples) / config.batch_size),
         "matching mu", False)
    named, norms = dict(probe.named_parameters()), []
    params = [named[n] for n in trainable]
    for index in epoch_order(len(examples), config.batch_size, seed=config.seed, epoch=1)[: config.l2_match_batches]:
        batch = examples.batch(index).to(params[0].device)
        logits = forward_logits(probe, batch)
        term = config.kd_lambda * config.kd_tau**2 * teacher.kl(logits, batch, config.kd_weighting)
        grads = [g for g in torch.autograd.grad(term, params, allow_unused=True) if g is not None]
        norms.append(torch.sqrt(sum((g.float() ** 2).sum() for g in grads)).item())
    distance = math.sqrt(l2_distance(params, anchors).item())
    if distance == 0:
        raise InterferenceError("l2_mu='match_kd': the SFT probe left θ at θ_snapshot, so μ cannot be matched; "
                                "raise lr or l2_match_steps, or give l2_mu as a number")
    log.info("l2: KD gradient norm %.4g, distance %.4g after the SFT probe", sum(norms) / len(norms), distance)
    return matched_mu(sum(norms) / len(norms), distance)


def _reached(acc: float, target: float | None) -> bool:
    return target is not None and acc >= target  # False for NaN


def _checks_every(config: TrainConfig, n: int, seen: float) -> int:
    """Steps between acquisition checks: `eval_every_steps`, else 4 checks per epoch, and within 0.1 of the target
    every step (at most 16 checks per epoch, so that a large D_unknown is not decoded on every step)."""
    if config.eval_every_steps:
        return config.eval_every_steps
    if seen >= config.target_new_acc - 0.1:
        return max(1, n // config.batch_size // 16)
    return math.ceil(n / config.batch_size / 4)


def train(model: torch.nn.Module, tokenizer, config: TrainConfig, *, known: Sequence[Fact],
          unknown: Sequence[Fact], held: Sequence[Fact], out_dir: str | os.PathLike | None = None,
          snapshot: Snapshot | None = None, teacher_cache: TeacherCache | None = None, resume: bool = False,
          overwrite: bool = False, progress: bool = True, replay: Sequence[Fact] = (),
          on_epoch_end: Callable[[EpochRecord], None] | None = None) -> TrainResult:
    """Fine-tune `model` in place on `config.train_splits` by `config.method`.

    Greedy exact match on known / unknown / held is evaluated at step 0, after every epoch and where the run stops:
    after `config.epochs`, or at the first acquisition check with acc(unknown) >= `target_new_acc` (checks inside an
    epoch decode greedily, or with `acquisition_check="teacher_forced"` take one forward pass). `snapshot` and
    `teacher_cache` may be shared between runs. With `out_dir` the run is written there
    (`interference.io.run_folder.RunFolder`); `resume=True` continues an interrupted run, bitwise as if it had not
    stopped. `replay` facts (default D_known) are what `config.replay_fraction` of every batch is drawn from.
    """
    splits = {"known": list(known), "unknown": list(unknown), "held": list(held)}
    check_disjoint({**splits, "replay": list(replay)})  # a held-out fact trained on, or one trained twice: refused
    pool = (list(replay) or splits["known"]) if config.replay_fraction else None
    examples, n, pool = training_rows(tokenizer, splits, config.train_splits, pool)
    trainable = resolve_trainable(model, freeze=config.freeze, train_only=config.train_only)
    if teacher_cache is not None and config.teacher_cache == "none":
        raise InterferenceError("a teacher cache was given but the config says teacher_cache='none'")
    target, accelerator = config.target_new_acc, make_accelerator(config, next(model.parameters()).device, out_dir)
    device = accelerator.device if accelerator.num_processes > 1 else next(model.parameters()).device
    progress = progress and accelerator.is_main_process
    measure = SplitEvaluator(model, tokenizer, splits, batch_size=config.eval_batch_size,
                             max_new_tokens=config.eval_max_new_tokens, autocast=accelerator.autocast,
                             check=config.acquisition_check if target is not None else "greedy")

    def evaluate(epoch: int, step: int, means: dict, train_seconds: float) -> EpochRecord:
        start = time.perf_counter()
        outcomes = measure.correct(list(splits), f"eval {'+'.join(splits)}" if progress else None)
        return EpochRecord(epoch, step, {k: accuracy(v) for k, v in outcomes.items()}, outcomes, means.get("loss"),
                           means.get("ce"), means.get("kl"), means.get("l2"), train_seconds,
                           time.perf_counter() - start, means.get("ewc"))

    with RunFolder(out_dir, accelerator, fingerprint(model, splits, config), resume=resume, overwrite=overwrite) as run:
        model.to(device)
        if config.needs_snapshot and snapshot is None:
            snapshot = Snapshot(*run.load_snapshot()) if run.state else make_snapshot(
                model, tokenizer, splits["known"], config, progress=progress, accelerator=accelerator)
        if config.start == "snapshot":
            snapshot.load_into(model)
        flags, own = apply_trainable(model, trainable), {k: v for k, v in vars(model).items() if "forward" in k}
        try:
            teacher, mu, anchors, fisher, adapters = None, None, [], None, None
            if config.method == "self_distill":
                teacher = make_teacher(model, examples, snapshot, config, cache=teacher_cache, fresh=not run.state,
                                       progress=progress)
            if config.method == "l2" or config.ewc_lambda:
                anchors = [snapshot.params[n].to(device) for n in trainable]
            if config.ewc_lambda:  # at the snapshot, on D_known (the same on a resume)
                fisher = list(diagonal_fisher(teacher_module(model, snapshot).requires_grad_(True), Examples(
                    tokenizer, splits["known"]), trainable, progress=progress).values())
            if config.method == "l2":
                if run.state:
                    mu = run.state["mu"]
                elif config.l2_mu == "match_kd":
                    mu = _matched_mu(accelerator, model, examples, config, trainable, anchors, snapshot)
                else:
                    mu = config.l2_mu
            if config.lora_rank:  # after the teacher's copy: the adapters are the student's
                torch.manual_seed(config.seed)
                adapters, trainable = add_lora(model, config.lora_targets, rank=config.lora_rank,
                                               alpha=config.lora_alpha)
            params = [p for p in model.parameters() if p.requires_grad]
            loss_fn = objective(config, config.method, teacher, mu or 0.0, params, anchors, fisher)
            student, optimizer = accelerator.prepare(model, _optimizer(params, config, adapters and config.lora_lr))
            forward = step_forward(student, config.torch_compile)
            if config.report_to:  # files under RUN/logs: TensorBoard's by the project folder, W&B's by its dir
                if logs := accelerator.logging_dir:
                    os.makedirs(logs, exist_ok=True)
                accelerator.init_trackers("interference", config={k: str(v) for k, v in config.to_dict().items()},
                                          init_kwargs={"wandb": {"dir": logs}} if logs else {})
            if run.state:
                accelerator.load_state(str(run.checkpoint))  # weights, optimiser state, every RNG
                history = [EpochRecord(**r) for r in run.state["history"]]
            else:
                if snapshot is not None:
                    run.save_snapshot(snapshot.params, snapshot.epochs)
                torch.manual_seed(config.seed)
                history = [evaluate(0, 0, {}, 0.0)]
            result = TrainResult(config, history, "running", trainable, mu, model, adapters)
            run.write_metrics(result)

            step, seen = history[-1].step, history[-1].accuracy["unknown"]  # the last acquisition measured
            stop = _reached(seen, target)
            bar = tqdm(total=config.epochs, initial=history[-1].epoch, desc=config.method, disable=not progress)
            while history[-1].epoch < config.epochs and not stop:
                epoch, sums, start = history[-1].epoch + 1, {}, time.perf_counter()
                student.train()
                order = epoch_order(n, config.batch_size, seed=config.seed + config.order_shift, epoch=epoch)
                for i, index in enumerate(tqdm(order, desc=f"epoch {epoch}", disable=not progress, leave=False), 1):
                    if config.replay_fraction:
                        index = torch.cat([index, replay_draw(pool, len(index), config.replay_fraction, epoch=epoch,
                                                              seed=config.seed + config.order_shift, step=i)])
                    parts = _step(accelerator, forward, loss_fn, examples, index, params, optimizer, config)
                    sums = {k: sums[k] + v if k in sums else v for k, v in parts.items()}
                    step += 1
                    if config.report_to:
                        accelerator.log({k: v.item() for k, v in parts.items()}, step=step)
                    if i % config.log_every == 0 or i == len(order):
                        check_finite_loss(sums["loss"].item() / i, epoch, step)
                    if target is not None and i < len(order) and i % _checks_every(config, n, seen) == 0:
                        stop = _reached(seen := measure.acquisition(), target)
                        student.train()
                        if stop:
                            break
                if accelerator.num_processes > 1:
                    sums = accelerator.reduce(sums, "mean")  # the whole batch's
                seconds = time.perf_counter() - start
                history.append(evaluate(epoch, step, {k: v.item() / i for k, v in sums.items()}, seconds))
                seen = history[-1].accuracy["unknown"]
                stop = stop or _reached(seen, target)
                bar.update()
                bar.set_postfix_str(f"loss {history[-1].loss:.3f} "
                                    + " ".join(f"{k} {v:.2f}" for k, v in history[-1].accuracy.items()))
                accelerator.log({f"accuracy/{k}": v for k, v in history[-1].accuracy.items()}, step=step)
                check_finite(model, f"after epoch {epoch}")
                run.write_metrics(result)
                if (epoch % config.checkpoint_every == 0 or epoch == config.epochs) and i == len(order):
                    run.save_checkpoint(result)  # not after a stop inside an epoch: a resume redoes that epoch
                if on_epoch_end is not None:
                    on_epoch_end(history[-1])
            bar.close()
            check_finite(model, "at the end of training")
            result.stopped = "target" if stop else "epochs"
            merge_lora(model)  # the plain model is what is saved and returned
            run.finish(model, student, tokenizer, result)
            if config.report_to:
                accelerator.end_training()
        finally:
            for patched in ("forward", "_original_forward"):  # the autocast wrapper `prepare` put on the model
                vars(model).pop(patched, None)
            vars(model).update(own)
            merge_lora(model)
            model.eval()
            restore_flags(model, flags)
    return result

