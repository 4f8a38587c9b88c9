"""The README's numbers are measured, not remembered: its embedded-world headline rows are recomputed here from the
committed results files (results/world-default/), and the runs under one and two threads hold the same records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import results_folder

from interference.report.files import load_results
from interference.report.headline import mean_of
from interference.report.paired import interval_text, paired_difference, ratio
from interference.report.relations import interval_of

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "world-default"
SMOLLM2_OVERLAP = ROOT / "results" / "smollm2-135m-overlap-cpu"
SMOLLM2_OVERLAP_MATCHED = ROOT / "results" / "smollm2-135m-overlap-matched-cpu"
#: The committed runs of the default forgetting study: folder -> torch threads it ran with.
FORGETTING_RUNS = {"forgetting": 1, "forgetting-2-threads": 2, "forgetting-seeds-10-19": 1,
                   "forgetting-fact-losses-20-39": 1, "forgetting-40-seeds": 1}


def headline_row(folder: str) -> str:
    """The README's table row of one committed forgetting run, computed from its results.json."""
    data = load_results(results_folder(f"world-default/{folder}"))
    records = data["conditions"]
    gain = paired_difference(records, "self_distill", "sft", "held_acc_final")
    drops = ratio(mean_of(records, "sft", "absolute_drop"), mean_of(records, "self_distill", "absolute_drop"))
    ahead = sum(d >= 0 for d in gain.differences)
    seeds = data["seeds"]
    return (f"| `{folder}` | {seeds[0]}–{seeds[-1]} | {FORGETTING_RUNS[folder]} | {interval_text(gain.t)} | "
            f"{ahead} of {len(seeds)} | {drops:.2f} | {data['headline']['verdict']['verdict']} |")


@pytest.mark.parametrize("folder", list(FORGETTING_RUNS))
def test_the_readme_states_each_committed_forgetting_run(folder, readme):
    assert headline_row(folder) in readme


@pytest.mark.parametrize("folder", [*FORGETTING_RUNS, "forgetting-20-seeds", "overlap", "tracing"])
def test_committed_runs_used_the_portable_numerics_and_name_their_machine(folder):
    data = load_results(results_folder(f"world-default/{folder}"))
    # a pooled report's own versions are the pooling process's: the runs that trained its seeds are what count
    for ran in [s["versions"] for s in data["results"].get("pooled_from", [])] or [data["versions"]]:
        assert ran["numerics"] == "portable"
        assert ran["torch"].startswith("2.13.0")


def run_fields(record: dict, local: tuple[str, ...] = ("seconds",)) -> dict:
    """A condition record without the fields that belong to the process that ran it (wall time by default), so that
    records of the same run made in different sessions compare equal."""
    return {k: v for k, v in record.items() if k not in local}


def test_one_and_two_threads_gave_the_same_verdict_and_the_same_sft_and_self_distill_records():
    one, two = (load_results(RESULTS / f) for f in ("forgetting", "forgetting-2-threads"))
    assert one["headline"]["verdict"] == two["headline"]["verdict"]

    def records(data, names=("sft", "self_distill")):  # `forgetting` was re-run when records gained relations
        local = ("seconds", "machine", "held_relations", "new_relations")
        return [run_fields(r, local) for r in data["conditions"] if r["name"] in names]

    assert records(one) == records(two)


def test_the_readme_states_the_demo_verdict(readme):
    data = load_results(RESULTS / "overlap")
    assert f"**localized interference {data['headline']['verdict']['verdict']}**" in readme


def test_the_readme_states_the_demo_slope_within_seed_and_relation(readme):
    fit = load_results(RESULTS / "overlap")["results"]["overlap_vs_forgetting"][0]["logistic_within"]
    assert f"slope {fit['slope']:.2f} [{fit['ci_low']:.2f}, {fit['ci_high']:.2f}], p = {fit['p_value']:.3f}" in readme
    assert f"the {fit['strata_used']} of {fit['strata']} seed × relation strata" in readme


def test_the_readme_states_the_tracing_headline(readme):
    head = load_results(RESULTS / "tracing")["results"]["tracing"]["headline"]
    own, other = head["best_subject"], head["paired_minus_other_fact"]
    assert f"recovers **{own['recovery']:.2f} [{own['low']:.2f}, {own['high']:.2f}]**" in readme
    assert f"own − other {other['difference']:+.2f} [{other['low']:+.2f}, {other['high']:+.2f}]" in readme
    assert f"**{head['verdict']}**" in readme


ATTENTION_ONLY = ROOT / "results" / "smollm2-135m-attention-only"


def attention_only_rows(folder: Path) -> list[str]:
    """docs/attention-only.md's table rows of one committed learning rate, computed from its results.json."""
    data = load_results(folder)
    rows = []
    for r in data["conditions"]:
        curve = r["curves"]["unknown"]
        rows.append(f"| {data['config']['train']['lr']:g} | {'full SFT' if r['name'] == 'sft' else r['group']} | "
                    f"{r['trained_fraction']:.3f} | {r['epochs']} | {curve[0]:.2f} | "
                    f"{' → '.join(f'{x:.2f}' for x in curve[1:])} | {r['held_acc_peak']:.3f} → "
                    f"{r['held_acc_final']:.3f} |")
    return rows


@pytest.mark.parametrize("run", ["lr-1e-4", "lr-5e-5", "lr-3e-4", "lr-5e-5-seed-1", "lr-3e-4-seed-1"])
def test_the_attention_only_sweep_table_comes_from_its_committed_results(run):
    doc = (ROOT / "docs" / "attention-only.md").read_text(encoding="utf-8")
    for row in attention_only_rows(ATTENTION_ONLY / run):
        assert row in doc


GRID = ROOT / "results" / "smollm2-135m-hypotheses-cpu"


def grid_rows() -> list[str]:
    """The README's tables of the committed real-model §5 grid (results/smollm2-135m-hypotheses-cpu): a row per
    cell (mean ± 95 % t half-width over seeds), then a row per count (UUID − name-like final held-out accuracy,
    paired by seed, with its intervals over seeds and over facts)."""
    data = load_results(GRID)
    rows = []
    for c in data["results"]["grid"]:
        rows.append(f"| {c['key_kind']} | {c['n_new']} | {c['forgetting']:.3f} ± {c['forgetting_ci']:.3f} | "
                    f"{c['held_acc_final']:.3f} ± {c['held_acc_final_ci']:.3f} | {c['new_acc']:.3f} | "
                    f"{c['epochs']:.1f} | {c['drift']:.4f} |")
    for row in data["tables"][0]["rows"]:
        seeds, facts = row["final held-out acc"].split("\nfacts: ")
        rows.append(f"| {row['condition']} | {seeds} | {facts} | {row['seeds with higher held-out acc']} |")
    return rows


def test_the_readme_states_the_real_model_grid(readme):
    data = load_results(GRID)
    assert len(data["seeds"]) >= 3 and data["config"]["model"] == "smollm2-135m"
    assert f"### The §5 grid on SmolLM2 (CPU size, {len(data['seeds'])} seeds)" in readme
    for row in grid_rows():
        assert row in readme
    assert f"§5 grid on SmolLM2: **{data['headline']['verdict']['verdict']}**" in readme


def test_the_bench_readme_states_the_committed_smollm2_loop_costs():
    bench = (ROOT / "bench" / "README.md").read_text(encoding="utf-8")
    folder = ROOT / "results" / "bench-train-smollm2-cpu"
    runs = [json.loads((folder / f"{name}.json").read_text()) for name in ("run-1-beside-two-studies", "run-2-idle")]
    assert all(run["setup"]["model"] == "smollm2-135m" for run in runs)
    for label in ("lora rank 8 / sft", "sft + ewc / sft", "our sft loop / plain PyTorch"):
        assert f"| `{label}` | {runs[0]['ratios'][label]:.3f}× | {runs[1]['ratios'][label]:.3f}× |" in bench
    for label in ("self_distill cache=full / sft", "self_distill cache=topk / sft", "self_distill cache=none / sft"):
        assert f"| `{label}` | {runs[0]['ratios'][label]:.3f}× | — |" in bench


def tracing_rows(folder: Path) -> list[str]:
    """The README's table of a committed tracing run: SFT's forgotten facts at their best subject-token cell, the
    controls and self-distillation at that cell, and the first last-token residual that brings back half."""
    tracing = load_results(folder)["results"]["tracing"]
    cells = {(r["group"], r["mode"], r["layer"], r["site"]): r for r in tracing["cells"]}
    best = tracing["headline"]["best_subject"]
    late = next(r for layer in range(tracing["n_layers"])
                if (r := cells[("sft forgotten", "last", layer, "resid")])["recovery"] >= 0.5)

    def row(what: str, r: dict) -> str:
        restored = "—" if r.get("restored") is None else f"{r['restored']:.0%}"
        return (f"| {what} | {r['mode']} L{r['layer']} `{r['site']}` | {r['recovery']:.2f} [{r['low']:.2f}, "
                f"{r['high']:.2f}] | {r['facts']} | {restored} |")

    at = (best["mode"], best["layer"], best["site"])
    rows = [row("SFT forgotten, best subject-token cell", best)]
    rows += [row(f"{group}, same cell", cells[(group, *at)]) for group in
             ("sft forgotten, other fact's state", "sft retained", "self_distill forgotten")
             if (group, *at) in cells]
    rows.append(row("SFT forgotten, first last-token residual ≥ 0.5", late))
    return rows


def test_the_readme_states_the_real_model_tracing_run(readme):
    folder = ROOT / "results" / "smollm2-135m-tracing-cpu"
    head = load_results(folder)["results"]["tracing"]["headline"]
    for row in tracing_rows(folder):
        assert row in readme, row
    other = head["paired_minus_other_fact"]
    assert f"{other['difference']:+.2f} [{other['low']:+.2f}, {other['high']:+.2f}]" in readme
    assert f"verdict: **{head['verdict']}**" in readme


def overlap_rows(folder: Path) -> list[str]:
    """The README's table of a committed real-model overlap run: per condition the final held-out accuracy and
    forgetting (mean [95 % t-interval over seeds]), acquisition, drift, and the paired difference from SFT of the final
    held-out accuracy (over seeds; over facts); then the report's rules, each with what it observed."""
    data = load_results(folder)
    summary = {row["condition"]: row for row in data["results"]["summary"]}
    paired = {p["condition"]: p for p in data["results"]["paired"]
              if p["minus"] == "sft" and p["measure"] == "held_acc_final"}

    def interval(row, key):
        return f"{row[key]:.3f} [{row[key + '_low']:.3f}, {row[key + '_high']:.3f}]"

    rows = []
    for name, row in summary.items():
        p = paired.get(name)
        versus = "—" if p is None else (f"{p['difference']:+.3f} [{p['t_low']:+.3f}, {p['t_high']:+.3f}]; facts "
                                        f"[{p['boot_low']:+.3f}, {p['boot_high']:+.3f}]")
        rows.append(f"| {name} | {interval(row, 'held_acc_final')} | {interval(row, 'forgetting')} | "
                    f"{row['new_acc']:.3f} | {mean_of(data['conditions'], name, 'drift'):.4f} | {versus} |")
    for check in data["headline"]["verdict"]["checks"]:
        rows.append(f"| {'passes' if check['passed'] else 'fails'} | {check['rule']} | {check['observed']} |")
    return rows


def overlap_relation_rows(folder: Path) -> list[str]:
    """The report's per-relation rows of a committed overlap run (`results.overlap_by_relation`): held-out facts,
    how many SFT forgot, their mean max cosine with the new subjects, and the slope within the relation."""
    return [f"| {r['relation']} | {r['facts']} | {r['forgotten']} ({r['rate']:.0%}) | {r['mean_max_cosine']:.3f} | "
            f"{r['slope']:+.2f} (p = {r['p_value']:.2f}) |"
            for r in load_results(folder)["results"]["overlap_by_relation"]]


def replacement_text(replaced: dict) -> str:
    """What the forgotten facts became, as the README states it: the share taking the nearest new subject's answer,
    the share expected, and the excess per seed."""
    taken, excess = replaced["takes_nearest"], replaced["excess"]
    return (f"For {taken['share']:.3f} [{taken['ci_low']:.3f}, {taken['ci_high']:.3f}] of the forgotten facts, "
            f"against {replaced['expected']:.3f} expected from the new facts' answer frequencies alone: per seed "
            f"{excess['mean']:+.3f} [{excess['low']:+.3f}, {excess['high']:+.3f}] over {excess['n']} seeds")


def equal_epochs_text(folder: Path) -> str:
    """The causal test after the same number of epochs, as the README states it."""
    causal = load_results(folder)["results"]["causal"]
    equal = causal["equal_epochs"]
    return f"{equal['mean']:+.3f} [{equal['low']:+.3f}, {equal['high']:+.3f}]"


@pytest.mark.parametrize("folder", [RESULTS / "overlap-20-seeds", SMOLLM2_OVERLAP, SMOLLM2_OVERLAP_MATCHED])
def test_the_readme_states_the_causal_test_after_equal_epochs(readme, folder):
    causal = load_results(folder)["results"]["causal"]
    assert equal_epochs_text(folder) in readme
    assert f"{causal['low_epochs']:.1f}" in readme and f"{causal['high_epochs']:.1f}" in readme


def test_the_readme_states_the_world_overlap_run_with_20_seeds(readme):
    folder = RESULTS / "overlap-20-seeds"
    data = load_results(folder)
    assert data["seeds"] == list(range(20)) and data["config"]["model"] == "world"
    assert data["versions"]["numerics"] == "portable"
    for row in overlap_rows(folder) + overlap_relation_rows(folder):
        assert row in readme, row
    replaced, prose = data["results"]["replacement"], " ".join(readme.split())
    assert replacement_text(replaced) in prose and replaced["left_out"] == 0
    same = replaced["same_relation"]
    assert (f"{same['takes_nearest']['share']:.3f} [{same['takes_nearest']['ci_low']:.3f}, "
            f"{same['takes_nearest']['ci_high']:.3f}] against {same['expected']:.3f}, {same['excess']['mean']:+.3f} "
            f"[{same['excess']['low']:+.3f}, {same['excess']['high']:+.3f}]") in prose
    every, within = replaced["excess_shuffled"], same["excess_shuffled"]
    assert (f"it expects {replaced['shuffled']:.3f} over every forgotten fact and {same['shuffled']:.3f} over the "
            f"country ones") in prose
    assert (f"{every['mean']:+.3f} [{every['low']:+.3f}, {every['high']:+.3f}] over {every['n']} seeds and "
            f"{within['mean']:+.3f} [{within['low']:+.3f}, {within['high']:+.3f}] over the country facts"
            ).replace("-", "−") in prose.replace("-", "−")
    above = [sum(s["excess_shuffled"] > 0 for s in group["per_seed"]) for group in (replaced, same)]
    assert above[0] == above[1] and f"({above[0]} of {every['n']} seeds above 0 for both;" in prose
    sizes = [s["forgotten"] for s in replaced["per_seed"]]
    assert f"number of forgotten facts, {min(sizes)} to {max(sizes)})" in prose
    assert {f["nearest_relation"] for f in data["results"]["facts"] if "takes_nearest" in f} == {"country"}
    demo = {(r["name"], r["seed"]): r for r in load_results(RESULTS / "overlap")["conditions"]}
    for record in data["conditions"]:  # its seeds 0-2 are the demo's, bit for bit
        if record["seed"] < 3:
            assert run_fields(record) == run_fields(demo[record["name"], record["seed"]])


def test_the_readme_states_the_real_model_overlap_run(readme):
    folder = SMOLLM2_OVERLAP
    data = load_results(folder)
    assert len(data["seeds"]) >= 3 and data["config"]["model"] == "smollm2-135m"
    title = f"### Overlap, the UUID control and the causal test on SmolLM2 (CPU size, {len(data['seeds'])} seeds)"
    assert title in readme
    for row in overlap_rows(folder) + overlap_relation_rows(folder):
        assert row in readme, row
    assert f"Overlap on SmolLM2: **{data['headline']['verdict']['verdict']}**" in readme


def test_the_readme_states_the_relation_matched_causal_test(readme):
    folder = SMOLLM2_OVERLAP_MATCHED
    data = load_results(folder)
    assert data["config"]["match_relations"] is True and data["config"]["model"] == "smollm2-135m"
    title = f"### The causal test matched by relation on SmolLM2 (CPU size, {len(data['seeds'])} seeds)"
    assert title in readme
    for row in overlap_rows(folder):
        assert row in readme, row
    assert f"Matched by relation: **{data['headline']['verdict']['verdict']}**" in readme
    records = {(r["name"], r["seed"]): r for r in data["conditions"]}
    for seed in data["seeds"]:  # the two sets of a seed take the same number of facts from each relation
        high, low = records["high-overlap sft", seed], records["low-overlap sft", seed]
        assert high["selection_relations"] == low["selection_relations"]
        assert high["selection_overlap"] > low["selection_overlap"]
    unmatched = load_results(SMOLLM2_OVERLAP)["conditions"]
    shared = [r for r in unmatched if r["name"] in ("sft", "self_distill", "uuid-sft")]
    assert shared
    for record in shared:  # the option touches only the causal test: the other runs are the same, record for record
        other = records[record["name"], record["seed"]]
        assert run_fields(record) == run_fields(other)


GPU_SIZE = ROOT / "results" / "smollm2-135m-gpu-size-cpu"


def gpu_size_rows() -> list[str]:
    """The README's Table 1 rows at the GPU's size on a CPU (results/smollm2-135m-gpu-size-cpu): per method the mean
    ± 95 % t half-width over seeds, then the paired difference with its intervals over seeds and over facts."""
    data = load_results(GPU_SIZE)
    rows = []
    for s in data["results"]["summary"]:
        rows.append(f"| {s['method']} | {s['held_acc_start']:.3f} | {s['held_acc_final']:.3f} ± "
                    f"{s['held_acc_final_ci']:.3f} | {s['absolute_drop']:.3f} ± {s['absolute_drop_ci']:.3f} | "
                    f"{s['forgetting']:.3f} ± {s['forgetting_ci']:.3f} | {s['new_acc']:.3f} | {s['drift']:.4f} |")
    gain = paired_difference(data["conditions"], "self_distill", "sft", "held_acc_final")
    rows.append(f"self_distill − sft, final held-out accuracy: **{interval_text(gain.t)}** over seeds, "
                f"[{gain.bootstrap.low:+.3f}, {gain.bootstrap.high:+.3f}] over facts; self_distill ahead on "
                f"{gain.n_positive} of {gain.t.n} seeds")
    return rows


def test_the_readme_states_table_1_at_the_gpu_size_on_a_cpu(readme):
    data = load_results(GPU_SIZE)
    n = len(data["seeds"])
    assert n >= 3 and data["config"]["model"] == "smollm2-135m" and data["config"]["n_unknown"] == 300
    assert f"### Table 1 at the GPU's size, on a CPU ({n} seeds)" in readme
    for row in gpu_size_rows():
        assert row in readme
    assert f"The report's verdict: **{data['headline']['verdict']['verdict']}**" in readme
    for ran in data["results"]["pooled_from"]:  # every seed ran under the portable numerics, on a CPU
        assert ran["versions"]["numerics"] == "portable" and ran["device"].startswith("cpu")
    # how far held-out accuracy moves between consecutive evaluations (the end point's noise), per method
    swings = {name: max(abs(b - a) for r in data["conditions"] if r["name"] == name
                        for a, b in zip(r["curves"]["held"][:-1], r["curves"]["held"][1:], strict=True))
              for name in ("sft", "self_distill")}
    assert f"up to {swings['sft']:.3f} (sft)\nand {swings['self_distill']:.3f} (self_distill)" in readme


def row_text(row: dict, prefix: str) -> str:
    """A relation summary or contrast row's interval under `prefix`, as the README writes it."""
    return interval_text(interval_of(row, prefix))


#: The methods of the world's forgetting-by-relation table (l2 is left out: it does not reach matched acquisition).
RELATION_METHODS = ("sft", "self_distill", "attention-only", "ffn-only", "known-only")


def relation_rows(folder: Path) -> list[str]:
    """The README's forgetting-by-relation table of a committed forgetting run: per relation the held-out facts right
    at the start and the new facts per seed, each method's forgotten share (mean over seeds) and self_distill − sft
    paired by seed; then the inside-against-outside difference of sft and self_distill."""
    data = load_results(folder)
    by = {(r["relation"], r["condition"]): r for r in data["results"]["by_relation"]}
    rows = []
    for relation in sorted({r for r, _ in by}):
        paired = row_text(by[(relation, "self_distill")], "minus_reference")
        shares = " | ".join(f"{by[(relation, m)]['forgotten_mean']:.3f}" for m in RELATION_METHODS)
        rows.append(f"| {relation} | {by[(relation, 'sft')]['held_known']:.1f} | {by[(relation, 'sft')]['new']:.0f} | "
                    f"{shares} | {paired} |")
    for row in data["results"]["relation_contrast"]:
        if row["condition"] == "sft":
            rows.append(f"sft: {row['inside_mean']:.3f} where the new facts are, {row['outside_mean']:.3f} elsewhere, "
                        f"gap {row_text(row, 'gap')}")
        elif row["condition"] in ("self_distill", "ffn-only"):
            rows.append(f"{row['condition']}: {row['inside_mean']:.3f} where the new facts are, "
                        f"{row['outside_mean']:.3f} elsewhere; minus sft's: inside "
                        f"{row_text(row, 'inside_minus_reference')}, outside "
                        f"{row_text(row, 'outside_minus_reference')}, gap {row_text(row, 'gap_minus_reference')}")
    return rows


def test_the_readme_states_the_world_forgetting_by_relation(readme):
    rows = relation_rows(results_folder("world-default/forgetting-20-seeds"))
    assert len(rows) == 7  # four relations, three contrasts
    for row in rows:
        assert row in readme


def swap_lines(folder: Path, condition: str = "sft") -> list[str]:
    """The README's lines of the relation-swap run: per held-out relation the forgotten share under each relation of
    the new facts, and per relation its own-relation effect against each other run (mean [95 % t], seeds ahead)."""
    results = load_results(folder)["results"]
    labels = list(results["runs"])
    cells = {(r["held_relation"], r["new_relation"]): r["forgotten_mean"]
             for r in results["matrix"] if r["condition"] == condition}
    lines = [f"| {held} | " + " | ".join(f"{cells[held, label]:.3f}" for label in labels) + " |"
             for held in sorted({held for held, _ in cells})]
    for own in labels:
        rows = [r for r in results["own_relation_effects"] if r["condition"] == condition and r["relation"] == own]
        lines.append(f"- {own}: {rows[0]['own_mean']:.3f} under its own new facts; minus under "
                     + ", ".join(f"{r['other_new_relation']}'s {row_text(r, 'effect')} ({r['ahead']}/{r['seeds']})"
                                 for r in rows))
    return lines


def test_the_readme_states_the_relation_swap(readme):
    lines = swap_lines(RESULTS / "relation-swap")
    assert len(lines) == 8  # four held-out relations, four runs
    for line in lines:
        assert line in readme
    verdict = load_results(RESULTS / "relation-swap")["headline"]["verdict"]
    held = sum(c["passed"] for c in verdict["checks"])
    assert f"**{verdict['verdict']}** ({held} of {len(verdict['checks'])} rules)" in readme
    gains = []
    for run in load_results(RESULTS / "relation-swap")["results"]["runs"].values():
        records = load_results(ROOT / run["folder"])["conditions"]
        gains.append(paired_difference(records, "self_distill", "sft", "held_acc_final").t.mean)
    assert f"ahead of SFT's by {min(gains):+.3f} to {max(gains):+.3f} per run" in readme
