"""The README's remedies numbers are measured, not remembered: its tables and sentences on the remedies (the world's
run, its strength sweep, and SmolLM2's runs) are recomputed here from the committed results files."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_readme_numbers import RESULTS, ROOT, row_text  # the tests folder is on the path (pytest prepends it)

from interference.report.attribution import attribution_rows, attribution_summary
from interference.report.files import load_results
from interference.report.fisher import (
    fisher_rows,
    held_distance_ranking,
    taylor_fit,
    taylor_rows,
)
from interference.report.headline import mean_of
from interference.report.paired import interval_text, paired_difference, ratio


def remedies_rows(folder: Path = RESULTS / "remedies", references=("sft", "self_distill")) -> list[str]:
    """The README's table of a committed remedies run (default results/world-default/remedies), a row per method:
    acquisition, final held-out accuracy, and the paired differences from each of `references`."""
    data = load_results(folder)
    records, rows = data["conditions"], []
    for row in data["results"]["condition_summary"]:
        name = row["condition"]
        versus = [interval_text(paired_difference(records, name, other, "held_acc_final").t)
                  if name != other else "—" for other in references]
        cells = [f"{row[k]:.3f} [{row[k + '_low']:.3f}, {row[k + '_high']:.3f}]" for k in ("new_acc", "held_acc_final")]
        rows.append(f"| {name} | {cells[0]} | {cells[1]} | {' | '.join(versus)} |")
    return rows


def test_the_readme_states_the_committed_remedies_run(readme):
    data = load_results(RESULTS / "remedies")
    assert data["versions"]["numerics"] == "portable" and len(data["seeds"]) == 10
    for row in remedies_rows():
        assert row in readme
    assert f"verdict: **{data['headline']['verdict']['verdict']}**" in readme


def test_the_readme_states_the_real_model_remedies_run(readme):
    folder = ROOT / "results" / "smollm2-135m-remedies-cpu"
    data = load_results(folder)
    assert len(data["seeds"]) >= 3 and data["config"]["model"] == "smollm2-135m"
    assert f"### Remedies on SmolLM2 (CPU size, {len(data['seeds'])} seeds)" in readme
    for row in remedies_rows(folder):
        assert row in readme
    assert f"The report's verdict: **{data['headline']['verdict']['verdict']}**" in readme


def test_the_readme_states_the_real_model_lora_run(readme):
    folder = ROOT / "results" / "smollm2-135m-remedies-cpu-lora"
    data = load_results(folder)
    assert len(data["seeds"]) >= 3 and data["config"]["remedies"]["lora_lr"] == 1e-3
    assert f"LoRA at ten times the rate ({len(data['seeds'])} seeds)" in readme
    for row in remedies_rows(folder, references=("sft", "lora")):
        assert row in readme


def test_the_readme_states_where_each_remedys_forgetting_lands(readme):
    contrast = {row["condition"]: row for row in load_results(RESULTS / "remedies")["results"]["relation_contrast"]}

    for method in ("lora", "replay", "ewc", "self_distill"):
        row = contrast[method]
        assert (f"  - {method}: inside {row_text(row, 'inside_minus_reference')}, outside "
                f"{row_text(row, 'outside_minus_reference')}") in readme


def flat(text: str) -> str:
    """`text` on one line: the README's bullets and table notes wrap anywhere."""
    return " ".join(text.split())


def assert_same_runs(records: list[dict], reference: list[dict], fields: tuple[str, ...]) -> None:
    """Each record's `fields` equal those of `reference`'s record of the same method and seed (the same run)."""
    for record in records:
        other = next(c for c in reference if c["name"] == record["name"] and c["seed"] == record["seed"])
        assert all(record[k] == other[k] for k in fields), (record["name"], record["seed"])


def sci(value: float, digits: int = 1) -> str:
    """2.9e-6, as the README writes small numbers (Python writes 2.9e-06)."""
    mantissa, exponent = f"{value:.{digits}e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def strength_rows_text(folder: Path) -> list[str]:
    """The README's table of a committed strength sweep: per method run at several strengths, its mean epochs, the
    seeds that reached the target, acquisition, held-out accuracy, and the paired differences from sft and
    self_distill (as the report's strength table holds them)."""
    data = load_results(folder)
    rows = []
    for row in data["results"]["strengths"]:
        runs = [c for c in data["conditions"] if c["name"] == row["method"]]
        reached = sum(c["stopped"] == "target" for c in runs)
        rows.append(f"| {row['method']} | {row['epochs']:.1f} | {reached} of {len(runs)} | {row['acquisition']:.3f} | "
                    f"{row['held-out at the end']:.3f} | {row.get('held-out − sft', '—')} | "
                    f"{row.get('held-out − self_distill', '—')} |")
    return rows


def test_the_readme_states_the_world_strength_sweep(readme):
    folder = RESULTS / "remedies-strengths"
    data = load_results(folder)
    assert len(data["seeds"]) == 10 and data["results"]["pooled_from"][0]["versions"]["numerics"] == "portable"
    for row in strength_rows_text(folder):
        assert row in readme
    records = data["conditions"]
    assert (f"SFT takes {mean_of(records, 'sft', 'epochs'):.1f} epochs and ends at "
            f"{mean_of(records, 'sft', 'held_acc_final'):.3f}.") in readme
    assert f"still **{data['headline']['verdict']['verdict']}**" in readme
    fisher = next(t["rows"] for t in data["tables"] if (t.get("title") or "").startswith("How far each method"))
    fisher = {row["method"]: row for row in fisher}
    strengths = {row["method"]: row for row in data["results"]["strengths"]}
    distance = {m: sci(row["Σ F(θ − θ⁰)², median"]) for m, row in fisher.items()}
    assert f"a median of {distance['sft']} over seeds" in readme
    assert f"at λ 0.167 the term is about {sci(strengths['ewc']['EWC term / CE, median'], 0)} of the CE" in readme
    below = fisher["self_distill"]["below sft's (seeds)"]
    assert f"below SFT's on {below} seeds (median {distance['self_distill']} against {distance['sft']}" in readme
    both = paired_difference(records, "self_distill+ewc:1e8", "self_distill")
    assert (f"self_distill+ewc:1e8 ends {interval_text(both.t)} above self-distillation**" in readme
            and f"({mean_of(records, 'self_distill+ewc:1e8', 'new_acc'):.3f}, "
                f"{mean_of(records, 'self_distill+ewc:1e8', 'epochs'):.0f} epochs)" in readme)
    answers = {(a["question"], a["method"]): a for a in data["results"]["answers"]}
    assert all(a["answer"] == "no" for (q, _), a in answers.items() if q == "beats self_distill")


def test_the_readme_states_the_world_strength_sweeps_ratios(readme):
    data = load_results(RESULTS / "remedies-strengths")
    records, text = data["conditions"], flat(readme)

    def kept(method, other):
        return ratio(mean_of(records, method, "new_acc"), mean_of(records, other, "new_acc"))

    def epochs(method, other):
        return ratio(mean_of(records, method, "epochs"), mean_of(records, other, "epochs"))

    gain = {m: paired_difference(records, m, "sft").t.mean for m in ("ewc:1e6", "ewc:1e7")}
    assert f"above SFT at λ 1e6 ({kept('ewc:1e6', 'sft'):.2f}× its acquisition)" in text
    assert f"and {gain['ewc:1e7']:+.3f} at λ 1e7 ({kept('ewc:1e7', 'sft'):.2f}×)" in text
    assert (f"({mean_of(records, 'ewc:1e6', 'epochs'):.1f} and {mean_of(records, 'ewc:1e7', 'epochs'):.1f} against "
            f"SFT's {mean_of(records, 'sft', 'epochs'):.1f})") in text
    level = paired_difference(records, "ewc:1e7", "self_distill").t.mean
    assert (f"λ 1e7 is level with it ({level:+.3f}) at {kept('ewc:1e7', 'self_distill'):.2f}× its acquisition and "
            f"{epochs('ewc:1e7', 'self_distill'):.1f}× its epochs") in text.replace("−", "-")
    assert f"learns only {kept('ewc:1e8', 'self_distill'):.2f}× as many new facts" in text
    assert f"at {kept('self_distill+ewc:1e8', 'self_distill'):.2f}× its acquisition" in text
    four = paired_difference(records, "self_distill:4", "self_distill").t.mean
    assert (f"λ 4 changes nothing ({four:+.3f}) at {epochs('self_distill:4', 'self_distill'):.1f}× the epochs"
            in text)
    assert f"not learned in 40 epochs ({mean_of(records, 'self_distill:16', 'new_acc'):.3f})" in text


def test_the_readme_states_the_smollm2_ewc_strengths(readme):
    readme = flat(readme)
    folder = ROOT / "results" / "smollm2-135m-remedies-ewc-cpu"
    data = load_results(folder)
    assert data["seeds"] == [0, 1, 2] and data["config"]["model"] == "smollm2-135m"
    for row in strength_rows_text(folder):
        assert row in readme
    swings = paired_difference(data["conditions"], "ewc:10000", "sft").differences
    assert f"({', '.join(f'{d:+.2f}' for d in swings)} against SFT)".replace("-", "−") in readme
    epochs = [c["epochs"] for c in data["conditions"] if c["name"].startswith("ewc")]
    assert f"reached the target in {min(epochs)}–{max(epochs)}" in readme
    study = load_results(ROOT / "results" / "smollm2-135m-remedies-cpu")["conditions"]
    assert_same_runs([c for c in data["conditions"] if c["name"] in ("sft", "self_distill")], study,
                     ("held_correct_final", "new_correct_final", "curves", "epochs"))


def test_the_readmes_state_the_smollm2_ewc_stage_2(readme):
    readme = flat(readme)
    folder = ROOT / "results" / "smollm2-135m-remedies-ewc-cpu"
    own = (folder / "README.md").read_text(encoding="utf-8")
    data = load_results(folder / "stage-2")
    assert data["seeds"] == [1]
    runs = {c["name"]: c for c in data["conditions"]}
    held = {m: f"{r['held_acc_final']:.2f}" for m, r in runs.items()}
    distance = {m: sci(r["fisher_distance"]) for m, r in runs.items()}
    assert (f"held-out accuracy ends at {held['ewc:100000']} and {held['ewc:1e6']} against SFT's {held['sft']}, "
            f"although the weights move less in D_known's Fisher directions ({distance['ewc:100000']} and "
            f"{distance['ewc:1e6']} against {distance['sft']})") in readme
    sft = runs["sft"]
    for name, r in runs.items():
        gain = "—" if name == "sft" else f"{r['held_acc_final'] - sft['held_acc_final']:+.2f}"
        assert (f"| {name} | {r['epochs']} | {r['new_acc']:.2f} | {r['held_acc_final']:.2f} | {gain} | "
                f"{distance[name]} |") in own


def test_the_readme_states_the_world_held_out_fisher_distance(readme):
    text = flat(readme).replace("−", "-")
    folder = RESULTS / "remedies-held-fisher"
    data, sweep = load_results(folder), load_results(RESULTS / "remedies-strengths")["conditions"]
    records = data["conditions"]
    assert len(data["seeds"]) == 10 and {r["name"] for r in records} == {"sft", "self_distill", "ewc:1e6", "ewc:1e7"}
    # the same runs as the sweep's, now with D_held's distance
    assert_same_runs(records, sweep, ("held_correct_final", "curves", "epochs", "drift", "fisher_distance"))
    fisher = next(t["rows"] for t in data["tables"] if (t.get("title") or "").startswith("How far each method"))
    fisher = {row["method"]: row for row in fisher}
    below = {m: fisher[m]["held: below sft's (seeds)"] for m in ("self_distill", "ewc:1e6", "ewc:1e7")}
    median = {m: sci(row["held: Σ F(θ − θ⁰)², median"]) for m, row in fisher.items()}
    assert (f"below SFT's on {below['self_distill']} seeds for self-distillation, {below['ewc:1e6']} for ewc:1e6 and "
            f"{below['ewc:1e7']} for ewc:1e7 (medians {median['self_distill']}, {median['ewc:1e6']} and "
            f"{median['ewc:1e7']} against {median['sft']})") in text
    ranking = held_distance_ranking(records)  # the report's own measure; runs made since record it
    assert ranking["seeds"] == len(data["seeds"])
    assert (f"(Spearman ρ {ranking['mean']:.2f} on average, above 0 on {ranking['above_zero']} of "
            f"{ranking['seeds']} seeds)") in text
    assert (f"spans {int(ranking['orders'])} orders of magnitude and says nothing of the drop "
            f"(ρ {ranking['pooled']:.2f} pooled)") in text


#: What a world remedies rerun since the Taylor terms must repeat of the run before it.
TAYLOR_FIELDS = ("held_correct_final", "new_correct_final", "epochs", "drift", "update_norms", "held_fisher_distance",
                 "held_gradient_term", "held_loss_start", "held_loss_final")


def world_rerun(folder: str, reference: str, fields: tuple[str, ...]) -> dict:
    """A committed world remedies run (results/world-default/`folder`) over its 10 seeds, checked to repeat
    `reference`'s run in `fields` record by record."""
    data = load_results(RESULTS / folder)
    assert len(data["seeds"]) == 10
    assert_same_runs(data["conditions"], load_results(RESULTS / reference)["conditions"], fields)
    return data


def test_the_readme_states_the_world_taylor_picture_of_the_held_out_loss(readme):
    text = flat(readme).replace("−", "-")
    data = world_rerun("remedies-taylor", "remedies-held-fisher",
                       ("held_correct_final", "new_correct_final", "curves", "epochs", "drift", "fisher_distance",
                        "held_fisher_distance", "update_norms"))
    records, fit = data["conditions"], data["results"]["held_taylor_fit"]
    assert fit == taylor_fit(records)
    rows = {row["method"]: row for row in taylor_rows(records, ("sft", "self_distill", "ewc:1e6", "ewc:1e7"))}
    sft = rows["sft"]
    assert (f"L rose on {fit['rose']} of {fit['records']} records (SFT: a median {sft['its rise L − L⁰']:.3f} from "
            f"{sft['held-out loss at the start']:.4f} at the start)") in text
    assert f"ranks with the held-out accuracy's drop (ρ {fit['rho_accuracy_drop']:.2f})" in text
    assert f"predicts a median {fit['share_of_rise_second_order']:.2f} of a rise" in text
    assert all(row["first order g·Δθ"] < 0 for row in rows.values())
    assert (f"(SFT {sft['first order g·Δθ']:.3f}: to first order the update lowers L; it has the sign of the change "
            f"on only {fit['first_order_sign']} of {fit['records']} records)") in text
    assert (f"ranks the rise at ρ {fit['rho']:.2f} (the second-order term alone: {fit['rho_second_order']:.2f})"
            in text)


def test_the_readme_states_where_in_the_network_the_world_held_out_loss_rises(readme):
    text = flat(readme).replace("−", "-")
    data = world_rerun("remedies-by-layer", "remedies-taylor", TAYLOR_FIELDS)
    records, summary = data["conditions"], data["results"]["held_loss_by_layer"]
    assert summary == attribution_summary(records)
    assert (f"miss the measured change by a median {100 * summary['residual']:.1f} % of their total, at most "
            f"{100 * summary['residual_max']:.1f} %") in text
    sft = next(r for r in attribution_rows(records, ("sft",)))
    assert (f"Under SFT layer 0 carries a median {sft['layer 0']:.3f} of the {sft['L − L⁰']:.3f} rise (layer 1 "
            f"{sft['layer 1']:.3f}, the embeddings, final norm and unembedding {sft['other']:.3f})") in text
    leading = summary["leading"]
    assert list(leading) == ["layer 0", "other", "layer 1"]
    assert (f"layer 0 carries most of the change on {leading['layer 0']} of {summary['records']} records (the other "
            f"slots {leading['other']}, layer 1 {leading['layer 1']})") in text
    assert f"moved most on only {summary['most_moved']} of {summary['records']} records" in text

    def norms(method):
        rs = [r for r in records if r["name"] == method]
        return [f"{sum(r['update_norms'][s] for r in rs) / len(rs):.3f}" for s in ("layer 0", "layer 1")]

    (d0, d1), (s0, s1) = norms("self_distill"), norms("sft")
    assert f"(relative update norm {d0} and {d1} against {s0} and {s1})" in text
    shares = [{"name": r["name"], "seed": r["seed"], **r["held_loss_by_layer"]} for r in records]

    def diff(method, slot):
        return paired_difference(shares, method, "sft", slot)

    lower = diff("self_distill", "layer 0")
    assert (f"layer-0 share is lower by {-lower.t.mean:.3f} [{-lower.t.high:.3f}, {-lower.t.low:.3f}] (above SFT's "
            f"on {lower.n_positive} of 10 seeds)") in text
    assert all(diff("self_distill", s).t.mean < 0 for s in ("layer 0", "layer 1", "other"))
    assert (f"layer 0: {interval_text(diff('ewc:1e6', 'layer 0').t)} at λ 1e6, "
            f"{interval_text(diff('ewc:1e7', 'layer 0').t)} at 1e7") in text
    other = [diff(m, "other") for m in ("ewc:1e6", "ewc:1e7")]
    assert (f"swings by seed ({interval_text(other[0].t)} and {interval_text(other[1].t)}, above SFT's on "
            f"{other[0].n_positive} and {other[1].n_positive} of 10)") in text


def test_the_readme_states_which_parameter_groups_carry_the_world_held_out_loss(readme):
    text = flat(readme).replace("−", "-")
    data = world_rerun("remedies-by-group", "remedies-by-layer", TAYLOR_FIELDS)
    records, summary = data["conditions"], data["results"]["held_loss_by_group"]
    assert summary == attribution_summary(records, "held_loss_by_group")
    layers = {(r["name"], r["seed"]): r["held_loss_by_layer"]
              for r in load_results(RESULTS / "remedies-by-layer")["conditions"]}
    for r in records:  # the same per-layer shares, summed again
        assert r["held_loss_by_layer"] == pytest.approx(layers[r["name"], r["seed"]], abs=1e-12)
    sft = attribution_rows(records, ("sft",), "held_loss_by_group")[0]
    assert (f"under SFT the FFN weights carry a median {sft['ffn']:.3f} of the rise and the attention weights "
            f"{sft['attention']:.3f} (embeddings {sft['embeddings']:.3f}, norms {sft['norms']:.3f}, unembedding "
            f"{sft['unembedding']:.3f})") in text
    leading = summary["leading"]
    assert list(leading) == ["ffn", "attention", "embeddings"]
    assert (f"the FFN on {leading['ffn']} of {summary['records']} records, attention on {leading['attention']}, the "
            f"embeddings on {leading['embeddings']}") in text
    shares = [{"name": r["name"], "seed": r["seed"], **r["held_loss_by_group"]} for r in records]

    def diff(method, group):
        return interval_text(paired_difference(shares, method, "sft", group).t)

    assert (f"(attention {diff('self_distill', 'attention')}, FFN {diff('self_distill', 'ffn')} against SFT)"
            in text)
    assert f"(λ 1e7: {diff('ewc:1e7', 'attention')} and {diff('ewc:1e7', 'ffn')})" in text
    assert (f"sits in the input embeddings ({diff('ewc:1e6', 'embeddings')} and {diff('ewc:1e7', 'embeddings')})"
            in text)


EWC = ROOT / "results" / "smollm2-135m-remedies-ewc-cpu"


@pytest.fixture
def ewc_texts(readme):
    """The README and the SmolLM2 EWC run's own README, each on one line, minus signs written as hyphens."""
    return flat(readme).replace("−", "-"), flat((EWC / "README.md").read_text(encoding="utf-8")).replace("−", "-")


def test_the_readmes_state_the_smollm2_ewc_stage_3(ewc_texts):
    readme, own = ewc_texts
    folder = EWC
    data = load_results(folder / "stage-3")
    records = data["conditions"]
    assert data["seeds"] == [0, 1, 2, 3, 4] and data["config"]["model"] == "smollm2-135m"
    for row in strength_rows_text(folder / "stage-3"):
        assert row in readme and row in own
    swings = paired_difference(records, "ewc:1e6", "sft").differences
    assert f"swinging by seed ({', '.join(f'{d:+.2f}' for d in swings)})" in readme
    assert (f"at {mean_of(records, 'ewc:1e6', 'epochs'):.1f} epochs to SFT's {mean_of(records, 'sft', 'epochs'):.1f} "
            f"and {ratio(mean_of(records, 'ewc:1e6', 'new_acc'), mean_of(records, 'sft', 'new_acc')):.2f}×") in readme
    above = interval_text(paired_difference(records, "self_distill", "ewc:100000").t)
    over_sft = interval_text(paired_difference(records, "self_distill", "sft").t)
    assert f"ends above λ 1e5 ({above}) and SFT ({over_sft});" in readme
    assert f"the verdict: **{data['headline']['verdict']['verdict']}**" in own
    study = load_results(ROOT / "results" / "smollm2-135m-remedies-cpu")["conditions"]
    stage_2 = load_results(folder / "stage-2")["conditions"]
    rerun = load_results(folder / "stage-3" / "held-fisher-seed-1")["conditions"]
    same = ("held_correct_final", "new_correct_final", "curves", "epochs")
    assert_same_runs([r for r in records if r["name"] in ("sft", "self_distill") and r["seed"] >= 2], study, same)
    # the diagnostic rerun of seed 1 trains what stage 2 trained
    assert_same_runs(rerun, stage_2, (*same, "drift", "fisher_distance"))
    for record in [*(r for r in records if r["seed"] == 0), *rerun]:
        assert (f"| {record['seed']} | {record['name']} | {record['epochs']} | {record['held_acc_final']:.2f} | "
                f"{sci(record['fisher_distance'])} | {sci(record['held_fisher_distance'])} |") in own


def test_the_readmes_state_the_smollm2_ewc_stage_4(ewc_texts):
    readme, own = ewc_texts
    folder = EWC
    data = load_results(folder / "stage-4")
    records = data["conditions"]
    assert data["seeds"] == [0, 1, 2, 3, 4, 5, 6] and all(r.get("held_fisher_distance") for r in records)
    for row in strength_rows_text(folder / "stage-4"):
        assert row in readme and row in own
    stage_3 = load_results(folder / "stage-3")["conditions"]
    rerun = [r for r in records if r["seed"] in (2, 3, 4)]
    assert_same_runs(rerun, stage_3, tuple(k for k in stage_3[0] if k not in ("seconds", "held_fisher_distance")))
    study = load_results(ROOT / "results" / "smollm2-135m-remedies-cpu")["conditions"]
    assert_same_runs([r for r in records if r["name"] in ("sft", "self_distill") and 2 <= r["seed"] <= 5], study,
                     ("held_correct_final", "new_correct_final", "curves", "epochs"))
    pairs = (("ewc:100000", "sft"), ("ewc:1e6", "sft"), ("self_distill", "sft"), ("self_distill", "ewc:100000"))
    t = {pair: interval_text(paired_difference(records, *pair).t) for pair in pairs}
    assert (f"λ 1e5 ends {t['ewc:100000', 'sft']} and λ 1e6 {t['ewc:1e6', 'sft']}; self-distillation ends "
            f"{t['self_distill', 'sft']} above SFT and {t['self_distill', 'ewc:100000']} above λ 1e5") in readme
    fisher = {row["method"]: row for row in fisher_rows(records, ("sft", "self_distill", "ewc:100000", "ewc:1e6"))}
    below = {m: fisher[m]["held: below sft's (seeds)"] for m in ("self_distill", "ewc:100000", "ewc:1e6")}
    assert f"Fisher weighs on {below['ewc:100000']} seeds and forgets as much" in readme
    assert (f"held-out Fisher distance is below SFT's on {below['ewc:100000']} seeds (median "
            f"{sci(fisher['ewc:100000']['held: Σ F(θ − θ⁰)², median'])} against "
            f"{sci(fisher['sft']['held: Σ F(θ − θ⁰)², median'])}), λ 1e6's on {below['ewc:1e6']}, "
            f"self-distillation's on {below['self_distill']}") in own
    ranking = held_distance_ranking(records)
    within = (f"Spearman ρ {ranking['mean']:.2f} on average, above 0 on {ranking['above_zero']} of "
              f"{ranking['seeds']} seeds")
    assert within in readme and within in own and f"{ranking['pooled']:.2f} over all 28 records pooled" in own
    sft = [r for r in records if r["name"] == "sft"]
    rose = sum(r["held_acc_final"] > r["held_acc_start"] for r in sft)
    starts = [r["held_acc_start"] for r in sft]
    assert (f"answers {min(starts):.2f}–{max(starts):.2f} of the held-out facts, and SFT raises that on {rose} of "
            f"{len(sft)} seeds") in own
    assert f"the verdict: **{data['headline']['verdict']['verdict']}**" in own


def test_the_readmes_state_the_smollm2_taylor_addendum(ewc_texts):
    readme, own = ewc_texts
    folder = EWC
    data = load_results(folder / "stage-4" / "taylor")
    records = data["conditions"]
    assert data["seeds"] == [1] and data["results"]["held_taylor_fit"] == taylor_fit(records)
    rerun = load_results(folder / "stage-3" / "held-fisher-seed-1")["conditions"]
    assert_same_runs(records, rerun, tuple(k for k in rerun[0] if k != "seconds"))
    for r in records:
        assert (f"| {r['name']} | {r['held_acc_start']:.2f} → {r['held_acc_final']:.2f} | {r['held_loss_start']:.3f} | "
                f"{r['held_loss_final'] - r['held_loss_start']:.3f} | {r['held_gradient_term']:.2f} | "
                f"{sci(r['held_fisher_distance'] / 2)} |") in own
    finals, firsts = ([r[k] for r in records] for k in ("held_loss_final", "held_gradient_term"))
    assert all(f < r["held_loss_start"] for f, r in zip(finals, records, strict=True))  # the loss falls
    assert f"({records[0]['held_loss_start']:.3f} to {min(finals):.2f}–{max(finals):.2f})" in own
    assert f"first-order term predicts a fall of {-max(firsts):.1f}–{-min(firsts):.1f}" in own
    second = sorted(r["held_fisher_distance"] / 2 for r in records)
    assert f"second-order term {sci(second[0])} to {sci(second[-1])}" in own
    assert "Seed 1 alone (stage 4's addendum) had the loss falling under every method" in readme


def test_the_readmes_state_the_smollm2_taylor_picture_on_five_seeds(ewc_texts):
    readme, own = (text.replace("−", "-").replace("*", "") for text in ewc_texts)
    data = load_results(EWC / "stage-5")
    records, fit = data["conditions"], data["results"]["held_taylor_fit"]
    assert data["seeds"] == [1, 2, 3, 4, 5] and fit == taylor_fit(records)
    stage4 = load_results(EWC / "stage-4")["conditions"]
    assert_same_runs([r for r in records if r["seed"] > 1], stage4, tuple(k for k in stage4[0] if k != "seconds"))
    methods = ("sft", "self_distill", "ewc:100000", "ewc:1e6")
    rows = {row["method"]: row for row in taylor_rows(records, methods)}
    for m, row in rows.items():
        assert (f"| {m} | {row['seeds where it rose']} of {row['seeds']} | {row['held-out loss at the start']:.3f} | "
                f"{row['its rise L − L⁰']:.3f} | {row['first order g·Δθ']:.2f} | "
                f"{sci(row['second order ½ Σ F(Δθ)²'])} |") in own
    rose = f"rose on {fit['rose']} of {fit['records']} records"
    sft, sd = rows["sft"], rows["self_distill"]
    assert (f"{rose} (SFT on {sft['seeds where it rose']} of 5 seeds, self-distillation on "
            f"{sd['seeds where it rose']} of 5)") in readme
    assert f"follows the accuracy's drop (ρ {fit['rho_accuracy_drop']:.2f})" in readme
    assert f"accuracy's drop (Spearman ρ {fit['rho_accuracy_drop']:.2f}; the world: 0.71)" in own
    changes = [r["held_loss_final"] - r["held_loss_start"] for r in records]
    assert f"by {min(changes):.3f} to +{max(changes):.3f}" in own
    firsts = [r["held_gradient_term"] for r in records]
    assert all(f < 0 for f in firsts) and fit["first_order_sign"] == sum(c < 0 for c in changes)
    for text in (readme, own):
        assert f"negative on every record ({min(firsts):.2f} to {max(firsts):.2f}" in text
    assert f"only where the loss fell ({fit['first_order_sign']} of {fit['records']} records)" in own
    second = [r["held_fisher_distance"] / 2 for r in records]
    for text in (readme, own):
        assert f"second-order term ({sci(min(second))} to {sci(max(second))})" in text
        assert f"median {fit['share_of_rise_second_order']:.4f} of a rise" in text
        assert f"against it (ρ {fit['rho_second_order']:.2f})" in text
    assert f"the prediction as a whole ranks it at ρ {fit['rho']:.2f}" in own
