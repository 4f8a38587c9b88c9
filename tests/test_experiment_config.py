"""ExperimentConfig holds the training settings as a TrainConfig; flat settings route into it."""

from __future__ import annotations

import pytest

from interference.errors import InterferenceError
from interference.experiment import ExperimentConfig
from interference.train import TrainConfig


def test_flat_training_settings_go_into_the_train_config():
    config = ExperimentConfig.build(n_known=10, lr=2e-3, epochs=5, target_new_acc=None, kd_weighting="sequence")
    assert config.n_known == 10 and isinstance(config.train, TrainConfig)
    assert (config.train.lr, config.train.epochs, config.train.target_new_acc) == (2e-3, 5, None)
    assert config.train.batch_size == ExperimentConfig().train.batch_size  # the rest keeps the defaults
    one = config.train_config(3, method="self_distill")
    assert (one.seed, one.method, one.lr, one.kd_weighting) == (3, "self_distill", 2e-3, "sequence")
    assert one.start == "snapshot" == config.train_config(3, method="sft").start  # one start for every method
    assert ExperimentConfig(**config.to_dict()) == config
    assert ExperimentConfig.quick_preset(epochs=3).train.epochs == 3


@pytest.mark.parametrize("settings,message", [
    (dict(epochs=0), "epochs must be an integer >= 1"),
    (dict(device="gpu"), "unknown device 'gpu'"),
    (dict(dtype="float16"), "unknown dtype 'float16'"),
    (dict(lr=float("nan")), "lr must be a finite number > 0"),
])
def test_bad_settings_are_one_line_errors(settings, message):
    with pytest.raises(InterferenceError, match=message) as err:
        ExperimentConfig.build(**settings)
    assert "\n" not in str(err.value)
