"""The relation of the embedded world's new facts is an experiment setting (`ExperimentConfig.new_relation`): every
study's new facts and controls follow it, the run fingerprint tells runs of two relations apart, and the default
leaves every earlier run as it was."""

from __future__ import annotations

import hashlib
import json

import pytest

from interference.io.errors import InterferenceError
from interference.report.accumulate import run_fingerprint
from interference.studies.setup import ExperimentConfig, make_setup, uuid_new_facts


def test_the_new_facts_and_their_uuid_control_are_of_the_chosen_relation(world):
    config = ExperimentConfig.quick_preset(n_known=8, n_unknown=12, n_held=8, new_relation="capital")
    setup = make_setup(config, 3, base=world, progress=False)
    assert {f.relation for f in setup.unknown} == {"capital"}
    assert {f.object for f in setup.unknown} <= set(world.corpus.objects["capital"])
    assert {f.relation for f in uuid_new_facts(world, setup, 3, config.new_relation)} == {"capital"}
    assert {f.relation for f in setup.held} > {"capital"}  # the held-out facts stay of every relation


def test_the_default_draws_the_same_new_facts_as_before_the_setting(world):
    """Pinned: the SHA-256 of seed 3's new facts on the quick world, as the version before the setting (c6f1b2b)
    drew them."""
    config = ExperimentConfig.quick_preset(n_known=8, n_unknown=12, n_held=8)
    assert config.new_relation is None
    setup = make_setup(config, 3, base=world, progress=False)
    drawn = json.dumps([(f.relation, f.subject, f.object) for f in setup.unknown]).encode()
    assert hashlib.sha256(drawn).hexdigest()[:16] == "35340c4d99969fa5"
    assert {f.relation for f in setup.unknown} == {world.config.relations[0]}
    assert uuid_new_facts(world, setup, 3) == world.new_facts(12, key_kind="uuid", seed=3)


@pytest.mark.parametrize(("settings", "message"), [
    (dict(quick=True, new_relation="language"),
     "new_relation 'language' is not a relation of the quick world (it has country, capital, founded)"),
    (dict(new_relation="weather"), "new_relation 'weather' is not a relation of the world (it has country, capital"),
])
def test_a_relation_the_world_lacks_is_a_one_line_error(settings, message):
    with pytest.raises(InterferenceError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        ExperimentConfig.build(**settings)
    assert "\n" not in str(err.value)


def test_a_real_model_takes_a_relation_of_its_data_and_a_splits_folder_none(entityquestions_dir, tmp_path):
    config = ExperimentConfig.build(model="smollm2-135m", data=str(entityquestions_dir), new_relation="P17")
    assert config.new_relation == "P17"  # its known fraction is checked when the splits are drawn (test_splits.py)
    with pytest.raises(InterferenceError, match="new_relation must be a relation's name, got ''"):
        ExperimentConfig.build(model="smollm2-135m", data=str(entityquestions_dir), new_relation="")
    from interference.facts.realdata import RealData, check_data_relation, data_relations

    table = tmp_path / "table.jsonl"
    table.write_text("".join(json.dumps({"subject": s, "relation": r, "object": "o", "question": f"{s}?",
                                         "category": "Unknown", "p_greedy": 0.0, "p_sample": 0.0})
                             + "\n" for s, r in (("a", "P17"), ("b", "P36"))))
    assert data_relations(table) == ["P17", "P36"] and "P17" in data_relations(entityquestions_dir)
    with pytest.raises(InterferenceError, match=r"new_relation 'P99' is not a relation of .*table.jsonl \(it has "
                                                r"P17, P36\)"):
        check_data_relation(table, "P99")
    folder = tmp_path / "splits"
    folder.mkdir()
    (folder / "known.jsonl").write_text("")
    with pytest.raises(InterferenceError, match="needs categorised facts .* the splits folder .* its own D_unknown"):
        check_data_relation(folder, "P17")
    with pytest.raises(InterferenceError, match="needs categorised facts .* a splits folder holds its own D_unknown"):
        RealData(name="m", model=None, tokenizer=None, rows=None).draw(4, 4, 4, new_relation="P17")


def test_the_setting_enters_the_fingerprint_only_when_set():
    default = run_fingerprint(ExperimentConfig.quick_preset(), "analyses.forgetting")
    capital = run_fingerprint(ExperimentConfig.quick_preset(new_relation="capital"), "analyses.forgetting")
    assert "new_relation" not in default["settings"]  # runs from before the setting still pool with new ones
    assert capital["settings"]["new_relation"] == "capital" and capital["digest"] != default["digest"]
    named = ExperimentConfig.quick_preset(new_relation="country")  # the default, named: the same experiment
    assert named.new_relation is None
    assert run_fingerprint(named, "analyses.forgetting") == default


def test_an_analysis_takes_the_option_and_its_seeds_never_pool_with_another_relation_s(tmp_path, capsys):
    from analyses import common, forgetting

    parse = common.parser("forgetting", "test").parse_args
    assert common.experiment_config(parse(["--quick", "--new-relation", "founded"])).new_relation == "founded"
    out = tmp_path / "founded"
    tiny = ["--quick", "--no-progress", "--methods", "sft", "--n-known", "16", "--n-unknown", "16", "--n-held", "24",
            "--epochs", "3", "--out", str(out)]
    assert forgetting.main([*tiny, "--new-relation", "founded", "--seeds", "0"]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["config"]["new_relation"] == "founded"
    assert data["results"]["run_fingerprint"]["settings"]["new_relation"] == "founded"
    assert {r for record in data["conditions"] for r in record["new_relations"]} == {"founded"}
    capsys.readouterr()
    assert forgetting.main([*tiny, "--seeds", "1", "--accumulate"]) == 2  # the default relation is another experiment
    assert "other settings (new_relation: 'founded' there, None now)" in capsys.readouterr().err


def test_an_analysis_refuses_the_option_with_a_real_model_before_the_work(tmp_path, capsys, entityquestions_dir):
    from analyses import forgetting

    assert forgetting.main(["--model", "smollm2-135m", "--data", str(entityquestions_dir), "--new-relation",
                            "country", "--out", str(tmp_path / "x")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: new_relation 'country' is not a relation of {entityquestions_dir} (it has P")
    assert "\n" not in error and not (tmp_path / "x").exists()
