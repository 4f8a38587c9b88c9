"""Devices and dtypes by name: what `--device` and `--dtype` accept, checked before any work starts.

    resolve_device("auto")      # cuda when available, else cpu
    resolve_device("cuda:1")    # InterferenceError on a machine without CUDA or with fewer GPUs
    resolve_dtype("bfloat16")   # torch.bfloat16

Batch sizes of inference (greedy evaluation, SLiCK sampling, representation reads) follow the device too: see
`inference_batch_size`. What a launch of training must be is checked here too (`check_launch`).
"""

from __future__ import annotations

import os
import re

import torch

from ..io.errors import InterferenceError

#: The names `--dtype` accepts.
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}

#: The forms `--device` accepts.
DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")

#: How much larger inference batches are on an accelerator than on a CPU (see `inference_batch_size`).
ACCELERATOR_BATCH_FACTOR = 8


def resolve_device(spec: str | torch.device) -> torch.device:
    """The torch device `spec` names: "auto" (cuda when available, else cpu), "cpu", "cuda", "cuda:N" or "mps".

    Raises InterferenceError (one line) for an unknown form or a device this machine does not have.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = str(spec).strip().lower()
    if not _DEVICE.match(text):
        raise InterferenceError(f"unknown device {spec!r} (choose {DEVICE_CHOICES})")
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InterferenceError(f"device {spec!r} requested but CUDA is not available on this machine")
        device = torch.device(text)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InterferenceError(
                f"device {spec!r} requested but this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
        return device
    if text == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise InterferenceError(f"device {spec!r} requested but MPS is not available on this machine")
    return torch.device(text)


def resolve_dtype(name: str | torch.dtype) -> torch.dtype:
    """The torch dtype `name` names: "float32" or "bfloat16" (a torch dtype of those passes through)."""
    if isinstance(name, torch.dtype):
        if name in DTYPES.values():
            return name
        raise InterferenceError(f"unsupported dtype {name} (choose {', '.join(DTYPES)})")
    try:
        return DTYPES[str(name).strip().lower()]
    except KeyError:
        raise InterferenceError(f"unknown dtype {name!r} (choose {', '.join(DTYPES)})") from None


def dtype_name(dtype: torch.dtype) -> str:
    """The `--dtype` name of `dtype` ("float32", "bfloat16")."""
    for name, value in DTYPES.items():
        if value == dtype:
            return name
    raise InterferenceError(f"unsupported dtype {dtype} (choose {', '.join(DTYPES)})")


def inference_batch_size(base: int, device: torch.device | str) -> int:
    """The batch size of inference (no gradients) on `device`: `base` on a CPU, `ACCELERATOR_BATCH_FACTOR` × `base`
    on a GPU or MPS.

    The rule: `base` is chosen for a CPU, where a batch's cost grows with its size and small batches waste nothing;
    an accelerator runs a batch of a small model in about the time of one example until its memory or compute
    fills, so larger batches cut the number of sequential forward passes. Training batches are never changed: they
    are a hyper-parameter of the method, not of the machine.
    """
    kind = torch.device(device).type
    return base * ACCELERATOR_BATCH_FACTOR if kind in ("cuda", "mps") else base


def device_description(device: torch.device | str) -> str:
    """A human-readable name of `device` for reports: "cpu (N threads)" or the GPU's name."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    if device.type == "cpu":
        threads = torch.get_num_threads()
        return f"cpu ({threads} thread{'' if threads == 1 else 's'})"
    return device.type


def check_launch(accelerator=None) -> None:
    """Refuse, with one line, what the training loop cannot run: FSDP (the snapshot, the teacher and the l2 anchor
    need the full weights on every process; README, "Several GPUs"), mixed precision that PyTorch's CPU attention
    cannot run on this machine, and launched processes that formed no process group."""
    from accelerate.utils import parse_flag_from_env

    if parse_flag_from_env("ACCELERATE_USE_FSDP") or getattr(accelerator, "distributed_type", None) == "FSDP":
        raise InterferenceError("FSDP is not supported yet (every process needs the full snapshot weights): launch "
                                "with --multi_gpu (DDP), or use one GPU")
    precision = getattr(accelerator, "mixed_precision", "no")
    if precision in ("bf16", "fp16") and accelerator.device.type == "cpu":
        _check_cpu_autocast(precision)
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if accelerator is not None and accelerator.num_processes != launched:
        raise InterferenceError(f"{launched} processes were launched but accelerate joined {accelerator.num_processes} "
                                "(no process group formed): check the launch's config (GPUs, or --cpu)")


def _check_cpu_autocast(precision: str) -> None:
    """A one-line error where PyTorch's CPU attention fails in the `precision` autocast runs it in."""
    from .. import numerics

    failure = numerics.cpu_attention_failure({"bf16": torch.bfloat16, "fp16": torch.float16}[precision])
    if failure is None:
        return
    remedy = (" or set INTERFERENCE_NUMERICS=native (the machine's own kernels: results then hold on this kind of CPU"
              " only)" if not numerics.mode().startswith("native") else "")
    raise InterferenceError(f"mixed precision {precision} fails in PyTorch's CPU attention on this machine "
                            f"({failure}): train in float32 (--mixed-precision no){remedy}")
