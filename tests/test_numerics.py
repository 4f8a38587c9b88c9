"""Portable CPU numerics: the same bits whatever newer instructions the CPU has (simulated by capping the
instruction set of this machine), and the native mode on request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: A few training steps of a small transformer layer; prints the numerics mode and a hash of the trained weights.
SCRIPT = """
import hashlib, importlib.util, json, sys
spec = importlib.util.spec_from_file_location("numerics", sys.argv[1])  # the module alone: a light import
numerics = importlib.util.module_from_spec(spec)
spec.loader.exec_module(numerics)
numerics.apply()
import torch
torch.set_num_threads(1)
torch.manual_seed(0)
model = torch.nn.TransformerEncoderLayer(64, 4, 256, dropout=0.0, batch_first=True)
optimizer = torch.optim.AdamW(model.parameters(), 1e-2)
x = torch.randn(8, 24, 64)
for _ in range(20):
    model(x).pow(2).mean().backward()
    optimizer.step()
    optimizer.zero_grad()
digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.state_dict().values())).hexdigest()
print(json.dumps({"mode": numerics.mode(), "mkl": numerics.mkl_branch(), "sha": digest}))
"""
#: Environment variables that make this machine's MKL and oneDNN behave as on a CPU without AVX-512.
AVX2_MACHINE = {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
SET_BY_US = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "INTERFERENCE_NUMERICS")


def _run(**env) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in SET_BY_US and k not in AVX2_MACHINE}
    module = Path(__file__).resolve().parents[1] / "interference" / "numerics.py"
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(module)], env={**clean, **env}, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_this_test_process_runs_the_portable_kernels():
    from interference import numerics

    assert numerics.mode() == "portable", "conftest imports interference before torch computes anything"


def test_portable_numerics_give_the_same_bits_without_avx512_and_native_is_an_option():
    portable, capped = _run(), _run(**AVX2_MACHINE, ATEN_CPU_CAPABILITY="avx2")
    assert portable["mode"] == capped["mode"] == "portable"
    assert portable["sha"] == capped["sha"]
    native = _run(INTERFERENCE_NUMERICS="native")
    assert native["mode"].startswith("native (")
    if native["mode"] != "native (AVX512)":
        pytest.skip(f"this CPU's native kernels are {native['mode']}: no wider kernels to differ from AVX2's")
    assert native["sha"] != portable["sha"]  # AVX-512 kernels sum in another order: the bits differ


def _intel() -> bool:
    cpuinfo = Path("/proc/cpuinfo")
    return cpuinfo.is_file() and "GenuineIntel" in cpuinfo.read_text(errors="replace")


def test_mkl_says_which_branch_it_runs_and_honours_avx2_on_intel_only():
    portable, strict = _run(), _run(INTERFERENCE_NUMERICS="strict")
    if portable["mkl"] is None:
        pytest.skip("this PyTorch has no MKL to ask (not an x86 Linux build)")
    assert portable["mkl"] == ("AVX2" if _intel() else "AUTO")  # MKL keeps its AVX2 branch for Intel CPUs
    assert strict["mode"] == "strict" and strict["mkl"] == "COMPATIBLE"
    assert _run(INTERFERENCE_NUMERICS="native")["mkl"] == "off"
    assert _run(MKL_CBWR="AVX2,STRICT")["mkl"].endswith(",STRICT")


def test_strict_numerics_give_the_same_bits_without_avx512():
    strict, capped = _run(INTERFERENCE_NUMERICS="strict"), _run(**AVX2_MACHINE, INTERFERENCE_NUMERICS="strict")
    assert strict["mode"] == capped["mode"] == "strict" and strict["sha"] == capped["sha"]


def test_an_unknown_numerics_mode_warns_and_keeps_the_portable_one(monkeypatch):
    from interference import numerics

    for name in SET_BY_US:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(numerics.SWITCH, "fastest")
    with pytest.warns(UserWarning, match=r"INTERFERENCE_NUMERICS='fastest' is not one of portable, strict, native"):
        numerics.apply()
    assert {name: os.environ[name] for name in numerics.PORTABLE} == numerics.PORTABLE


def test_a_world_records_its_numerics_and_lives_in_its_own_folder(world):
    from interference import numerics

    assert world.record["numerics"] == "portable" or "numerics" not in world.record
    assert world.record.get("mkl", numerics.mkl_branch()) == numerics.mkl_branch()
    branch = numerics.mkl_branch()
    assert world.path.name.endswith("-avx2" if branch in ("AVX2", None) else f"-avx2-mkl-{branch.lower()}")


def test_the_cpu_is_named_with_the_features_that_decide_kernels():
    from interference import numerics

    info = "processor\t: 0\nmodel name\t: Some Xeon\nflags\t\t: fpu sse avx2 avx512f amx_bf16 amx_tile\n\n"
    assert numerics.cpu(info) == "Some Xeon (avx2, avx512f, amx_bf16)"
    assert numerics.cpu("model name: Old CPU\nflags: fpu sse\n") == "Old CPU (none of " + ", ".join(
        numerics.CPU_FLAGS) + ")"
    assert numerics.cpu().endswith(")")  # this machine, from /proc/cpuinfo where Linux has it
