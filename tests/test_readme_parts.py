"""The READMEs' reading of the update-parts runs is measured, not remembered: every number is recomputed here from the
committed results by the report's update-parts view (`interference.report.update_parts`)."""

from __future__ import annotations

import statistics

from conftest import ROOT, results_folder

from interference.report.files import load_results
from interference.report.paired import interval_text, paired_difference
from interference.report.update_parts import (
    group_seeds,
    group_summary,
    part_seeds,
    part_summary,
)

METHODS = ("sft", "reshuffled", "self_distill")


def _shown(text: str) -> str:
    """A number as the READMEs print it, with a true minus sign."""
    return text.replace("-", "−")


def _signed(value: float) -> str:
    """A mean as the READMEs print it: three decimals, signed, with a true minus sign."""
    return _shown(f"{value:+.3f}")


def _flat(text: str) -> str:
    return " ".join(text.split())


def _readme(folder: str) -> str:
    """results/`folder`/README.md, its whitespace flattened."""
    return _flat((ROOT / "results" / folder / "README.md").read_text(encoding="utf-8"))


def _assert_all_in(sentences, text: str) -> None:
    for sentence in sentences:
        assert sentence in text, sentence


def _mine(seeds: list[dict]) -> list[dict]:
    return [s for s in seeds if s["method"] == "self_distill"]


def _parts(folder: str, only: range | None = None) -> tuple[list[dict], dict, dict, list[dict]]:
    """The records, self-distillation's and the control's summary rows, and the per-seed rows of one folder (of the
    seeds `only`, where given)."""
    records = [r for r in load_results(results_folder(folder))["conditions"] if only is None or r["seed"] in only]
    seeds = part_seeds(records, METHODS)
    rows = {row["method"]: row for row in part_summary(seeds)}
    return records, rows["self_distill"], rows["reshuffled"], seeds


def _gain(records: list[dict], method: str) -> str:
    return _shown(interval_text(paired_difference(records, method, "sft", "held_acc_final").t))


def _count(seeds: list[dict], method: str, measure: str, sign: int) -> int:
    return sum(sign * s[measure] > 0 for s in seeds if s["method"] == method)


def test_the_world_readmes_reading_of_parts_100_119_is_the_records():
    text = _readme("world-default")
    records, sd, control, seeds = _parts("world-default/parts-100-119")
    versus = sd["sideways_vs_control"]
    scales = {m: statistics.median(s["scale"] for s in seeds if s["method"] == m) for m in METHODS[1:]}
    expected = [
        f"Self-distillation keeps {_gain(records, 'self_distill')} more held-out facts than SFT; the control "
        f"{_gain(records, 'reshuffled')}.",
        f"Self-distillation's aim is {_shown(sd['aim']['text'])}",
        f"Minus the control's aim ({_shown(control['aim']['text'])}) it is {_shown(sd['aim_vs_control']['text'])}",
        f"raises the held-out loss by {_shown(sd['sideways_on_top']['text'])} (above 0 on "
        f"{_count(seeds, 'self_distill', 'sideways_on_top', 1)} of 20)",
        f"Its sideways share, {_shown(sd['sideways']['text'])}, is below the control's "
        f"({_shown(control['sideways']['text'])}) on {versus['below']} of 20 seeds, paired {_shown(versus['text'])}",
        f"lowers D_unknown's loss on {_count(seeds, 'self_distill', 'new_on_top', -1)} of 20 seeds, by "
        f"{_shown(sd['new_on_top']['text'])} (the control's on top: {_shown(control['new_on_top']['text'])})",
        f"median scale is {scales['self_distill']:.2f} (the control's {scales['reshuffled']:.2f})",
        f"Its along share is {_shown(sd['along']['text'])} against the control's {_shown(control['along']['text'])}",
        f"its sideways step alone raises the held-out loss by {_shown(sd['sideways_alone']['text'])}",
        f"raises the held-out loss by {_shown(sd['rest_held']['text'])}, "
        f"{sd['rest_held']['mean'] / sd['sideways_on_top']['mean']:.1f} times what",
    ]
    _assert_all_in(expected, text)
    assert sd["aim"]["low"] > 0 and sd["aim_vs_control"]["low"] < 0 < sd["aim_vs_control"]["high"]  # 1 and 2 hold
    assert sd["sideways_on_top"]["low"] > 0 and versus["below"] >= 11  # 3 and 4 hold
    assert sd["rest_held"]["mean"] > 5 * sd["sideways_on_top"]["mean"]  # "less than a fifth"


def test_the_readmes_parts_bullet_is_the_records(readme):
    text = _flat(readme)
    _, sd, control, _ = _parts("world-default/parts-100-119")
    _assert_all_in((f"(aim {_shown(sd['aim']['text'])}, against the control's {_shown(control['aim']['text'])})",
                    f"held-out loss by {_shown(sd['sideways_on_top']['text'])} and lowers the new facts' by "
                    f"{_shown(sd['new_on_top']['text'])}",
                    f"(paired {_shown(sd['sideways_vs_control']['text'])})"), text)


def test_the_world_readmes_reading_of_price_120_139_is_the_records(readme):
    world = _readme("world-default")
    main = _flat(readme)
    records, sd, control, seeds = _parts("world-default/price-120-139")
    mine = _mine(seeds)
    lowered = [s for s in mine if s["sideways_on_top"] < 0]
    largest = sorted(mine, key=lambda s: s["excess"])[:4]
    deepest = _shown(f"{min(s['sideways_on_top'] for s in lowered):+.3f}")
    median = _shown(f"{statistics.median(s['excess'] for s in mine):+.3f}")
    _assert_all_in((
        f"Self-distillation keeps {_gain(records, 'self_distill')} more held-out facts than SFT; the control "
        f"{_gain(records, 'reshuffled')}.",
        f"Self-distillation's mean excess is {_shown(sd['excess']['text'])}",
        f"It is below 0 on {sum(s['excess'] < 0 for s in mine)} of 20 seeds.",
        f"The control's excess is {_shown(control['excess']['text'])}.",
        f"(median scale {statistics.median(s['scale'] for s in mine):.2f})",
        f"loss by {_shown(sd['new_on_top']['text'])}, {sd['new_on_top']['mean'] / sd['rest_new']['mean']:.2f} of what "
        f"SFT's remaining step along its direction lowers it by ({_shown(sd['rest_new']['text'])})",
        f"changes the held-out loss by {_shown(sd['sideways_on_top']['text'])} against that step's "
        f"{_shown(sd['rest_held']['text'])}",
        f"on {len(lowered)} seeds the sideways step lowers the held-out loss on top (down to "
        f"{deepest})",
        f"the median is {median}",
        f"aim {_shown(sd['aim']['text'])}, above the control's by {_shown(sd['aim_vs_control']['text'])}",
        f"(above 0 on {sum(s['sideways_on_top'] > 0 for s in mine)} of 20: there, prediction 3 would not have held)",
        f"sideways share below the control's on {sd['sideways_vs_control']['below']} of 20",
        f"D_unknown lower on top on {sum(s['new_on_top'] < 0 for s in mine)} of 20",
    ), world)
    assert all(s["sideways_on_top"] < 0 for s in largest)  # "those seeds carry the four largest excesses"
    _assert_all_in((
        f"lowers the new facts' loss by {_shown(sd['new_on_top']['text'])} and SFT's own remaining step by "
        f"{_shown(sd['rest_new']['text'])}",
        f"the held-out loss moves by {_shown(sd['sideways_on_top']['text'])} on the first way and "
        f"{_shown(sd['rest_held']['text'])} on the second",
        f"pro rata: {_shown(sd['excess']['text'])}, below 0 on {sum(s['excess'] < 0 for s in mine)} of 20 seeds (the "
        f"control's {_shown(control['excess']['text'])})",
    ), main)


def _smollm2(only: range | None = None) -> tuple:
    """SmolLM2's parts folder (of the seeds `only`): the records, self-distillation's and the control's rows, the
    per-seed rows, self-distillation's, the median scales and the mean aims as printed."""
    records, sd, control, seeds = _parts("smollm2-135m-parts-cpu", only)
    scales = {m: statistics.median(s["scale"] for s in seeds if s["method"] == m) for m in METHODS[1:]}
    aims = tuple(_shown(f"{row['aim']['mean']:+.3f}") for row in (sd, control))
    return records, sd, control, seeds, _mine(seeds), scales, aims


def test_the_smollm2_readmes_reading_of_its_first_four_seeds_is_the_records():
    from interference.report.headline import mean_of

    records, sd, control, seeds, mine, scales, _ = _smollm2(range(27, 31))
    epochs = sorted({r["epochs"] for r in records if r["name"] in ("sft", "self_distill")})
    new = _shown(sd["new_on_top"]["text"])
    _assert_all_in((
        f"Self-distillation keeps {_gain(records, 'self_distill')} more held-out facts than SFT, the control "
        f"{_gain(records, 'reshuffled')}; self-distillation and SFT each train {epochs[0]}–{epochs[-1]} epochs.",
        f"aim is above 0 on {sum(s['aim'] > 0 for s in mine)} of 4 seeds (mean {_shown(sd['aim']['text'])})",
        f"Minus the control's aim ({_shown(control['aim']['text'])}) it is {_shown(sd['aim_vs_control']['text'])}",
        f"raises the held-out loss on {sum(s['sideways_on_top'] > 0 for s in mine)} of 4 seeds "
        f"({_shown(sd['sideways_on_top']['text'])})",
        f"Its sideways share is below the control's on {sd['sideways_vs_control']['below']} of 4 seeds.",
        f"it lowers D_unknown's loss on {sum(s['new_on_top'] < 0 for s in mine)} of 4 seeds ({new})",
        f"median scale is {scales['self_distill']:.2f} (the control's {scales['reshuffled']:.2f})",
        f"lowers D_unknown's loss by {_shown(sd['rest_new']['text'])} and raises the held-out loss by "
        f"{_shown(sd['rest_held']['text'])}; excess {_shown(sd['excess']['text'])} (below 0 on {sd['cheaper']} of 4)",
    ), _readme("smollm2-135m-parts-cpu"))
    assert sd["aim_vs_control"]["high"] < 0 and len(mine) == 4 and mean_of(records, "sft", "epochs") <= 4


def test_the_smollm2_readings_of_all_eight_seeds_are_the_records(readme):
    records, sd, control, seeds, mine, scales, (aim, control_aim) = _smollm2()
    later = _parts("smollm2-135m-parts-cpu", range(31, 35))[3]
    theirs = {s["seed"]: s["aim"] for s in later if s["method"] == "reshuffled"}
    below = sum(s["aim"] < theirs[s["seed"]] for s in _mine(later))
    epochs = sorted({r["epochs"] for r in records if r["name"] in ("sft", "self_distill")})
    paired, new = _shown(sd["aim_vs_control"]["text"]), _shown(sd["new_on_top"]["text"])
    _assert_all_in((
        f"On seeds 31–34 self-distillation's aim is below the control's on {below} of 4.",
        f"Over all eight seeds, its aim minus the control's is {paired}.",
        f"Self-distillation's aim is {_shown(sd['aim']['text'])} (above 0 on {sum(s['aim'] > 0 for s in mine)} of 8), "
        f"the control's {_shown(control['aim']['text'])}",
        f"raises the held-out loss on {sum(s['sideways_on_top'] > 0 for s in mine)} of 8 "
        f"({_shown(sd['sideways_on_top']['text'])}) and lowers D_unknown's on "
        f"{sum(s['new_on_top'] < 0 for s in mine)} of 8 ({new})",
        f"sideways share is below the control's on {sd['sideways_vs_control']['below']} of 8; excess "
        f"{_shown(sd['excess']['text'])}. Median scale {scales['self_distill']:.2f} (the control's "
        f"{scales['reshuffled']:.2f})",
        f"Self-distillation keeps {_gain(records, 'self_distill')} more held-out facts than SFT, the control "
        f"{_gain(records, 'reshuffled')}; self-distillation and SFT train {epochs[0]}–{epochs[-1]} epochs.",
    ), _readme("smollm2-135m-parts-cpu"))
    assert below >= 3 and sd["aim_vs_control"]["high"] < 0  # both predictions hold
    _assert_all_in((f"(median scale {scales['self_distill']:.2f})", f"(D_unknown's loss {new})",
                    f"(aim {aim} against the control's {control_aim}, paired {paired})"), _flat(readme))


def test_the_world_readmes_reading_of_matched_140_159_is_the_records():
    text = _readme("world-default")
    records, sd, control, seeds = _parts("world-default/matched-140-159")
    mine = _mine(seeds)
    factor = statistics.median(r["sft_parts"]["matched"]["factor"] for r in records if r["name"] == "self_distill")
    aim, new, excess, on_top = (sd[f"{m}_vs_matched"] for m in ("aim", "new_on_top", "excess", "sideways_on_top"))
    _assert_all_in((
        f"Self-distillation keeps {_gain(records, 'self_distill')} more held-out facts than SFT; the control "
        f"{_gain(records, 'reshuffled')}.",
        f"rescaled by a median factor of {factor:.2f}",
        f"is {_shown(aim['text'])} (below on {aim['below']} of 20)",
        f"({_shown(sd['aim_matched']['text'])} there, {_shown(control['aim']['text'].split(' ')[0])} at its own)",
        f"lowers D_unknown's loss on top on {sum(s['new_matched_on_top'] < 0 for s in mine)} of 20 seeds, by "
        f"{_shown(sd['new_matched_on_top']['text'])} (self-distillation's own {_shown(sd['new_on_top']['text'])}; "
        f"paired {_shown(new['text'])})",
        f"excess there is **{_shown(excess['text'])}**, below 0 on {excess['below']} of 20",
        f"raises the held-out loss on top by {_shown(sd['matched_on_top']['text'])}, self-distillation's by "
        f"{_shown(sd['sideways_on_top']['text'])} (paired {_shown(on_top['text'])}, below on {on_top['below']} of 20)",
        f"the control's excess there is {_shown(sd['matched_excess']['text'])}",
        f"self-distillation's excess {_shown(sd['excess']['text'])}, below 0 on {sd['cheaper']} of 20; the control's "
        f"at its own place {_shown(control['excess']['text'])}",
        f"raises the held-out loss by {sd['sideways_on_top']['mean'] / sd['matched_on_top']['mean']:.2f} of what that "
        "step does",
    ), text)
    assert aim["low"] < 0 and sum(s["new_matched_on_top"] < 0 for s in mine) >= 16  # predictions 1 and 2 hold
    assert excess["high"] < 0  # prediction 3 fails: the interval lies below 0


def test_the_readmes_matched_bullet_is_the_records(readme):
    _, sd, _, _ = _parts("world-default/matched-140-159")
    excess = sd["excess_vs_matched"]
    _assert_all_in((
        f"({_shown(sd['new_matched_on_top']['text'])} on top, self-distillation's "
        f"{_shown(sd['new_on_top']['text'])})",
        f"held-out loss by {_shown(sd['matched_on_top']['text'])} against self-distillation's "
        f"{_shown(sd['sideways_on_top']['text'])}",
        f"excess minus the control's there {_shown(excess['text'])}, below 0 on {excess['below']} of 20 seeds",
        f"(aim {_shown(sd['aim']['text'].split(' ')[0])} and {_shown(sd['aim_matched']['text'].split(' ')[0])})",
    ), _flat(readme))


def test_the_world_readmes_reading_of_groups_160_179_is_the_records():
    text = _readme("world-default")
    records, sd, _, seeds = _parts("world-default/groups-160-179")
    rows = group_seeds(records, METHODS)
    groups = {r["group"]: r for r in group_summary(rows) if r["method"] == "self_distill"}
    names = {"embeddings": "embeddings", "attention": "attention", "ffn": "FFN"}
    expected = [f"Self-distillation keeps {_gain(records, 'self_distill')} more held-out facts than SFT; the control "
                f"{_gain(records, 'reshuffled')}.",
                f"The whole step's: {_shown(sd['excess_vs_matched']['text'])} "
                f"({sd['excess_vs_matched']['below']} of 20)"]
    for group, name in names.items():
        versus = groups[group]["excess_vs_matched"]
        expected.append(f"{name} {_shown(versus['text'])}")
        assert versus["high"] < 0, group  # predictions 1 and 2
    for group, row in groups.items():
        label = {"ffn": "FFN"}.get(group, group)
        expected.append(f"| {label} | {_shown(row['on_top']['text'])}; {_shown(row['new_on_top']['text'])} | "
                        f"{_shown(row['matched_on_top']['text'])}; {_shown(row['new_matched_on_top']['text'])} |")
    expected.append(f"| whole step | {_shown(sd['sideways_on_top']['text'])}; {_shown(sd['new_on_top']['text'])} | "
                    f"{_shown(sd['matched_on_top']['text'])}; {_shown(sd['new_matched_on_top']['text'])} |")
    mine = [r for r in rows if r["method"] == "self_distill"]
    summed = {key: _signed(statistics.fmean(sum(r[key] for r in mine if r["seed"] == s["seed"]) for s in _mine(seeds)))
              for key in ("on_top", "new_on_top", "matched_on_top", "new_matched_on_top")}
    whole = {key: _signed(sd[key]["mean"]) for key in ("sideways_on_top", "new_on_top", "matched_on_top",
                                                        "new_matched_on_top")}
    expected += [f"lowers the new facts' loss by {summed['new_on_top']} (the whole step {whole['new_on_top']}) and "
                 f"raises the held-out loss by {summed['on_top']} (the whole {whole['sideways_on_top']})",
                 f"the control's step, by {summed['new_matched_on_top']} and {summed['matched_on_top']} (the whole "
                 f"{whole['new_matched_on_top']} and {whole['matched_on_top']})"]
    _assert_all_in(expected, text)
    assert sd["excess_vs_matched"]["high"] < 0  # prediction 3


def test_the_readmes_groups_bullet_is_the_records(readme):
    records, _, _, seeds = _parts("world-default/groups-160-179")
    rows = [r for r in group_seeds(records, METHODS) if r["method"] == "self_distill"]
    groups = {r["group"]: r for r in group_summary(rows)}
    summed = {key: _signed(statistics.fmean(sum(r[key] for r in rows if r["seed"] == s["seed"]) for s in _mine(seeds)))
              for key in ("new_on_top", "new_matched_on_top")}
    sd = next(r for r in part_summary(seeds) if r["method"] == "self_distill")
    _assert_all_in((
        f"there is {_shown(groups['embeddings']['excess_vs_matched']['text'])} in the embeddings, "
        f"{_shown(groups['attention']['excess_vs_matched']['text'])} in the attention and "
        f"{_shown(groups['ffn']['excess_vs_matched']['text'])} in the FFN",
        f"(summed over the groups {summed['new_on_top']}, the whole step {_signed(sd['new_on_top']['mean'])})",
        f"({summed['new_matched_on_top']} summed, {_signed(sd['new_matched_on_top']['mean'])} whole)",
    ), _flat(readme))


def test_the_smollm2_readmes_reading_of_the_matched_control_is_the_records(readme):
    text = _readme("smollm2-135m-matched-cpu")
    records, sd, control, seeds = _parts("smollm2-135m-matched-cpu")
    mine = _mine(seeds)
    aim = sd["aim_vs_matched"]
    above = sum(s["aim_matched"] > 0 for s in mine)
    scales = {m: statistics.median(s["scale"] for s in seeds if s["method"] == m) for m in METHODS[1:]}
    factor = statistics.median(r["sft_parts"]["matched"]["factor"] for r in records if r["name"] == "self_distill")
    _assert_all_in((
        f"Self-distillation keeps {_gain(records, 'self_distill')} more held-out facts than SFT, the control "
        f"{_gain(records, 'reshuffled')}",
        f"on {aim['below']} of 4 seeds (paired {_shown(aim['text'])}; its aim {_shown(sd['aim']['text'])}, the "
        f"control's step there {_shown(sd['aim_matched']['text'])})",
        f"has an aim above 0 on {above} of 4 seeds",
        f"median scale is {scales['self_distill']:.2f} (the control's {scales['reshuffled']:.2f})",
        f"median factor of {factor:.2f}",
        f"self-distillation's own step changes the held-out loss by {_shown(sd['sideways_on_top']['text'])} and the "
        f"new facts' by {_shown(sd['new_on_top']['text'])}; the control's step there by "
        f"{_shown(sd['matched_on_top']['text'])} and {_shown(sd['new_matched_on_top']['text'])}",
        f"Excess: self-distillation's {_shown(sd['excess']['text'])}, the control's step there "
        f"{_shown(sd['matched_excess']['text'])}",
    ), text)
    assert aim["below"] >= 3 and above >= 3  # both predictions hold
    earlier = _parts("smollm2-135m-parts-cpu")[1]["aim_vs_control"]
    assert earlier["below"] + sd["aim_vs_control"]["below"] == earlier["n"] + sd["aim_vs_control"]["n"] == 12
    _assert_all_in((f"(median scale {scales['self_distill']:.2f})",
                    f"(aim {_shown(sd['aim_matched']['text'])}, above 0 on {above} of 4)",
                    f"below it on {aim['below']} of 4 (paired {_shown(aim['text'])})"), _flat(readme))
