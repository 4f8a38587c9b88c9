"""The per-layer freezing sweep: its cells, that a trained-only layer is the only one that moves, the study's
records and report, and the command line."""

from __future__ import annotations

import json

import pytest
import torch
from glance import assert_reads_at_a_glance

from analyses import freezing as cli
from interference.io.errors import InterferenceError
from interference.models.architectures import decoder_layers, get_module, layout_of, n_layers
from interference.report import CONDITION_FIELDS, load_results, validate_results
from interference.studies.freezing import (
    REFERENCE,
    SweepCondition,
    check_options,
    freezing_report,
    run_freezing,
    sweep_conditions,
    train_cell,
)
from interference.studies.setup import ExperimentConfig, make_setup

SIZES = dict(seeds=(0,), epochs=3, n_known=20, n_unknown=30, n_held=20)


@pytest.fixture(scope="module")
def config():
    return ExperimentConfig.quick_preset(**SIZES)


@pytest.fixture(scope="module")
def study(config, world):
    return run_freezing(config, base=world, progress=False)


def test_sweep_cells_cover_every_layer_in_bands():
    cells = sweep_conditions(4, band=3)
    assert [(c.mode, c.selection) for c in cells] == [
        ("train_only", "all@0-2"), ("train_only", "all@3"), ("freeze", "all@0-2"), ("freeze", "all@3")]
    assert [c.name for c in cells] == ["train-only layers 0-2", "train-only layer 3", "freeze-only layers 0-2",
                                       "freeze-only layer 3"]
    split = sweep_conditions(2, groups=("attention", "ffn"), modes=("freeze",))
    assert [c.selection for c in split] == ["attention@0", "attention@1", "ffn@0", "ffn@1"]
    assert {c.row for c in split} == {"freeze-only attention", "freeze-only ffn"}


@pytest.mark.parametrize("options, message", [
    (dict(groups=("mlp",), band=1, modes=("freeze",)), "groups must be"),
    (dict(groups=("all",), band=0, modes=("freeze",)), "band must be"),
    (dict(groups=("all",), band=5, modes=("freeze",), layers=4), "wider than the model"),
    (dict(groups=("all",), band=1, modes=("train",)), "modes must be"),
    (dict(groups=("all", "all"), band=1, modes=("freeze",)), "groups must be"),
    (dict(groups=("all",), band=1, modes=("freeze",), match="steps"), "match must be"),
    (dict(groups=("all",), band=1, modes=("freeze",), attribution_steps=-1), "attribution steps must be"),
    (dict(groups=("all",), band=1, modes=("freeze",), attribution_steps=2.5), "attribution steps must be"),
])
def test_bad_options_are_one_line_errors(options, message):
    with pytest.raises(InterferenceError, match=message) as err:
        check_options(**options)
    assert "\n" not in str(err.value)


def _changed(model, base) -> set[str]:
    reference = dict(base.named_parameters())
    return {name for name, p in model.named_parameters() if not torch.equal(p, reference[name])}


def test_train_only_a_layer_leaves_every_other_weight_untouched(config, world):
    setup = make_setup(config, 0, base=world, progress=False)
    layers = n_layers(setup.model)
    name_of = {id(p): name for name, p in setup.model.named_parameters()}
    prefix = {i: {name_of[id(p)] for p in decoder_layers(setup.model)[i].parameters()} for i in range(layers)}
    every = {n for n, _ in setup.model.named_parameters()}
    start = setup.fresh_model()  # every condition starts from the snapshot
    setup.snapshot(config.train_config(0)).load_into(start)
    for layer in range(layers):
        trained = train_cell(setup, config, SweepCondition("train_only", "all", layer, layer), 0, epochs=1)
        assert set(trained.result.trainable) == prefix[layer]
        changed = _changed(trained.model, start)
        assert changed and changed <= prefix[layer]
    frozen = train_cell(setup, config, SweepCondition("freeze", "all", 0, 0), 0)  # match="acquisition"
    assert frozen.result.config.target_new_acc == config.train.target_new_acc
    assert frozen.result.epochs <= config.train.epochs
    changed = _changed(frozen.model, start)
    assert not changed & prefix[0]
    assert changed & (every - prefix[0]), "the unfrozen layers must train"


def test_study_records_every_cell_and_the_reference(study, config):
    layers = study.layers
    assert len(study.cells) == 2 * layers
    names = [REFERENCE] + [f"{mode} layer {i}" for mode in ("train-only", "freeze-only") for i in range(layers)]
    assert study.names == names
    assert [r["name"] for r in study.records] == names  # one seed
    reference = study.of(REFERENCE)[0]
    for record in study.records:
        assert all(field in record for field in CONDITION_FIELDS)
        assert record["seed"] == 0
        assert 0 <= record["new_acc"] <= 1 and 0 <= record["task_acc"] <= 1
        assert record["drift"] is not None and record["drift"] >= 0
        if record["name"] != REFERENCE:
            assert 0 < record["trained_fraction"] < 1
            assert record["epochs"] == reference["epochs"]  # match="epochs": as long as full SFT
    for i in range(layers):  # training only layer i and freezing only layer i split the parameters between them
        pair = study.of(f"train-only layer {i}")[0]["trained_fraction"] + study.of(f"freeze-only layer {i}")[0][
            "trained_fraction"]
        assert pair == pytest.approx(1.0)
    rows, bands, values = study.grid("new_acc")
    assert rows == ["train-only", "freeze-only"] and bands == [str(i) for i in range(layers)]
    assert values[0][1] == study.of("train-only layer 1")[0]["new_acc"]


def test_records_say_where_the_held_out_loss_changed_and_a_frozen_layer_carries_none_of_it(study):
    for record in study.records:
        by_layer, by_group = record["held_loss_by_layer"], record["held_loss_by_group"]
        assert list(by_layer) == list(record["update_norms"])  # the update-norm table's slots
        assert record["held_loss_start"] == study.records[0]["held_loss_start"]  # one snapshot for every condition
        assert record["held_losses_start"] == study.records[0]["held_losses_start"]  # each fact's, too
        rise = record["held_loss_final"] - record["held_loss_start"]
        assert sum(by_layer.values()) == pytest.approx(rise, abs=0.05 * abs(rise) + 1e-4)  # the midpoint rule's error
        assert sum(by_group.values()) == pytest.approx(sum(by_layer.values()), abs=1e-9)  # one split, two sums
        for i in range(study.layers):
            if record["name"] == f"freeze-only layer {i}":
                assert by_layer[f"layer {i}"] == 0.0 and record["update_norms"][f"layer {i}"] == 0.0
                assert by_layer[f"layer {1 - i}"] != 0.0
            if record["name"] == f"train-only layer {i}":
                assert [slot for slot, share in by_layer.items() if share != 0.0] == [f"layer {i}"]
                assert {group for group, share in by_group.items() if share != 0.0} <= {"attention", "ffn", "norms"}


def test_report_validates_and_writes_both_files(study, tmp_path):
    report = freezing_report(study)
    data = report.to_dict()
    validate_results(data)
    assert len(data["conditions"]) == len(study.records)
    assert {f["title"] for f in data["figures"]} >= {"New-fact acquisition acc(D_unknown)",
                                                     "Held-out forgetting (relative drop from peak)"}
    heat = next(f for f in data["figures"] if f["title"].startswith("Held-out forgetting"))
    assert heat["traces"][0]["type"] == "heatmap" and len(heat["traces"][0]["z"]) == 2
    assert "held_loss_by_layer" in data["results"] and "held_loss_by_group" in data["results"]
    facts = len(study.records[0]["held_losses_start"])
    assert data["results"]["held_fact_losses"]["methods"][REFERENCE]["facts"] == facts
    assert list(data["results"]["held_fact_pairs"]["methods"]) == study.names[1:]  # each cell beside the reference
    assert any(t["title"].startswith("Each layer's share of the held-out loss's change minus sft's")
               for t in data["tables"])
    out = report.write(tmp_path / "freezing")
    assert "78.0 %" in assert_reads_at_a_glance((out / "report.html").read_text())
    assert load_results(out)["results"]["grid_forgetting"]["rows"] == ["train-only", "freeze-only"]


def test_a_sweep_whose_full_sft_learned_nothing_gets_no_verdict_and_says_why(study):
    from dataclasses import replace

    def headline(reference_acquired):
        records = [{**r, "new_acc": reference_acquired} if r["name"] == REFERENCE else r for r in study.records]
        return freezing_report(replace(study, records=records)).to_dict()["headline"]

    never = headline(0.0)
    assert never["verdict"] is None
    assert never["untested"] == "sft never learned the new facts (acquisition 0.00): the comparison needs acquisition"
    assert headline(0.5)["verdict"]["verdict"] in ("reproduces", "partly reproduces", "does not reproduce")


def test_groups_split_each_layer(config, world):
    split = run_freezing(ExperimentConfig.quick_preset(**{**SIZES, "epochs": 1}), base=world, progress=False,
                         mode=("train_only",), groups=("attention", "ffn"))
    rows, bands, values = split.grid("new_acc")
    assert rows == ["train-only attention", "train-only ffn"] and len(bands) == split.layers
    ffn = next(r for r in split.records if r["name"] == "train-only ffn layer 0")
    mlp = get_module(decoder_layers(world.model)[0], layout_of(world.model).mlp)
    share = sum(p.numel() for p in mlp.parameters()) / sum(p.numel() for p in world.model.parameters())
    assert ffn["selection"] == "ffn@0" and ffn["trained_fraction"] == pytest.approx(share)


def test_command_writes_both_files(tmp_path, capsys):
    out = tmp_path / "report"
    assert cli.main(["--quick", "--out", str(out), "--seeds", "0", "--epochs", "1", "--n-known", "12",
                     "--n-unknown", "12", "--n-held", "12", "--mode", "freeze", "--no-progress"]) == 0
    data = json.loads((out / "results.json").read_text())
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert [c["name"] for c in data["conditions"]][0] == REFERENCE
    assert all(c["mode"] in ("full", "freeze") for c in data["conditions"])
    assert "wall time" in capsys.readouterr().err


def test_without_attribution_steps_there_is_no_split_and_such_runs_pool_with_split_ones(tmp_path, capsys):
    small = ["--quick", "--epochs", "1", "--n-known", "12", "--n-unknown", "12", "--n-held", "12", "--mode", "freeze",
             "--no-progress"]
    assert cli.main([*small, "--out", str(tmp_path / "a"), "--seeds", "0", "--attribution-steps", "0"]) == 0
    data = json.loads((tmp_path / "a" / "results.json").read_text())
    assert not any("held_loss_by_layer" in c for c in data["conditions"])
    assert "held_loss_by_layer" not in data["results"]
    assert "held_fact_losses" in data["results"]  # each fact's loss is read whether or not the change is split
    assert cli.main([*small, "--out", str(tmp_path / "a"), "--seeds", "1", "--accumulate"]) == 0
    data = json.loads((tmp_path / "a" / "results.json").read_text())
    assert [("held_loss_by_layer" in c) for c in data["conditions"] if c["name"] == REFERENCE] == [False, True]


@pytest.mark.parametrize("argv", [["--layer", "-1"], ["--epochs", "0"], ["--band", "0"],
                                  ["--attribution-steps", "-2"]])
def test_command_rejects_bad_options(argv, capsys, tmp_path):
    assert cli.main(["--quick", "--out", str(tmp_path / "x"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
    assert not (tmp_path / "x").exists()


def test_command_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    assert "--band" in capsys.readouterr().out
