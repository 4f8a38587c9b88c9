"""interference: mechanistic interpretability of fine-tuning — why SFT on new facts makes a model forget.

The public surface is small; each concept lives in its own module:

- `interference.models`: `load_model`, `save_checkpoint`
- `interference.views`: `residual_stream`, `mlp_activations`, `logit_lens` (hf | transformer_lens | nnsight)
- `interference.architectures`: `layout_of`, `register_layout`, `check_layout`, `value_vectors` (built-in and
  detected layouts of Hugging Face families)
- `interference.facts`: `Fact`, `qa_prompt`, `qa_target`
- `interference.world`: `WorldConfig`, `load_world` (the embedded world and its pretrained model)
- `interference.train`: `TrainConfig`, `train` (SFT, self-distillation, L2, freezing)
- `interference.experiment`: `ExperimentConfig` (what every analysis runs on); `interference.studies.*` the analyses
"""

from . import numerics

numerics.apply()  # before PyTorch's first CPU kernel: the same bits on every AVX2 machine (interference.numerics)

from .errors import InterferenceError, exit_quietly_on_interrupt, started_as_command

if started_as_command("interference", "analyses"):  # Ctrl-C while the imports below run: one line, exit 130
    exit_quietly_on_interrupt()

from .experiment import ExperimentConfig
from .facts import Fact, qa_prompt, qa_target
from .models import load_model, save_checkpoint
from .train import TrainConfig, train
from .views import logit_lens, mlp_activations, residual_stream
from .world import WorldConfig, load_world

__version__ = "0.1.0"

__all__ = [
    "ExperimentConfig",
    "Fact",
    "InterferenceError",
    "load_model",
    "logit_lens",
    "mlp_activations",
    "qa_prompt",
    "qa_target",
    "residual_stream",
    "save_checkpoint",
    "TrainConfig",
    "train",
    "WorldConfig",
    "load_world",
]
