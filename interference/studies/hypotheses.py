"""The three hypotheses of Kaplan et al. §5 (SPEC §4): capacity limits, behaviour cloning, localized interference.

A controlled grid: new facts of one relation with name-like subjects or UUID subjects, at a small and a 10x larger
count, every condition trained with SFT until acc(D_unknown) reaches the same target (matched acquisition).
Forgetting is measured on the same held-out known facts. On the embedded world, name-like subjects recombine stored
syllables and the world makes the facts; on a real model (any causal LM with a SLiCK table or splits, see
`interference.facts.realdata`), D_known and D_held are its HighlyKnown real facts and the new facts come from
`interference.facts.new_facts`: one EntityQuestions relation (P17, "Which country is [X] located in?", by default) with
name-like subjects recombined from the model's own tokens of the relation's real subjects, or random hex keys. Each
(key kind, count) replaces only D_unknown (`Setup.with_unknown`), so every cell of a seed starts from the same base
model and snapshot. Each hypothesis makes a prediction the grid can refute:
- capacity: forgetting grows with the number of new facts whatever their keys -> UUID forgetting must grow with the
  count and approach name-like forgetting;
- behaviour cloning: training on any unknown facts teaches hallucination and forgetting -> UUID facts (unknown too)
  must cause forgetting comparable to name-like ones;
- localized interference: forgetting comes from new subjects that resemble stored ones -> name-like keys must forget
  much more than UUID keys at the same count and acquisition, and move held-out subject representations more.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from ..io.errors import InterferenceError
from ..report.document import Report
from ..report.headline import above_zero, add_curves, add_headline, add_summary, ours
from ..report.paired import (
    Check,
    Interval,
    beyond_noise,
    evidence,
    interval_text,
    paired_comparison,
    paired_difference,
    t_interval,
)
from ..report.stats import mean_ci
from ..report.tables import count_text
from .setup import (
    WORLD,
    ExperimentConfig,
    drift_layer,
    held_drift,
    held_states,
    load_base,
    make_setup,
    run_condition,
)

KEY_KINDS = ("name", "uuid")
#: Name-like forgetting must be at least this many times UUID forgetting for "interference" to be supported, and
#: UUID forgetting at most this fraction of name-like forgetting for the other two to be rejected.
RATIO = 3.0
#: Capacity limits predict that forgetting grows with the number of new facts whatever their keys; they are rejected
#: when UUID forgetting grows by less than this per decade of count (least-squares slope over every run; the paper's
#: UUID forgetting stays within 0-4 % over three decades, a slope of at most about 0.013).
SLOPE_TOLERANCE = 0.02


@dataclass
class HypothesesStudy:
    """Result of `run_hypotheses`: one record per (key kind, count, seed), with drift at `layer`; with a real model,
    `new_facts` describes where the new facts came from (`interference.facts.new_facts.NewFacts.describe`)."""

    config: ExperimentConfig
    counts: tuple[int, ...]
    layer: int
    records: list[dict] = field(default_factory=list)
    new_facts: dict | None = None

    def cell(self, key_kind: str, count: int, name: str = "forgetting") -> float:
        """Mean of `name` over seeds in one cell of the grid."""
        return self.cell_interval(key_kind, count, name).mean

    def cell_interval(self, key_kind: str, count: int, name: str = "forgetting") -> Interval:
        """Mean and 95 % t-interval of `name` over seeds in one cell of the grid (non-finite values left out)."""
        return t_interval([r[name] for r in self.records if r["key_kind"] == key_kind and r["n_new"] == count])

    def table(self) -> list[dict]:
        """Per cell: means and 95 % half-widths of forgetting, acquisition and drift, and epochs to the target."""
        rows = []
        for key_kind in KEY_KINDS:
            for count in self.counts:
                cell = [r for r in self.records if r["key_kind"] == key_kind and r["n_new"] == count]
                row = {"key_kind": key_kind, "n_new": count, "seeds": len(cell)}
                for name in ("forgetting", "new_acc", "held_acc_final", "drift", "epochs"):
                    ci = mean_ci([r[name] for r in cell], omit_nan=True)
                    row[name], row[f"{name}_ci"] = ci.mean, ci.half_width
                rows.append(row)
        return rows

    def slope(self, key_kind: str, name: str = "forgetting") -> tuple[float, float]:
        """Least-squares slope of `name` against log10(count) over every run of `key_kind` (change per decade of
        count), with its 95 % t-interval half-width (NaN with fewer than three runs or a single count)."""
        from scipy import stats

        runs = [(math.log10(r["n_new"]), r[name]) for r in self.records
                if r["key_kind"] == key_kind and r.get(name) is not None and not math.isnan(r[name])]
        if len(runs) < 3 or len({x for x, _ in runs}) < 2:
            return float("nan"), float("nan")
        fit = stats.linregress([x for x, _ in runs], [y for _, y in runs])
        return float(fit.slope), float(stats.t.ppf(0.975, len(runs) - 2) * fit.stderr)

    def verdicts(self) -> list[dict]:
        """A verdict per hypothesis, with the numbers it rests on."""
        small, large = self.counts[0], self.counts[-1]
        spread = {c: self.cell_interval("name", c) for c in self.counts}
        name = {c: spread[c].mean for c in self.counts}
        uuid = {c: self.cell("uuid", c) for c in self.counts}
        drift = {k: self.cell(k, large, "drift") for k in KEY_KINDS}
        ratio = {c: name[c] / uuid[c] if uuid[c] > 0 else float("inf" if name[c] > 0 else "nan")
                 for c in self.counts}  # NaN where neither forgets: no sign of interference there
        # a ratio over name-like forgetting within noise (∞ over 0.03 on one seed, say) is not one: both rules below
        # also ask name-like forgetting to be above 0 beyond noise (its t-interval over seeds) at every count
        real = all(above_zero(spread[c]) for c in self.counts)
        uuid_small = real and all(uuid[c] * RATIO <= name[c] for c in self.counts)
        fmt = ", ".join
        slopes = {k: self.slope(k) for k in KEY_KINDS}
        flat = slopes["uuid"][0] < SLOPE_TOLERANCE  # NaN (one count) compares False: not rejected
        capacity = "rejected" if flat and uuid_small else "not rejected"
        cloning = "rejected" if uuid_small else "not rejected"
        supported = real and all(r >= RATIO for r in ratio.values()) and drift["name"] > drift["uuid"]
        interference = "supported" if supported else "not supported"
        beyond = (f"name-like forgetting {fmt(f'{interval_text(spread[c])} at {c}' for c in self.counts)}: "
                  f"{'' if real else 'not '}above 0 beyond noise at every count")
        return [
            {"hypothesis": "capacity limits", "verdict": capacity,
             "evidence": f"slope of forgetting per decade of new facts: UUID {slopes['uuid'][0]:+.3f} ± "
                         f"{slopes['uuid'][1]:.3f}, name-like {slopes['name'][0]:+.3f} ± {slopes['name'][1]:.3f} "
                         f"(rejected below {SLOPE_TOLERANCE} for UUID); UUID forgetting "
                         f"{fmt(f'{uuid[c]:.3f} at {c}' for c in self.counts)} vs name-like "
                         f"{fmt(f'{name[c]:.3f} at {c}' for c in self.counts)} (x{large // max(small, 1)} facts)"},
            {"hypothesis": "behaviour cloning", "verdict": cloning,
             "evidence": f"UUID facts are unknown facts too, yet forget {fmt(f'{uuid[c]:.3f}' for c in self.counts)} "
                         f"vs {fmt(f'{name[c]:.3f}' for c in self.counts)} for name-like keys; {beyond}"},
            {"hypothesis": "localized interference", "verdict": interference,
             "evidence": f"name/UUID forgetting ratio {fmt(f'{_times(ratio[c])} at {c}' for c in self.counts)}; "
                         f"held-out subject drift at layer {self.layer}: name {drift['name']:.4f} vs UUID "
                         f"{drift['uuid']:.4f}; {beyond}"},
        ]


def _times(ratio: float) -> str:
    """A forgetting ratio as text: "1.3x", "∞ (UUID keys forget nothing)", "n/a (neither forgets)"."""
    if math.isnan(ratio):
        return "n/a (neither forgets)"
    return "∞ (UUID keys forget nothing)" if math.isinf(ratio) else f"{ratio:.1f}x"


def _run_cell(study: HypothesesStudy, setup, key_kind: str, count: int, seed: int, states, bar) -> None:
    """SFT on `setup`'s new facts to matched acquisition; its record (with held-out drift from the base model's
    held-out subject `states`) is added."""
    condition = run_condition(setup, f"{key_kind} x{count}", study.config.train_config(seed, method="sft"),
                              bar=bar)
    drift = held_drift(setup, condition.model, [study.layer], states)[0].item()
    study.records.append(condition.record(drift=drift, key_kind=key_kind, n_new=count))
    bar.update(1)


def run_hypotheses(config: ExperimentConfig, counts: Sequence[int], *, base=None, relation: str | None = None,
                   subjects: str | Path | None = None, progress: bool = True) -> HypothesesStudy:
    """SFT on new facts of each key kind and count, to matched acquisition, on every seed of `config`.

    On the embedded world the world makes the new facts (`relation` and `subjects` are refused). With a real model,
    they are facts of `relation` (default P17) whose name-like keys come from the subjects of the EntityQuestions
    folder `subjects` (default `interference.facts.new_facts.DEFAULT_SUBJECTS`, ../shared/data/entityquestions); see
    `interference.facts.new_facts`. A count the keys cannot reach is an error before any training; a missing folder or
    relation, before the model loads.
    """
    counts = tuple(sorted(set(counts)))
    if not counts or counts[0] < 1:
        raise InterferenceError(f"counts of new facts must be positive integers, got {counts}")
    if config.model != WORLD:
        return _run_real(config, counts, relation, subjects, base, progress)
    if relation is not None or subjects is not None:
        raise InterferenceError("--relation and --subjects are for a real model: the embedded world makes its own "
                                "new facts")
    base = base if base is not None else load_base(config, progress=progress)
    for key_kind in KEY_KINDS:  # a count the world cannot name fails here, before any training
        base.new_facts(counts[-1], key_kind=key_kind, relation=config.new_relation, seed=config.seeds[0])
    study: HypothesesStudy | None = None
    bar = tqdm(total=len(KEY_KINDS) * len(counts) * len(config.seeds), desc="hypotheses", unit="run",
               disable=not progress)
    for seed in config.seeds:
        states = None  # held-out subject states of the base model: D_held depends on the seed only
        for key_kind in KEY_KINDS:
            for count in counts:
                setup = make_setup(config, seed, base=base, key_kind=key_kind, n_unknown=count, progress=progress)
                if study is None:
                    layer = drift_layer(config, setup.model)
                    study = HypothesesStudy(config, counts, layer)
                if states is None:
                    states = held_states(setup, setup.model, [study.layer])
                _run_cell(study, setup, key_kind, count, seed, states, bar)
    bar.close()
    return study


def new_fact_source(relation: str | None = None, subjects: str | Path | None = None):
    """The relation new facts of a real model are made of (`interference.facts.new_facts.load_relation`, defaults P17
    and ../shared/data/entityquestions): one-line errors for a missing folder or relation, nothing loaded."""
    from ..facts.new_facts import DEFAULT_RELATION, load_relation

    return load_relation(subjects, relation or DEFAULT_RELATION)


def hypotheses_settings(config: ExperimentConfig, counts: Sequence[int], relation: str | None = None,
                        subjects: str | Path | None = None) -> dict:
    """The study's own settings for a run fingerprint (`interference.report.accumulate`): the counts, and with a real
    model the new facts' relation, split and EntityQuestions files by content. The world's are the counts alone, as
    before."""
    settings = {"counts": sorted(set(counts))}
    if config.model != WORLD:
        settings["new_facts"] = new_fact_source(relation, subjects).settings()
    return settings


def _run_real(config: ExperimentConfig, counts: tuple[int, ...], relation: str | None, subjects: str | Path | None,
              base, progress: bool) -> HypothesesStudy:
    """The grid on a real model: D_known and D_held of each seed from `make_setup` (one real unknown fact, replaced),
    D_unknown the first `count` generated facts of each key kind (the cells of a seed nest)."""
    from ..facts.fact import subjects as subjects_of
    from ..facts.new_facts import NewFacts, name_pieces

    source = new_fact_source(relation, subjects)  # before the model loads
    base = base if base is not None else load_base(config, progress=progress)
    study: HypothesesStudy | None = None
    pieces = None
    bar = tqdm(total=len(KEY_KINDS) * len(counts) * len(config.seeds), desc="hypotheses", unit="run",
               disable=not progress)
    for seed in config.seeds:
        real = make_setup(config, seed, base=base, n_unknown=1, progress=progress)
        if pieces is None:
            pieces = name_pieces(real.tokenizer, source.subjects)
        maker = NewFacts(source, pieces, taken=subjects_of([*real.known, *real.held]))
        if study is None:
            for key_kind in KEY_KINDS:  # a count the keys cannot reach fails here, before any training
                maker.facts(counts[-1], key_kind, seed=seed)
            layer = drift_layer(config, real.model)
            study = HypothesesStudy(config, counts, layer, new_facts=maker.describe())
        states = held_states(real, real.model, [study.layer])
        for key_kind in KEY_KINDS:
            new = maker.facts(counts[-1], key_kind, seed=seed)  # one key kind in memory at a time
            for count in counts:
                setup = real.with_unknown(new[:count])  # same base model, D_known, D_held, snapshot
                _run_cell(study, setup, key_kind, count, seed, states, bar)
    bar.close()
    return study


def hypotheses_checks(study: HypothesesStudy, records: list[dict]) -> list[Check]:
    """The verdict's rules: UUID keys end higher than name-like keys at every count (the direction), and the three
    hypothesis verdicts of `HypothesesStudy.verdicts` as the paper has them (two rejected, one supported)."""
    gains = [paired_difference(records, f"uuid x{c}", f"name x{c}", "held_acc_final") for c in study.counts]
    expected = {"capacity limits": "rejected", "behaviour cloning": "rejected", "localized interference": "supported"}
    checks = [Check("UUID keys end with higher held-out accuracy than name-like keys at every count, beyond noise "
                    "(positive paired mean, 95 % bootstrap over facts above 0)",
                    "; ".join(f"x{c}: {evidence(g)}" for c, g in zip(study.counts, gains, strict=True)),
                    all(beyond_noise(g) for g in gains), primary=True)]
    for verdict in study.verdicts():
        want = expected[verdict["hypothesis"]]
        checks.append(Check(f"{verdict['hypothesis']}: {want} (as in the paper)", verdict["evidence"],
                            verdict["verdict"] == want))
    return checks


def hypotheses_report(study: HypothesesStudy) -> Report:
    """The hypotheses report: the headline (UUID vs name-like keys per count, paired, against the paper, with the
    three verdicts), the grid, per-epoch curves, and forgetting vs count per key kind."""
    import plotly.graph_objects as go

    config = study.config
    report = Report(
        "Three hypotheses: capacity, behaviour cloning, localized interference",
        config={**config.to_dict(), "counts": list(study.counts)},
        seeds=config.seeds,
        description=(
            f"{_source_text(study)}"
            f"SFT on new facts with name-like or UUID subjects, {' and '.join(map(str, study.counts))} facts, each "
            f"trained until acc(new) >= {config.train.target_new_acc} (matched acquisition) or "
            f"{config.train.epochs} epochs; "
            f"D_known {config.n_known}, D_held {config.n_held}, {count_text(len(config.seeds), 'seed')}"
            f". Drift at layer "
            f"{study.layer}."
        ),
    )
    report.add_conditions(study.records)
    records = report.conditions
    names = [f"{kind} x{count}" for count in study.counts for kind in KEY_KINDS]
    table, verdicts = study.table(), study.verdicts()
    report.results.update(grid=table, verdicts=verdicts, layer=study.layer)
    if study.new_facts is not None:
        report.results["new_facts"] = study.new_facts
    differences = [d for count in study.counts
                   for d in paired_comparison(records, [f"uuid x{count}"], f"name x{count}")]
    largest = study.counts[-1]
    paper = [
        {"quantity": f"forgetting, name-like keys (paper: 10⁶ facts; ours: {largest})", "paper": "38–41 %",
         "ours": ours(records, f"name x{largest}", "forgetting")},
        {"quantity": "forgetting, UUID keys, at every count", "paper": "0–4 %",
         "ours": ", ".join(f"{ours(records, f'uuid x{c}', 'forgetting')} (x{c})" for c in study.counts)},
        {"quantity": "counts of new facts", "paper": "10³ – 10⁶", "ours": ", ".join(map(str, study.counts))},
    ]
    add_headline(report, claim="Forgetting comes from new keys that overlap stored entities, not from the number of "
                 "new facts (capacity) nor from training on unknown facts (behaviour cloning): UUID keys forget "
                 "little at every count, name-like keys much more (Kaplan et al. §5).", records=records,
                 conditions=names, checks=hypotheses_checks(study, records), paper=paper, differences=differences,
                 reference="name-like keys at the same count", acquired=names,
                 target=config.train.target_new_acc)  # every cell of the grid at matched acquisition
    add_summary(report, records, names)
    add_curves(report, records, names)
    section = report.section("The grid (means over seeds, 95 % half-widths)")
    section.table(table)
    figure = go.Figure()
    for key_kind in KEY_KINDS:
        rows = [r for r in table if r["key_kind"] == key_kind]
        figure.add_trace(go.Scatter(x=[r["n_new"] for r in rows], y=[r["forgetting"] for r in rows],
                                    error_y={"type": "data", "array": [r["forgetting_ci"] or 0 for r in rows]},
                                    mode="lines+markers", name=f"{key_kind} keys"))
    figure.update_layout(title="Held-out forgetting vs number of new facts", xaxis_type="log",
                         xaxis_title="new facts", yaxis_title="forgetting")
    section.figure(figure)
    return report


def _source_text(study: HypothesesStudy) -> str:
    """Which model and new facts the grid ran on, as the description's first sentence."""
    config, new = study.config, study.new_facts
    if config is None or config.model == WORLD or new is None:
        return ""  # the world's description is as it was
    return (f"Model {config.model}, known facts from {config.data}; new facts of relation {new['relation']} "
            f"(\"{new['template']}\", answers drawn uniformly from its {new['answers']} EntityQuestions answers) "
            f"about name-like subjects recombined from {config.model}'s tokens of {new['real_subjects']} real "
            f"{new['relation']} subjects ({new['split']} split of {new['subjects']}), or "
            f"{new['uuid_length']}-character hex UUIDs. ")
