"""The README's numbers on where in SmolLM2 the held-out loss changed (the EWC study's stages 6 to 10) are measured,
not remembered: recomputed here from the committed results files."""

from __future__ import annotations

import math

import pytest
from test_readme_numbers import RESULTS  # the tests folder is on the path (pytest prepends it)
from test_readme_remedies import assert_same_runs, flat
from test_readme_where import shares

from interference.report.files import load_results
from interference.report.paired import interval_text, paired_difference

EWC = RESULTS.parent / "smollm2-135m-remedies-ewc-cpu"


def _texts(readme: str) -> tuple[str, str]:
    """The SmolLM2 study's own README and the main one, flat, with minus signs and the ranges' en dashes as "-"."""
    return tuple(flat(t).replace("−", "-").replace("–", "-")
                 for t in ((EWC / "README.md").read_text(encoding="utf-8"), readme))


def _miss(record: dict) -> float:
    """The split's miss as a percentage of its shares' total (the report's residual)."""
    from interference.report.fisher import loss_rise

    shares = record["held_loss_by_layer"].values()
    return 100 * abs(loss_rise(record) - sum(shares)) / sum(abs(v) for v in shares)


def _apart(records: list[dict]) -> dict[str, tuple[int, list[tuple[str, str]]]]:
    """Per view of the SmolLM2 study's splits (bands of depth, groups, layers; `records` with the depth view added):
    how many paired intervals from SFT there are, and the (method, slot) of those that do not span 0."""
    from interference.report.attribution import DEPTH, attribution_differences

    apart = {}
    for field in (DEPTH, "held_loss_by_group", "held_loss_by_layer"):
        cells = [(row["method"], slot, cell)
                 for row in attribution_differences(records, ("sft", "self_distill", "ewc:100000", "ewc:1e6"),
                                                    field=field)
                 for slot, cell in row.items() if slot != "method"]
        bounds = [tuple(float(x) for x in cell.split("[")[1].split("]")[0].split(", ")) for *_, cell in cells]
        apart[field] = (len(cells),
                        [c[:2] for c, (low, high) in zip(cells, bounds, strict=True) if low > 0 or high < 0])
    return apart


def test_the_readmes_state_where_in_smollm2_the_held_out_loss_changed(readme):
    from interference.report.attribution import DEPTH, attribution_summary, by_depth
    from interference.report.fisher import loss_rise

    own, text = _texts(readme)
    data = load_results(EWC / "stage-6")
    records = data["conditions"]
    assert data["seeds"] == [1, 2, 3]
    reference = load_results(EWC / "stage-5")["conditions"]
    assert_same_runs(records, reference, tuple(k for k in reference[0] if k not in ("seconds", "update_norms")))
    for r in records:
        other = next(c for c in reference if c["name"] == r["name"] and c["seed"] == r["seed"])
        assert max(abs(r["update_norms"][k] - other["update_norms"][k]) for k in other["update_norms"]) <= 4.4e-19

    worst = {seed: [_miss(r) for r in records if r["seed"] == seed] for seed in (1, 2, 3)}
    assert f"Stage 6's split missed seed 1's change by {min(worst[1]):.1f} % to {max(worst[1]):.1f} %" in text
    assert (f"{min(worst[1]):.1f} % to {max(worst[1]):.1f} % of their total on seed 1's four records" in own and
            f"by {min(worst[2]):.1f} % to {max(worst[2]):.1f} % on seed 2's and by at most {max(worst[3]):.1f} % on "
            f"seed 3's") in own
    sft2 = next(r for r in by_depth(records) if r["name"] == "sft" and r["seed"] == 2)
    rise, late, ffn = loss_rise(sft2), sft2[DEPTH]["layers 20-29"], sft2["held_loss_by_group"]["ffn"]
    groups = sft2["held_loss_by_group"]
    assert (f"(SFT's held-out accuracy fell by {sft2['absolute_drop']:.2f}, its loss rose by {rise:.3f}) layers 20-29 "
            f"carry {late:.3f} of the rise and the FFN weights {ffn:.3f} (attention {groups['attention']:.3f}, the "
            f"embeddings {groups['embeddings']:.3f})") in own
    sd2 = next(r for r in records if r["name"] == "self_distill" and r["seed"] == 2)
    assert f"lowers the loss ({loss_rise(sd2):.3f})" in own
    depth, groups_summary = data["results"][DEPTH], data["results"]["held_loss_by_group"]
    layers = data["results"]["held_loss_by_layer"]
    assert depth == attribution_summary(by_depth(records), DEPTH)
    assert (f"layers 20-29 on {depth['leading']['layers 20-29']}, layers 0-9 on {depth['leading']['layers 0-9']}; "
            f"the group is the FFN on {groups_summary['leading']['ffn']}, the embeddings on "
            f"{groups_summary['leading']['embeddings']}") in own
    assert f"on {layers['most_moved']} of {layers['records']} records" in own
    apart = _apart(by_depth(records))
    assert not apart[DEPTH][1] and not apart["held_loss_by_group"][1]
    n, off = apart["held_loss_by_layer"]
    assert off == [("ewc:100000", "layer 14"), ("ewc:100000", "layer 16")]
    assert f"and {len(off)} of the {n} per layer do not (EWC at λ 1e5, layers 14 and 16)" in own
    assert f"fewer than the {round(0.05 * n)} that {n} intervals at 95 % miss by chance" in own


def test_the_readmes_state_what_the_adaptive_split_finds_in_smollm2(readme):
    import json

    from interference.report.attribution import DEPTH, attribution_summary, by_depth
    from interference.report.fisher import loss_rise

    own, text = _texts(readme)
    data = load_results(EWC / "stage-7")
    records = by_depth(data["conditions"])
    assert data["seeds"] == [1, 2, 3, 4]
    reference = load_results(EWC / "stage-5")["conditions"]
    assert_same_runs(data["conditions"], reference,
                     tuple(k for k in reference[0] if k not in ("seconds", "update_norms")))
    earlier = {(r["name"], r["seed"]): r for r in load_results(EWC / "stage-6")["conditions"]}
    for r in records:  # seeds 2 and 3 are stage 6's records; 1 and 4 ran with the adaptive split
        assert ("held_loss_midpoints" in r) == (r["seed"] in (1, 4))
        if r["seed"] in (2, 3):
            assert r["held_loss_by_layer"] == earlier[r["name"], r["seed"]]["held_loss_by_layer"]
    line = json.loads((EWC / "stage-7" / "line-seed-1-sft.json").read_text(encoding="utf-8"))
    sft1 = next(r for r in records if r["name"] == "sft" and r["seed"] == 1)
    assert line["held_loss_start"] == sft1["held_loss_start"] and line["held_loss_final"] == sft1["held_loss_final"]
    assert line["mean_loss"][0] == sft1["held_loss_start"]
    assert line["mean_loss"][-1] == pytest.approx(sft1["held_loss_final"], abs=1e-6)
    tenth = line["mean_loss"][line["t"].index(0.1)]
    assert f"falls from {line['held_loss_start']:.3f} to {tenth:.3f} in the first tenth" in text
    assert f"It falls from {line['held_loss_start']:.3f} to {tenth:.3f} in the first tenth of the line" in own
    assert sum(sft1["held_loss_by_layer"].values()) == pytest.approx(line["split_adaptive_default"]["change"] -
                                                                     line["split_adaptive_default"]["residual"])
    for seed in (1, 4):
        misses = [_miss(r) for r in records if r["seed"] == seed]
        spent = sorted({r["held_loss_midpoints"] for r in records if r["seed"] == seed})
        assert max(misses) < 10 if seed == 1 else True  # the pre-registered prediction
        range_ = f"{min(misses):.1f} % to {max(misses):.1f} %"
        spent_text = f"{spent[0]}" if len(spent) == 1 else f"{spent[0]} to {spent[-1]}"
        if seed == 1:
            assert f"seed 1's records miss by {range_} after {spent_text} midpoints" in text
            assert f"miss the measured change by {range_} of their shares' total" in own
            assert f"each after {spent_text} midpoints" in own
        else:
            assert f"seed 4's by {range_} after {spent_text}" in own
    summary = data["results"]["held_loss_by_layer"]
    assert summary == attribution_summary(data["conditions"])
    assert (f"the median miss is {100 * summary['residual']:.1f} % (at most {100 * summary['residual_max']:.1f} %"
            in own)
    bands = {(r["name"], r["seed"]): r[DEPTH] for r in records}
    low = [bands[m, 1]["layers 0-9"] for m in ("sft",)] + [bands["sft", 1]["layers 10-19"]]
    assert f"(SFT: {low[0]:.3f} and {low[1]:.3f} of {loss_rise(sft1):.3f}; FFN" in own
    late1 = {m: bands[m, 1]["layers 20-29"] for m in ("sft", "self_distill", "ewc:100000", "ewc:1e6")}
    up = [v for m, v in late1.items() if m != "self_distill"]
    assert all(v > 0 for v in up) and late1["self_distill"] <= 0
    assert f"(+{min(up):.3f} to +{max(up):.3f}; self-distillation {late1['self_distill']:.3f})" in own
    ewc4 = next(r for r in records if r["name"] == "ewc:1e6" and r["seed"] == 4)
    phrase = f"{ewc4[DEPTH]['layers 20-29']:.3f} against a rise of {loss_rise(ewc4):.3f}"
    assert f"fell by {ewc4['absolute_drop']:.2f}; {phrase}" in own
    above = sum(r[DEPTH]["layers 20-29"] > 0 for r in records)
    assert f"(layers 20-29's share above 0 on {above} of {len(records)} records)" in text
    assert f"layers 20-29's share is above 0 on {above} of {len(records)} records" in own
    depth, groups = data["results"][DEPTH], data["results"]["held_loss_by_group"]
    assert (f"layers 20-29 on {depth['leading']['layers 20-29']}, 10-19 on {depth['leading']['layers 10-19']}, 0-9 "
            f"on {depth['leading']['layers 0-9']}; the group is the FFN on {groups['leading']['ffn']}, attention on "
            f"{groups['leading']['attention']}") in own
    apart = _apart(records)
    assert not apart[DEPTH][1] and not apart["held_loss_by_group"][1]
    n, off = apart["held_loss_by_layer"]
    assert off == [("ewc:100000", "layer 16"), ("ewc:100000", "layer 29")]
    assert f"and {len(off)} of the {n} per layer do not (EWC at λ 1e5, layers 16 and 29), fewer than the " \
           f"{round(0.05 * n)} that chance gives" in own


def _assert_pooled_summary(results: dict, own: str) -> None:
    """The study README's sentences on a pooled stage's summaries: the band, group and layer that carry most of each
    record's change, and the split's median and largest miss."""
    from interference.report.attribution import DEPTH

    depth, groups, layers = (results[f] for f in (DEPTH, "held_loss_by_group", "held_loss_by_layer"))
    assert (f"layers 20-29 on {depth['leading']['layers 20-29']}, 0-9 on {depth['leading']['layers 0-9']}, 10-19 on "
            f"{depth['leading']['layers 10-19']}; the group is the FFN on {groups['leading']['ffn']}, attention on "
            f"{groups['leading']['attention']}; the single layer that carries most is the most-moved layer on "
            f"{layers['most_moved']} of {layers['records']}") in own
    assert (f"The median miss is {100 * layers['residual']:.1f} % (at most {100 * layers['residual_max']:.1f} %)"
            in own)


def test_the_readmes_state_whether_the_late_layers_lead_holds_on_new_seeds(readme):
    from interference.report.attribution import DEPTH, by_depth
    from interference.report.fisher import loss_rise

    own, text = _texts(readme)
    data = load_results(EWC / "stage-8")
    records = by_depth(data["conditions"])
    assert data["seeds"] == [1, 2, 3, 4, 5, 6]
    new = [r for r in records if r["seed"] in (5, 6)]
    reference = load_results(EWC / "stage-4")["conditions"]
    assert_same_runs(new, reference, tuple(k for k in reference[0] if k not in ("seconds", "update_norms")))
    trained = {(r["name"], r["seed"]): r for r in reference}
    norms = [abs(v - trained[r["name"], r["seed"]]["update_norms"][k])
             for r in new for k, v in r["update_norms"].items()]
    changed = sum(r["update_norms"] != trained[r["name"], r["seed"]]["update_norms"] for r in new)
    assert max(norms) <= 4.4e-19 and f"{('no', 'one', 'two', 'three', 'four')[changed]} records' update norms" in own
    earlier = {(r["name"], r["seed"]): r for r in load_results(EWC / "stage-7")["conditions"]}
    for r in data["conditions"]:  # seeds 1-4 are stage 7's records
        if r["seed"] <= 4:
            assert r["held_loss_by_layer"] == earlier[r["name"], r["seed"]]["held_loss_by_layer"]

    late = {(r["name"], r["seed"]): r[DEPTH]["layers 20-29"] for r in records}
    above = [r for r in new if late[r["name"], r["seed"]] > 0]
    assert len(above) >= 6  # the pre-registered prediction: at least 6 of the 8 new records
    assert f"Layers 20-29's share is above 0 on {len(above)} of the {len(new)} new records" in own
    assert f"it held on {len(above)} of {len(new)} new records, the fewest the prediction allowed" in text
    assert len(above) == 6  # "the fewest the prediction allowed"
    chance = sum(math.comb(8, k) for k in range(6, 9))  # 6 or more of 8 fair coins come up heads
    assert f"give that {chance} times in 256 ({100 * chance / 256:.1f} %)" in own
    assert f"a fair coin gives that {100 * chance / 256:.1f} % of" in own
    misses, spent = [_miss(r) for r in new], [r["held_loss_midpoints"] for r in new]
    assert max(misses) < 10  # the second prediction
    assert (f"miss their measured change by {min(misses):.1f} % to {max(misses):.1f} % of their shares' total, after "
            f"{min(spent)} to {max(spent)} midpoints") in own
    rises = [loss_rise(r) for r in records if r["seed"] == 5]
    assert min(rises) > 0 and f"(by {min(rises):.3f} to {max(rises):.3f})" in own

    rose = [r for r in records if loss_rise(r) > 0]
    fell = [r for r in records if loss_rise(r) < 0]
    assert len(rose) + len(fell) == len(records) == 24
    bands = ("layers 0-9", "layers 10-19", "layers 20-29")
    first = sum(max(bands, key=lambda b, r=r: r[DEPTH][b]) == "layers 20-29" for r in rose)
    up_rose, up_fell = (sum(late[r["name"], r["seed"]] > 0 for r in group) for group in (rose, fell))
    assert up_rose == len(rose)  # "on all 10 where the loss rose"
    assert (f"above 0 on all {len(rose)} where the loss rose (the largest of the three bands on {first} of them) and "
            f"on {up_fell} of the {len(fell)} where it fell") in own

    _assert_pooled_summary(data["results"], own)
    apart = _apart(records)
    assert apart[DEPTH][1] == [("ewc:100000", "other")] and apart["held_loss_by_group"][1] == [
        ("ewc:100000", "embeddings")]
    n, off = apart["held_loss_by_layer"]
    assert sorted(off) == [("ewc:100000", f"layer {i}") for i in (15, 16, 28, 29)] + [
        ("ewc:100000", "other"), ("ewc:1e6", "layer 29"), ("self_distill", "layer 20")]
    groups_rows = shares(data["conditions"], "held_loss_by_group")
    embeddings = paired_difference(groups_rows, "ewc:100000", "sft", "embeddings")
    lower = sum(d < 0 for d in embeddings.differences)
    phrase = f"({interval_text(embeddings.t, 4)}"
    assert f"lowers the embeddings' share {phrase}, lower on {lower} of 6 seeds;" in own
    assert (f"Per layer, {len(off)} of {n} intervals do not span 0, against the {round(0.05 * n)} that chance "
            f"gives") in own


def test_the_readmes_state_what_stage_9_finds_where_the_held_out_loss_rises(readme):
    from scipy.stats import spearmanr

    from interference.report.attribution import DEPTH, by_depth, sign_counts
    from interference.report.fisher import loss_rise

    own, text = _texts(readme)
    data = load_results(EWC / "stage-9")
    records = by_depth(data["conditions"])
    assert data["seeds"] == list(range(1, 9))
    earlier = {(r["name"], r["seed"]): r for r in load_results(EWC / "stage-8")["conditions"]}
    assert all(r == earlier[r["name"], r["seed"]] for r in data["conditions"] if r["seed"] <= 6)  # merged as they were
    new = [r for r in records if r["seed"] in (7, 8)]
    short = [(r["name"], r["seed"], r["new_acc"]) for r in new if r["new_acc"] < 0.9]
    assert [s[:2] for s in short] == [("ewc:1e6", 7)]
    assert f"but EWC at λ 1e6 on seed 7 ({short[0][2]:.2f} after 20 epochs)" in own
    assert next(r["epochs"] for r in new if r["new_acc"] < 0.9) == 20

    bands = ("layers 0-9", "layers 10-19", "layers 20-29")
    rose = [r for r in new if loss_rise(r) > 0]
    k = len(rose)
    assert all(r[DEPTH]["layers 20-29"] > 0 for r in rose)  # the pre-registered prediction
    first = sum(max(bands, key=lambda b, r=r: r[DEPTH][b]) == "layers 20-29" for r in rose)
    assert first >= k / 2  # the second
    misses, spent = [_miss(r) for r in new], [r["held_loss_midpoints"] for r in new]
    assert max(misses) < 10  # the third
    assert {r["seed"] for r in rose} == {8} and k == 4
    rises = [loss_rise(r) for r in rose]
    assert (f"The held-out loss rose on {k} new records, all of them seed 8's (by {min(rises):.3f} to "
            f"{max(rises):.3f}), and layers 20-29's share is above 0 on all {k}; it is the largest band on {first} of "
            f"them") in own
    assert (f"miss their measured change by {min(misses):.1f} % to {max(misses):.1f} % of their shares' total, after "
            f"{min(spent)} to {max(spent)} midpoints") in own
    on_new = sign_counts(new, DEPTH)
    assert on_new["with_rise"]["layers 0-9"] == on_new["with_rise"]["layers 10-19"] == k  # the addendum's tie
    assert f"layers 0-9 and layers 10-19 are above 0 on all {k} too" in own
    falls = [loss_rise(r) for r in new if r["seed"] == 7]
    assert max(falls) < 0 and all(r[DEPTH][b] < 0 for r in new if r["seed"] == 7 for b in bands)
    assert f"fell on every method (by {-max(falls):.3f} to {-min(falls):.3f})" in own
    assert f"it held on all {k} new rising records, but so did layers 0-9 and 10-19" in text

    signs = data["results"][f"{DEPTH}_signs"]
    assert signs == sign_counts(records, DEPTH)
    up, down = signs["with_rise"], signs["with_fall"]
    assert up["layers 20-29"] == signs["rose"]
    assert (f"where the loss rose ({signs['rose']} records) layers 20-29 are above 0 on {up['layers 20-29']}, layers "
            f"0-9 on {up['layers 0-9']} and layers 10-19 on {up['layers 10-19']}; where it fell ({signs['fell']}), "
            f"layers 0-9 are below 0 on {down['layers 0-9']}, layers 10-19 on {down['layers 10-19']} and layers "
            f"20-29 on {down['layers 20-29']}") in own
    assert (f"where the loss rose ({signs['rose']}) layers 20-29 are above 0 on {up['layers 20-29']}, layers 0-9 on "
            f"{up['layers 0-9']} and 10-19 on {up['layers 10-19']}; where it fell ({signs['fell']}), layers 0-9 are "
            f"below 0 on {down['layers 0-9']} and layers 20-29 on {down['layers 20-29']}") in text
    groups = data["results"]["held_loss_by_group_signs"]
    assert groups["with_rise"]["ffn"] == groups["with_rise"]["attention"] == groups["rose"]
    assert (f"go with the change on {groups['with_rise']['ffn']} of {groups['rose']} rises and "
            f"{groups['with_fall']['ffn']} of {groups['fell']} falls") in own
    assert groups["with_fall"]["attention"] == groups["with_fall"]["ffn"]

    seeds = data["seeds"]
    start = [next(r["held_loss_start"] for r in records if r["seed"] == s) for s in seeds]
    change = [sum(loss_rise(r) for r in records if r["seed"] == s) / 4 for s in seeds]
    rho = spearmanr(start, change).statistic
    assert f"runs from {min(start):.3f} to {max(start):.3f} over the 8 seeds" in own
    assert f"(Spearman ρ {rho:.2f} between the snapshot's loss" in own
    every = {d: [s for s in seeds if all((loss_rise(r) > 0) == (d == "rise") for r in records if r["seed"] == s)]
             for d in ("rise", "fall")}
    assert len(every["rise"]) == 2 and len(every["fall"]) == 3
    assert (f"seeds {every['rise'][0]} and {every['rise'][1]} rise on every method, seeds {every['fall'][0]}, "
            f"{every['fall'][1]} and {every['fall'][2]} fall on every method") in own
    rising_seeds = len({r["seed"] for r in records if loss_rise(r) > 0})
    assert f"The {signs['rose']} rising records are {rising_seeds} seeds' records" in own
    assert f"(Spearman ρ {rho:.2f} over 8 seeds; the {signs['rose']} rises are {rising_seeds} seeds' records)" in text

    _assert_pooled_summary(data["results"], own)

    rows = [{"name": r["name"], "seed": r["seed"], "change": loss_rise(r), **r[DEPTH], **r["held_loss_by_group"]}
            for r in records]
    total = paired_difference(rows, "self_distill", "sft", "change")
    lower = sum(d < 0 for d in total.differences)
    assert total.t.high < 0
    assert (f"below SFT's by {-total.t.mean:.3f} ([{total.t.low:+.3f}, {total.t.high:+.3f}], lower on {lower} of 8 "
            f"seeds") in own
    assert f"self-distillation's change is lower by {-total.t.mean:.3f} [{total.t.low:+.3f}, {total.t.high:+.3f}] " \
           f"(on {lower} of 8 seeds)" in text
    for band in bands:
        d = paired_difference(rows, "self_distill", "sft", band)
        assert d.t.high < 0
        assert f"{band.replace('layers ', '') if band != 'layers 0-9' else band} {interval_text(d.t, 4)}" in own
        assert sum(x < 0 for x in d.differences) == 6
    late = paired_difference(rows, "self_distill", "sft", "layers 20-29")
    assert f"(layers 20-29: {interval_text(late.t, 4)})" in text
    for group, name in (("attention", "attention"), ("ffn", "the FFN")):
        d = paired_difference(rows, "self_distill", "sft", group)
        assert d.t.high < 0 and f"{name} ({interval_text(d.t, 4)})" in own
    embeddings = paired_difference(rows, "ewc:100000", "sft", "embeddings")
    assert embeddings.t.low < 0 < embeddings.t.high
    assert f"spans 0 over eight seeds ({interval_text(embeddings.t, 4)})" in own

    apart = _apart(records)
    assert apart[DEPTH][1] == [("self_distill", b) for b in bands]
    assert apart["held_loss_by_group"][1] == [("self_distill", "attention"), ("self_distill", "ffn")]
    n, off = apart["held_loss_by_layer"]
    distilled = sorted(int(slot.split()[1]) for m, slot in off if m == "self_distill")
    layer_rows = shares(records, "held_loss_by_layer")
    assert all(paired_difference(layer_rows, m, "sft", slot).t.high < 0 for m, slot in off)  # each "lowers"
    others = sorted((m, s) for m, s in off if m != "self_distill")
    assert others == [("ewc:100000", "layer 29"), ("ewc:1e6", "layer 29")]
    assert (f"Per layer, {len(off)} of {n} intervals do not span 0 (chance gives {round(0.05 * n)}): "
            f"self-distillation lowers {len(distilled)} layers spread from layer {distilled[0]} to layer "
            f"{distilled[-1]}") in own
    assert (f"per layer {len(off)} of {n} intervals do not span 0, {len(distilled)} of them self-distillation's, "
            f"spread from layer {distilled[0]} to {distilled[-1]}, where chance gives {round(0.05 * n)}") in text


def test_the_readmes_state_that_the_snapshots_part_does_not_hold_on_new_seeds(readme):
    from scipy.stats import spearmanr

    own, text = _texts(readme)
    data = load_results(EWC / "stage-10")
    new = sorted(data["conditions"], key=lambda r: r["seed"])
    assert data["seeds"] == list(range(9, 15)) and {r["name"] for r in new} == {"sft"}
    assert all("held_loss_by_layer" not in r or not r["held_loss_by_layer"] for r in new)  # --attribution-steps 0
    assert all(r["new_acc"] >= 0.9 for r in new) and {r["epochs"] for r in new} == {3, 4}
    old = [r for r in load_results(EWC / "stage-9")["conditions"] if r["name"] == "sft"]

    def read(records):
        start = [r["held_loss_start"] for r in records]
        change = [r["held_loss_final"] - r["held_loss_start"] for r in records]
        calls = [s < 0.24 for s in start]  # the pre-registered rule: the loss rises below 0.24
        right = [call == (c > 0) for call, c in zip(calls, change, strict=True)]
        accuracy = spearmanr([r["held_acc_start"] for r in records], [r["absolute_drop"] for r in records])
        return start, change, calls, right, spearmanr(start, change).statistic, accuracy.statistic

    start, change, calls, right, rho, accuracy = read(new)
    for r, s, c, call, ok in zip(new, start, change, calls, right, strict=True):
        assert (f"| {r['seed']} | {s:.3f} | {c:+.3f} | {'rise' if call else 'fall'} | {'yes' if ok else 'no'} |"
                in own)
    assert sum(right) < 5 and rho > -0.6  # both pre-registered predictions fail
    assert f"SFT raised the held-out loss on {sum(c > 0 for c in change)} of the 6 new seeds" in own
    assert (f"The rule \"rises below 0.24\" is right on {sum(right)} of 6 (predicted: at least 5), and Spearman ρ "
            f"between the snapshot's loss and SFT's change over the new seeds is {rho:.2f}") in own
    *_, right_all, rho_all, _ = read(old + new)
    assert f"Over all 14 seeds ρ is {rho_all:.2f} and the rule is right on {sum(right_all)} of 14" in own
    *_, right_old, rho_old, accuracy_old = read(old)
    assert all(right_old)  # the rule was drawn from seeds 1-8
    assert f"(ρ {accuracy_old:.2f}) and against it on the new seeds (ρ {accuracy:.2f})" in own
    assert f"eight seeds drew a rank correlation of {rho_old:.2f} (SFT alone)" in own
    twelve = next(s for r, s in zip(new, start, strict=True) if r["seed"] == 12)
    assert f"seed 12's {twelve:.4f} rounds to {twelve:.3f}" in own and twelve < 0.24
    assert (f"stage 10's test on 6 new seeds did not hold (SFT alone: ρ {rho:.2f}, the rule \"rises below 0.24\" "
            f"right on {sum(right)} of 6)") in text
