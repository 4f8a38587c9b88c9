"""Representation overlap and drift: which held-out facts are forgotten, and does overlap cause it (SPEC §4–§5)?

Per seed, from one base model:
1. conditions: SFT and self-distillation on name-like new facts, and SFT on UUID new facts;
2. drift: per layer, the mean cosine drift of held-out subject representations, base -> each condition;
3. overlap: per held-out fact, the max and top-k mean cosine of its subject state (layer `layer`, base model) with
   the new facts' subjects, and linear CKA between the two sets per layer, against whether SFT forgot it (binned
   rates and a logistic fit);
4. a causal test: from a pool of candidate new facts (name-like, with all, half or none of their syllables from
   stored names), the `n_unknown` whose subjects are most similar to the held-out set, and the `n_unknown` least
   similar; two SFT runs that differ only in that choice, to matched acquisition; forgetting of the held-out set
   under each.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ..experiment import ExperimentConfig, held_drift, held_states, load_base, make_setup, run_condition
from ..overlap import linear_cka, overlap_table
from ..report import Report
from ..representations import subject_states
from ..stats import binned_rates, logistic_fit, mean_ci

#: Overlap levels of the causal test's candidate pool (fraction of stored syllables in a new name).
POOL_OVERLAPS = (1.0, 0.5, 0.0)
CONDITIONS = ("sft", "self_distill", "uuid-sft", "high-overlap sft", "low-overlap sft")


@dataclass
class OverlapStudy:
    """Result of `run_overlap`.

    Attributes:
        config: the experiment settings.
        layer: the layer overlap and the headline drift are read at.
        top_k: k of the top-k mean cosine.
        records: condition records (one per condition and seed), with `drift` = mean drift at `layer` and
            `drift_per_layer`.
        facts: per held-out fact and seed: its overlap with the new facts and whether SFT / self-distillation forgot it.
        cka: per seed and layer, linear CKA between held-out subject states and those of their nearest new subjects
            (base model).
    """

    config: ExperimentConfig
    layer: int
    top_k: int
    records: list[dict] = field(default_factory=list)
    facts: list[dict] = field(default_factory=list)
    cka: list[list[float]] = field(default_factory=list)

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
        """Forgetting rate under SFT per overlap bin, and a logistic fit of forgotten on overlap."""
        x = [f[measure] for f in self.facts]
        y = [f["forgotten_sft"] for f in self.facts]
        return {"measure": measure, "bins": binned_rates(x, y, n_bins=n_bins),
                "logistic": logistic_fit(x, y, seed=self.config.seeds[0])}

    def causal(self) -> dict | None:
        """Forgetting of the held-out set after high- vs low-overlap new facts (means over seeds); None when the
        causal test was not run (real data)."""
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
        }


def _states(setup, facts, layers):
    return subject_states(setup.model, setup.tokenizer, facts, layers, desc=None)


def run_overlap(config: ExperimentConfig, *, world=None, top_k: int = 10, pool_factor: int = 3,
                progress: bool = True) -> OverlapStudy:
    """Run the overlap study on every seed of `config` (see the module docstring).

    With a real model and data (`config.model` not "world") new facts cannot be generated, so the UUID condition and
    the causal test are left out: drift and overlap vs forgetting use the data's own D_unknown.
    """
    from ..architectures import n_layers
    from ..errors import InterferenceError

    world = world if world is not None else load_base(config, progress=progress)
    generated = world is not None
    study: OverlapStudy | None = None
    runs = len(CONDITIONS) if generated else 2
    bar = tqdm(total=runs * len(config.seeds), desc="overlap", unit="run", disable=not progress)
    for seed in config.seeds:
        setup = make_setup(config, seed, world=world, progress=progress)
        if study is None:
            layers = list(range(n_layers(setup.model)))
            layer = len(layers) // 2 if config.layer is None else config.layer
            if layer >= len(layers):
                raise InterferenceError(f"layer {layer} does not exist: the model has {len(layers)} layers")
            study = OverlapStudy(config, layer, top_k)
        base = held_states(setup, setup.model, layers)
        new = _states(setup, setup.unknown, layers)
        table = overlap_table(base[layer], new[layer], k=min(top_k, len(setup.unknown)))
        # CKA needs paired items: each held-out subject is paired with its nearest new subject (per layer).
        nearest = overlap_table(base, new, k=1).nearest  # [layers, n_held]
        study.cka.append([linear_cka(base[i], new[i][nearest[i]]) for i in range(len(layers))])
        plan = [("sft", setup, "sft"), ("self_distill", setup, "self_distill")]
        if generated:
            uuid_setup = setup.with_unknown(world.new_facts(config.n_unknown, key_kind="uuid", seed=seed))
            plan.append(("uuid-sft", uuid_setup, "sft"))
        per_condition = {}
        for name, run_setup, method in plan:
            bar.set_postfix_str(f"seed {seed} {name}")
            condition = run_condition(run_setup, name, config.train_config(seed, method=method))
            drift = held_drift(run_setup, condition.model, layers, base)
            per_condition[name] = condition
            study.records.append(condition.record(drift=drift[layer].item(), drift_per_layer=drift.tolist()))
            bar.update(1)
        forgotten = {name: set(c.result.forgotten) for name, c in per_condition.items()}
        for i, fact in enumerate(setup.held):
            study.facts.append({
                "seed": seed, "subject": fact.subject, "relation": fact.relation,
                "max_cosine": table.max_cosine[i].item(), "topk_mean_cosine": table.topk_mean_cosine[i].item(),
                "nearest_new_subject": setup.unknown[table.nearest[i].item()].subject,
                "forgotten_sft": i in forgotten["sft"], "forgotten_self_distill": i in forgotten["self_distill"],
                "forgotten_uuid_sft": i in forgotten["uuid-sft"] if generated else None,
            })
        if not generated:
            continue
        # The causal test: the same candidate pool, split by representational overlap with the held-out set.
        per_level = -(-pool_factor * config.n_unknown // len(POOL_OVERLAPS))
        pool = [f for level in POOL_OVERLAPS
                for f in world.new_facts(per_level, overlap=level, seed=10_000 + seed)]
        scores = overlap_table(_states(setup, pool, [layer])[0], base[layer], k=min(top_k, len(setup.held)))
        order = torch.argsort(scores.topk_mean_cosine, descending=True).tolist()
        chosen = {"high-overlap sft": order[: config.n_unknown], "low-overlap sft": order[-config.n_unknown:]}
        for name, index in chosen.items():
            bar.set_postfix_str(f"seed {seed} {name}")
            run_setup = setup.with_unknown([pool[i] for i in index])
            condition = run_condition(run_setup, name, config.train_config(seed, method="sft"))
            drift = held_drift(run_setup, condition.model, layers, base)
            overlap = scores.topk_mean_cosine[index].mean().item()
            study.records.append(condition.record(drift=drift[layer].item(), drift_per_layer=drift.tolist(),
                                                  selection_overlap=overlap))
            bar.update(1)
    bar.close()
    return study


def overlap_report(study: OverlapStudy) -> Report:
    """The overlap report: drift per layer, overlap vs forgetting, CKA, and the causal test."""
    import plotly.graph_objects as go

    config = study.config
    source = "Embedded world" if config.model == "world" else config.model
    report = Report(
        "Representation overlap and drift",
        config={**config.to_dict(), "top_k": study.top_k},
        seeds=config.seeds,
        description=(
            f"{source}{' (quick)' if config.quick else ''}: D_known {config.n_known}, D_unknown "
            f"{config.n_unknown} new facts, D_held {config.n_held}; {len(config.seeds)} seeds; every condition "
            f"trained until acc(new) >= {config.train.target_new_acc} or {config.train.epochs} epochs. Subject "
            "states: last "
            f"subject token of the QA prompt; overlap and headline drift at layer {study.layer}."
        ),
    )
    report.add_conditions(study.records)
    curves = study.drift_curves()
    relation = study.overlap_vs_forgetting("max_cosine")
    relation_topk = study.overlap_vs_forgetting("topk_mean_cosine")
    causal = study.causal()
    cka = [sum(v) / len(v) for v in zip(*study.cka, strict=True)]
    report.results.update(layer=study.layer, drift_per_layer=curves, cka_per_layer=cka, causal=causal,
                          overlap_vs_forgetting=[relation, relation_topk], facts=study.facts)

    summary = [{"condition": name, "seeds": len(study.of(name)),
                "new_acc": study.mean(name, "new_acc"), "forgetting": study.mean(name, "forgetting"),
                "drift": study.mean(name, "drift")} for name in CONDITIONS if study.of(name)]
    report.results["summary"] = summary
    section = report.section("Drift of held-out subject representations",
                             "Mean 1 - cos(h_after, h_base) of held-out subjects per layer (SPEC Eq. 3-4).")
    section.table(summary)
    figure = go.Figure([go.Scatter(x=list(range(len(c))), y=c, mode="lines+markers", name=n)
                        for n, c in curves.items()])
    figure.update_layout(title="Held-out subject drift per layer", xaxis_title="layer", yaxis_title="1 - cos")
    section.figure(figure)

    section = report.section(
        "Overlap vs forgetting",
        f"Each held-out fact's overlap = max cosine of its subject state with the new facts' subjects at layer "
        f"{study.layer} (base model); forgotten = correct at the held-out peak and wrong at the end of SFT. Logistic "
        f"slope {relation['logistic'].slope:.2f} (p = {relation['logistic'].p_value:.3g}); top-{study.top_k} mean "
        f"cosine slope {relation_topk['logistic'].slope:.2f} (p = {relation_topk['logistic'].p_value:.3g}).",
    )
    section.table(relation["bins"], title="forgetting rate per overlap bin (Wilson 95 % intervals)")
    bins = relation["bins"]
    figure = go.Figure(go.Scatter(
        x=[b.x_mean for b in bins], y=[b.rate for b in bins], mode="lines+markers", name="SFT",
        error_y={"type": "data", "symmetric": False, "array": [b.ci_high - b.rate for b in bins],
                 "arrayminus": [b.rate - b.ci_low for b in bins]}))
    figure.update_layout(title="Forgetting rate vs subject overlap", xaxis_title="max cosine with new subjects",
                         yaxis_title="fraction forgotten")
    section.figure(figure)
    figure = go.Figure(go.Scatter(x=list(range(len(cka))), y=cka, mode="lines+markers"))
    figure.update_layout(title="Linear CKA, held-out subjects vs their nearest new subjects", xaxis_title="layer",
                         yaxis_title="CKA")
    section.figure(figure)

    if causal is None:
        return report
    high, low = causal["high_forgetting"], causal["low_forgetting"]
    section = report.section(
        "Causal test: high- vs low-overlap new facts",
        f"Two SFT runs per seed that differ only in which new facts are trained: the {config.n_unknown} candidates "
        f"most similar (top-{study.top_k} mean cosine {causal['high_overlap']:.3f}) or least similar "
        f"({causal['low_overlap']:.3f}) to the held-out subjects. Held-out forgetting: {high.mean:.3f} ± "
        f"{high.half_width:.3f} vs {low.mean:.3f} ± {low.half_width:.3f} (acquisition {causal['high_new_acc']:.2f} vs "
        f"{causal['low_new_acc']:.2f}).",
    )
    section.table([{"new facts": "high overlap", **vars(high)}, {"new facts": "low overlap", **vars(low)}])
    return report
