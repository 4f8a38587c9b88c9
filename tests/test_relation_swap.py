"""Runs that differ only in the relation of their new facts: the forgotten share per held-out relation and run, the
own-relation effect paired by seed, the verdict, and the command's refusals before any work."""

from __future__ import annotations

import json

import pytest

from interference.io.errors import InterferenceError
from interference.report.relation_swap import (
    check_same_held,
    new_relation_of,
    own_relation_effects,
    relation_swap_report,
    shared_seeds,
    swap_matrix,
)

HELD = ["country"] * 4 + ["capital"] * 4


def _record(name, seed, new_relation, forgotten, start=None):
    """A record whose held-out facts (4 country, 4 capital) were all right at the start but `forgotten` (indices)."""
    start = start or [True] * len(HELD)
    return {"name": name, "seed": seed, "held_relations": HELD, "held_correct_start": start,
            "held_correct_final": [s and i not in forgotten for i, s in enumerate(start)],
            "new_relations": [new_relation] * 3, "new_correct_final": [True, True, False]}


def _runs(reverse=False):
    """Seed s: new country facts forget 1-2 country facts and none of capital; new capital facts forget one capital
    fact and no country fact (reversed: the other way round)."""
    country = {0: {0, 1}, 1: {0}, 2: {1, 2}}
    capital = {0: {4}, 1: {5}, 2: {6}}
    if reverse:
        country, capital = {s: {i + 4 for i in v} for s, v in country.items()}, {s: {i - 4 for i in v}
                                                                                   for s, v in capital.items()}
    return {"country": [_record("sft", s, "country", country[s]) for s in range(3)],
            "capital": [_record("sft", s, "capital", capital[s]) for s in range(3)]}


def test_the_own_relation_effect_is_a_relation_s_forgetting_under_its_own_new_facts_minus_under_others():
    effects = {(r["relation"], r["other_new_relation"]): r for r in own_relation_effects(_runs(), ["sft"])}
    country, capital = effects["country", "capital"], effects["capital", "country"]
    assert country["own_mean"] == pytest.approx((2 + 1 + 2) / 12) and country["other_mean"] == 0
    assert country["effect_mean"] == pytest.approx(5 / 12) and country["ahead"] == 3 == country["seeds"]
    assert capital["effect_mean"] == pytest.approx(1 / 4) == capital["effect_low"] and capital["effect_n"] == 3
    matrix = {(r["held_relation"], r["new_relation"]): r["forgotten_mean"] for r in swap_matrix(_runs(), ["sft"])}
    assert matrix["capital", "country"] == 0 and matrix["capital", "capital"] == pytest.approx(1 / 4)


def test_the_verdict_holds_when_forgetting_follows_the_new_facts_and_fails_when_it_goes_the_other_way(tmp_path):
    sources = {"country": "a", "capital": "b"}
    follows = relation_swap_report(_runs(), ["sft"], sources=sources).to_dict()
    assert follows["headline"]["verdict"]["verdict"] == "reproduces"
    assert follows["results"]["runs"] == {"country": {"folder": "a", "seeds": [0, 1, 2]},
                                          "capital": {"folder": "b", "seeds": [0, 1, 2]}}
    reversed_ = relation_swap_report(_runs(reverse=True), ["sft"], sources=sources).to_dict()
    assert reversed_["headline"]["verdict"]["verdict"] == "does not reproduce"
    effects = reversed_["results"]["own_relation_effects"]
    assert all(row["effect_mean"] < 0 for row in effects)


def test_only_the_seeds_every_run_holds_are_compared():
    runs = _runs()
    runs["capital"] = runs["capital"][:2] + [_record("sft", 7, "capital", {4})]
    assert shared_seeds(runs) == [0, 1]
    report = relation_swap_report(runs, ["sft"], sources={"country": "a", "capital": "b"}).to_dict()
    assert report["seeds"] == [0, 1]
    assert {row["seeds"] for row in report["results"]["matrix"]} == {2}


def test_runs_that_start_from_other_held_out_facts_or_mix_relations_are_refused():
    runs = _runs()
    runs["capital"][1] = _record("sft", 1, "capital", {5}, start=[False] + [True] * 7)
    with pytest.raises(InterferenceError, match="sft seed 1 starts from other held-out facts"):
        check_same_held(runs)
    mixed = _runs()["country"] + _runs()["capital"]
    with pytest.raises(InterferenceError, match="its new facts are of capital and country"):
        new_relation_of(mixed, "mixed")
    with pytest.raises(InterferenceError, match="its records list no fact relations"):
        new_relation_of([{"name": "sft", "seed": 0}], "old")
    with pytest.raises(InterferenceError, match="at least two relations"):
        relation_swap_report({"country": _runs()["country"]}, ["sft"], sources={"country": "a"})


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Tiny quick forgetting runs whose new facts are country (the default) and capital, seeds 0 and 1."""
    from analyses import forgetting

    root = tmp_path_factory.mktemp("swap")
    tiny = ["--quick", "--no-progress", "--methods", "sft", "self_distill", "--n-known", "16", "--n-unknown", "16",
            "--n-held", "24", "--epochs", "3", "--seeds", "0", "1"]
    for label, extra in (("country", []), ("capital", ["--new-relation", "capital"])):
        assert forgetting.main([*tiny, *extra, "--out", str(root / label)]) == 0
    return root, tiny


def test_the_command_compares_two_runs_seed_by_seed(two_runs, capsys):
    from analyses import relation_swap

    root, _ = two_runs
    out = root / "swap"
    assert relation_swap.main([str(root / "country"), str(root / "capital"), "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["seeds"] == [0, 1] and data["headline"]["verdict"] is not None
    assert {(r["condition"], r["relation"], r["other_new_relation"]) for r in data["results"]["own_relation_effects"]} \
        == {(c, a, b) for c in ("sft", "self_distill") for a, b in (("country", "capital"), ("capital", "country"))}
    assert set(data["results"]["within_runs"]) == {"country", "capital"}
    assert (out / "report.html").is_file()


def test_runs_of_other_methods_compare_on_the_conditions_they_share(two_runs, tmp_path):
    """A condition's records do not depend on the conditions run beside it (checked here: SFT alone equals SFT run
    beside self-distillation), so runs of other method lists compare on the methods they share."""
    from analyses import forgetting, relation_swap

    root, tiny = two_runs
    alone = tmp_path / "sft-only"
    methods = tiny.index("--methods")
    assert forgetting.main([*tiny[:methods + 1], "sft", *tiny[methods + 3:], "--new-relation", "capital",
                            "--out", str(alone)]) == 0
    beside = [r for r in json.loads((root / "capital" / "results.json").read_text())["conditions"]
              if r["name"] == "sft"]
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in beside] == [
        {k: v for k, v in r.items() if k != "seconds"} for r in json.loads((alone / "results.json").read_text())[
            "conditions"]]
    assert relation_swap.main([str(root / "country"), str(alone), "--out", str(tmp_path / "swap")]) == 0
    data = json.loads((tmp_path / "swap" / "results.json").read_text())
    assert {r["condition"] for r in data["results"]["own_relation_effects"]} == {"sft"}


@pytest.mark.parametrize(("case", "message"), [
    ("one", "give at least two report folders"),
    ("same", "both have new facts of country"),
    ("reference", "--reference l2 is not a condition of every run (they share sft, self_distill)"),
    ("other", "is another experiment than"),
    ("apart", "the runs share no seed (country: seeds 0 1; founded: seeds 2): nothing pairs"),
])
def test_the_command_refuses_bad_input_in_one_line_before_any_work(two_runs, tmp_path, capsys, monkeypatch, case,
                                                                   message):
    from analyses import common, forgetting, relation_swap

    root, tiny = two_runs
    country, capital = str(root / "country"), str(root / "capital")
    if case in ("other", "apart"):  # "apart": the fixture's settings on another seed; "other": another lr
        other = ["--seeds", "2"] if case == "apart" else ["--seeds", "0", "--epochs", "1", "--lr", "0.5"]
        assert forgetting.main([*tiny[:-3], *other, "--new-relation", "founded",
                                "--out", str(tmp_path / "founded")]) == 0
    folders = {"one": [country], "same": [country, country], "reference": [country, capital, "--reference", "l2"],
               "other": [country, str(tmp_path / "founded")], "apart": [country, str(tmp_path / "founded")]}[case]
    capsys.readouterr()

    def claimed(*args, **kwargs):
        raise AssertionError("the output folder was claimed before the input was checked")

    monkeypatch.setattr(common, "run", claimed)
    assert relation_swap.main([*folders, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not (tmp_path / "out").exists()
