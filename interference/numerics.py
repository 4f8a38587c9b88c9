"""Pinned CPU numerics: the same bits on every machine of a kind, and on request on every x86 machine.

PyTorch picks its CPU kernels by the machine's instruction set (AVX-512, AVX2, …), and so does MKL for matrix
products; kernels of different widths sum in different orders, so the same run gives different bits on different
CPUs. Over the thousands of steps that pretrain the embedded world, and the training that follows, those bits grow
into different worlds and different results (measured: docs/reproducibility.md). Three modes, chosen by
`INTERFERENCE_NUMERICS`:

- "portable" (the default): `ATEN_CPU_CAPABILITY=avx2` for PyTorch's own kernels and `MKL_CBWR=AVX2`, MKL's
  conditional numerical reproducibility (CNR) branch for AVX2. MKL honours that branch on Intel CPUs only; on other
  CPUs (AMD) it runs its AUTO branch instead, so the bits are the same on every Intel CPU with AVX2, and on machines
  of one other kind, but differ between Intel and AMD. `mkl_branch()` says which branch runs, and reports record it.
- "strict": `ATEN_CPU_CAPABILITY=avx2` and `MKL_CBWR=COMPATIBLE`, the one CNR branch MKL keeps on every x86 CPU,
  Intel or AMD: the same bits on both, at 1.6 to 2.1 times the CPU time of a training epoch (MKL's SSE2 products).
- "native": the fastest kernels of this machine (results then hold on this kind of CPU only).

`apply()` sets the chosen mode's variables (unless the user set them) and must run before PyTorch's first CPU kernel:
`import interference` calls it. PyTorch reads its capability once, at the first dispatched kernel, and MKL its branch
at its first call, so a process that computed with torch before importing interference keeps the native kernels;
`mode()` says which mode is in effect, and reports and worlds record it.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import warnings
from pathlib import Path

#: The settings of the portable mode.
PORTABLE = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"}
#: The settings of the strict mode: MKL's COMPATIBLE branch, the same on Intel and AMD CPUs.
STRICT = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE"}
#: What `INTERFERENCE_NUMERICS` may be.
MODES = ("portable", "strict", "native")
#: MKL's CNR branch codes (`mkl_cbwr_get(MKL_CBWR_BRANCH)`), by the names `MKL_CBWR` takes.
MKL_BRANCHES = {1: "off", 2: "AUTO", 3: "COMPATIBLE", 4: "SSE2", 6: "SSSE3", 7: "SSE4_1", 8: "SSE4_2", 9: "AVX",
                10: "AVX2", 11: "AVX512_MIC", 12: "AVX512", 13: "AVX512_MIC_E1", 14: "AVX512_E1"}
#: CPU features that decide which kernels PyTorch, MKL or oneDNN may pick beside the pinned capability.
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16")
#: One of `MODES` (default "portable"; see the module's docstring).
SWITCH = "INTERFERENCE_NUMERICS"


def apply() -> None:
    """Pin PyTorch's and MKL's CPU kernels as `INTERFERENCE_NUMERICS` says (see the module's docstring); an unknown
    value warns and keeps the portable mode (this runs at import, where an error would stop any use of the package)."""
    choice = os.environ.get(SWITCH) or "portable"
    if choice not in MODES:
        warnings.warn(f"{SWITCH}={choice!r} is not one of {', '.join(MODES)}: using portable", stacklevel=2)
    if choice == "native":
        return
    for name, value in (STRICT if choice == "strict" else PORTABLE).items():
        os.environ.setdefault(name, value)


def mode() -> str:
    """"portable" or "strict" when PyTorch's kernels run at AVX2 and MKL_CBWR is that mode's, else "native
    (<capability>)". (On a non-Intel CPU MKL runs its AUTO branch under "portable": `mkl_branch` says.)"""
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    for name, settings in (("portable", PORTABLE), ("strict", STRICT)):
        if capability == "AVX2" and os.environ.get("MKL_CBWR") == settings["MKL_CBWR"]:
            return name
    return f"native ({capability})"


@functools.cache
def mkl_branch() -> str | None:
    """The CNR branch MKL runs in this process, asked of MKL itself: "AVX2" (portable, on an Intel CPU), "AUTO"
    (portable on any other CPU, where MKL ignores MKL_CBWR=AVX2, or an unknown value), "COMPATIBLE" (strict), "off"
    (MKL_CBWR unset), with ",STRICT" where MKL's strict CNR is on; None where PyTorch has no MKL to ask (ARM,
    macOS) or does not export MKL's query."""
    import torch

    try:
        get = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so")).mkl_serv_cbwr_get
    except (OSError, AttributeError):
        return None
    get.restype = ctypes.c_int
    code = get(-1)  # MKL_CBWR_ALL: the branch in the low bits, 0x10000 for strict
    if code < 0:
        return None
    return MKL_BRANCHES.get(code & 0xFFFF, str(code & 0xFFFF)) + (",STRICT" if code & 0x10000 else "")


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
