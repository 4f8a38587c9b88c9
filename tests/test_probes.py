"""What a careful user meets at the commands' edges: every command's own option errors are one line, an output folder
holding both a user's file and another command's run names the user's file, options that do not apply are refused.
Fast: the work of each command is never reached; the README says what the code does."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import analyses
from interference.io.errors import InterferenceError
from interference.io.outputs import claim_output


def _commands() -> list[str]:
    names = [f"analyses.{m.name}" for m in pkgutil.iter_modules(analyses.__path__) if m.name != "common"]
    return ["interference.train", "interference.world", "interference.facts.knowledge", *sorted(names)]


def _main(command: str):
    module = importlib.import_module(command if command.startswith("analyses") else
                                     {"interference.train": "interference.commands.train",
                                      "interference.world": "interference.commands.world"}.get(command, command))
    return module.main


@pytest.mark.parametrize("command", _commands())
def test_an_unknown_option_is_one_line_and_exit_2(command, capsys):
    """argparse's refusals (here an unknown option, or the required ones missing) end like every other bad input:
    one line, `error: ...`, exit 2, and no usage text."""
    rc = _main(command)(["--no-such-option"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "usage:" not in err, err
    assert f"(see python -m {command} --help)" in lines[0]
    assert "--no-such-option" in lines[0] or "required" in lines[0]


def test_a_bad_value_of_a_training_option_is_one_line_before_the_work(tmp_path, capsys):
    from interference.commands import train as cli

    assert cli.main(["--model", "tiny-llama", "--splits", str(tmp_path), "--out", str(tmp_path / "run"),
                     "--epochs", "x"]) == 2
    err = capsys.readouterr().err
    assert err == ("error: argument --epochs: invalid int value: 'x' "
                   "(see python -m interference.train --help)\n")
    assert not (tmp_path / "run").exists()


def test_a_bad_choice_names_the_choices_in_one_line(capsys):
    from analyses import forgetting

    assert forgetting.main(["--quick", "--dtype", "float16"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice: 'float16'" in err and "'bfloat16'" in err


def test_a_folder_with_a_users_file_and_another_commands_run_names_the_users_file(tmp_path):
    out = tmp_path / "out"
    with claim_output(out, "analyses.forgetting") as folder:
        folder.write_text("results.json", "{}")
        folder.write_text("conditions.csv", "a\n")
    (out / "notes.txt").write_text("mine\n")
    with pytest.raises(InterferenceError) as refused:
        with claim_output(out, "analyses.freezing"):
            pass
    message = str(refused.value)
    assert "did not write (notes.txt)" in message
    assert "results.json" not in message and "conditions.csv" not in message
    assert (out / "notes.txt").read_text() == "mine\n"


def test_a_folder_with_only_another_commands_run_says_whose(tmp_path):
    out = tmp_path / "out"
    with claim_output(out, "analyses.forgetting") as folder:
        folder.write_text("results.json", "{}")
    with pytest.raises(InterferenceError, match="holds a run of analyses.forgetting"):
        with claim_output(out, "analyses.freezing"):
            pass


def test_tracing_refuses_a_layer_it_would_ignore(tmp_path, capsys, monkeypatch):
    from analyses import tracing

    monkeypatch.setattr(tracing, "run_tracing", lambda *a, **k: pytest.fail("the work started"))
    assert tracing.main(["--quick", "--layer", "1", "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --layer does not apply") and err.count("\n") == 1
    assert not (tmp_path / "t").exists()


def test_a_run_that_fails_before_writing_leaves_no_folder_behind(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(InterferenceError, match="layer 99"):
        with claim_output(out, "analyses.forgetting"):
            raise InterferenceError("layer 99 out of range")
    assert not out.exists()
    with pytest.raises(InterferenceError):  # a folder that was there before is kept, and so is a written file
        with claim_output(out, "analyses.forgetting") as folder:
            folder.write_text("results.json", "{}")
            raise InterferenceError("late")
    assert (out / "results.json").exists()


def test_an_analysis_names_the_device_that_ran_it(tmp_path):
    import argparse

    from analyses import common
    from interference.report import Report, load_results

    args = argparse.Namespace(out=str(tmp_path / "r"), device="auto", command="analyses.demo", overwrite=False)
    common.run(lambda: Report("demo", config={"device": "auto"}, seeds=[0]), args)
    device = load_results(tmp_path / "r")["results"]["device"]
    assert device.startswith("cpu (") or device.startswith("cuda") or device.startswith("mps"), device


README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def test_the_readme_names_every_declared_dependency():
    import tomllib

    declared = tomllib.loads((README.parent / "pyproject.toml").read_text())["project"]["dependencies"]
    section = _readme_section("Dependencies")
    for requirement in declared:
        name = re.split(r"[<>=!~ \[]", requirement, maxsplit=1)[0]
        assert name in section, f"README's Dependencies does not name {name}"


def test_the_readme_training_snippet_runs_as_written(tmp_path):
    """The Training section's code, run on tiny-llama and 6/6/4 facts (the names it leaves to the reader defined)."""
    from interference.facts import Fact
    from interference.models import load_model

    section = _readme_section("Training")
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    model, tokenizer = load_model("tiny-llama")
    facts = {s: [Fact(f"Person{s}{i}", "P19", f"Town{i}", f"Where was Person{s}{i} born?") for i in range(n)]
             for s, n in (("k", 6), ("u", 6), ("h", 4))}
    scope = {"model": model, "tokenizer": tokenizer, "known": facts["k"], "unknown": facts["u"], "held": facts["h"]}
    exec(compile(code, "README.md", "exec"), scope)
    summary = scope["result"].summary()
    assert summary["method"] == "self_distill" and 0 <= summary["held_acc_final"] <= 1


def _facts(split: str, n: int) -> list:
    from interference.facts import Fact

    return [Fact(f"Person{split}{i}", "P19", f"Town{i}", f"Where was Person{split}{i} born?") for i in range(n)]


def test_library_training_refuses_a_held_out_fact_it_would_train_on(tmp_path):
    from interference.models import load_model
    from interference.train import TrainConfig, train

    model, tokenizer = load_model("tiny-llama")
    known, unknown, held = _facts("k", 6), _facts("u", 6), _facts("h", 4)
    with pytest.raises(InterferenceError, match="in both known and held"):
        train(model, tokenizer, TrainConfig(epochs=1), known=known, unknown=unknown, held=[*held, known[0]],
              out_dir=tmp_path / "run", progress=False)
    with pytest.raises(InterferenceError, match="twice in unknown"):
        train(model, tokenizer, TrainConfig(epochs=1), known=known, unknown=[*unknown, unknown[0]], held=held,
              progress=False)
    assert not (tmp_path / "run").exists()


def test_training_progress_is_not_interleaved_with_accelerates_checkpoint_chatter(tmp_path, caplog):
    import logging

    from interference.commands import train as cli
    from interference.facts.splits import Splits, save_splits

    save_splits(Splits(known=_facts("k", 6), unknown=_facts("u", 6), held=_facts("h", 4)), tmp_path / "s")
    caplog.set_level(logging.INFO)
    assert cli.main(["--model", "tiny-llama", "--splits", str(tmp_path / "s"), "--out", str(tmp_path / "run"),
                     "--epochs", "1", "--batch-size", "4"]) == 0
    assert (tmp_path / "run" / "model").is_dir()
    assert not [r for r in caplog.records if r.name.startswith("accelerate")], caplog.text


def test_one_cpu_thread_is_said_in_the_singular(monkeypatch):
    import torch

    from interference.models.devices import device_description

    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert device_description("cpu") == "cpu (1 thread)"
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert device_description("cpu") == "cpu (2 threads)"


def test_a_one_seed_tracing_verdict_says_there_is_no_interval_rather_than_nan():
    import torch

    from interference.measures.tracing import MODES, SITES, PatchEffects
    from interference.studies.setup import ExperimentConfig
    from interference.studies.tracing import TracingStudy

    def effects(recovered: float, n: int = 4) -> PatchEffects:
        p = torch.zeros(len(MODES), 2, len(SITES), n)
        p[0, 0, SITES.index("resid")] = recovered
        return PatchEffects(MODES, SITES, torch.zeros(n), torch.ones(n), p, torch.zeros(n, dtype=torch.bool),
                            torch.ones(n, dtype=torch.bool), torch.zeros_like(p, dtype=torch.bool))

    study = TracingStudy.from_effects(ExperimentConfig.quick_preset(seeds=(0,)), {
        "sft forgotten": {0: effects(0.3)}, "sft forgotten, other fact's state": {0: effects(0.0)}})
    verdict, why = study.verdict()
    assert verdict == "partly"
    assert "nan" not in why and "1 seed gives no interval" in why and "1 seeds" not in why, why


def test_a_knowledge_table_without_a_model_is_refused_naming_the_option_given(tmp_path, capsys):
    from analyses import forgetting

    table = tmp_path / "t.jsonl"
    table.write_text("")
    assert forgetting.main(["--knowledge", str(table), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --knowledge {table} needs --model") and err.count("\n") == 1, err
    assert not (tmp_path / "r").exists()
