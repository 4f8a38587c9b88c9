"""The READMEs' reading of the runs that split forgetting by the new facts' relation (`relations-*` on the two worlds,
SmolLM2 with new facts of one relation) is measured, not remembered: every number is recomputed here from the
committed results (`interference.report.update_parts`, `interference.report.relations`)."""

from __future__ import annotations

import statistics

from conftest import results_folder
from test_readme_parts import METHODS, _assert_all_in, _flat, _gain, _parts, _readme, _shown

from interference.report.files import load_results
from interference.report.paired import between_runs, interval_text, paired_difference, t_interval
from interference.report.relations import inside_outside, relation_contrast
from interference.report.update_parts import part_seeds, part_summary, relation_seeds, relation_summary


def _relations(folder: str) -> tuple[list[dict], dict, dict, dict]:
    """The records, self-distillation's relation summary (`relation_summary`) and update-parts summary row, and the
    report's forgotten shares inside and outside the new facts' relation per condition (`relation_contrast`)."""
    records = load_results(results_folder(folder))["conditions"]
    by_relation = relation_summary(relation_seeds(records, ["self_distill"]))[0]
    sd = next(r for r in part_summary(part_seeds(records, METHODS)) if r["method"] == "self_distill")
    return records, by_relation, sd, {r["condition"]: r for r in relation_contrast(records, METHODS)}


def _share(row: dict, key: str) -> str:
    return _shown(f"{row[f'{key}_mean']:.3f} [{row[f'{key}_low']:.3f}, {row[f'{key}_high']:.3f}]")


def _fewer(row: dict, key: str) -> str:
    """A paired difference below 0, as "so many fewer": the interval's bounds negated."""
    return _shown(f"{-row[f'{key}_mean']:.3f} [{-row[f'{key}_high']:.3f}, {-row[f'{key}_low']:.3f}]")


def _kept(mine: dict, sft: dict) -> str:
    """Self-distillation's forgotten share as a fraction of SFT's, inside and outside the new facts' relation."""
    return f"{mine['inside_mean'] / sft['inside_mean']:.2f} and {mine['outside_mean'] / sft['outside_mean']:.2f}"


def test_the_world_readmes_reading_of_relations_180_219_is_the_records():
    text = _readme("world-default")
    records, rel, sd, shares = _relations("world-default/relations-180-219")
    gain = paired_difference(records, "self_distill", "sft", "held_acc_final")
    share = rel["shares"]
    difference = share["difference"]
    sft, mine, control = shares["sft"], shares["self_distill"], shares["reshuffled"]
    _assert_all_in((
        f"Self-distillation keeps {_gain(records, 'self_distill')} more held-out facts than SFT (ahead on "
        f"{gain.n_positive} of 40 seeds); the control {_gain(records, 'reshuffled')}.",
        f"(country) {_shown(rel['inside']['text'])}, below 0 on {rel['inside']['below']} of 40 seeds;",
        f"({_shown(rel['outside']['text'])}, below 0 on {rel['outside']['below']} of 40): gap "
        f"{_shown(rel['gap']['text'])}, below 0 on {rel['gap']['below']} of 40.",
        f"is {share['inside']:.2f} on the new facts' relation and {share['outside']:.2f} on the others: inside − "
        f"outside {_shown(format(difference['mean'], '+.2f'))} [{_shown(format(difference['low'], '+.2f'))}, "
        f"{_shown(format(difference['high'], '+.2f'))}]",
        f"in its place {_shown(sd['excess_vs_matched']['text'])}, below 0 on {sd['excess_vs_matched']['below']} of 40",
        f"SFT {_share(sft, 'inside')} and {_share(sft, 'outside')}; self-distillation {_share(mine, 'inside')} and "
        f"{_share(mine, 'outside')} (it forgets {_fewer(mine, 'inside_minus_reference')} fewer inside, "
        f"{_fewer(mine, 'outside_minus_reference')} fewer outside); the control {control['inside_mean']:.3f} and "
        f"{control['outside_mean']:.3f}.",
        "forgets nine times the share there",
        f"(it forgets {_kept(mine, sft)} of SFT's share, inside and outside)",
    ), text)
    assert round(sft["inside_mean"] / sft["outside_mean"]) == 9
    assert rel["inside"]["high"] < 0 and rel["gap"]["high"] < 0  # predictions 1 and 2 hold
    assert difference["low"] < 0 < difference["mean"]  # prediction 3 fails: the interval runs through 0


def test_the_readmes_relations_bullet_is_the_records(readme):
    _, rel, _, shares = _relations("world-default/relations-180-219")
    sft, mine, share = shares["sft"], shares["self_distill"], rel["shares"]
    difference = share["difference"]
    _assert_all_in((
        f"({sft['inside_mean']:.3f} of the held-out country facts forgotten, {sft['outside_mean']:.3f} of the others)",
        f"({_shown(rel['inside']['text'])} against {_shown(rel['outside']['text'])}; gap {_shown(rel['gap']['text'])})",
        f"it forgets {_kept(mine, sft)} of SFT's share",
        f"its loss rise is {share['inside']:.2f} and {share['outside']:.2f} of the control's step's (inside − outside "
        f"{_shown(format(difference['mean'], '+.2f'))} [{_shown(format(difference['low'], '+.2f'))}, "
        f"{_shown(format(difference['high'], '+.2f'))}], through 0)",
    ), _flat(readme))


def _signed_interval(interval: dict) -> str:
    return _shown(f"{interval['mean']:+.2f} [{interval['low']:+.2f}, {interval['high']:+.2f}]")


def test_the_readmes_reading_of_relations_180_219_on_the_amd_world_is_the_records(readme):
    text = _readme("world-default")
    intel = load_results(results_folder("world-default/relations-180-219"))["conditions"]
    records, rel, sd, shares = _relations("world-default/relations-180-219-amd")
    gain = paired_difference(records, "self_distill", "sft", "held_acc_final")
    share, sft, mine, control = rel["shares"], shares["sft"], shares["self_distill"], shares["reshuffled"]
    excess = sd["excess_vs_matched"]

    def moved(name: str, reference: str | None = None, measure: str = "held_acc_final") -> str:
        return _shown(interval_text(between_runs(intel, records, name, reference, measure).t))

    _assert_all_in((
        f"Self-distillation keeps {_gain(records, 'self_distill')} more held-out facts than SFT (ahead on "
        f"{gain.n_positive} of 40 seeds); the control {_gain(records, 'reshuffled')}.",
        f"is {_shown(rel['inside']['text'])} on the held-out facts of the new facts' relation (below 0 on "
        f"{rel['inside']['below']} of 40) and {_shown(rel['outside']['text'])} on the others: gap "
        f"{_shown(rel['gap']['text'])} (below 0 on {rel['gap']['below']} of 40)",
        f"is {share['inside']:.2f} on the new facts' relation and {share['outside']:.2f} on the others, inside − "
        f"outside {_signed_interval(share['difference'])}: wholly above 0",
        f"minus `relations-180-219`'s: {moved('self_distill', 'sft')} (`interference.report.paired.between_runs`)",
        f"SFT's held-out accuracy {moved('sft')}, its forgetting {moved('sft', measure='forgetting')}; "
        f"self-distillation's held-out accuracy {moved('self_distill')}, its forgetting "
        f"{moved('self_distill', measure='forgetting')}; held-out accuracy at the start "
        f"{moved('sft', measure='held_acc_start')}",
        f"SFT {_share(sft, 'inside')} and {_share(sft, 'outside')}; self-distillation {_share(mine, 'inside')} and "
        f"{_share(mine, 'outside')} ({_kept(mine, sft)} of SFT's); the control "
        f"{control['inside_mean']:.3f} and {control['outside_mean']:.3f}.",
        f"in its place) {_shown(excess['text'])}, below 0 on {excess['below']} of 40",
        "0.48 and 0.48 here", f"within {moved('self_distill', 'sft')} per seed",
    ), text)
    _assert_all_in((
        f"Self-distillation keeps {_gain(records, 'self_distill')} more held-out facts than SFT; per seed that is "
        f"{moved('self_distill', 'sft')} from the Intel world's figure.",
        f"({_shown(rel['inside']['text'])}, gap {_shown(rel['gap']['text'])}) and the forgotten shares are "
        f"{_kept(mine, sft)} of SFT's",
        f"the loss rise share is {share['inside']:.2f} against {share['outside']:.2f}, inside − outside "
        f"{_signed_interval(share['difference'])}",
    ), _flat(readme))
    assert gain.t.low > 0 and rel["inside"]["high"] < 0 and rel["gap"]["high"] < 0  # predictions 1, 2a, 2b hold
    assert share["difference"]["low"] > 0  # prediction 2c fails: the proportional lead is above 0 on this world
    machine = between_runs(intel, records, "self_distill", "sft").t
    assert machine.low < 0 < machine.high  # prediction 3 holds: no machine effect on the headline
    assert round(sft["inside_mean"] / sft["outside_mean"]) == 8 and _kept(mine, sft) == "0.48 and 0.48"


def test_the_readmes_magnitudes_across_the_two_worlds_are_the_records(readme):
    def steps(folder: str) -> dict[int, dict]:
        return {s["seed"]: s for s in _parts(folder)[3] if s["method"] == "self_distill"}

    intel, amd = steps("world-default/relations-180-219"), steps("world-default/relations-180-219-amd")

    def mean(rows: dict, key: str, bounds: bool = True) -> str:
        interval = t_interval([row[key] for row in rows.values()])
        return _shown(interval_text(interval) if bounds else f"{interval.mean:+.3f}")

    def moved(key: str) -> str:
        return _shown(interval_text(t_interval([amd[s][key] - intel[s][key] for s in intel])))

    _assert_all_in((
        f"self-distillation's step {mean(amd, 'new_on_top')} against {mean(intel, 'new_on_top')} (per seed "
        f"{moved('new_on_top')}), the control's step in its place {mean(amd, 'new_matched_on_top', False)} against "
        f"{mean(intel, 'new_matched_on_top', False)} (per seed {moved('new_matched_on_top')})",
        f"(self-distillation's {mean(amd, 'sideways_on_top', False)} against {mean(intel, 'sideways_on_top', False)}, "
        f"per seed {moved('sideways_on_top')}; the control's there {mean(amd, 'matched_on_top', False)} against "
        f"{mean(intel, 'matched_on_top', False)}, per seed {moved('matched_on_top')})",
    ), _readme("world-default"))
    assert (f"(self-distillation's {mean(amd, 'new_on_top', False)} against "
            f"{mean(intel, 'new_on_top', False)} on the same seeds)") in _flat(readme)
    assert t_interval([amd[s]["new_on_top"] - intel[s]["new_on_top"] for s in intel]).high < 0  # twice as large


def test_the_readmes_reading_of_relations_220_259_on_the_amd_world_is_the_records(readme):
    text = _readme("world-default")
    records, rel, sd, shares = _relations("world-default/relations-220-259-amd")
    gain = paired_difference(records, "self_distill", "sft", "held_acc_final")
    share, sft, mine, control = rel["shares"], shares["sft"], shares["self_distill"], shares["reshuffled"]
    _assert_all_in((
        f"is {share['inside']:.2f} on the new facts' relation and {share['outside']:.2f} on the others: inside − "
        f"outside {_signed_interval(share['difference'])}, through 0",
        f"is {_shown(rel['inside']['text'])} on the held-out facts of the new facts' relation (below 0 on "
        f"{rel['inside']['below']} of 40) and {_shown(rel['outside']['text'])} on the others: gap "
        f"{_shown(rel['gap']['text'])} (below 0 on {rel['gap']['below']} of 40)",
        f"Self-distillation keeps {_gain(records, 'self_distill')} more held-out facts than SFT (ahead on "
        f"{gain.n_positive} of 40 seeds); the control {_gain(records, 'reshuffled')}.",
        f"SFT {_share(sft, 'inside')} and {_share(sft, 'outside')}; self-distillation {_share(mine, 'inside')} and "
        f"{_share(mine, 'outside')} ({_kept(mine, sft)} of SFT's); the control "
        f"{control['inside_mean']:.3f} and {control['outside_mean']:.3f}.",
        f"measure 3 {_shown(sd['excess_vs_matched']['text'])}, below 0 on {sd['excess_vs_matched']['below']} of 40",
        f"and {_shown(format(share['difference']['mean'], '+.2f'))} in five runs",
        f"{_kept(mine, sft)} of SFT's share).",
    ), text)
    _assert_all_in((
        f"it is {_signed_interval(share['difference'])}, while the absolute lead holds again (gap "
        f"{_shown(rel['gap']['text'])}) and self-distillation forgets {_kept(mine, sft)} of SFT's share",
    ), _flat(readme))
    assert share["difference"]["low"] < 0 < share["difference"]["high"]  # prediction 1 fails
    assert rel["inside"]["high"] < 0 and rel["gap"]["high"] < 0  # prediction 2 holds
    assert _signed_interval(share["difference"]).startswith("−0.03")


def test_the_smollm2_readmes_reading_of_new_facts_of_one_relation_is_the_records(readme):
    text = _readme("smollm2-135m-new-p17-cpu")
    records, rel, sd, shares = _relations("smollm2-135m-new-p17-cpu")
    sft, mine = shares["sft"], shares["self_distill"]
    aim = sd["aim_vs_matched"]
    by_seed = {(r["name"], r["seed"]): r for r in records}
    seeds = sorted({r["seed"] for r in records})

    def inside(values: list, record: dict) -> list:
        return [v for v, relation in zip(values, record["held_relations"], strict=True) if relation == "P17"]

    known = [sum(inside(by_seed["sft", s]["held_correct_start"], by_seed["sft", s])) for s in seeds]
    falls = [statistics.fmean(f - s for f, s in zip(inside(r["held_losses_final"], r),
                                                    inside(r["held_losses_start"], r), strict=True))
             for r in records if r["seed"] in seeds[2:]]
    sft_gaps = [i - o for i, o in (inside_outside(r) for r in records if r["name"] == "sft")]
    _assert_all_in((
        f"Self-distillation keeps {_gain(records, 'self_distill')} more held-out facts than SFT (ahead on "
        f"{paired_difference(records, 'self_distill', 'sft', 'held_acc_final').n_positive} of 4 seeds), the control "
        f"{_gain(records, 'reshuffled')}.",
        f"than of the others on {sum(g > 0 for g in sft_gaps)} of 4 seeds: {_share(sft, 'inside')} against "
        f"{_share(sft, 'outside')}, inside − outside {_shown(format(sft['gap_mean'], '+.3f'))} "
        f"[{_shown(format(sft['gap_low'], '+.3f'))}, {_shown(format(sft['gap_high'], '+.3f'))}];",
        f"forgets {mine['inside_mean']:.3f} of them, {_fewer(mine, 'inside_minus_reference')} fewer than SFT (outside "
        f"{mine['outside_mean']:.3f}, {_fewer(mine, 'outside_minus_reference')} fewer);",
        f"is {_shown(rel['inside']['text'])} on the held-out P17 facts and {_shown(rel['outside']['text'])} on the "
        f"others (gap {_shown(rel['gap']['text'])}; each below 0 on {rel['gap']['below']} of 4 seeds)",
        f"answers {', '.join(map(str, known[:-1]))} and {known[-1]} of the held-out P17 facts",
        f"by {min(-f for f in falls):.1f} to {max(-f for f in falls):.1f} nats a fact under every method",
        f"{_shown(aim['text'])}, below on {aim['below']} of 4",
        f"its step changes the held-out loss by {_shown(sd['sideways_on_top']['text'])} and the new facts' by "
        f"{_shown(sd['new_on_top']['text'])}, the control's step there by {_shown(sd['matched_on_top']['text'])} and "
        f"{_shown(sd['new_matched_on_top']['text'])}",
        f"({sft['inside_mean'] / sft['outside_mean']:.1f} times the share",
    ), text)
    assert all(f < 0 for f in falls) and rel["shares"] is None  # the control's rise is not above 0 there
    assert sft["gap_mean"] > 0 and sum(g > 0 for g in sft_gaps) >= 3  # prediction 1
    assert mine["inside_minus_reference_mean"] < 0  # prediction 2
    assert rel["inside"]["mean"] < 0 and rel["gap"]["mean"] < 0  # prediction 3
    assert rel["inside"]["below"] == rel["outside"]["below"] == rel["gap"]["below"] == 3


def test_the_readmes_smollm2_relation_paragraph_is_the_records(readme):
    records, _, _, shares = _relations("smollm2-135m-new-p17-cpu")
    sft, mine = shares["sft"], shares["self_distill"]
    sft_gaps = [i - o for i, o in (inside_outside(r) for r in records if r["name"] == "sft")]
    _assert_all_in((
        f"SFT forgets {_share(sft, 'inside')} of the held-out P17 facts the snapshot knew and {_share(sft, 'outside')} "
        f"of the others (more inside on {sum(g > 0 for g in sft_gaps)} of 4 seeds); self-distillation "
        f"{mine['inside_mean']:.3f} and {mine['outside_mean']:.3f}, ahead of SFT by {_gain(records, 'self_distill')}",
    ), _flat(readme))
