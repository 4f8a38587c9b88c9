"""`accelerate launch --cpu --num_processes 2` trains the same run as one process at the same (global) batch size."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from interference.facts import Fact
from interference.facts.splits import Splits, save_splits

ACCELERATE = shutil.which("accelerate", path=os.path.dirname(sys.executable))


def _facts(prefix: str, n: int) -> list[Fact]:
    return [Fact(f"{prefix}{chr(97 + i)}", "capital", ["Oslo", "Rome"][i % 2], f"What is the capital of {prefix}"
                 f"{chr(97 + i)}?") for i in range(n)]


@pytest.mark.slow
@pytest.mark.skipif(ACCELERATE is None, reason="the accelerate launcher is not installed")
def test_two_processes_give_the_one_process_run(tmp_path):
    splits = save_splits(Splits(_facts("Ka", 8), _facts("Un", 7), _facts("He", 6), relations=("capital",)),
                         tmp_path / "splits")
    args = ["-m", "interference.train", "--model", "tiny-llama", "--splits", str(splits), "--epochs", "6",
            "--batch-size", "5", "--lr", "1e-2", "--method", "self_distill", "--eval-max-new-tokens", "6", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    one = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one")], env=env, capture_output=True,
                         text=True, timeout=300)
    launch = [ACCELERATE, "launch", "--cpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
              "--dynamo_backend", "no", "--main_process_port", "29517"]
    two = subprocess.run([*launch, *args, "--out", str(tmp_path / "two")], env=env, capture_output=True, text=True,
                         timeout=300)
    assert one.returncode == 0 and two.returncode == 0, (one.stderr[-2000:], two.stderr[-2000:])
    summaries = [json.loads(run.stdout.strip().splitlines()[-1]) for run in (one, two)]
    assert summaries[0] == summaries[1]
    # Batches of 5 split 3 + 2 (and a last batch of 5 facts of 15 training facts): the weighted terms are the batch's.
    epochs = [json.loads((tmp_path / run / "metrics.json").read_text())["epochs"] for run in ("one", "two")]
    for a, b in zip(*epochs, strict=True):
        assert a["correct"] == b["correct"] and a["step"] == b["step"]
        for key in ("loss", "ce", "kl"):
            assert a[key] == (None if b[key] is None else pytest.approx(b[key], rel=1e-4)), (key, a["epoch"])
    assert any(any(e["correct"]["unknown"]) for e in epochs[0]), "learned nothing: the comparison would be empty"
