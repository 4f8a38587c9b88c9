"""interference: mechanistic interpretability of fine-tuning — why SFT on new facts makes a model forget.

The package follows the data's path, one layer above the other (README, "Where things live"); a lower layer never
imports a higher one:

- `interference.io`: errors, atomic writes, output folders, a training run's folder, command-line options
- `interference.models`: `load_model`, `save_checkpoint`; layouts of Hugging Face families (`models.architectures`:
  `layout_of`, `register_layout`, `value_vectors`; `models.layout_check.check_layout`), the views
  (`models.views`: `residual_stream`, `mlp_activations`, `logit_lens` in hf | transformer_lens | nnsight), freezing
  groups, devices, generation
- `interference.report`: statistics, tables, charts and the verdict-first `Report`
- `interference.facts`: `Fact`, `qa_prompt`, `qa_target`; datasets, SLiCK, splits, new facts, real data, examples
- `interference.world`: `WorldConfig`, `load_world` (the embedded world and its pretrained model)
- `interference.measures`: evaluation, forgetting metrics, representations, overlap, FFN value vectors, tracing
- `interference.train`: `TrainConfig`, `train` (SFT, self-distillation, L2, freezing): the training core
- `interference.studies`: `ExperimentConfig` and the set-up every analysis runs on (`studies.setup`), the studies
- `interference.commands`: the command lines of `python -m interference.train` and `python -m interference.world`

The flat layout's import paths (`interference.views`, `interference.experiment`, …) still import
(`interference.compat`).
"""

from . import numerics

numerics.apply()  # before PyTorch's first CPU kernel: pinned kernels, the same bits per machine kind (numerics)

from . import compat

compat.install()  # the flat layout's import paths keep working

from .io.errors import InterferenceError, exit_quietly_on_interrupt, started_as_command

if started_as_command("interference", "analyses"):  # Ctrl-C while the imports below run: one line, exit 130
    exit_quietly_on_interrupt()

from .facts.fact import Fact, qa_prompt, qa_target
from .models.loading import load_model, save_checkpoint
from .models.views import logit_lens, mlp_activations, residual_stream
from .studies.setup import ExperimentConfig
from .train import TrainConfig, train
from .version import __version__
from .world import WorldConfig, load_world

__all__ = [
    "ExperimentConfig",
    "Fact",
    "InterferenceError",
    "TrainConfig",
    "WorldConfig",
    "__version__",
    "load_model",
    "load_world",
    "logit_lens",
    "mlp_activations",
    "qa_prompt",
    "qa_target",
    "residual_stream",
    "save_checkpoint",
    "train",
]
