"""FFN concept promotion (Geva et al. 2022, SPEC §5): which FFN sub-updates fine-tuning moves, and what happens to
the sub-updates that promoted the answers of held-out facts SFT forgets.

One seed (`config.seeds[0]`): SFT and self-distillation are trained from the same base. Per layer:

- value vector movement: ‖v_i^after − v_i^base‖ for every sub-update, summarised per method (mean and largest
  relative change, mean cosine, the share of the total squared change held by the 5 % most-moved vectors), and the
  most-moved value vectors with their top tokens (r_i = E·v_i) before and after;
- answer promotion: for each held-out fact, at the position that predicts the answer's first token, the promotion
  m_i·(e_w·v_i) of the answer token w summed over the `dominant` sub-updates with the largest |m_i|·‖v_i‖ in each
  model ("dominant"), summed over the base model's dominant sub-updates followed into each model ("followed"), and
  summed over every sub-update ("total", the FFN's direct logit for w) — in the base, SFT and self-distilled models,
  averaged over held-out facts SFT forgot and over those it retained.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ..facts.fact import Fact, qa_prompt, qa_target
from ..io.errors import InterferenceError
from ..measures import metrics
from ..measures.ffn import answer_promotions, m_definition, value_vector_shift, value_vector_tokens
from ..models.architectures import n_layers, unembedding, value_vectors
from ..report import charts
from ..report.document import Report
from ..report.headline import add_curves, add_headline, ours
from ..report.paired import Check, beyond_noise, evidence, paired_difference
from .setup import ExperimentConfig, drift_layer, held_drift, held_states, load_base, make_setup, run_condition

#: The trained conditions, and the model names used in the promotion tables ("base" is the untrained model).
METHODS = ("sft", "self_distill")
MODELS = ("base", *METHODS)
#: Kinds of promotion measured (see the module docstring).
PROMOTIONS = ("dominant", "followed", "total")
#: Share of the most-moved value vectors whose part of the total squared change is reported.
TOP_SHARE = 0.05


@dataclass
class FFNStudy:
    """Result of `run_ffn`.

    Attributes:
        config: the experiment settings.
        seed: the seed trained (config.seeds[0]).
        layers: the model's number of decoder layers.
        layer: the layer drift was measured at.
        top_k: tokens listed per value vector; n_vectors: most-moved value vectors listed per layer and method;
        dominant: sub-updates counted as dominant per fact.
        records: the condition records of sft and self_distill (drift at `layer` included).
        movement: per (method, layer): how much the value vectors moved from the base.
        moved: per (method, layer, rank): the most-moved value vectors, their change and top tokens before/after.
        promotion: per (layer, model, group) with group "forgotten" or "retained" (under SFT): mean promotion of the
            answer's first token of each kind in `PROMOTIONS`, and `dominant_shift`, the mean relative change of the
            base's dominant sub-updates from the base to that model (None for the base).
        facts: per held-out fact in either group: its subject, answer token, group, whether self-distillation
            kept it, and per layer and model its promotions.
        m_definition: what m_i and v_i are in this model's family (`interference.measures.ffn.m_definition`).
    """

    config: ExperimentConfig
    seed: int
    layers: int
    layer: int
    top_k: int
    n_vectors: int
    dominant: int
    records: list[dict] = field(default_factory=list)
    movement: list[dict] = field(default_factory=list)
    moved: list[dict] = field(default_factory=list)
    promotion: list[dict] = field(default_factory=list)
    facts: list[dict] = field(default_factory=list)
    m_definition: str = ""

    def record(self, name: str) -> dict:
        """The condition record of `name` ("sft" or "self_distill")."""
        return next(r for r in self.records if r["name"] == name)

    def mean_promotion(self, model: str, group: str, kind: str = "dominant") -> list[float | None]:
        """Per layer, the mean promotion of kind `kind` in `model` over the facts of `group`."""
        rows = {(r["layer"], r["model"], r["group"]): r for r in self.promotion}
        return [rows[(layer, model, group)][kind] for layer in range(self.layers)]


def _mean(values: Sequence[float]) -> float | None:
    return float(sum(values) / len(values)) if values else None


def outcome_groups(result) -> dict[str, list[int]]:
    """Indices into D_held of facts forgotten under the run (correct at the held-out peak, wrong at the end) and of
    facts retained (correct at the peak and at the end)."""
    curve = result.curve("held")
    top = metrics.peak(curve)
    at = next((i for i, v in enumerate(curve) if v == top), 0)  # the peak evaluation, as in `forgotten_at_peak`
    peak, final = result.history[at].correct["held"], result.history[-1].correct["held"]
    forgotten = list(result.forgotten)
    retained = [i for i, (p, f) in enumerate(zip(peak, final, strict=True)) if p and f]
    return {"forgotten": forgotten, "retained": retained}


def promotion_vectors(model, tokenizer, facts: Sequence[Fact], layer: int, *, dominant: int
                      ) -> tuple[torch.Tensor, torch.Tensor, list[float], list[str]]:
    """For each fact, at the position predicting its answer's first token in `layer` of `model`: the promotion of
    that token by every sub-update [n, d_mlp], the indices of the `dominant` largest contributions [n, dominant],
    the total promotion, and the answer token."""
    d_mlp = value_vectors(model, layer).shape[0]
    if not 1 <= dominant <= d_mlp:
        raise InterferenceError(f"dominant must lie in [1, {d_mlp}] (the layer's sub-updates), got {dominant}")
    found = answer_promotions(model, tokenizer, [qa_prompt(f) for f in facts], [qa_target(f) for f in facts], layer,
                              top_k=d_mlp, desc=None)
    full = torch.zeros(len(facts), d_mlp)
    top = torch.zeros(len(facts), dominant, dtype=torch.long)
    for row, item in enumerate(found):
        full[row, item.indices] = item.promotion
        top[row] = item.indices[:dominant]  # indices come sorted by contribution, largest first
    return full, top, [item.total_promotion for item in found], [item.token for item in found]


def _movement(method: str, layer: int, shift) -> dict:
    squared = shift.distance.double() ** 2
    n_top = max(1, math.ceil(TOP_SHARE * len(squared)))
    total = float(squared.sum())
    return {
        "method": method,
        "layer": layer,
        "mean_distance": float(shift.distance.mean()),
        "mean_relative": float(shift.relative.mean()),
        "max_relative": float(shift.relative.max()),
        "mean_cosine": float(shift.cosine.mean()),
        "top_share": float(squared.sort(descending=True).values[:n_top].sum() / total) if total > 0 else None,
    }


def _moved(models: Mapping, tokenizer, method: str, layer: int, shifts: Mapping, n_vectors: int, top_k: int
           ) -> list[dict]:
    shift = shifts[method]
    picked = shift.order[:n_vectors].tolist()
    before = value_vector_tokens(models["base"], tokenizer, layer, top_k, indices=picked).tokens
    after = value_vector_tokens(models[method], tokenizer, layer, top_k, indices=picked).tokens
    other = next(m for m in METHODS if m != method)
    return [
        {
            "method": method,
            "layer": layer,
            "rank": rank + 1,
            "index": index,
            "distance": float(shift.distance[index]),
            "relative": float(shift.relative[index]),
            "cosine": float(shift.cosine[index]),
            f"relative_{other}": float(shifts[other].relative[index]),
            "tokens_before": before[rank],
            "tokens_after": after[rank],
        }
        for rank, index in enumerate(picked)
    ]


def run_ffn(config: ExperimentConfig, *, base=None, progress: bool = True, top_k: int = 10, n_vectors: int = 5,
            dominant: int = 10) -> FFNStudy:
    """Train SFT and self-distillation on `config.seeds[0]` and compare their FFN sub-updates with the base's."""
    for name, value in (("top_k", top_k), ("n_vectors", n_vectors), ("dominant", dominant)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InterferenceError(f"{name} must be an integer >= 1, got {value!r}")
    seed = config.seeds[0]
    base = base if base is not None else load_base(config, progress=progress)
    setup = make_setup(config, seed, base=base, progress=progress)
    layers = n_layers(setup.model)
    d_mlp, vocab = value_vectors(setup.model, 0).shape[0], unembedding(setup.model).shape[0]
    if dominant > d_mlp or top_k > vocab:
        raise InterferenceError(f"dominant must be <= {d_mlp} (sub-updates per layer) and top_k <= {vocab} (the "
                                f"vocabulary), got {dominant} and {top_k}")
    layer = drift_layer(config, setup.model)
    study = FFNStudy(config, seed, layers, layer, top_k, n_vectors, dominant, m_definition=m_definition(setup.model))
    bar = tqdm(total=len(METHODS) + 2 * layers, desc="ffn", unit="step", disable=not progress)
    base_states = held_states(setup, setup.model, [layer])
    models, conditions = {"base": setup.model}, {}
    for method in METHODS:
        condition = run_condition(setup, method, config.train_config(seed, method=method), bar=bar)
        conditions[method], models[method] = condition, condition.model
        drift = held_drift(setup, condition.model, [layer], base_states)[0].item()
        study.records.append(condition.record(drift=drift))
        bar.update(1)

    groups = outcome_groups(conditions["sft"].result)
    kept = conditions["self_distill"].result.history[-1].correct["held"]
    for record in study.records:
        record.update(n_forgotten_sft=len(groups["forgotten"]), n_retained_sft=len(groups["retained"]))
    for layer_i in range(layers):
        bar.set_postfix_str(f"layer {layer_i} value vectors")
        shifts = {m: value_vector_shift(setup.model, models[m], layer_i) for m in METHODS}
        for method in METHODS:
            study.movement.append(_movement(method, layer_i, shifts[method]))
            study.moved += _moved(models, setup.tokenizer, method, layer_i, shifts, n_vectors, top_k)
        bar.update(1)
        bar.set_postfix_str(f"layer {layer_i} promotion")
        _promotion(study, models, setup, layer_i, groups, kept, shifts)
        bar.update(1)
    bar.close()
    return study


def _promotion(study: FFNStudy, models: Mapping, setup, layer: int, groups: Mapping[str, list[int]],
               kept: Sequence[bool], shifts: Mapping) -> None:
    """Fill the study's promotion rows (and per-fact entries) for `layer`."""
    indices = groups["forgotten"] + groups["retained"]
    facts = [setup.held[i] for i in indices]
    by_fact = {}
    if facts:
        vectors = {m: promotion_vectors(models[m], setup.tokenizer, facts, layer, dominant=study.dominant)
                   for m in MODELS}
        base_top = vectors["base"][1]
        for model in MODELS:
            full, top, total, tokens = vectors[model]
            by_fact[model] = {
                "dominant": full.gather(1, top).sum(dim=1).tolist(),
                "followed": full.gather(1, base_top).sum(dim=1).tolist(),
                "total": total,
            }
        shift_of = {m: shifts[m].relative[base_top].mean(dim=1).tolist() for m in METHODS}
        answer_tokens = vectors["base"][3]
    for group, members in groups.items():
        rows = [indices.index(i) for i in members]
        for model in MODELS:
            entry = {"layer": layer, "model": model, "group": group, "facts": len(rows)}
            for kind in PROMOTIONS:
                entry[kind] = _mean([by_fact[model][kind][r] for r in rows]) if rows else None
            entry["dominant_shift"] = _mean([shift_of[model][r] for r in rows]) if rows and model in METHODS else None
            study.promotion.append(entry)
    if layer == 0:
        for row, i in enumerate(indices):
            fact = setup.held[i]
            study.facts.append({"held_index": i, "subject": fact.subject, "relation": fact.relation,
                                "answer": fact.object, "answer_token": answer_tokens[row],
                                "group": "forgotten" if i in groups["forgotten"] else "retained",
                                "kept_by_self_distill": bool(kept[i]), "promotion": []})
    for row, entry in enumerate(study.facts):
        entry["promotion"].append({"layer": layer, **{m: {k: by_fact[m][k][row] for k in PROMOTIONS}
                                                      for m in MODELS}})


def ffn_checks(study: FFNStudy, forgotten: int, kept: int) -> list[Check]:
    """The verdict's rules (one seed): self-distillation ends with higher held-out accuracy than SFT, moves the
    value vectors of the drift layer less, and keeps more than half of the facts SFT forgot."""
    moved = {r["method"]: r["mean_relative"] for r in study.movement if r["layer"] == study.layer}
    gain = paired_difference(study.records, "self_distill", "sft", "held_acc_final")
    return [
        Check("self_distill − sft final held-out accuracy > 0 beyond noise (95 % bootstrap over facts above 0)",
              evidence(gain), beyond_noise(gain), primary=True),
        Check(f"self_distill moves layer {study.layer}'s value vectors less than sft (mean ‖Δv‖/‖v‖)",
              f"{moved['self_distill']:.4f} vs {moved['sft']:.4f}", moved["self_distill"] < moved["sft"]),
        Check("self_distill still answers more than half of the held-out facts SFT forgot",
              f"{kept} of {forgotten}", forgotten > 0 and kept > forgotten / 2),
    ]


def ffn_report(study: FFNStudy) -> Report:
    """The FFN report: value vector movement per layer and method, the most-moved sub-updates with their tokens, and
    the promotion of held-out answers before and after fine-tuning."""
    import plotly.graph_objects as go

    config = study.config
    sft = study.record("sft")
    forgotten = [f for f in study.facts if f["group"] == "forgotten"]
    kept = sum(f["kept_by_self_distill"] for f in forgotten)
    report = Report(
        "FFN concept promotion",
        config={**config.to_dict(), "top_k": study.top_k, "n_vectors": study.n_vectors, "dominant": study.dominant},
        seeds=[study.seed],
        description=(
            f"SFT and self-distillation on {config.model}{' (quick)' if config.quick else ''}, seed {study.seed} "
            f"({study.layers} layers): D_known {config.n_known}, D_unknown {config.n_unknown}, D_held {config.n_held}. "
            f"SFT forgot {len(forgotten)} held-out facts (correct at the held-out peak, wrong at the end) and "
            f"retained {sft['n_retained_sft']}; self-distillation still answers {kept} of those {len(forgotten)}. "
            f"A sub-update is m_i v_i, v_i a value vector (column of the down projection"
            f"{'; ' + study.m_definition if study.m_definition else ''}); its top tokens are the "
            f"largest entries of E·v_i; its promotion of token w is m_i (e_w·v_i) (Geva et al. 2022). Both methods "
            f"start from the same model (the snapshot, the base after SFT on D_known, unless configured otherwise); "
            f"every change is measured from the base."
        ),
    )
    report.add_conditions(study.records)
    report.results.update(movement=study.movement, moved=study.moved, promotion=study.promotion, facts=study.facts,
                          layers=study.layers, layer=study.layer, forgotten=len(forgotten),
                          forgotten_kept_by_self_distill=kept)
    add_headline(report, claim="Self-distillation protects held-out facts by leaving the FFN sub-updates in place: "
                 "it moves the value vectors less than SFT and still answers most facts SFT forgets (ours, SPEC §5; "
                 "one seed, so no intervals).", records=report.conditions, conditions=list(METHODS),
                 checks=ffn_checks(study, len(forgotten), kept), paper=[
                     {"quantity": "forgetting, SFT / self-distillation", "paper": "≈15 % / ≈3 %",
                      "ours": f"{ours(report.conditions, 'sft', 'forgetting')} / "
                              f"{ours(report.conditions, 'self_distill', 'forgetting')}"},
                     {"quantity": "FFN value-vector movement", "paper": "not in the paper (ours)",
                      "ours": "the movement chart below"}],
                 acquired=METHODS, target=config.train.target_new_acc)  # no rule of its own on acquisition
    add_curves(report, report.conditions, list(METHODS))

    layers = list(range(study.layers))
    movement = report.section(
        "How far the value vectors moved",
        f"Per layer: mean ‖v_after − v_base‖ relative to ‖v_base‖, the largest relative change, the mean cosine, and "
        f"the share of the total squared change held by the {TOP_SHARE:.0%} most-moved value vectors.",
    )
    movement.table(study.movement)
    figure = go.Figure()
    for method in METHODS:
        rows = [r for r in study.movement if r["method"] == method]
        figure.add_trace(go.Bar(x=[r["layer"] for r in rows], y=[r["mean_relative"] for r in rows], name=method))
    figure.update_layout(title="Mean relative change of value vectors from the base", xaxis_title="layer",
                         yaxis_title="mean ‖Δv‖ / ‖v‖", barmode="group")
    movement.figure(charts.layer_axis(figure))

    moved = report.section(
        "The most-moved sub-updates",
        f"Per layer, the {study.n_vectors} value vectors that moved most from the base under each method, with their "
        f"top {study.top_k} tokens before and after, and how much the same vector moved under the other method.",
    )
    for method in METHODS:
        moved.table([r for r in study.moved if r["method"] == method], title=f"base → {method}")

    promotion = report.section(
        "Promotion of held-out answers",
        f"Mean promotion of the answer's first token at the position that predicts it: by the {study.dominant} "
        f"dominant sub-updates of each model (largest |m_i|·‖v_i‖), by the base model's dominant sub-updates followed "
        f"into each model, and by all sub-updates (the FFN's direct logit). Groups: held-out facts SFT forgot and "
        f"facts it retained. dominant_shift: mean relative change ‖Δv‖/‖v‖ of the base's dominant sub-updates from "
        f"the base to that model.",
    )
    promotion.table(study.promotion)
    for kind, label in (("dominant", "dominant sub-updates"), ("followed", "the base's dominant sub-updates")):
        figure = go.Figure()
        for model in MODELS:
            for group, dash in (("forgotten", "solid"), ("retained", "dot")):
                figure.add_trace(go.Scatter(x=layers, y=study.mean_promotion(model, group, kind), name=f"{model} "
                                            f"({group})", mode="lines+markers", line={"dash": dash}))
        figure.update_layout(title=f"Promotion of the held-out answer by {label}", xaxis_title="layer",
                             yaxis_title="mean Σ m_i (e_w·v_i)")
        promotion.figure(charts.layer_axis(figure))
    if forgotten:
        promotion.table([{"subject": f["subject"], "relation": f["relation"], "answer": f["answer"],
                          "answer_token": f["answer_token"], "kept_by_self_distill": f["kept_by_self_distill"],
                          **{f"{m} L{p['layer']}": p[m]["dominant"] for p in f["promotion"] for m in MODELS}}
                         for f in forgotten], title="Forgotten facts: dominant promotion per layer and model")
    return report
