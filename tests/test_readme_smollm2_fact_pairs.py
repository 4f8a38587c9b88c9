"""The README's numbers from the EWC study's stage 13 on SmolLM2 (does self-distillation spare the facts SFT hurts,
fact by fact) are measured, not remembered: recomputed here from the committed results files."""

from __future__ import annotations

import statistics

from conftest import results_folder
from test_readme_remedies import assert_same_runs
from test_readme_where_smollm2 import EWC, _texts

from interference.report.fact_losses import fact_changes, fact_loss_measures
from interference.report.fact_pairs import fact_pairs
from interference.report.files import load_results

CHECKED = ("held_loss_start", "held_loss_final", "held_correct_start", "held_correct_final", "new_acc", "epochs")


def _records() -> list[dict]:
    return load_results(EWC / "stage-13")["conditions"]


def stage13_rows() -> list[str]:
    """The README's per-seed table: the fact pair of self-distillation beside SFT."""
    return [f"| {seed} | {p['change_rank_correlation']:.2f} | {p['median_change_reference']:+.4f} | "
            f"{p['median_change_other']:+.4f} | {p['other_lower']} | {p['lost_reference']} | {p['lost_other']} | "
            f"{p['lost_both']} | {p['lost_chance']:.1f} |"
            for _, seed, p in fact_pairs(_records(), ["sft", "self_distill"], "sft")]


def _rest_below(records: list[dict], top: int = 10) -> int:
    """Seeds where self-distillation's mean change minus SFT's stays below 0 without the `top` facts that moved most
    under either method."""
    by = {(r["name"], r["seed"]): r for r in records}
    below = 0
    for seed in sorted({r["seed"] for r in records}):
        a, b = fact_changes(by["sft", seed]), fact_changes(by["self_distill", seed])
        moved = sorted(range(len(a)), key=lambda i: max(abs(a[i]), abs(b[i])), reverse=True)
        below += sum(b[i] - a[i] for i in moved[top:]) < 0
    return below


def _snapshot_losses(records: list[dict]) -> tuple[float, float]:
    """The median snapshot loss of the known facts both methods lost, and of those both kept, over every seed."""
    by = {(r["name"], r["seed"]): r for r in records}
    lost, kept = [], []
    for seed in sorted({r["seed"] for r in records}):
        a, b = by["sft", seed], by["self_distill", seed]
        for i, known in enumerate(a["held_correct_start"]):
            gone = (not a["held_correct_final"][i], not b["held_correct_final"][i])
            if known and gone in ((True, True), (False, False)):
                (lost if gone[0] else kept).append(a["held_losses_start"][i])
    return statistics.median(lost), statistics.median(kept)


def test_stage_13_is_the_same_runs_and_the_readme_reads_it(readme):
    own, text = _texts(readme)
    records = _records()
    assert sorted({r["seed"] for r in records}) == list(range(1, 15))
    earlier = [c for stage in ("stage-9", "stage-10", "stage-11") for c in load_results(EWC / stage)["conditions"]
               if c["name"] in ("sft", "self_distill")]
    assert_same_runs(records, earlier, CHECKED)  # the check: the same trainings as stages 9-11
    for row in stage13_rows():
        assert row.replace("−", "-") in own, row
    pairs = [p for _, _, p in fact_pairs(records, ["sft", "self_distill"], "sft")]
    rhos = [p["change_rank_correlation"] for p in pairs]
    below = sum(p["median_change_other"] < p["median_change_reference"] for p in pairs)
    assert (sum(r > 0.5 for r in rhos), below) == (14, 9)
    low, high, mid = min(rhos), max(rhos), statistics.median(rhos)
    assert f"above 0.5 on all 14 seeds ({low:.2f} to {high:.2f}, median {mid:.2f})" in own
    assert f"below SFT's on {below} of 14 (predicted: at least 11)" in own
    moved = statistics.median(p["other_lower"] for p in pairs)
    rose = {m: [fact_loss_measures(r) for r in records if r["name"] == m] for m in ("sft", "self_distill")}
    assert (f"a median {moved:g} of 100 facts moved less under self-distillation than under SFT; the median fact's "
            f"loss rose on {sum(x['median_change'] > 0 for x in rose['self_distill'])} of 14 seeds under "
            f"self-distillation and on {sum(x['median_change'] > 0 for x in rose['sft'])} under SFT") in own
    assert f"stays below 0 on {_rest_below(records)} of 14 seeds" in own
    lost, kept = _snapshot_losses(records)
    assert f"median snapshot loss {lost:.4f} against {kept:.4f}" in own
    total = {k: sum(p[k] for p in pairs) for k in ("lost_reference", "lost_other", "lost_both", "lost_chance")}
    assert (f"it lost {total['lost_other']} held-out facts to SFT's {total['lost_reference']}, {total['lost_both']} "
            f"of them SFT's too (chance {total['lost_chance']:.1f})") in own
    assert (f"Spearman ρ above 0.5 on all 14 seeds, median {mid:.2f}; its median fact's change below SFT's on "
            f"{below} of 14") in text
    assert f"({total['lost_both']} of its {total['lost_other']} lost facts SFT lost too)" in text
    assert f"stage 13 of the EWC study below: {sum(r > 0.5 for r in rhos)} of 14 and {below} of 14)" in text


def _held_gain(data: dict) -> dict:
    """The report's paired difference self-distillation − SFT in final held-out accuracy."""
    return next(d for d in data["results"]["paired"]
                if (d["condition"], d["minus"], d["measure"]) == ("self_distill", "sft", "held_acc_final"))


def stage14_rows(records: list[dict]) -> list[str]:
    """The stage-14 README table: per seed ρ, both held-out losses at the end and the confidence split's shares."""
    by = {(r["name"], r["seed"]): r for r in records}
    return [f"| {seed} | {p['change_rank_correlation']:.2f} | {by['sft', seed]['held_loss_final']:.4f} | "
            f"{by['self_distill', seed]['held_loss_final']:.4f} | {p['share_confident']:.2f} | {p['share_rest']:.2f} |"
            for _, seed, p in fact_pairs(records, ["sft", "self_distill"], "sft")]


def test_stage_14_repeats_stage_13_on_fresh_seeds_and_the_readme_reads_it(readme):
    own, _ = _texts(readme)
    records = load_results(EWC / "stage-14")["conditions"]
    assert sorted({r["seed"] for r in records}) == list(range(15, 23))  # seeds no earlier stage ran
    assert not {r["seed"] for r in records} & {r["seed"] for r in _records()}
    for row in stage14_rows(records):
        assert row in own, row
    pairs = [(seed, p) for _, seed, p in fact_pairs(records, ["sft", "self_distill"], "sft")]
    rhos = [p["change_rank_correlation"] for _, p in pairs]
    by = {(r["name"], r["seed"]): r for r in records}
    lower_loss = [s for s, _ in pairs if by["self_distill", s]["held_loss_final"] < by["sft", s]["held_loss_final"]]
    assert (sum(r > 0.5 for r in rhos), len(lower_loss)) == (8, 7)
    assert (f"above 0.5 on all 8 seeds ({min(rhos):.2f} to {max(rhos):.2f}, median {statistics.median(rhos):.2f}). "
            f"Self-distillation's held-out loss at the end is below SFT's on {len(lower_loss)} of 8") in own
    gain = _held_gain(load_results(EWC / "stage-14"))
    below = sum(p["median_change_other"] < p["median_change_reference"] for _, p in pairs)
    interval = f"+{gain['difference']:.3f} [{gain['t_low']:+.3f}, {gain['t_high']:+.3f}]"
    assert (f"{interval} over the 8 seeds, ahead on {gain['seeds_above_0']}; its median fact's change is below SFT's "
            f"on {below} of 8") in own.replace("−", "-")
    counted = [(p["share_confident"], p["share_rest"]) for _, p in pairs]
    assert all(c is not None and r is not None for c, r in counted)  # "every seed counted"
    lower = sum(c < r for c, r in counted)
    earlier = [(p["share_confident"], p["share_rest"]) for _, _, p in fact_pairs(_records(), ["sft", "self_distill"],
                                                                                 "sft")]
    assert (f"lower on the confident half on {lower} of 8 seeds (a median "
            f"{statistics.median(c for c, _ in counted):.2f} of SFT's rise") in own
    assert f"against {statistics.median(r for _, r in counted):.2f} on the rest; every seed counted); with stage 13, " \
           f"{lower + sum(c < r for c, r in earlier)} of 22" in own
    text = " ".join(readme.split())
    assert (f"ρ above 0.5 on all 8 (median {statistics.median(rhos):.2f}) and self-distillation's held-out loss at the "
            f"end below SFT's on {len(lower_loss)} of 8") in text
    assert f"(lower on {lower} of 8 seeds; {lower + sum(c < r for c, r in earlier)} of 22 with stage 13)" in text
    total = {k: sum(p[k] for _, p in pairs) for k in ("lost_reference", "lost_other", "lost_both", "lost_chance")}
    assert (f"it lost {total['lost_other']} facts to SFT's {total['lost_reference']}, {total['lost_both']} of them "
            f"SFT's too (chance {total['lost_chance']:.1f})") in own


def test_stages_13_and_14_pooled_are_their_records_and_the_readmes_read_them(readme):
    own, _ = _texts(readme)
    data = load_results(results_folder("smollm2-135m-remedies-ewc-cpu/stage-13-14"))
    pooled = {(r["name"], r["seed"]): r for r in data["conditions"]}
    parts = [r for stage in ("stage-13", "stage-14") for r in load_results(EWC / stage)["conditions"]]
    assert len(pooled) == len(parts) == 44 and all(pooled[r["name"], r["seed"]] == r for r in parts)
    gain = _held_gain(data)
    diffs = [pooled["self_distill", s]["held_acc_final"] - pooled["sft", s]["held_acc_final"] for s in range(1, 23)]
    ahead, level = sum(d > 1e-9 for d in diffs), sum(abs(d) <= 1e-9 for d in diffs)
    interval = f"+{gain['difference']:.3f} [{gain['t_low']:+.3f}, {gain['t_high']:+.3f}]"
    assert (f"over 22 seeds self-distillation - SFT in held-out accuracy is {interval} at 0.99 of SFT's acquisition, "
            f"ahead on {ahead} seeds, level on one and behind on one; the verdict, "
            f"*{data['headline']['verdict']['verdict']}*") in own
    assert (ahead, level) == (20, 1)
    assert f"held-out accuracy {interval} above SFT's, ahead on {ahead} of 22 seeds" in " ".join(readme.split())
