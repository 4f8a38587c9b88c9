"""Representation overlap and drift: which held-out facts are forgotten, and does overlap cause it (SPEC §4–§5)?

Per seed, from one base model:
1. conditions: SFT and self-distillation on name-like new facts, and SFT on UUID new facts (on a real model: its
   D_unknown, real facts it does not know, and the same facts with each subject replaced by a UUID key);
2. drift: per layer, the mean cosine drift of held-out subject representations, base -> each condition;
3. overlap: per held-out fact, the max and top-k mean cosine of its subject state (layer `layer`, base model) with
   the new facts' subjects, and linear CKA between the two sets per layer, against whether SFT forgot it (binned
   rates and a logistic fit);
4. a causal test: from a pool of candidate new facts (on the world name-like, with all, half or none of their
   syllables from stored names; on a real model other Unknown facts of the kept relations), the `n_unknown` whose
   subjects are most similar to the held-out set, and the `n_unknown` least similar; two SFT runs that differ only
   in that choice, to matched acquisition; forgetting of the held-out set under each.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from ..facts.answers import exact_match
from ..io.errors import InterferenceError
from ..measures.evaluation import SplitEvaluator
from ..measures.overlap import linear_cka, matched_quotas, overlap_table, split_by_overlap
from ..measures.replacement import replacement_records, replacement_summary
from ..measures.representations import subject_states
from ..report import charts
from ..report.document import Report
from ..report.fact_pairs import add_fact_pair_section
from ..report.headline import add_curves, add_headline, add_summary, drop_ratio, mean_of, ours
from ..report.paired import (
    Check,
    beyond_noise,
    evidence,
    interval_text,
    paired_comparison,
    paired_difference,
)
from ..report.replacement import add_replacement_section
from ..report.stats import MeanCI, binned_rates, logistic_fit, mean_ci, stratified_logistic_fit
from ..report.tables import count_text
from ..world import World
from .setup import (
    ExperimentConfig,
    held_at_start,
    held_drift,
    held_losses,
    held_states,
    load_base,
    make_setup,
    run_condition,
    uuid_new_facts,
)

#: Overlap levels of the causal test's candidate pool (fraction of stored syllables in a new name).
POOL_OVERLAPS = (1.0, 0.5, 0.0)
CONDITIONS = ("sft", "self_distill", "uuid-sft", "high-overlap sft", "low-overlap sft")
#: The top-k of the overlap measure by default.
TOP_K = 10


@dataclass
class OverlapStudy:
    """Result of `run_overlap`, or of pooling the records of several runs (`interference.report.accumulate`).

    Attributes:
        config: the experiment settings.
        layer: the layer overlap and the headline drift are read at.
        top_k: k of the top-k mean cosine.
        records: condition records (one per condition and seed), with `drift` = mean drift at `layer` and
            `drift_per_layer`; SFT's also hold its seed's held-out facts (`held_facts`, see `facts`) and `cka`.
        match_relations: whether the causal test's two sets were matched by relation (`split_by_overlap`).
    """

    config: ExperimentConfig
    layer: int
    top_k: int
    records: list[dict] = field(default_factory=list)
    match_relations: bool = False

    @property
    def facts(self) -> list[dict]:
        """Per held-out fact and seed: its overlap with the new facts and whether SFT / self-distillation forgot it."""
        return [fact for record in self.of("sft") for fact in record.get("held_facts", ())]

    @property
    def cka(self) -> list[list[float]]:
        """Per seed and layer, linear CKA between held-out subject states and those of their nearest new subjects
        (base model)."""
        return [record["cka"] for record in self.of("sft") if "cka" in record]

    def of(self, name: str) -> list[dict]:
        return [r for r in self.records if r["name"] == name]

    def mean(self, name: str, key: str) -> float:
        return mean_ci([r[key] for r in self.of(name)], omit_nan=True).mean

    def drift_curves(self) -> dict[str, list[float]]:
        """Per condition, the per-layer drift averaged over seeds."""
        curves = {}
        for name in CONDITIONS:
            runs = [r["drift_per_layer"] for r in self.of(name)]
            if runs:
                curves[name] = [sum(v) / len(v) for v in zip(*runs, strict=True)]
        return curves

    def overlap_vs_forgetting(self, measure: str = "max_cosine", n_bins: int = 5) -> dict:
        """Forgetting rate under SFT per overlap bin, a logistic fit of forgotten on overlap pooled over all held-out
        facts, and one within seed and relation (`logistic_within`: each seed's run and each relation keep their
        own forgetting rate, so only overlap differences inside a seed's relation move the slope)."""
        x = [f[measure] for f in self.facts]
        y = [f["forgotten_sft"] for f in self.facts]
        strata = [f"seed {f['seed']} · {f['relation']}" for f in self.facts]
        return {"measure": measure, "bins": binned_rates(x, y, n_bins=n_bins),
                "logistic": logistic_fit(x, y, seed=self.config.seeds[0]),
                "logistic_within": stratified_logistic_fit(x, y, strata)}

    def by_relation(self, measure: str = "max_cosine") -> list[dict]:
        """Per relation of the held-out facts: how many, how many SFT forgot, their mean overlap and the logistic
        slope within the relation. On real data relations differ in both overlap and forgetting, so a pooled slope
        can be the relation's; these rows tell the two apart."""
        groups: dict[str, list[dict]] = {}
        for fact in self.facts:
            groups.setdefault(fact["relation"], []).append(fact)
        rows = []
        for relation, facts in sorted(groups.items()):
            x, forgotten = [f[measure] for f in facts], [bool(f["forgotten_sft"]) for f in facts]
            fit = logistic_fit(x, forgotten, seed=self.config.seeds[0])
            rows.append({"relation": relation, "facts": len(facts), "forgotten": sum(forgotten),
                         "rate": sum(forgotten) / len(facts), f"mean_{measure}": sum(x) / len(x),
                         "slope": fit.slope, "p_value": fit.p_value, "note": fit.note})
        return rows

    def causal(self) -> dict | None:
        """Forgetting of the held-out set after high- vs low-overlap new facts (means over seeds); None when the
        causal test was not run (a splits folder: no candidates)."""
        high, low = self.of("high-overlap sft"), self.of("low-overlap sft")
        if not high or not low:
            return None
        return {
            "high_forgetting": mean_ci([r["forgetting"] for r in high], omit_nan=True),
            "low_forgetting": mean_ci([r["forgetting"] for r in low], omit_nan=True),
            "high_new_acc": mean_ci([r["new_acc"] for r in high], omit_nan=True).mean,
            "low_new_acc": mean_ci([r["new_acc"] for r in low], omit_nan=True).mean,
            "high_overlap": mean_ci([r["selection_overlap"] for r in high]).mean,
            "low_overlap": mean_ci([r["selection_overlap"] for r in low]).mean,
            "high_epochs": mean_ci([r["epochs"] for r in high]).mean,
            "low_epochs": mean_ci([r["epochs"] for r in low]).mean,
            "equal_epochs": self.causal_at_equal_epochs(),
        }

    def causal_at_equal_epochs(self) -> MeanCI | None:
        """High − low absolute drop of held-out accuracy per seed (start − accuracy), read at the last epoch both runs
        of the seed completed: mean and t-interval over seeds, positive when the high-overlap set forgets more, as in
        the verdict's causal rule. Each run stops at matched acquisition, and one set can need more epochs to get
        there: this view compares the two after the same training instead, at unmatched acquisition. A run that
        stopped at its target stopped within its last recorded epoch (its curve records that part-epoch under the
        epoch's number), so that epoch does not count as completed; a seed whose runs completed no epoch in common,
        or that lacks one of the two runs, is left out. None without the per-epoch curves (records written before
        they were kept)."""
        low = {r["seed"]: r for r in self.of("low-overlap sft")}
        differences = []
        for high in self.of("high-overlap sft"):
            other = low.get(high["seed"])
            if other is None:
                continue
            if "curve_epochs" not in high or "curve_epochs" not in other:
                return None
            common = set(_completed_epochs(high)) & set(_completed_epochs(other)) - {0}
            if not common:
                continue
            epoch = max(common)
            drops = [run["held_acc_start"] - run["curves"]["held"][run["curve_epochs"].index(epoch)]
                     for run in (high, other)]
            differences.append(drops[0] - drops[1])
        return mean_ci(differences) if differences else None


def _completed_epochs(run: dict) -> list[int]:
    """The epochs of a run's curve that it trained to their end: all but the last when it stopped at its target."""
    epochs = list(run["curve_epochs"])
    return epochs[:-1] if run.get("stopped") == "target" else epochs


def _candidates(config: ExperimentConfig, base, setup, pool_factor: int, seed: int) -> list:
    """The causal test's candidate new facts: on the world, name-like facts with all, half or none of their syllables
    from stored names; on real data, other Unknown facts of the kept relations, or of `config.new_relation` alone (too
    few is a one-line error)."""
    if isinstance(base, World):
        per_level = -(-pool_factor * config.n_unknown // len(POOL_OVERLAPS))
        return [f for level in POOL_OVERLAPS
                for f in base.new_facts(per_level, overlap=level, relation=config.new_relation, seed=10_000 + seed)]
    pool = base.unknown_candidates(pool_factor * config.n_unknown, exclude=setup.unknown, seed=10_000 + seed,
                                   min_known_fraction=config.min_known_fraction, new_relation=config.new_relation)
    if len(pool) < 2 * config.n_unknown:
        raise InterferenceError(f"the causal test needs {2 * config.n_unknown} Unknown facts beyond D_unknown, the "
                                f"data has {len(pool)}: lower --n-unknown")
    return pool


def _forgotten_answers(setup, condition) -> dict[int, str]:
    """The condition's greedy answers to the held-out facts it forgot, by index (`interference.measures.replacement`),
    decoded as its last evaluation decoded them: every split in one length-sorted pass, under the run's autocast. A
    fact that now decodes right (a LoRA run evaluated unmerged) is left out."""
    from ..train.loop import make_accelerator

    train = condition.result.config
    splits = {"known": setup.known, "unknown": setup.unknown, "held": setup.held}
    accelerator = make_accelerator(train, next(condition.model.parameters()).device)
    held = SplitEvaluator(condition.model, setup.tokenizer, splits, batch_size=train.eval_batch_size,
                          max_new_tokens=train.eval_max_new_tokens,
                          autocast=accelerator.autocast).answers(list(splits))["held"]
    return {i: held[i] for i in sorted(condition.result.forgotten) if not exact_match(held[i], setup.held[i].answers)}


def _states(setup, facts, layers):
    return subject_states(setup.model, setup.tokenizer, facts, layers, desc=None)


def run_overlap(config: ExperimentConfig, *, base=None, top_k: int = TOP_K, pool_factor: int = 3,
                match_relations: bool = False, progress: bool = True) -> OverlapStudy:
    """Run the overlap study on every seed of `config` (see the module docstring).

    With a real model and data (`config.model` not "world") the new facts are the data's own D_unknown (real facts
    the model does not know): the UUID condition trains the same facts with each subject replaced by a UUID key
    (`setup.uuid_new_facts`), and the causal test's candidates are `pool_factor` × n_unknown other Unknown facts of
    the kept relations (`RealData.unknown_candidates`; none for a splits folder, which then has no causal test).
    With `match_relations` the causal test's high- and low-overlap sets take the same number of candidates from
    each relation (`split_by_overlap`), so that a relation whose subjects happen to overlap more cannot stand in for
    overlap.
    """
    from ..models.architectures import n_layers

    base = base if base is not None else load_base(config, progress=progress)
    study: OverlapStudy | None = None
    causal = isinstance(base, World) or base.rows is not None  # a splits folder has no candidates beyond its D_unknown
    runs = len(CONDITIONS if causal else CONDITIONS[:3])  # the causal test's two come last
    bar = tqdm(total=runs * len(config.seeds), desc="overlap", unit="run", disable=not progress)
    for seed in config.seeds:
        setup = make_setup(config, seed, base=base, progress=progress)
        if study is None:
            layers = list(range(n_layers(setup.model)))
            layer = len(layers) // 2 if config.layer is None else config.layer
            study = OverlapStudy(config, layer, top_k, match_relations=match_relations)
        states = held_states(setup, setup.model, layers)
        new = _states(setup, setup.unknown, layers)
        table = overlap_table(states[layer], new[layer], k=min(top_k, len(setup.unknown)))
        # CKA needs paired items: each held-out subject is paired with its nearest new subject (per layer).
        nearest = overlap_table(states, new, k=1).nearest  # [layers, n_held]
        cka = [linear_cka(states[i], new[i][nearest[i]]) for i in range(len(layers))]
        uuid_facts = uuid_new_facts(base, setup, seed, config.new_relation)
        pool = _candidates(config, base, setup, pool_factor, seed) if causal else []  # too few: before training
        pool_relations = [f.relation for f in pool] if match_relations and pool else None
        if pool_relations is not None:
            matched_quotas(pool_relations, config.n_unknown)  # too few within relations: before training, too
        plan = [("sft", setup, "sft"), ("self_distill", setup, "self_distill"),
                ("uuid-sft", setup.with_unknown(uuid_facts), "sft")]
        held, start_losses = held_at_start(setup, config.train_config(seed, method="sft"))  # for the fact views
        forgotten, records = {}, {}
        for name, run_setup, method in plan:
            condition = run_condition(run_setup, name, config.train_config(seed, method=method), bar=bar)
            drift = held_drift(run_setup, condition.model, layers, states)
            forgotten[name] = set(condition.result.forgotten)
            if name == "sft":
                given = _forgotten_answers(run_setup, condition)
            records[name] = condition.record(drift=drift[layer].item(), drift_per_layer=drift.tolist(),
                                             **held_losses(condition.model, held, start_losses))
            study.records.append(records[name])
            bar.update(1)
        records["sft"]["cka"] = cka
        nearest_new = [setup.unknown[j] for j in table.nearest.tolist()]  # per held-out fact
        replaced = replacement_records(given, nearest_new, setup.unknown)
        records["sft"]["held_facts"] = [{
            "seed": seed, "subject": fact.subject, "relation": fact.relation,
            "max_cosine": table.max_cosine[i].item(), "topk_mean_cosine": table.topk_mean_cosine[i].item(),
            "nearest_new_subject": nearest_new[i].subject,
            "forgotten_sft": i in forgotten["sft"], "forgotten_self_distill": i in forgotten["self_distill"],
            "forgotten_uuid_sft": i in forgotten["uuid-sft"],
            **replaced.get(i, {}),
        } for i, fact in enumerate(setup.held)]
        if not causal:
            continue
        # The causal test: the same candidate pool, split by representational overlap with the held-out set.
        scores = overlap_table(_states(setup, pool, [layer])[0], states[layer], k=min(top_k, len(setup.held)))
        high, low = split_by_overlap(scores.topk_mean_cosine.tolist(), config.n_unknown, pool_relations)
        chosen = {"high-overlap sft": high, "low-overlap sft": low}
        for name, index in chosen.items():
            run_setup = setup.with_unknown([pool[i] for i in index])
            condition = run_condition(run_setup, name, config.train_config(seed, method="sft"), bar=bar)
            drift = held_drift(run_setup, condition.model, layers, states)
            overlap = scores.topk_mean_cosine[index].mean().item()
            relations = Counter(pool[i].relation for i in index)  # on real data overlap may pick by relation
            study.records.append(condition.record(drift=drift[layer].item(), drift_per_layer=drift.tolist(),
                                                  **held_losses(condition.model, held, start_losses),
                                                  selection_overlap=overlap,
                                                  selection_relations=dict(sorted(relations.items()))))
            bar.update(1)
    bar.close()
    return study


#: The verdict's thresholds: name-like / UUID absolute drop ratio, and the p-value of the logistic slope.
MIN_KEY_RATIO, MAX_P = 3.0, 0.05


def overlap_checks(study: OverlapStudy, records: list[dict], relation: dict) -> list[Check]:
    """The verdict's rules for "forgetting is localized interference" (SPEC §4)."""
    fit, pooled, layer = relation["logistic_within"], relation["logistic"], study.layer
    keyed = "name-like" if study.config.model == "world" else "real-subject"  # what sft's new facts are keyed by
    slope_ok = fit.note is None and fit.slope > 0 and fit.p_value < MAX_P
    slope = Check("overlap predicts forgetting under SFT within seed and relation: conditional logistic slope > 0 "
                  "with p < 0.05 (a pooled slope can be the relations')",
                  f"{_within_text(fit)}; pooled {pooled.note or f'slope {pooled.slope:.2f}, p = {pooled.p_value:.3g}'}",
                  slope_ok)
    drift = {name: mean_of(records, name, "drift") for name in ("sft", "self_distill", "uuid-sft")}
    others = [n for n in ("self_distill", "uuid-sft") if drift[n] is not None]
    drift_ok = drift["sft"] is not None and all(drift["sft"] > drift[n] for n in others)
    drift_check = Check(f"held-out subjects drift more under {keyed} SFT than under {' and '.join(others)} "
                        f"(layer {layer})", ", ".join(f"{n} {drift[n]:.3f}" for n in ("sft", *others)), drift_ok)
    if not study.of("uuid-sft"):  # earlier real-data runs: no UUID condition, no causal test
        return [Check(slope.rule, slope.observed, slope.passed, primary=True), drift_check]
    keys = paired_difference(records, "uuid-sft", "sft", "held_acc_final")
    key_ratio = drop_ratio(records, "sft", "uuid-sft", labels=(keyed, "UUID"))
    checks = [
        Check(f"UUID-keyed SFT ends with higher held-out accuracy than {keyed} SFT beyond noise (uuid-sft − sft: "
              "positive mean, 95 % bootstrap over facts above 0)", evidence(keys), beyond_noise(keys), primary=True),
        Check(f"absolute drop {keyed} / UUID ≥ {MIN_KEY_RATIO:g}, the {keyed} drop above 0 beyond noise (95 % "
              "t-interval over seeds) (paper: 38–41 % vs 0–4 %)",
              key_ratio.text(), key_ratio.meets(MIN_KEY_RATIO)),
        slope,
    ]
    if study.of("high-overlap sft") and study.of("low-overlap sft"):
        causal = paired_difference(records, "high-overlap sft", "low-overlap sft", "absolute_drop")
        checks.append(Check("causal test: high- minus low-overlap absolute drop > 0, 95 % t-interval above 0",
                            interval_text(causal.t), causal.t.mean > 0 and causal.t.low > 0))
    return [*checks, drift_check]


def _equal_epochs_text(equal: MeanCI | None) -> str:
    """The causal test after the same training, as the report's causal section states it."""
    if equal is None:
        return "the records keep no per-epoch curves to compare the runs after the same number of epochs."
    return (f"after the same number of epochs instead (the last both runs of a seed completed; a run stopped at its "
            f"target stopped within its last), high − low absolute drop is {interval_text(equal)} over {equal.n} "
            f"seed{'s' if equal.n != 1 else ''}.")


def _within_text(fit) -> str:
    """The within-strata slope as the reports print it: the slope, its interval, p and the strata that informed it."""
    used = f"{fit.strata_used} of {fit.strata} seed × relation strata"
    if fit.note:
        return f"within: {fit.note} ({used})"
    return (f"within: slope {fit.slope:.2f} [{fit.ci_low:.2f}, {fit.ci_high:.2f}], p = {fit.p_value:.3g} ({used}, "
            f"{fit.n} facts)")


def overlap_report(study: OverlapStudy) -> Report:
    """The overlap report: the headline (name-like vs UUID keys, self-distillation, overlap and the causal test
    against the paper), per-condition summary, per-epoch curves, drift per layer, overlap vs forgetting with the
    fitted logistic curve, CKA, and the causal test as a chart."""
    config = study.config
    source = "Embedded world" if config.model == "world" else config.model
    report = Report(
        "Representation overlap and drift",
        config={**config.to_dict(), "top_k": study.top_k, "match_relations": study.match_relations},
        seeds=config.seeds,
        description=(
            f"{source}{' (quick)' if config.quick else ''}: D_known {config.n_known}, D_unknown "
            f"{config.n_unknown} new facts, D_held {config.n_held}; {count_text(len(config.seeds), 'seed')}"
            f"; every condition "
            f"trained until acc(new) >= {config.train.target_new_acc} or {config.train.epochs} epochs, "
            "all from the same start. "
            f"Subject states: last subject token of the QA prompt; overlap and headline drift at layer {study.layer}."
            + ("" if config.model == "world" else " New facts: D_unknown, real facts the model does not know; "
               "uuid-sft trains the same facts with each subject replaced by an 8-character hex key; the causal "
               "test's candidates are other Unknown facts of the same relations.")
            + (" The causal test's high- and low-overlap sets take the same number of candidates from each "
               "relation (relation-matched)." if study.match_relations else "")
        ),
    )
    report.add_conditions(study.records)
    records = report.conditions
    names = [name for name in CONDITIONS if study.of(name)]
    curves = study.drift_curves()
    relation = study.overlap_vs_forgetting("max_cosine")
    relation_topk = study.overlap_vs_forgetting("topk_mean_cosine")
    causal = study.causal()
    cka = [sum(v) / len(v) for v in zip(*study.cka, strict=True)]
    per_relation = study.by_relation()
    replaced = replacement_summary(study.facts)
    report.results.update(layer=study.layer, drift_per_layer=curves, cka_per_layer=cka, causal=causal,
                          overlap_vs_forgetting=[relation, relation_topk], overlap_by_relation=per_relation,
                          facts=study.facts, replacement=replaced)

    differences = paired_comparison(records, names, "sft")
    if causal is not None:
        differences += paired_comparison(records, ["high-overlap sft"], "low-overlap sft")
    ours_keyed = "name-like keys" if config.model == "world" else "real subjects (ours) / name-like keys (paper)"
    paper = [
        {"quantity": f"forgetting, {ours_keyed} (SFT; 10⁶ facts in the paper)", "paper": "38–41 %",
         "ours": ours(records, "sft", "forgetting")},
        {"quantity": "forgetting, UUID keys (SFT)", "paper": "0–4 %",
         "ours": ours(records, "uuid-sft", "forgetting")},
        {"quantity": "forgetting, self-distillation", "paper": "≈3 %",
         "ours": ours(records, "self_distill", "forgetting")},
        {"quantity": f"held-out subject drift, SFT on {ours_keyed} (middle layer)", "paper": "≈11 %",
         "ours": ours(records, "sft", "drift")},
        {"quantity": "drift, self-distillation / UUID keys", "paper": "≈5 % / ≈5 %",
         "ours": f"{ours(records, 'self_distill', 'drift')} / {ours(records, 'uuid-sft', 'drift')}"},
        {"quantity": "causal test, absolute drop high / low overlap", "paper": "not in the paper (ours)",
         "ours": f"{ours(records, 'high-overlap sft', 'absolute_drop', False)} / "
                 f"{ours(records, 'low-overlap sft', 'absolute_drop', False)}"},
    ]
    if replaced is not None:
        paper.append({"quantity": "forgotten facts that take the nearest new subject's answer (SFT) / expected from "
                                  "the new facts' answers", "paper": "not in the paper (ours)",
                      "ours": f"{replaced['takes_nearest']['share']:.2f} / {replaced['expected']:.2f}"})
    add_headline(report, claim="Forgetting is localized interference: new subjects that resemble stored ones make the "
                 "model forget, so name-like keys forget far more than UUID keys and overlap predicts which facts "
                 "go (Kaplan et al. §5).", records=records, conditions=names,
                 checks=overlap_checks(study, records, relation), paper=paper, differences=differences,
                 acquired=names, target=config.train.target_new_acc)  # every rule at matched acquisition
    summary = add_summary(report, records, names)
    report.results["summary"] = summary
    add_curves(report, records, names)

    section = report.section("Drift of held-out subject representations",
                             "Mean 1 − cos(h_after, h_base) of held-out subjects per layer (SPEC Eq. 3–4); the band "
                             "spans the seeds.")
    series = {name: [r["drift_per_layer"] for r in study.of(name)] for name in names}
    section.figure(charts.band_chart(series, title="Held-out subject drift per layer", x_title="layer",
                                     y_title="1 − cos", layers=True))

    fit, fit_topk = relation["logistic"], relation_topk["logistic"]

    def slope_text(f) -> str:
        return f.note or (f"slope {f.slope:.2f} (bootstrap 95 % [{f.ci_low:.2f}, {f.ci_high:.2f}], Wald p = "
                          f"{f.p_value:.3g})")

    section = report.section(
        "Overlap vs forgetting",
        f"Each held-out fact's overlap = max cosine of its subject state with the new facts' subjects at layer "
        f"{study.layer} (base model); forgotten = correct at the held-out peak and wrong at the end of SFT, pooled "
        f"over seeds. Logistic fit on max cosine: {slope_text(fit)}; on the top-{study.top_k} mean cosine: "
        f"{slope_text(fit_topk)}. Within seed and relation (a conditional logit: each seed × relation stratum keeps "
        f"its own forgetting rate, strata where nothing or everything was forgotten say nothing and are left out), "
        f"max cosine {_within_text(relation['logistic_within'])}; top-{study.top_k} mean cosine "
        f"{_within_text(relation_topk['logistic_within'])}. The verdict uses the within slope on max cosine.",
    )
    section.figure(charts.logistic_chart([f["max_cosine"] for f in study.facts],
                                         [bool(f["forgotten_sft"]) for f in study.facts], fit, relation["bins"],
                                         title="Forgetting under SFT vs subject overlap",
                                         x_title="max cosine with the new subjects (base model)"))
    section.table(relation["bins"], title="Forgetting rate per overlap bin (Wilson 95 % intervals)")
    if len(per_relation) > 1:
        section.table(per_relation, title="Per relation: facts, forgotten under SFT, mean max cosine and the logistic "
                                          "slope within the relation (a pooled slope can be the relations')")
    section.figure(charts.band_chart({"CKA": study.cka}, title="Linear CKA, held-out subjects vs their nearest new "
                                     "subjects (base model)", x_title="layer", y_title="CKA", layers=True))

    if replaced is not None:
        add_replacement_section(report, replaced, study.layer)
    add_fact_pair_section(report, records, names)
    if causal is None:
        return report
    section = report.section(
        "Causal test: high- vs low-overlap new facts",
        f"Two SFT runs per seed that differ only in which new facts are trained: the {config.n_unknown} candidates "
        f"most similar (top-{study.top_k} mean cosine {causal['high_overlap']:.3f}) or least similar "
        f"({causal['low_overlap']:.3f}) to the held-out subjects. The paired difference high − low is in the "
        f"headline table. Each run stops at matched acquisition, after {causal['high_epochs']:.1f} (high) and "
        f"{causal['low_epochs']:.1f} (low) epochs on average; {_equal_epochs_text(causal['equal_epochs'])}",
    )
    section.figure(charts.comparison_chart(
        records, ["high-overlap sft", "low-overlap sft"],
        [("absolute_drop", "absolute drop of held-out accuracy"), ("held_acc_final", "final held-out accuracy"),
         ("new_acc", "acquisition acc(D_unknown)")],
        title="Causal test: held-out accuracy after SFT on high- vs low-overlap new facts (dots are seeds)"))
    return report
