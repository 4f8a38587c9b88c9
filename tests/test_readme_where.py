"""The README's numbers on where in the network the held-out loss changed and what freezing a layer does to it are
measured, not remembered: recomputed here from the committed results files."""

from __future__ import annotations

import pytest
from test_readme_numbers import RESULTS  # the tests folder is on the path (pytest prepends it)
from test_readme_remedies import assert_same_runs, flat

from interference.report.files import load_results
from interference.report.paired import interval_text, paired_difference


def shares(records: list[dict], field: str) -> list[dict]:
    return [{"name": r["name"], "seed": r["seed"], **r[field]} for r in records]


def test_the_readme_states_what_freezing_the_layer_that_carries_the_rise_does(readme):
    text = flat(readme).replace("−", "-")
    data = load_results(RESULTS / "freezing-by-layer")
    records = data["conditions"]
    assert len(data["seeds"]) == 10
    assert_same_runs([r for r in records if r["name"] == "sft"], load_results(RESULTS / "remedies")["conditions"],
                     ("held_correct_final", "new_correct_final", "epochs", "drift"))
    for r in records:
        for i in (0, 1):
            if r["name"] == f"freeze-only layer {i}":
                assert r["held_loss_by_layer"][f"layer {i}"] == 0.0 and r["update_norms"][f"layer {i}"] == 0.0

    def diff(rows, condition, field, digits=3):
        d = paired_difference(rows, condition, "sft", field)
        return interval_text(d.t, digits), d.n_positive

    (drop0, higher), (drop1, _) = diff(records, "freeze-only layer 0", "absolute_drop"), diff(
        records, "freeze-only layer 1", "absolute_drop")
    assert (f"Freezing layer 0 does not lower the held-out drop: {drop0} against full SFT (higher on {higher} of 10 "
            f"seeds; freezing layer 1: {drop1})") in text
    assert f"The new facts then take {diff(records, 'freeze-only layer 0', 'epochs', 1)[0]} more epochs" in text
    layers, groups = shares(records, "held_loss_by_layer"), shares(records, "held_loss_by_group")
    embeddings, layer1 = diff(groups, "freeze-only layer 0", "embeddings"), diff(layers, "freeze-only layer 0",
                                                                                   "layer 1")
    assert (f"moves into the input embeddings (their share {embeddings[0]} above SFT's, on {embeddings[1]} of 10 "
            f"seeds) and layer 1 ({layer1[0]})") in text
    grows = diff(layers, "freeze-only layer 1", "layer 0")
    assert f"layer 0's share grows ({grows[0]}, on {grows[1]} of 10)" in text
    assert float(drop0.split()[0]) > 0  # the prediction the shares made fails on these records


def _world_readings(folder: str) -> list[tuple[str, float, float, float]]:
    """The numbers the README's two world bullets on where the held-out loss rises read off a run's shares: each
    median share (as a one-point reading) and each paired interval from SFT, as (what, mean, low, high)."""
    from interference.report.attribution import attribution_rows

    records = load_results(RESULTS / folder)["conditions"]
    out = []
    for field, slots in (("held_loss_by_layer", ("layer 0", "layer 1", "other")),
                         ("held_loss_by_group", ("ffn", "attention", "embeddings", "norms", "unembedding"))):
        sft = attribution_rows(records, ("sft",), field)[0]
        out += [(f"sft {slot}", sft[slot], sft[slot], sft[slot]) for slot in slots]
        rows = shares(records, field)
        out += [_from_sft(rows, method, slot) for method in ("self_distill", "ewc:1e6", "ewc:1e7") for slot in slots]
    return out


def _from_sft(rows: list[dict], condition: str, slot: str) -> tuple[str, float, float, float]:
    """`condition`'s paired difference from SFT in `slot`'s share, as a reading (what, mean, low, high)."""
    t = paired_difference(rows, condition, "sft", slot).t
    return f"{condition} {slot}", t.mean, t.low, t.high


def _rerun(folder: str, reference: str) -> tuple[dict, dict, dict, dict, list[int]]:
    """A world run rerun with the adaptive split and the run it repeats, checked to be the same training (every field
    but the split and wall seconds; update norms to 1e-16), with both splits' summaries and the midpoints spent."""
    from interference.report.attribution import attribution_summary

    new, old = (load_results(RESULTS / f) for f in (folder, reference))
    assert new["seeds"] == old["seeds"] == list(range(10))
    fields = tuple(k for k in old["conditions"][0]
                   if k not in ("seconds", "update_norms", "held_loss_by_layer", "held_loss_by_group"))
    assert_same_runs(new["conditions"], old["conditions"], fields)
    before = {(r["name"], r["seed"]): r["update_norms"] for r in old["conditions"]}
    assert all(v == pytest.approx(before[r["name"], r["seed"]][k], abs=1e-16)
               for r in new["conditions"] for k, v in r["update_norms"].items())
    summary, earlier = (attribution_summary(d["conditions"]) for d in (new, old))
    return new, old, summary, earlier, [r["held_loss_midpoints"] for r in new["conditions"]]


def test_the_readme_states_that_the_world_split_reads_the_same_when_it_adapts(readme):
    text = flat(readme).replace("−", "-")
    new, old, summary, earlier, spent = _rerun("remedies-adaptive-split", "remedies-by-group")
    assert summary["residual_max"] < 0.05 < earlier["residual_max"]  # the prediction: under 5 %
    halved = sum(s > 8 for s in spent)
    assert (f"the largest miss falls from {100 * earlier['residual_max']:.1f} % to "
            f"{100 * summary['residual_max']:.1f} % ({halved} of {len(spent)} records halved, {min(spent)} to "
            f"{max(spent)} midpoints)") in text
    assert summary["leading"] == earlier["leading"] and summary["most_moved"] == earlier["most_moved"]
    _assert_read_alike(_world_readings("remedies-adaptive-split"), _world_readings("remedies-by-group"))


def _assert_read_alike(after: list[tuple], before: list[tuple]) -> None:
    """Two runs' (what, mean, low, high) readings differ by at most one in the third decimal, none across 0."""
    for (what, *new), (_, *old) in zip(after, before, strict=True):
        assert all(abs(a - b) < 0.0015 for a, b in zip(new, old, strict=True)), what  # a last digit at most
        assert (new[1] > 0 or new[2] < 0) == (old[1] > 0 or old[2] < 0), what  # on the same side of 0


def _freezing_readings(folder: str) -> list[tuple[str, float, float, float]]:
    """The shares the README's freezing bullet reads: each frozen layer's condition against full SFT, per slot."""
    records = load_results(RESULTS / folder)["conditions"]
    return [_from_sft(shares(records, field), condition, slot)
            for condition, field, slot in (("freeze-only layer 0", "held_loss_by_group", "embeddings"),
                                           ("freeze-only layer 0", "held_loss_by_layer", "layer 1"),
                                           ("freeze-only layer 1", "held_loss_by_layer", "layer 0"))]


def test_the_readme_states_that_the_world_freezing_split_reads_the_same_when_it_adapts(readme):
    text = flat(readme).replace("−", "-")
    new, old, summary, earlier, spent = _rerun("freezing-adaptive-split", "freezing-by-layer")
    assert (f"the largest miss falls from {100 * earlier['residual_max']:.1f} % to "
            f"{100 * summary['residual_max']:.1f} % ({sum(s > 8 for s in spent)} of {len(spent)} records halved), "
            f"and these shares move by at most one in their last digit") in text
    _assert_read_alike(_freezing_readings("freezing-adaptive-split"), _freezing_readings("freezing-by-layer"))
    for condition, field, slot in (("freeze-only layer 0", "held_loss_by_group", "embeddings"),
                                   ("freeze-only layer 1", "held_loss_by_layer", "layer 0")):  # "on 9 of 10"
        counts = {paired_difference(shares(d["conditions"], field), condition, "sft", slot).n_positive
                  for d in (new, old)}
        assert len(counts) == 1, slot
