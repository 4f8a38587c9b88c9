"""Bad input to the commands: one line (`error: ...`, exit 2) naming the problem, before any work; nothing of the
user's lost; interrupts give one line and exit 130. Most commands are called in-process (`main([...])`), with the
work replaced by a function that fails the test if it is reached."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from interference.facts import Fact
from interference.facts.splits import Splits, load_splits, save_splits
from interference.io.errors import InterferenceError

ROOT = Path(__file__).resolve().parents[1]
EQ_MINI = ROOT / "tests" / "fixtures" / "entityquestions_mini"


def no_work(*args, **kwargs):
    raise AssertionError("the work started before the input was checked")


def one_error(capsys, rc: int, match: str) -> str:
    """The command exited 2 with exactly one line on stderr, `error: ...` containing `match`."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], err
    return lines[0]


def fact(split: str, i: int, answer: str | None = None) -> Fact:
    return Fact(f"Person{split}{i}", "P19", answer or f"Town{i}", f"Where was Person{split}{i} born?")


def splits_folder(path: Path, *, known=None, unknown=None, held=None) -> Path:
    """A splits folder with 6/6/4 facts (or the given lists), written as `save_splits` writes it."""
    known = known if known is not None else [fact("k", i) for i in range(6)]
    unknown = unknown if unknown is not None else [fact("u", i) for i in range(6)]
    held = held if held is not None else [fact("h", i) for i in range(4)]
    path.mkdir(parents=True, exist_ok=True)
    for name, facts in (("known", known), ("unknown", unknown), ("held", held)):
        (path / f"{name}.jsonl").write_text("".join(json.dumps(
            {"subject": f.subject, "relation": f.relation, "object": f.object, "question": f.question}) + "\n"
            for f in facts))
    return path


@pytest.fixture
def afile(tmp_path) -> Path:
    path = tmp_path / "afile"
    path.write_text("the user's file\n")
    return path


# Row: output folders are checked before the work (a file, below a file, not writable), for every command.

@pytest.mark.parametrize("where", ["afile", "afile/sub"])
def test_analysis_out_that_is_or_lies_below_a_file_is_refused_before_the_work(where, tmp_path, afile, capsys,
                                                                            monkeypatch):
    from analyses import ffn

    monkeypatch.setattr(ffn, "run_ffn", no_work)
    one_error(capsys, ffn.main(["--quick", "--out", str(tmp_path / where)]), "is a file")
    assert afile.read_text() == "the user's file\n"


def test_analysis_out_that_cannot_be_written_is_refused_before_the_work(tmp_path, capsys, monkeypatch):
    from analyses import overlap

    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o555)
    if os.access(locked, os.W_OK):  # root writes anywhere: make the check see what another user would
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(locked) else real(p, mode))
    monkeypatch.setattr(overlap, "run_overlap", no_work)
    one_error(capsys, overlap.main(["--quick", "--out", str(locked / "out")]), "is not writable")


def test_knowledge_out_below_a_file_is_refused_before_the_work(afile, capsys, monkeypatch):
    from interference.facts import knowledge
    from interference.models import loading as models

    monkeypatch.setattr(models, "load_model", no_work)
    rc = knowledge.main(["--model", "tiny-llama", "--data", str(EQ_MINI), "--out", str(afile / "k.jsonl")])
    one_error(capsys, rc, "afile is a file")


def test_knowledge_never_replaces_a_file_that_is_not_its_table(tmp_path, capsys, monkeypatch):
    from interference.facts import knowledge
    from interference.models import loading as models

    notes = tmp_path / "notes.jsonl"
    notes.write_text('{"my": "notes"}\n')
    monkeypatch.setattr(models, "load_model", no_work)
    rc = knowledge.main(["--model", "tiny-llama", "--data", str(EQ_MINI), "--out", str(notes)])
    one_error(capsys, rc, "is not a knowledge table written by interference")
    assert notes.read_text() == '{"my": "notes"}\n'


@pytest.mark.parametrize("option", ["--batch-size", "--max-new-tokens", "--limit"])
def test_knowledge_names_the_option_of_a_bad_size(option, tmp_path, capsys, monkeypatch):
    from interference.facts import knowledge
    from interference.models import loading as models

    monkeypatch.setattr(models, "load_model", no_work)
    rc = knowledge.main(["--model", "tiny-llama", "--data", str(EQ_MINI), "--out", str(tmp_path / "k.jsonl"),
                         option, "0"])
    one_error(capsys, rc, f"{option} must be >= 1, got 0")


def test_world_cache_dir_that_is_a_file_is_refused_before_pretraining(afile, capsys, monkeypatch):
    from interference.commands import world as world_main

    monkeypatch.setattr(world_main, "load_world", no_work)
    one_error(capsys, world_main.main(["--quick", "--cache-dir", str(afile)]), "is a file, not a folder")


def test_analysis_out_holding_the_users_files_is_refused_and_overwrite_keeps_them(tmp_path, capsys, monkeypatch):
    from analyses import forgetting

    out = tmp_path / "U"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "report.html").write_text("my own page")
    monkeypatch.setattr(forgetting, "run_forgetting", no_work)
    one_error(capsys, forgetting.main(["--quick", "--out", str(out)]), "notes.txt")
    # --overwrite: the user's report.html would be replaced, so it is still refused, before the work
    one_error(capsys, forgetting.main(["--quick", "--out", str(out), "--overwrite"]), "would be replaced")
    assert (out / "notes.txt").read_text() == "mine" and (out / "report.html").read_text() == "my own page"


# Row: splits are disjoint and free of duplicates.

def test_a_fact_twice_in_a_split_or_in_two_splits_is_refused(tmp_path, capsys):
    twice = splits_folder(tmp_path / "twice", known=[fact("k", i) for i in range(6)] + [fact("k", 0)])
    with pytest.raises(InterferenceError, match=r"twice in .*known.jsonl"):
        load_splits(twice)
    leak = splits_folder(tmp_path / "leak", held=[fact("h", i) for i in range(3)] + [fact("k", 2)])
    with pytest.raises(InterferenceError, match=r"in both .*known.jsonl and .*held.jsonl"):
        load_splits(leak)
    with pytest.raises(InterferenceError, match="in both known and held"):
        save_splits(Splits(known=[fact("k", 0)], unknown=[fact("u", 0)], held=[fact("k", 0)]), tmp_path / "s")
    assert not (tmp_path / "s").exists()

    from analyses import forgetting

    rc = forgetting.main(["--model", "tiny-llama", "--data", str(leak), "--out", str(tmp_path / "r"), "--epochs",
                          "1", "--seeds", "0", "--methods", "sft", "--no-progress"])
    one_error(capsys, rc, "in both")
    assert not (tmp_path / "r" / "results.json").exists()


def test_a_setup_refuses_a_held_out_fact_that_is_trained_on():
    from interference.models import load_model
    from interference.studies.setup import Setup

    model, tokenizer = load_model("tiny-llama")
    known = [fact("k", i) for i in range(3)]
    with pytest.raises(InterferenceError, match="in both known and held"):
        Setup("t", model, tokenizer, known, [fact("u", 0)], [fact("h", 0), known[1]])
    with pytest.raises(InterferenceError, match="twice in unknown"):
        Setup("t", model, tokenizer, known, [fact("u", 0), fact("u", 0)], [fact("h", 0)])


# Row: one seed gives a report (half-widths NaN, shown as "—"), with the usual file modes and no chatter.

def test_one_seed_gives_a_report_with_empty_intervals_and_the_usual_modes(tmp_path, capsys):
    from transformers.utils import logging as hf_logging

    from analyses import forgetting
    from interference.report import load_results

    data = splits_folder(tmp_path / "S")
    out = tmp_path / "r"
    old = os.umask(0o022)
    try:
        rc = forgetting.main(["--model", "tiny-llama", "--data", str(data), "--methods", "sft", "--seeds", "0",
                              "--epochs", "1", "--out", str(out), "--no-progress"])
        assert not hf_logging.is_progress_bar_enabled()  # --no-progress silences "Writing model shards" too
    finally:
        os.umask(old)
        hf_logging.enable_progress_bar()
    err = capsys.readouterr().err
    assert rc == 0, err
    results = load_results(out)
    assert results["seeds"] == [0]
    row = results["results"]["summary"][0]
    assert row["forgetting_ci"] is None  # one seed: no interval (NaN, written as null, shown as a dash)
    for path in out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


# Row: each bad input gets one line and exit 2, before the work.

@pytest.mark.parametrize("seeds, match", [
    (["99999999999999999999999"], "seeds must be an integer in [0, 4294967295]"),
    (["-1"], "seeds must be an integer in [0, 4294967295], got -1"),
    (["1", "1"], "must be distinct"),
])
def test_bad_seeds_are_refused_before_the_work(seeds, match, capsys, monkeypatch):
    from analyses import hypotheses, overlap

    monkeypatch.setattr(overlap, "run_overlap", no_work)
    monkeypatch.setattr(hypotheses, "run_hypotheses", no_work)
    one_error(capsys, overlap.main(["--quick", "--seeds", *seeds]), match)
    one_error(capsys, hypotheses.main(["--quick", "--seeds", *seeds]), match)


@pytest.mark.parametrize("seed", ["99999999999999999999999", "-5"])
def test_bad_seed_of_knowledge_and_world_is_refused_before_the_work(seed, tmp_path, capsys, monkeypatch):
    from interference.commands import world as world_main
    from interference.facts import knowledge
    from interference.models import loading as models

    monkeypatch.setattr(models, "load_model", no_work)
    monkeypatch.setattr(world_main, "load_world", no_work)
    rc = knowledge.main(["--model", "tiny-llama", "--data", str(EQ_MINI), "--out", str(tmp_path / "k.jsonl"),
                         "--seed", seed])
    one_error(capsys, rc, "--seed must be an integer")
    one_error(capsys, world_main.main(["--quick", "--seed", seed, "--cache-dir", str(tmp_path)]),
              "--seed must be an integer")


def test_data_without_a_model_is_refused_instead_of_ignored(tmp_path, capsys, monkeypatch):
    from analyses import overlap

    monkeypatch.setattr(overlap, "run_overlap", no_work)
    rc = overlap.main(["--quick", "--data", str(splits_folder(tmp_path / "S")), "--out", str(tmp_path / "r")])
    one_error(capsys, rc, "needs a --model: the embedded world brings its own facts")


@pytest.mark.parametrize("option, data", [("--knowledge", "missing.jsonl"), ("--data", "missing"),
                                          ("--data", "afile")])
def test_data_that_is_not_there_is_refused_before_the_work(option, data, tmp_path, afile, capsys, monkeypatch):
    from analyses import forgetting

    monkeypatch.setattr(forgetting, "run_forgetting", no_work)
    out = tmp_path / "r"
    rc = forgetting.main(["--model", "tiny-llama", option, str(tmp_path / data), "--out", str(out)])
    one_error(capsys, rc, f"data {tmp_path / data} is neither a folder nor a SLiCK table (.jsonl/.csv) that exists")
    assert not out.exists()


def test_an_unknown_device_is_refused_before_the_work(tmp_path, capsys, monkeypatch):
    from interference.facts import knowledge
    from interference.models import loading as models

    monkeypatch.setattr(models, "load_model", no_work)
    rc = knowledge.main(["--model", "tiny-llama", "--data", str(EQ_MINI), "--out", str(tmp_path / "k.jsonl"),
                         "--device", "foo"])
    one_error(capsys, rc, "unknown device 'foo'")


def test_a_truncated_weights_file_is_one_line(tmp_path, capsys):
    from analyses import inspect_model
    from interference.models import load_model, save_checkpoint

    folder = save_checkpoint(*load_model("tiny-llama"), tmp_path / "ckpt")
    weights = folder / "model.safetensors"
    with open(weights, "r+b") as handle:
        handle.truncate(weights.stat().st_size // 2)
    capsys.readouterr()  # what saving printed
    with pytest.raises(InterferenceError, match="damaged or truncated"):
        load_model(folder)
    one_error(capsys, inspect_model.main(["--model", str(folder)]), "damaged or truncated")


@pytest.mark.parametrize("argv, match", [
    (["--top-k", "100000"], "larger than the model's vocabulary"),
    (["--prompt", ""], "--prompt must not be empty"),
    (["--model", "tiny-gpt2", "--prompt", "a" * 600], "600 tokens long but the model reads at most 512"),
])
def test_inspect_model_bad_input(argv, match, capsys):
    from analyses import inspect_model

    one_error(capsys, inspect_model.main(argv), match)


def test_a_fact_longer_than_the_models_context_is_refused_before_training(tmp_path, capsys, monkeypatch):
    from analyses import forgetting
    from interference.studies import forgetting as study

    data = splits_folder(tmp_path / "S", unknown=[fact("u", i) for i in range(5)] + [fact("u", 5, "x" * 600)])
    monkeypatch.setattr(study, "run_condition", no_work)
    rc = forgetting.main(["--model", "tiny-gpt2", "--data", str(data), "--methods", "sft", "--seeds", "0",
                          "--epochs", "1", "--out", str(tmp_path / "r"), "--no-progress"])
    one_error(capsys, rc, "the model reads at most 512")


# Row: a results.json with a non-finite number is refused.

def test_load_results_refuses_infinity_and_nan(tmp_path):
    from interference.report import Report, load_results

    report = Report("t", config={"model": "tiny-llama"}, seeds=[0])
    report.add_condition("sft", 0, task_acc=1.0, new_acc=0.5, held_acc_peak=0.9, held_acc_final=0.8,
                         forgetting=0.1)
    results = json.loads((report.write(tmp_path / "r") / "results.json").read_text())
    for bad in ("Infinity", "-Infinity", "NaN"):
        text = json.dumps(results).replace('"forgetting": 0.1', f'"forgetting": {bad}')
        assert bad in text
        (tmp_path / "alone").mkdir(exist_ok=True)
        (tmp_path / "alone" / "results.json").write_text(text)
        with pytest.raises(InterferenceError, match=f"holds {bad}"):
            load_results(tmp_path / "alone" / "results.json")


# Row: a run killed between its report's files is never paired with the earlier run's files.

def test_an_analysis_killed_between_its_files_is_not_paired_with_the_earlier_run(tmp_path, capsys, monkeypatch):
    from types import SimpleNamespace

    from analyses import overlap
    from interference.io import atomic
    from interference.report import Report, load_results

    def tiny_report(study):
        seeds = list(study.config.seeds)
        report = Report("t", config={"seeds": seeds}, seeds=seeds)
        report.add_condition("sft", seeds[0], task_acc=1.0, new_acc=0.5, held_acc_peak=0.9, held_acc_final=0.8,
                             forgetting=0.1)
        return report

    monkeypatch.setattr(overlap, "run_overlap", lambda config, **kwargs: SimpleNamespace(config=config, records=[]))
    monkeypatch.setattr(overlap, "overlap_report", tiny_report)
    out = tmp_path / "r"
    assert overlap.main(["--quick", "--seeds", "0", "--out", str(out)]) == 0
    assert load_results(out)["seeds"] == [0]
    real = atomic.os.replace

    def killed(src, dst):
        if str(dst).endswith("report.html"):
            raise KeyboardInterrupt  # Ctrl-C after results.json of the second run is written
        return real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", killed)
    assert overlap.main(["--quick", "--seeds", "1", "--out", str(out)]) == 130
    monkeypatch.setattr(atomic.os, "replace", real)
    assert json.loads((out / "results.json").read_text())["seeds"] == [1]
    with pytest.raises(InterferenceError, match="come from different runs"):
        load_results(out)
    assert overlap.main(["--quick", "--seeds", "1", "--out", str(out)]) == 0  # the same command may replace it
    assert load_results(out)["seeds"] == [1]
    assert not [p for p in out.iterdir() if atomic.is_leftover(p.name)]


# Row: --layer beyond the model's layers is refused before the world or the model loads.

@pytest.mark.parametrize("analysis", ["forgetting", "overlap", "hypotheses", "freezing", "ffn"])
def test_a_layer_beyond_the_world_is_refused_before_the_world_loads(analysis, tmp_path, capsys, monkeypatch):
    import importlib

    from interference import world

    monkeypatch.setattr(world, "load_world", no_work)
    command = importlib.import_module(f"analyses.{analysis}")
    one_error(capsys, command.main(["--quick", "--layer", "99", "--out", str(tmp_path / "r")]),
              "layer 99 out of range: world has layers 0-1")
    assert not (tmp_path / "r").exists()


def test_a_layer_beyond_a_real_model_is_refused_from_its_config_before_it_loads(tmp_path, capsys, monkeypatch):
    from analyses import forgetting
    from interference.models import loading as models

    folder = models.save_checkpoint(*models.load_model("tiny-qwen2"), tmp_path / "ckpt")
    capsys.readouterr()  # what saving printed
    monkeypatch.setattr(models, "load_model", no_work)
    data = str(splits_folder(tmp_path / "S"))
    for model in (str(folder), "tiny-llama"):
        one_error(capsys, forgetting.main(["--model", model, "--data", data, "--layer", "2", "--out",
                                           str(tmp_path / "r")]), f"layer 2 out of range: {model} has layers 0-1")
    assert models.declared_layers(folder) == 2
    assert models.declared_layers("no-such-org/no-such-model") is None  # offline: checked once the model loads


def test_a_layer_the_config_cannot_check_is_refused_once_the_model_loads(tmp_path, monkeypatch):
    from interference.models import loading as models
    from interference.studies.setup import ExperimentConfig, make_setup

    monkeypatch.setattr(models, "declared_layers", lambda name: None)  # as for a Hub model offline
    config = ExperimentConfig.build(model="tiny-llama", data=str(splits_folder(tmp_path / "S")), layer=2)
    with pytest.raises(InterferenceError, match="layer 2 out of range: tiny-llama has layers 0-1"):
        make_setup(config, 0, progress=False)


# Row: an analysis that runs one seed refuses several instead of dropping all but the first.

def test_ffn_refuses_several_seeds_before_the_work(capsys, monkeypatch):
    from analyses import ffn

    monkeypatch.setattr(ffn, "run_ffn", no_work)
    one_error(capsys, ffn.main(["--quick", "--seeds", "3", "5"]), "runs one seed; got --seeds 3 5")


# Row: characters outside a character tokenizer's vocabulary are warned about once.

def test_characters_outside_the_vocabulary_are_warned_about_once(capsys):
    from analyses import inspect_model
    from interference.models import load_model
    from interference.studies.setup import Setup

    assert inspect_model.main(["--model", "tiny-llama", "--prompt", "東京", "--prompt", "大阪"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and all(c in warnings[0] for c in "東京大阪"), warnings

    model, tokenizer = load_model("tiny-llama")
    known = [fact("k", i) for i in range(2)]
    held = [Fact("Tokyo", "P36", "東京", "What is the capital of Japan?"), fact("h", 0)]
    setup = Setup("t", model, tokenizer, known, [Fact("Osaka", "P1", "大阪", "Where is Osaka?")], held)
    setup.with_unknown([Fact("Kyoto", "P1", "京都", "Where is Kyoto?")])
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "<unk>" in warnings[0], warnings


# Row: Ctrl-C gives one line and exit 130, during the imports as during the work; the output folder is released.

def test_an_interrupt_during_the_work_is_one_line_and_releases_the_folder(tmp_path, capsys, monkeypatch):
    from analyses import forgetting
    from interference.io.outputs import claim_output

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(forgetting, "run_forgetting", interrupted)
    rc = forgetting.main(["--quick", "--out", str(tmp_path / "r")])
    assert rc == 130 and capsys.readouterr().err == "interrupted\n"
    with claim_output(tmp_path / "r", "analyses.forgetting"):
        pass  # the lock was released


@pytest.mark.parametrize("command", [["analyses.overlap", "--quick"], ["interference.world", "--quick"]])
def test_an_interrupt_while_a_command_imports_is_one_line(command, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "INTERFERENCE_CACHE": str(tmp_path / "cache")}
    command = [sys.executable, "-m", *command, "--out" if command[0].startswith("analyses") else "--cache-dir",
               str(tmp_path / "r")]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    time.sleep(0.4)  # inside `import torch` / transformers on any machine this suite runs on
    process.send_signal(signal.SIGINT)
    err = process.communicate(timeout=120)[1]
    assert process.returncode == 130 and err == "interrupted\n", err
