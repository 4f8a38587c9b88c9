"""The README's table of which held-out facts each method loses beside SFT is measured, not remembered: every row is
recomputed here from the committed results files by the report's own fact-pair view."""

from __future__ import annotations

from conftest import ROOT, results_folder

from interference.report.fact_pairs import fact_pair_summary
from interference.report.files import load_results

#: The fields two records of one training share whatever report wrote them: the held-out losses and answers at both
#: ends, acquisition and epochs.
SAME_RUN = ("held_loss_start", "held_loss_final", "held_losses_start", "held_losses_final", "held_correct_start",
            "held_correct_final", "new_acc", "epochs")

#: (results folder, method) for each row of the README's table, in its order.
ROWS = (
    ("world-default/forgetting-20-seeds", "self_distill"),
    ("world-default/forgetting-20-seeds", "ffn-only"),
    ("world-default/forgetting-20-seeds", "attention-only"),
    ("world-default/forgetting-20-seeds", "l2"),
    ("world-default/overlap-20-seeds", "uuid-sft"),
    ("world-default/remedies", "ewc"),
    ("world-default/remedies", "replay"),
    ("world-default/remedies", "lora"),
    ("world-default/remedies", "wise-ft"),
    ("smollm2-135m-gpu-size-cpu", "self_distill"),
    ("smollm2-135m-remedies-ewc-cpu/stage-11-all", "self_distill"),
    ("smollm2-135m-overlap-matched-cpu", "uuid-sft"),
)


def pairs() -> dict[tuple[str, str], dict]:
    """Each row's `fact_pair_summary` entry, by (folder, method)."""
    return {(folder, method): fact_pair_summary(load_results(results_folder(folder))["conditions"],
                                                ["sft", method], "sft")["methods"][method] for folder, method in ROWS}


def _share(s: dict) -> str:
    return f"{100 * s['lost_both'] / s['lost_other']:.0f} %"


def _times(s: dict) -> str:
    return f"{s['lost_both'] / s['lost_chance']:.1f}× chance"


def table_rows() -> list[str]:
    """The README's rows: folder, method, seeds, the facts it lost, SFT lost, both lost (its share) and by chance."""
    return [f"| `{folder}` | {method} | {s['answer_seeds']} | {s['lost_other']} | {s['lost_reference']} | "
            f"{s['lost_both']} ({_share(s)}) | {s['lost_chance']:.1f} |" for (folder, method), s in pairs().items()]


def test_the_readme_table_of_facts_lost_beside_sft_is_the_records(readme):
    lines = readme.splitlines()
    for row in table_rows():
        assert row in lines, row


def test_the_readme_reading_of_that_table_is_the_records(readme):
    text = " ".join(readme.split())
    p = pairs()
    world, big, cpu = (p[folder, "self_distill"] for folder in ("world-default/forgetting-20-seeds",
                                                                "smollm2-135m-gpu-size-cpu",
                                                                "smollm2-135m-remedies-ewc-cpu/stage-11-all"))
    assert (f"(on the world {_share(world)}, {_times(world)}; on SmolLM2 {_share(big)} and {_share(cpu)}, "
            f"{_times(big).split('×')[0]}× and {_times(cpu)})") in text
    assert f"FFN-only on the world does the same ({_share(p['world-default/forgetting-20-seeds', 'ffn-only'])})" in text
    replay, ewc = p["world-default/remedies", "replay"], p["world-default/remedies", "ewc"]
    assert f"nearly the same ones ({_share(replay)} and {_share(ewc)})" in text
    assert abs(replay["lost_other"] - replay["lost_reference"]) <= 0.1 * replay["lost_reference"]  # "about as many"
    assert p["world-default/remedies", "wise-ft"]["lost_both"] == p["world-default/remedies", "wise-ft"]["lost_other"]
    l2 = p["world-default/forgetting-20-seeds", "l2"]
    assert round(l2["lost_other"] / l2["lost_reference"]) == 3  # "three times as many"
    assert f"only {_share(l2)} of them SFT's ({_times(l2)})" in text
    lora, attention = p["world-default/remedies", "lora"], p["world-default/forgetting-20-seeds", "attention-only"]
    assert f"under half of their losses in SFT's ({_share(lora)} and {_share(attention)})" in text
    uuid, uuid_smol = p["world-default/overlap-20-seeds", "uuid-sft"], p["smollm2-135m-overlap-matched-cpu", "uuid-sft"]
    assert (f"lose {uuid['lost_other']} facts in 20 seeds on the world; on SmolLM2 {uuid_smol['lost_other']}, "
            f"{_share(uuid_smol)} of them SFT's") in text


def test_the_readme_example_prints_what_fact_pair_returns(readme):
    from interference.report.fact_pairs import fact_pair

    records = load_results(ROOT / "results" / "world-default" / "remedies")["conditions"]
    sft, sd = (next(r for r in records if (r["name"], r["seed"]) == (m, 0)) for m in ("sft", "self_distill"))
    p = fact_pair(sft, sd)
    assert (f'# {{"known": {p["known"]}, "lost_reference": {p["lost_reference"]}, "lost_other": {p["lost_other"]}, '
            f'"lost_both": {p["lost_both"]}, "lost_chance": {str(p["lost_chance"])[:4]}…}};') in readme


def test_the_worlds_fact_losses_run_is_forgettings_and_the_readme_reads_it(readme):
    import statistics

    from interference.report.fact_pairs import fact_pairs

    folder = ROOT / "results" / "world-default"
    own = " ".join((folder / "README.md").read_text(encoding="utf-8").split())
    records = load_results(folder / "forgetting-fact-losses")["conditions"]
    earlier = {(r["name"], r["seed"]): r for r in load_results(folder / "forgetting")["conditions"]}
    added = {"seconds", "held_loss_start", "held_loss_final", "held_losses_start", "held_losses_final"}
    for r in records:  # the check: the same trainings, field for field
        other = earlier[r["name"], r["seed"]]
        assert {k: v for k, v in r.items() if k not in added} == {k: v for k, v in other.items() if k not in added}
    pairs = [p for _, _, p in fact_pairs(records, ["sft", "self_distill"], "sft")]
    rhos = [p["change_rank_correlation"] for p in pairs]
    below = sum(p["median_change_other"] < p["median_change_reference"] for p in pairs)
    assert (len(pairs), sum(r > 0.5 for r in rhos), below) == (10, 10, 5)
    assert (f"above 0.5 on all 10 seeds ({min(rhos):.2f} to {max(rhos):.2f}, median {statistics.median(rhos):.2f}); "
            f"self-distillation's median fact's change is below SFT's on {below} of 10") in own
    medians = [p[k] for p in pairs for k in ("median_change_reference", "median_change_other")]
    assert f"(the medians are {min(medians):.4f} to {max(medians):.4f})" in own
    assert f"a median {statistics.median(p['other_lower'] for p in pairs):g} of 100 facts moved less" in own
    assert (f"(`world-default/forgetting-fact-losses`: ρ above 0.5 on {sum(r > 0.5 for r in rhos)} of 10 seeds, its "
            f"median fact's change below SFT's on {below} of 10;") in " ".join(readme.split())
    total = {k: sum(p[k] for p in pairs) for k in ("lost_reference", "lost_other", "lost_both", "lost_chance")}
    assert (f"it lost {total['lost_other']} facts to SFT's {total['lost_reference']}, {total['lost_both']} of them "
            f"SFT's too (chance {total['lost_chance']:.1f})") in own


def test_the_worlds_confidence_split_on_fresh_seeds_is_the_records(readme):
    import statistics

    from scipy.stats import binomtest

    from interference.report.fact_pairs import fact_pairs

    folder = ROOT / "results" / "world-default"
    own = " ".join((folder / "README.md").read_text(encoding="utf-8").split())
    records = load_results(folder / "forgetting-fact-losses-20-39")["conditions"]
    pairs = [(seed, p) for _, seed, p in fact_pairs(records, ["sft", "self_distill"], "sft")]
    confident, rest = ([p[k] for _, p in pairs] for k in ("share_confident", "share_rest"))
    counted = [c is not None and r is not None for c, r in zip(confident, rest, strict=True)]
    lower = sum(c < r for c, r in zip(confident, rest, strict=True))
    assert (len(pairs), sum(counted), lower) == (20, 20, 15)
    coin = binomtest(lower, 20, 0.5, alternative="greater").pvalue
    assert (f"lower on the confident half on {lower} of 20 seeds (predicted: at least 14; a fair coin does {lower} or "
            f"more {100 * coin:.0f} % of the time): a median {statistics.median(confident):.2f} of SFT's rise") in own
    spread = f"{min(confident):.2f}–{max(confident):.2f}"
    assert f"against {statistics.median(rest):.2f} on the rest (per seed {spread}" in own
    higher = [seed for seed, p in pairs if p["share_confident"] >= p["share_rest"]]
    assert f"on seeds {', '.join(map(str, higher[:-1]))} and {higher[-1]})" in own
    rhos = [p["change_rank_correlation"] for _, p in pairs]
    assert f"above 0.5 on {sum(r > 0.5 for r in rhos)} of 20 seeds ({min(rhos):.2f} to {max(rhos):.2f}" in own
    assert (f"median {statistics.median(confident):.2f} of SFT's loss rise on the confident half against "
            f"{statistics.median(rest):.2f} on the rest, less on the confident half on {lower} of 20") in \
        " ".join(readme.split())


def test_the_worlds_remedies_on_fresh_seeds_are_the_same_trainings_and_the_readmes_read_them(readme):
    from interference.report.fact_pairs import fact_pairs, pair_summary

    folder = ROOT / "results" / "world-default"
    own, text = " ".join((folder / "README.md").read_text(encoding="utf-8").split()), " ".join(readme.split())
    data = load_results(folder / "remedies-fact-losses-20-39")
    records = data["conditions"]
    earlier = {(r["name"], r["seed"]): r for r in load_results(folder / "forgetting-fact-losses-20-39")["conditions"]}
    same = [r for r in records if (r["name"], r["seed"]) in earlier]
    assert len(same) == 40 and all(r[k] == earlier[r["name"], r["seed"]][k] for r in same for k in SAME_RUN)
    methods = list(dict.fromkeys(r["name"] for r in records))
    summary = pair_summary(fact_pairs(records, methods, "sft"), "sft")["methods"]
    assert all(s["share_seeds"] == 20 for s in summary.values())  # "every seed of every method is counted"
    wise = summary["wise-ft"]
    assert (f"on the confident half on {wise['confident_lower']} of 20 seeds (predicted: at least 14)") in own
    assert (f"(a median {wise['share_confident']:.2f} on the confident half and {wise['share_rest']:.2f} on the rest, "
            f"some halves below 0)") in own
    rests = [p["share_rest"] for _, _, p in fact_pairs(records, ["sft", "wise-ft"], "sft")]
    assert min(rests) < 0
    for method in ("replay", "self_distill+ewc", "self_distill+replay", "self_distill+lora", "lora"):
        s = summary[method]
        assert f"{method} {s['share_confident']:.2f}, {s['share_rest']:.2f} ({s['confident_lower']}" in own, method
    ewc = summary["ewc"]
    rho = ewc["change_rank_correlation"]
    assert (f"ewc at the Laplace weight {ewc['share_confident']:.2f}, {ewc['share_rest']:.2f} "
            f"({ewc['confident_lower']}; it moves the facts as SFT does, ρ {rho:.2f})") in own
    assert f"replay does it too ({summary['replay']['confident_lower']} of 20)" in text
    assert f"did not decide, {wise['confident_lower']} of 20)" in text
    paired = {(p["condition"], p["minus"]): p for p in data["results"]["paired"] if p["measure"] == "held_acc_final"}
    gain = paired["self_distill", "sft"]
    interval = f"+{gain['difference']:.3f} [{gain['t_low']:+.3f}, {gain['t_high']:+.3f}]"
    assert f"self-distillation {interval} over SFT, and no remedy or combination beats it" in text
    assert data["headline"]["verdict"]["verdict"] == "reproduces"


def test_wise_ft_at_the_nearest_alpha_is_the_stated_control_and_the_readmes_read_it(readme):
    import statistics

    from interference.report.fact_pairs import fact_pairs, pair_summary

    folder = ROOT / "results" / "world-default"
    own, text = " ".join((folder / "README.md").read_text(encoding="utf-8").split()), " ".join(readme.split())
    remedies = {(r["name"], r["seed"]): r for r in load_results(folder / "remedies-fact-losses-20-39")["conditions"]}
    runs = {alpha: load_results(folder / "wise-ft-fact-losses-20-39" / f"alpha-{alpha}")["conditions"]
            for alpha in ("0.75", "0.9")}
    summaries = {}
    for alpha, records in runs.items():
        assert all(r[k] == remedies["sft", r["seed"]][k] for r in records if r["name"] == "sft" for k in SAME_RUN)
        summaries[alpha] = pair_summary(fact_pairs(records, ["sft", "wise-ft"], "sft"), "sft")["methods"]["wise-ft"]
        assert summaries[alpha]["share_seeds"] == 20
    sd = pair_summary(fact_pairs([r for r in remedies.values() if r["name"] in ("sft", "self_distill")],
                                 ["sft", "self_distill"], "sft"), "sft")["methods"]["self_distill"]
    nearest = min(summaries, key=lambda a: abs(summaries[a]["share_confident"] - round(sd["share_confident"], 2))
                  + abs(summaries[a]["share_rest"] - round(sd["share_rest"], 2)))
    near, far = summaries[nearest], summaries["0.9"]
    assert nearest == "0.75"
    assert (f"(median shares {near['share_confident']:.2f} on the confident half and {near['share_rest']:.2f} on the "
            f"rest, against its {sd['share_confident']:.2f} and {sd['share_rest']:.2f}; α 0.9: "
            f"{far['share_confident']:.2f} and {far['share_rest']:.2f})") in own
    assert (f"on the confident half on {near['confident_lower']} of 20 seeds (predicted: at least 14), "
            f"self-distillation on {sd['confident_lower']}. At α 0.9, {far['confident_lower']} of 20") in own
    sd_pairs = {s: p for _, s, p in fact_pairs(list(remedies.values()), ["sft", "self_distill"], "sft")}
    wise_pairs = {s: p for _, s, p in fact_pairs(runs["0.75"], ["sft", "wise-ft"], "sft")}
    gaps = [(sd_pairs[s]["share_rest"] - sd_pairs[s]["share_confident"],
             wise_pairs[s]["share_rest"] - wise_pairs[s]["share_confident"]) for s in sorted(sd_pairs)]
    assert (f"exceeds WiSE-FT's at α 0.75 on {sum(a > b for a, b in gaps)} of 20 seeds, medians "
            f"{statistics.median(a for a, _ in gaps):.2f} and {statistics.median(b for _, b in gaps):.2f}") in own
    wise = [r for r in runs["0.75"] if r["name"] == "wise-ft"]
    assert (f"it learns {statistics.mean(r['new_acc'] for r in wise):.2f} of the new facts to SFT's "
            f"{statistics.mean(r['new_acc'] for r in runs['0.75'] if r['name'] == 'sft'):.2f}, and loses "
            f"{near['lost_other']} held-out facts, {near['lost_both']} of them SFT's") in own
    assert (f"at the α whose shares are nearest (0.75: {near['share_confident']:.2f} and {near['share_rest']:.2f}) "
            f"keeps less on the confident half on {near['confident_lower']} of 20 of the same seeds") in text
