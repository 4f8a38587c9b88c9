"""Devices and dtypes by name: the forms `--device` and `--dtype` accept, and one-line errors for the rest."""

from __future__ import annotations

import pytest
import torch

from interference.io.errors import InterferenceError
from interference.models.devices import (
    ACCELERATOR_BATCH_FACTOR,
    device_description,
    dtype_name,
    inference_batch_size,
    resolve_device,
    resolve_dtype,
)


def test_auto_picks_cuda_only_when_available():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


def test_cpu_and_torch_devices_resolve():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("spec", ["foo", "cuda:", "cuda:x", "gpu", "", "cpu:0:1"])
def test_unknown_device_is_one_line_error(spec):
    with pytest.raises(InterferenceError, match="unknown device") as err:
        resolve_device(spec)
    assert "\n" not in str(err.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_cuda_is_one_line_error(spec):
    with pytest.raises(InterferenceError, match="CUDA is not available") as err:
        resolve_device(spec)
    assert "\n" not in str(err.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_index_beyond_the_machine_is_an_error():
    with pytest.raises(InterferenceError, match="CUDA device"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_dtypes_resolve_and_round_trip():
    assert resolve_dtype("float32") is torch.float32
    assert resolve_dtype("BFloat16") is torch.bfloat16
    assert resolve_dtype(torch.bfloat16) is torch.bfloat16
    for name in ("float32", "bfloat16"):
        assert dtype_name(resolve_dtype(name)) == name


@pytest.mark.parametrize("name", ["float16", "fp32", "int8", torch.float16])
def test_unknown_dtype_is_one_line_error(name):
    with pytest.raises(InterferenceError, match="dtype"):
        resolve_dtype(name)


def test_inference_batches_scale_up_on_accelerators_only():
    assert inference_batch_size(16, "cpu") == 16
    assert inference_batch_size(16, torch.device("cuda", 0)) == 16 * ACCELERATOR_BATCH_FACTOR
    assert inference_batch_size(16, "mps") == 16 * ACCELERATOR_BATCH_FACTOR


def test_cpu_description_names_threads():
    assert device_description("cpu").startswith("cpu (")


def analysis_commands() -> list[str]:
    """The analyses that load a model (those that only read report folders say so: `MODEL_FREE`)."""
    import importlib
    import pkgutil

    import analyses

    names = sorted(m.name for m in pkgutil.iter_modules(analyses.__path__) if m.name != "common")
    return [n for n in names if not getattr(importlib.import_module(f"analyses.{n}"), "MODEL_FREE", False)]


def test_a_model_free_analysis_is_left_out_and_offers_no_device(capsys):
    """relation_swap reads report folders only: it is left out of the device test and its options name no device."""
    from analyses import relation_swap

    assert "relation_swap" not in analysis_commands()
    with pytest.raises(SystemExit) as done:
        relation_swap.main(["--help"])
    assert done.value.code == 0 and "--device" not in capsys.readouterr().out


@pytest.mark.parametrize("name", analysis_commands())
def test_every_analysis_takes_device_and_dtype(name, capsys):
    import importlib

    main = importlib.import_module(f"analyses.{name}").main
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "--device" in out and "--dtype" in out
    assert main(["--device", "foo"]) == 2  # refused before any work
    assert capsys.readouterr().err == "error: unknown device 'foo' (choose auto, cpu, cuda, cuda:N or mps)\n"
    if not torch.cuda.is_available():
        assert main(["--device", "cuda:0"]) == 2
        assert "CUDA is not available" in capsys.readouterr().err


def test_models_load_by_device_and_dtype_names():
    from interference.models import load_model

    model, _ = load_model("tiny-llama", device="auto", dtype="bfloat16")
    assert next(model.parameters()).dtype is torch.bfloat16
    assert next(model.parameters()).device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(InterferenceError, match="unknown dtype"):
        load_model("tiny-llama", dtype="float16")
    if not torch.cuda.is_available():
        with pytest.raises(InterferenceError, match="CUDA is not available"):
            load_model("tiny-llama", device="cuda")


def test_auto_is_recorded_as_the_device_it_chose():
    from analyses import common

    args = common.parser("forgetting", "test").parse_args(["--quick", "--device", "auto"])
    assert common.experiment_config(args).device == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("name", ["bench_gpu_table1", "bench_gpu_precision"])
def test_the_gpu_benchmarks_refuse_without_cuda(capsys, tmp_path, monkeypatch, name):
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    monkeypatch.syspath_prepend(str(root))  # as `python -m bench.NAME` from the repository root
    path = root / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--out", str(tmp_path / "b.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no CUDA device" in err and err.count("\n") == 1
    assert not (tmp_path / "b.json").exists()
