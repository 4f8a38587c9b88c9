"""The remedies command: bad input refused before any work, the shared training options, and a run that writes every
method paired with SFT (and pools with a run of fewer methods)."""

from __future__ import annotations

import pytest

#: A remedies run small enough for a test: three quick seeds of 12 facts each, one epoch.
SMALL = ["--quick", "--n-known", "12", "--n-unknown", "12", "--n-held", "12", "--epochs", "1"]


def test_remedy_commands_refuse_bad_input_before_any_work(tmp_path, capsys, monkeypatch):
    from analyses import remedies
    from interference.studies import remedies as study

    monkeypatch.setattr(study, "run_remedies", lambda *a, **k: pytest.fail("the work started"))
    for argv, message in ((["--methods", "wise-ft"], "wise-ft interpolates the SFT model"),
                          (["--alphas", "0", "1", "--alpha", "0.5"], "not among the swept alphas"),
                          (["--alphas", "0", "2"], "alphas must be numbers in [0, 1]"),
                          (["--replay-fraction", "0.95"], "replay_fraction must be"),
                          (["--methods", "sft", "lora:4"], "lora in 'lora:4' takes no strength"),
                          (["--methods", "sft", "ewc:0"], "must be a number above 0, got '0'"),
                          (["--methods", "sft", "ewc:strong"], "must be a number above 0, got 'strong'"),
                          (["--methods", "sft", "replay:0.95"], "replay_fraction must be"),
                          (["--methods", "sft", "ewc+replay"], "unknown remedy 'ewc+replay'"),
                          (["--methods", "sft", "ewc:1e+06"], "exponent without '+'"),
                          (["--methods", "sft", "dropout:1"], "unknown remedy 'dropout:1'")):
        assert remedies.main(["--quick", *argv, "--out", str(tmp_path / "r")]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_the_shared_training_options_leave_the_per_condition_ones_alone():
    from analyses import common

    args = common.parser("remedies", "").parse_args(["--quick"])
    args.lora_rank, args.ewc_lambda = 8, None  # as the remedies command's own options would set them
    train = common.experiment_config(args).train
    assert train.lora_rank is None and train.ewc_lambda == 0.0


def test_the_remedies_command_writes_every_method_paired_with_sft(tmp_path, capsys):
    import json

    from analyses import remedies

    out = tmp_path / "r"
    assert remedies.main([*SMALL, "--lora-rank", "2", "--no-progress", "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["seeds"] == [0, 1, 2]
    names = [c["name"] for c in data["conditions"]]
    assert all(names.count(m) == 3 for m in remedies.METHODS)
    paired = {p["condition"] for p in data["results"]["paired"] if p["minus"] == "sft"}
    assert paired == set(remedies.METHODS) - {"sft"}
    fewer = ["sft", "self_distill", "wise-ft"]  # each trains from the snapshot: a run of some repeats their records
    for argv, folder in (([], "part"), (["--merge", str(out)], "taken")):
        assert remedies.main([*SMALL, "--lora-rank", "2", "--methods", *fewer, "--seeds", "0", *argv, "--no-progress",
                              "--out", str(tmp_path / folder)]) == 0
    part, taken = (json.loads((tmp_path / f / "results.json").read_text())["conditions"] for f in ("part", "taken"))
    assert [c["name"] for c in taken] == [m for m in fewer for _ in range(3)]  # the merge takes all 3 seeds

    def stable(records):
        return [{k: v for k, v in r.items() if k not in ("seconds", "machine")} for r in records if r["seed"] == 0]

    assert stable(part) == stable(taken)
    assert remedies.main([*SMALL, "--methods", *fewer, "--merge", str(out), "--no-progress",
                          "--out", str(tmp_path / "x")]) == 2
    assert "holds a run with other settings (remedies.lora_rank: 2 there, 8 now)" in capsys.readouterr().err
