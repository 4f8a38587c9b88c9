"""Seeds that accumulate over runs into one folder: pooled reports equal one run over all seeds, and only runs of the
same experiment pool."""

from __future__ import annotations

import json
import math

import pytest

from analyses.forgetting import main
from interference.io.errors import InterferenceError
from interference.models.devices import device_description
from interference.report.accumulate import earlier_run, run_fingerprint
from interference.studies.setup import ExperimentConfig

QUICK = ["--quick", "--methods", "sft", "self_distill", "--no-progress", "--n-known", "24", "--n-unknown", "24",
         "--n-held", "24", "--epochs", "6"]
#: QUICK with the methods left to each test.
ANY_METHODS = [arg for arg in QUICK if arg not in ("--methods", "sft", "self_distill")]

#: Per-record fields that differ between two runs of the same seed (timings) or say where the record came from.
VOLATILE = ("seconds", "machine")


def _results(folder) -> dict:
    return json.loads((folder / "results.json").read_text())


def _rewrite(folder, data: dict) -> None:
    """Replace a report's results.json by `data`, as a run would have written it (its manifest updated)."""
    from interference.report.files import sha256

    (folder / "results.json").write_text(json.dumps(data))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["results.json"]["sha256"] = sha256(folder / "results.json")
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _stable(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in records]


def test_a_second_run_adds_its_seeds_and_equals_one_run_over_all_seeds(tmp_path, capsys):
    pooled, whole = tmp_path / "pooled", tmp_path / "whole"
    assert main([*QUICK, "--seeds", "0", "--out", str(pooled)]) == 0
    assert main([*QUICK, "--seeds", "0", "1", "--accumulate", "--out", str(pooled)]) == 0  # seed 0 is not rerun
    assert "pooled seeds 0 1 (1 run now)" in capsys.readouterr().err
    assert main([*QUICK, "--seeds", "0", "1", "--out", str(whole)]) == 0
    a, b = _results(pooled), _results(whole)
    assert a["seeds"] == b["seeds"] == [0, 1]
    assert _stable(a["conditions"]) == _stable(b["conditions"])  # deterministic per seed: the same records
    assert a["headline"] == b["headline"]  # every statistic recomputed over both seeds
    assert a["results"]["summary"] == b["results"]["summary"]
    assert a["results"]["run_fingerprint"] == b["results"]["run_fingerprint"]
    assert {r["machine"] for r in a["conditions"]} == {"cpu (1 thread)"}


def test_other_settings_or_no_new_seed_are_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "r"
    assert main([*QUICK, "--seeds", "0", "--out", str(out)]) == 0
    before = (out / "results.json").read_text()
    capsys.readouterr()
    assert main([*QUICK, "--seeds", "1", "--lr", "0.002", "--accumulate", "--out", str(out)]) == 2
    assert "holds a run with other settings (train.lr: 0.001 there, 0.002 now)" in capsys.readouterr().err
    assert main([*QUICK, "--seeds", "0", "--accumulate", "--out", str(out)]) == 2
    assert "seeds 0 are all in the earlier run already" in capsys.readouterr().err
    assert (out / "results.json").read_text() == before  # refused runs leave the earlier run as it was


def test_the_fingerprint_ignores_seeds_and_device_and_reads_data_files_by_content(tmp_path):
    table = tmp_path / "a.jsonl"
    table.write_text('{"x": 1}\n')
    copy = tmp_path / "elsewhere" / "a.jsonl"
    copy.parent.mkdir()
    copy.write_text(table.read_text())

    def fingerprint(**kw):
        settings = {**dict(model="tiny-llama", data=str(table), device="cpu", seeds=(0,)), **kw}
        config = ExperimentConfig.build(**settings)
        return run_fingerprint(config, "analyses.forgetting", methods=["sft"])["digest"]

    assert fingerprint() == fingerprint(seeds=(3, 4)) == fingerprint(device="auto") == fingerprint(data=str(copy))
    assert fingerprint() == fingerprint(torch_compile="reduce-overhead")
    assert fingerprint() != fingerprint(lr=0.5)
    assert fingerprint() != fingerprint(n_held=7)
    copy.write_text('{"x": 2}\n')
    assert fingerprint() != fingerprint(data=str(copy))
    # a folder (EntityQuestions, splits) by its files' contents: not by the path it was given as, nor its hidden files
    splits = tmp_path / "splits"
    (splits / "test").mkdir(parents=True)
    (splits / "test" / "P17.test.json").write_text("[1]")
    same = fingerprint(data=str(splits))
    (splits / ".DS_Store").write_text("x")
    assert same == fingerprint(data=f"{splits}/") == fingerprint(data=str(tmp_path / "elsewhere" / ".." / "splits"))
    (splits / "test" / "P17.test.json").write_text("[2]")  # rewritten in place: other facts
    assert fingerprint(data=str(splits)) != same


def test_earlier_records_read_back_as_the_study_computed_them(tmp_path):
    out = tmp_path / "r"
    assert main([*QUICK, "--seeds", "0", "--out", str(out)]) == 0
    data = _results(out)
    earlier = earlier_run(out, data["results"]["run_fingerprint"])
    assert earlier.seeds == (0,) and len(earlier.records) == 2
    assert all(isinstance(r["forgetting"], float) for r in earlier.records)  # a null would come back as NaN
    assert earlier_run(tmp_path / "empty", data["results"]["run_fingerprint"]) is None
    assert earlier.results["layer"] == data["results"]["layer"]
    with pytest.raises(InterferenceError, match="no run fingerprint"):
        del data["results"]["run_fingerprint"]
        _rewrite(out, data)
        earlier_run(out, {"digest": "x", "settings": {}})


def test_null_measurements_read_back_as_nan(tmp_path):
    out = tmp_path / "r"
    assert main([*QUICK, "--seeds", "0", "--out", str(out)]) == 0
    data = _results(out)
    data["conditions"][0]["forgetting"] = None  # a run whose held-out accuracy never rose above 0
    _rewrite(out, data)
    earlier = earlier_run(out, data["results"]["run_fingerprint"])
    assert math.isnan(earlier.records[0]["forgetting"]) and earlier.records[0]["new_acc"] is not None


def test_runs_made_apart_merge_into_the_report_of_one_run(tmp_path, capsys):
    parts = [tmp_path / "a", tmp_path / "b"]
    for seed, part in enumerate(parts):
        assert main([*QUICK, "--seeds", str(seed), "--out", str(part)]) == 0
    merged, whole = tmp_path / "merged", tmp_path / "whole"
    assert main([*QUICK, "--seeds", "0", "1", "--merge", *map(str, parts), "--out", str(merged)]) == 0  # no training
    assert main([*QUICK, "--seeds", "0", "1", "--out", str(whole)]) == 0
    a, b = _results(merged), _results(whole)
    assert _stable(a["conditions"]) == _stable(b["conditions"]) and a["headline"] == b["headline"]
    capsys.readouterr()
    assert main([*QUICK, "--seeds", "0", "--merge", str(parts[0]), str(merged), "--out", str(tmp_path / "x")]) == 2
    assert f"seed 0 is in two of the runs to pool ({merged} and {parts[0]})" in capsys.readouterr().err


def test_a_merge_says_where_its_seeds_ran_not_where_they_were_pooled(tmp_path):
    parts = [tmp_path / "a", tmp_path / "b"]
    for seed, part in enumerate(parts):
        assert main([*QUICK, "--seeds", str(seed), "--out", str(part)]) == 0
    old = _results(parts[1])  # a run from before records kept their machine, on another machine
    old["results"]["device"], old["versions"]["torch"] = "cuda:0 (NVIDIA H200)", "2.14.1+cu130"
    for record in old["conditions"]:
        del record["machine"]
    _rewrite(parts[1], old)
    merged = tmp_path / "merged"
    assert main([*QUICK, "--seeds", "0", "1", "--merge", *map(str, parts), "--out", str(merged)]) == 0
    data = _results(merged)
    here = device_description("cpu")
    assert {(r["seed"], r["machine"]) for r in data["conditions"]} == {(0, here), (1, "cuda:0 (NVIDIA H200)")}
    assert data["results"]["device"] == f"{here}; cuda:0 (NVIDIA H200)"  # not only this process's device
    assert [(s["folder"], s["seeds"], s["device"], s["versions"]["torch"]) for s in data["results"]["pooled_from"]] == [
        (str(parts[0]), [0], here, _results(parts[0])["versions"]["torch"]),
        (str(parts[1]), [1], "cuda:0 (NVIDIA H200)", old["versions"]["torch"])]
    again = tmp_path / "again"  # pooling a pooled report keeps the runs that trained, not the pooling
    assert main([*QUICK, "--seeds", "0", "1", "2", "--merge", str(merged), "--out", str(again)]) == 0
    pooled = _results(again)["results"]["pooled_from"]
    assert [s["folder"] for s in pooled] == [str(parts[0]), str(parts[1]), f"{again} (this run)"]
    world = _results(parts[0])["results"]["world"]  # which build of the world each run trained on
    # (its "cpu" is None where the cached world was built before builds recorded it)
    assert len(world["weights_sha256"]) == 16 and "cpu" in world and world["numerics"] == "portable"
    assert pooled[0]["world"] == pooled[-1]["world"] == world and "world" not in data["results"]  # a merge: no run
    assert pooled[-1]["seeds"] == [2] and pooled[-1]["device"] == here


def test_committed_runs_still_take_seeds_under_this_version():
    """Settings added since a run was committed (new TrainConfig fields, at their defaults) must not stop its seeds
    from accumulating: each committed run is found to be the same experiment as its own config rebuilt today."""
    from dataclasses import asdict, fields
    from pathlib import Path

    from interference.studies.remedies import RemedySettings
    from interference.train import TrainConfig

    own = {f.name for f in fields(ExperimentConfig)}
    checked = 0
    for path in sorted(Path(__file__).parents[1].glob("results/**/results.json")):
        data = json.loads(path.read_text())
        recorded = (data.get("results") or {}).get("run_fingerprint")
        if not recorded or (data["config"]["data"] and not Path(data["config"]["data"]).is_file()):
            continue  # no fingerprint, or a data file read by its content that is not here
        settings = recorded["settings"]
        study = {k: v for k, v in settings.items() if k not in own and k != "command"}
        if "remedies" in study:  # the remedies' own settings as this version fills them in
            study["remedies"] = asdict(RemedySettings(**study["remedies"]))
        config = ExperimentConfig.build(**{k: v for k, v in data["config"].items() if k in own - {"train"}},
                                        train=TrainConfig.from_dict(data["config"]["train"]))
        earlier = earlier_run(path.parent, run_fingerprint(config, settings["command"], **study))
        assert earlier.seeds == tuple(sorted(set(data["seeds"]))), path
        checked += 1
    assert checked >= 5, f"only {checked} committed results.json record a run fingerprint"


@pytest.mark.parametrize(("analysis", "own", "compared"), [
    ("overlap", ["--top-k", "4"], ("summary", "layer", "drift_per_layer", "cka_per_layer", "overlap_vs_forgetting",
                                   "facts")),
    ("freezing", ["--band", "1", "--mode", "train_only"], ("summary", "layers", "layer", "grid_new_acc",
                                                           "grid_forgetting")),
])
def test_overlap_and_freezing_seeds_pool_into_the_report_of_one_run(tmp_path, capsys, analysis, own, compared):
    """The parts of the suite that used to run once per folder: a seed added with --accumulate gives the report one
    run of both seeds writes, and a run of other settings (their own options included) is refused in one line."""
    import importlib

    run = importlib.import_module(f"analyses.{analysis}").main
    tiny = ["--quick", "--no-progress", "--n-known", "16", "--n-unknown", "16", "--n-held", "24", "--epochs", "4",
            *own]
    pooled, whole = tmp_path / "pooled", tmp_path / "whole"
    assert run([*tiny, "--seeds", "0", "--out", str(pooled)]) == 0
    assert run([*tiny, "--seeds", "0", "1", "--accumulate", "--out", str(pooled)]) == 0
    assert "pooled seeds 0 1 (1 run now)" in capsys.readouterr().err
    assert run([*tiny, "--seeds", "0", "1", "--out", str(whole)]) == 0
    a, b = _results(pooled), _results(whole)
    assert a["seeds"] == b["seeds"] == [0, 1] and a["headline"] == b["headline"]
    assert sorted(map(json.dumps, _stable(a["conditions"]))) == sorted(map(json.dumps, _stable(b["conditions"])))
    for key in compared:
        assert a["results"][key] == b["results"][key], key
    other = own[:-1] + ["2" if own[-1] != "2" else "3"] if analysis == "overlap" else [*own[:-1], "freeze"]
    capsys.readouterr()
    assert run([*tiny[:-len(own)], *other, "--seeds", "2", "--accumulate", "--out", str(pooled)]) == 2
    assert "holds a run with other settings" in capsys.readouterr().err


@pytest.mark.parametrize("part", ["forgetting", "hypotheses", "overlap", "tracing", "freezing", "remedies"])
def test_each_analysis_s_command_gives_its_fingerprint_without_running(part, tmp_path):
    from importlib import import_module

    command = import_module(f"analyses.{part}").command(["--quick", "--seeds", "5", "--out", str(tmp_path / "x")])
    assert command.fingerprint["settings"]["command"] == f"analyses.{part}"
    assert command.fingerprint == import_module(f"analyses.{part}").command(["--quick"]).fingerprint  # seeds aside
    lr = import_module(f"analyses.{part}").command(["--quick", "--lr", "0.5"]).fingerprint
    assert lr["digest"] != command.fingerprint["digest"]
    assert not (tmp_path / "x").exists()


def test_a_relation_matched_overlap_run_never_pools_with_an_unmatched_one_and_off_keeps_the_old_fingerprint():
    from analyses.overlap import command

    off, on = command(["--quick"]).fingerprint, command(["--quick", "--match-relations"]).fingerprint
    assert "match_relations" not in off["settings"]  # runs from before the option have none: they still pool
    assert on["settings"]["match_relations"] is True and on["digest"] != off["digest"]


def test_how_finely_a_measure_is_taken_never_stops_runs_pooling():
    from interference.report.accumulate import comparable

    base = {"command": "remedies", "remedies": {"lora_rank": 8, "lora_lr": None}, "train": {"lr": 1e-3}}
    finer = {**base, "remedies": {**base["remedies"], "attribution_steps": 16}}
    assert comparable(finer) == comparable(base) == comparable({**base, "remedies": {"lora_rank": 8}})
    assert comparable({**base, "remedies": {"lora_rank": 4}}) != comparable(base)  # a trained setting still counts


def test_a_run_of_fewer_methods_takes_an_earlier_run_s_records_of_those_and_equals_one_run(tmp_path, capsys):
    """Each method trains apart from its seed's start, so a run of more methods holds the records a run of fewer
    would make: a merge takes those (and says so), and its report equals one run over all seeds."""
    more, merged, whole = tmp_path / "more", tmp_path / "merged", tmp_path / "whole"
    assert main([*ANY_METHODS, "--methods", "sft", "attention-only", "self_distill", "--seeds", "0",
                 "--out", str(more)]) == 0
    assert main([*ANY_METHODS, "--methods", "sft", "self_distill", "--seeds", "0", "1", "--merge", str(more),
                 "--out", str(merged)]) == 0  # trains seed 1 only
    assert main([*ANY_METHODS, "--methods", "sft", "self_distill", "--seeds", "0", "1", "--out", str(whole)]) == 0
    a, b = _results(merged), _results(whole)
    assert _stable(a["conditions"]) == _stable(b["conditions"]) and a["headline"] == b["headline"]
    assert {r["name"] for r in a["conditions"]} == {"sft", "self_distill"}
    assert a["results"]["run_fingerprint"] == b["results"]["run_fingerprint"]
    assert a["results"]["pooled_from"][0] | {"versions": None, "world": None} == {
        "folder": str(more), "seeds": [0], "device": device_description("cpu"), "versions": None, "world": None,
        "methods": ["sft", "self_distill"]}


def test_a_run_of_other_methods_or_without_the_one_the_others_depend_on_is_refused(tmp_path, capsys):
    more = tmp_path / "more"
    assert main([*ANY_METHODS, "--methods", "sft", "attention-only", "--seeds", "0", "--out", str(more)]) == 0
    before = (more / "results.json").read_text()
    capsys.readouterr()
    refused = {  # attention-only trains as long as sft did: without sft its records would differ
        ("attention-only",): "methods: ['sft', 'attention-only'] there, ['attention-only'] now",
        ("sft", "self_distill"): "methods: ['sft', 'attention-only'] there, ['sft', 'self_distill'] now"}
    for methods, difference in refused.items():
        assert main([*ANY_METHODS, "--methods", *methods, "--seeds", "0", "1", "--merge", str(more),
                     "--out", str(tmp_path / "x")]) == 2
        assert f"holds a run with other settings ({difference})" in capsys.readouterr().err
    # --accumulate writes into the earlier run's folder: a run of fewer methods there would drop the others' records
    assert main([*ANY_METHODS, "--methods", "sft", "--seeds", "1", "--accumulate", "--out", str(more)]) == 2
    assert "holds a run with other settings (methods:" in capsys.readouterr().err
    assert (more / "results.json").read_text() == before and not (tmp_path / "x").exists()


def test_a_part_is_taken_only_where_nothing_else_differs():
    from interference.report.accumulate import Part

    theirs = {"command": "remedies", "methods": ["sft", "self_distill", "ewc:1e6"], "train": {"lr": 1e-4}}
    part = Part("methods")
    assert part.taken({**theirs, "methods": ["sft", "self_distill"]}, theirs) == ("sft", "self_distill")
    assert part.taken({**theirs, "methods": ["sft", "lora"]}, theirs) is None  # lora is not in the earlier run
    assert part.taken({**theirs, "methods": ["sft"], "train": {"lr": 1e-3}}, theirs) is None
    assert Part("methods", anchors=("sft",)).taken({**theirs, "methods": ["self_distill"]}, theirs) is None
    assert Part("methods", anchors=("sft",)).taken({**theirs, "methods": ["sft", "ewc:1e6"]}, theirs) == (
        "sft", "ewc:1e6")
