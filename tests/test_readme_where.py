"""The README's numbers on where in the network the held-out loss changed and what freezing a layer does to it are
measured, not remembered: recomputed here from the committed results files."""

from __future__ import annotations

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
