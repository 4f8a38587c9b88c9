"""ExperimentConfig holds the training settings as a TrainConfig; flat settings route into it."""

from __future__ import annotations

import pytest

from interference.io.errors import InterferenceError
from interference.studies.setup import ExperimentConfig
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


def test_analyses_take_every_training_option_and_keep_their_own_defaults_otherwise():
    from analyses import common

    parse = common.parser("forgetting", "test").parse_args
    config = common.experiment_config(parse(["--quick", "--start", "base", "--kd-tau", "1.0", "--mixed-precision",
                                             "bf16", "--target-new-acc", "none", "--teacher-cache", "topk"]))
    train = config.train
    assert (train.start, train.kd_tau, train.mixed_precision, train.target_new_acc, train.teacher_cache) == (
        "base", 1.0, "bf16", None, "topk")
    quick = common.experiment_config(parse(["--quick"])).train
    assert quick == ExperimentConfig.quick_preset().train  # options left out set nothing
    assert common.experiment_config(parse([])).train == ExperimentConfig.build().train
    for per_condition in ("--method", "--freeze", "--train-only", "--train-splits"):
        with pytest.raises(InterferenceError, match="unrecognized arguments"):
            parse([per_condition, "sft"])


def test_a_bad_training_option_of_an_analysis_is_a_one_line_error_before_the_work(capsys):
    from analyses import forgetting

    assert forgetting.main(["--quick", "--kd-tau", "0", "--out", "/nonexistent/never"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: kd_tau must be a finite number > 0, got 0.0"
