"""Resumable checkpoints in an output folder.

Layout of `out/`:
- `checkpoint-<epoch>/`: the model after that epoch, Hugging Face format (`interference.models.save_checkpoint`);
- `train_state.pt`: which checkpoint is current, the optimiser state, torch RNG states, the history so far, μ and
  the config — written atomically *after* its checkpoint folder, so it always names a complete one;
- `snapshot.safetensors`: θ_snapshot (teacher / anchor), so a resumed run needs no snapshot training;
- `metrics.json`: config, trainable parameters and per-epoch metrics, rewritten atomically after each epoch;
- `model/`: the final model (HF format), written when training ends.
A run resumes from the last completed epoch; the epoch being trained when it stopped is redone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import InterferenceError
from ..models import save_checkpoint
from .teacher import Snapshot

STATE = "train_state.pt"
SNAPSHOT = "snapshot.safetensors"


def _atomic_save(write, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def rng_state() -> dict:
    """torch's CPU RNG state, and every CUDA device's when CUDA is in use."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(out: Path, model, tokenizer, state: dict) -> None:
    """Write `checkpoint-<epoch>/`, then `train_state.pt` naming it, then drop older checkpoint folders."""
    name = f"checkpoint-{state['epoch']}"
    save_checkpoint(model, tokenizer, out / name)
    _atomic_save(lambda tmp: torch.save({**state, "checkpoint": name}, tmp), out / STATE)
    for old in out.glob("checkpoint-*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)


def finish(out: Path, state: dict) -> None:
    """Mark the run finished: keep the history, drop the optimiser state and the checkpoint folders."""
    _atomic_save(
        lambda tmp: torch.save({**state, "optimizer": None, "checkpoint": None, "finished": True}, tmp), out / STATE
    )
    for old in out.glob("checkpoint-*"):
        shutil.rmtree(old, ignore_errors=True)


def has_state(out: Path | None) -> bool:
    return out is not None and (out / STATE).exists()


def load(out: Path) -> dict:
    """The saved training state; raises InterferenceError when absent, unreadable or finished."""
    path = out / STATE
    if not path.exists():
        raise InterferenceError(f"nothing to resume in {out}: no {STATE}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user-facing problem
        raise InterferenceError(f"cannot read {path}: {str(err).splitlines()[0]}") from err
    if state.get("finished"):
        raise InterferenceError(f"the run in {out} has already finished; its model is in {out / 'model'}")
    if not (out / state["checkpoint"]).is_dir():
        raise InterferenceError(f"{path} names {state['checkpoint']}, which is missing")
    return state


def load_weights(model: torch.nn.Module, folder: Path) -> None:
    """Copy the weights of the HF checkpoint `folder` into `model` (same architecture)."""
    from transformers import AutoModelForCausalLM

    dtype = next(model.parameters()).dtype
    loaded = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    Snapshot.of(loaded).load_into(model)


def save_snapshot(out: Path, snapshot: Snapshot) -> None:
    tensors = {n: t.detach().cpu().contiguous() for n, t in snapshot.params.items()}
    _atomic_save(lambda tmp: save_file(tensors, tmp, metadata={"epochs": str(snapshot.epochs)}), out / SNAPSHOT)


def load_snapshot(out: Path) -> Snapshot | None:
    """The snapshot saved in `out`, or None."""
    path = out / SNAPSHOT
    if not path.exists():
        return None
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        epochs = int((handle.metadata() or {}).get("epochs", 1))
    return Snapshot(load_file(str(path)), epochs)
