"""Portable CPU numerics: the same bits on every x86 machine with AVX2, at about the cost of the native path.

PyTorch picks its CPU kernels by the machine's instruction set (AVX-512, AVX2, …), and so does MKL for matrix
products; kernels of different widths sum in different orders, so the same run gives different bits on different
CPUs. Over the thousands of steps that pretrain the embedded world, and the training that follows, those bits grow
into different worlds and different results (measured: docs/reproducibility.md). Pinning both to AVX2 —
`ATEN_CPU_CAPABILITY=avx2` for PyTorch's own kernels and `MKL_CBWR=AVX2`, MKL's conditional numerical
reproducibility mode — gives identical weights whatever the machine's newer instructions (measured by capping the
instruction set of one AVX-512 machine: AVX-512, AVX2-only and SSE4-only runs of a world condition gave one hash).

`apply()` sets both (unless the user set them, or `INTERFERENCE_NUMERICS=native`) and must run before PyTorch's first
CPU kernel: `import interference` calls it. PyTorch reads its capability once, at the first dispatched kernel, so a
process that computed with torch before importing interference keeps the native kernels; `mode()` says which is in
effect, and reports and worlds record it.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

#: The settings of the portable mode.
PORTABLE = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"}
#: CPU features that decide which kernels PyTorch, MKL or oneDNN may pick beside the pinned capability.
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16")
#: Set to "native" to keep the fastest kernels of this machine (results then hold on this kind of CPU only).
SWITCH = "INTERFERENCE_NUMERICS"


def apply() -> None:
    """Pin PyTorch's and MKL's CPU kernels to AVX2 (see the module's docstring), unless opted out."""
    if os.environ.get(SWITCH, "portable") == "native":
        return
    for name, value in PORTABLE.items():
        os.environ.setdefault(name, value)


def mode() -> str:
    """"portable" when PyTorch's kernels and MKL run at AVX2 as `apply` sets them, else "native (<capability>)"."""
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    portable = capability == "AVX2" and os.environ.get("MKL_CBWR") == PORTABLE["MKL_CBWR"]
    return "portable" if portable else f"native ({capability})"


def cpu_attention_failure(dtype) -> str | None:
    """Why PyTorch's CPU attention cannot run in `dtype` here (its error's first line), or None when it can.

    On CPUs with AMX, PyTorch 2.13's bfloat16 attention at 64 tokens or more takes a path that needs AVX-512 kernels
    and fails under the portable AVX2 pin; a probe of that length, before any training, tells."""
    import torch

    probe = torch.zeros(1, 1, 64, 8, dtype=dtype)
    try:
        torch.nn.functional.scaled_dot_product_attention(probe, probe, probe, is_causal=True)
    except RuntimeError as error:
        return str(error).strip().splitlines()[0]
    return None


def cpu(cpuinfo: str | None = None) -> str:
    """The CPU's model name and which of `CPU_FLAGS` it has, e.g. "Intel(R) Xeon(R) Processor (avx2, avx512f)": recorded
    with every report's versions, so that results that differ between machines can be traced to the CPU (read from
    Linux's /proc/cpuinfo, or `cpuinfo` given; elsewhere `platform.processor()` alone)."""
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    fields = dict(line.split(":", 1) for line in cpuinfo.splitlines()[:64] if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    name = fields.get("model name") or platform.processor() or "unknown CPU"
    flags = set(fields.get("flags", "").split())
    return f"{name} ({', '.join(f for f in CPU_FLAGS if f in flags) or 'none of ' + ', '.join(CPU_FLAGS)})"
