"""A run's output folder: checked and locked before the work (`interference.io.outputs`), resumable, saves finite.

Layout: `metrics.json` (after every evaluation; `"finished": true` only once `model/` is saved), `snapshot.safetensors`
(θ_snapshot), `checkpoint-<epoch>/` (`Accelerator.save_state`: weights, optimiser, RNG states), `train_state.json`
(history, μ, the run's fingerprint, the current checkpoint; written after it) and, at the end, `model/` (HF format).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import shutil
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .atomic import TMP_SUFFIX
from .errors import InterferenceError
from .outputs import claim_output

STATE, SNAPSHOT, METRICS, MODEL = "train_state.json", "snapshot.safetensors", "metrics.json", "model"


def fingerprint(model: torch.nn.Module, splits: dict, config) -> dict:
    """What a resumed run must share with the interrupted one: the options, the facts and the starting weights
    (each parameter's name, shape, dtype and ≤ 4096 evenly spaced values)."""
    facts, weights = hashlib.sha256(), hashlib.sha256()
    for name, split in splits.items():
        facts.update(json.dumps([name, [dataclasses.asdict(f) for f in split]], sort_keys=True, default=str).encode())
    for name, p in model.named_parameters():
        sample = p.detach().flatten()[:: max(1, p.numel() // 4096)].float().cpu().numpy()
        weights.update(f"{name}{tuple(p.shape)}{p.dtype}".encode() + sample.tobytes())
    return {"config": config.to_dict(), "facts": facts.hexdigest(), "model": weights.hexdigest()}


def check_finite_loss(value: float, epoch: int, step: int) -> None:
    """Refuse to go on with a loss that is not finite."""
    if not math.isfinite(value):
        raise InterferenceError(f"the loss became {value} in epoch {epoch} (step {step}): training diverged; "
                                "lower the learning rate")


def check_finite(model: torch.nn.Module, when: str) -> None:
    """Refuse to go on (and so to save) with a non-finite parameter."""
    bad = next((n for n, p in model.named_parameters() if not torch.isfinite(p).all()), None)
    if bad is not None:
        raise InterferenceError(f"parameter {bad} is not finite {when}: training diverged; lower the learning rate")


class RunFolder:
    """The output folder of one run (`path` None: nothing is written). Every process calls every method; the main
    one claims the folder and writes, the others join the collective saves."""

    def __init__(self, path, accelerator, inputs: dict, *, resume: bool = False, overwrite: bool = False):
        if resume and path is None:
            raise InterferenceError("resume needs the output folder of the run to continue")
        self.path, self.accelerator, self.inputs = None if path is None else Path(path), accelerator, inputs
        self.resume, self.overwrite, self.state, self.folder = resume, overwrite, None, None
        self._claim = contextlib.ExitStack()

    def __enter__(self) -> RunFolder:
        error = None
        if self.path is not None and self.accelerator.is_main_process:
            try:
                self._check()
                self.folder = self._claim.enter_context(claim_output(
                    self.path, "train", overwrite=self.overwrite, resume=self.resume,
                    writes=() if self.resume else (MODEL, "checkpoint-*")))
                for name in [] if self.resume else sorted(os.listdir(self.path)):
                    if name in (STATE, SNAPSHOT, MODEL) or name.startswith("checkpoint-"):
                        self.folder.remove(name)  # an earlier run's (a user's file is refused, never removed)
            except InterferenceError as err:
                self._claim.close()
                error = str(err)
        if self.path is not None and self.accelerator.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            error = broadcast_object_list([error])[0]
        if error is not None:
            raise InterferenceError(error)
        if self.resume:
            self.state = json.loads((self.path / STATE).read_text())
        return self

    def __exit__(self, *exc) -> None:
        self._claim.close()

    def _check(self) -> None:
        file = self.path / STATE
        if not self.resume:
            if file.exists() and not self.overwrite:
                raise InterferenceError(f"{self.path} already holds a run: --resume it, or --overwrite to replace it")
            return
        if not file.exists():
            raise InterferenceError(f"nothing to resume in {self.path}: no {STATE}")
        try:
            state = json.loads(file.read_text())
        except (OSError, ValueError) as err:
            raise InterferenceError(f"cannot read {file}: {str(err).splitlines()[0]}") from None
        if state.get("finished"):
            raise InterferenceError(f"the run in {self.path} has already finished; its model is in {self.path / MODEL}")
        saved = state["fingerprint"]
        diff = next((k for k, v in self.inputs["config"].items() if saved["config"].get(k) != v), None)
        if diff is not None:
            raise InterferenceError(f"cannot resume {self.path}: option {diff!r} differs from the interrupted run")
        for key, what in (("facts", "the splits differ from"), ("model", "the model differs from")):
            if saved[key] != self.inputs[key]:
                raise InterferenceError(f"cannot resume {self.path}: {what} the interrupted run's")
        if not (self.path / state["checkpoint"]).is_dir():
            raise InterferenceError(f"{file} names {state['checkpoint']}, which is missing")

    @property
    def checkpoint(self) -> Path:
        return self.path / self.state["checkpoint"]

    def write_metrics(self, result, finished: bool = False) -> None:
        if self.folder is not None:
            self.folder.write_json(METRICS, {**result.to_dict(), "finished": finished})
            if (self.path / "logs").is_dir():  # the trackers' files are the toolkit's
                self.folder.register("logs")

    def save_snapshot(self, params: dict[str, torch.Tensor], epochs: int) -> None:
        """θ_snapshot's tensors (parameter name → tensor) and the epochs that made it."""
        if self.folder is not None:
            tensors = {n: t.detach().cpu().contiguous() for n, t in params.items()}
            self.folder.write_with(SNAPSHOT, lambda tmp: save_file(tensors, tmp, {"epochs": str(epochs)}))

    def load_snapshot(self) -> tuple[dict[str, torch.Tensor], int]:
        """What `save_snapshot` wrote: (parameter name → tensor, epochs)."""
        with safe_open(str(self.path / SNAPSHOT), framework="pt") as handle:
            return {n: handle.get_tensor(n) for n in handle.keys()}, int(handle.metadata()["epochs"])

    def save_checkpoint(self, result) -> None:
        """`checkpoint-<epoch>/` through a staging folder, then the state naming it; older checkpoints go."""
        if self.path is None:
            return
        name, main = f"checkpoint-{result.epochs}", self.accelerator.is_main_process
        staging = self.path / f".{name}.staging{TMP_SUFFIX}"
        if main:
            shutil.rmtree(staging, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        self.accelerator.save_state(str(staging))
        self.accelerator.wait_for_everyone()
        if main:
            if (self.path / name).exists():
                self.folder.remove(name)
            os.replace(staging, self.path / name)
            self.folder.register(name)
            self._write_state(result, name)

    def finish(self, model, prepared, tokenizer, result) -> None:
        """`model/`, then metrics marked finished, then the state; the checkpoints go."""
        if self.path is None:
            return
        fsdp = self.accelerator.distributed_type.name == "FSDP"
        weights = self.accelerator.get_state_dict(prepared) if fsdp else None  # gathered from every process
        if self.folder is not None:
            with self.folder.directory(MODEL) as tmp:
                model.save_pretrained(tmp, state_dict=weights)
                tokenizer.save_pretrained(tmp)
            self.write_metrics(result, finished=True)
            self._write_state(result, None, finished=True)

    def _write_state(self, result, checkpoint: str | None, finished: bool = False) -> None:
        """What a resume needs beside the checkpoint: the history, μ and the run's fingerprint."""
        history = [dataclasses.asdict(r) for r in result.history]
        self.folder.write_json(STATE, {"epoch": result.epochs, "history": history, "mu": result.mu,
                                       "trainable": result.trainable, "checkpoint": checkpoint, "finished": finished,
                                       "fingerprint": self.inputs})
        for old in sorted(self.path.glob("checkpoint-*")):
            if old.name != checkpoint:
                self.folder.remove(old.name)
