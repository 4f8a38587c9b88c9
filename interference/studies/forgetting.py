"""Forgetting under each training method (Kaplan et al. Table 1 and the self-distillation result, SPEC §2–§3).

Methods: full SFT, self-distillation, the L2 control, attention-only and FFN-only SFT, and SFT on D_known only. SFT,
self-distillation, L2 and FFN-only train until acc(D_unknown) reaches the target (matched acquisition) or the epoch
limit; attention-only and known-only cannot (or do not try to) learn the new facts, so they train for as many
epochs as full SFT needed on the same seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from ..errors import InterferenceError
from ..experiment import ExperimentConfig, held_drift, held_states, load_base, make_setup, middle_layer, run_condition
from ..report import Report
from ..stats import mean_ci

#: Method name -> TrainConfig fields that make it.
METHODS: dict[str, dict] = {
    "sft": {"method": "sft"},
    "self_distill": {"method": "self_distill"},
    "l2": {"method": "l2"},
    "attention-only": {"method": "sft", "train_only": "attention"},
    "ffn-only": {"method": "sft", "train_only": "ffn"},
    "known-only": {"method": "sft", "train_splits": ("known",)},
}
#: Methods trained for as many epochs as full SFT took (they cannot reach the acquisition target).
SFT_LENGTH = ("attention-only", "known-only")
SUMMARY_FIELDS = ("task_acc", "new_acc", "held_acc_peak", "held_acc_final", "forgetting", "drift")


@dataclass
class ForgettingStudy:
    """Result of `run_forgetting`.

    Attributes:
        config: the experiment settings.
        methods: the methods run, in order.
        layer: the layer drift was measured at.
        records: one condition record per (method, seed) (see `interference.experiment.Condition.record`), with the
            mean held-out subject drift at `layer`, the per-epoch accuracy curves and `forgotten`, the (relation,
            subject) keys of the held-out facts right at the held-out peak and wrong at the end.
    """

    config: ExperimentConfig
    methods: tuple[str, ...]
    layer: int
    records: list[dict] = field(default_factory=list)

    def of(self, method: str) -> list[dict]:
        """The records of `method`, one per seed."""
        return [r for r in self.records if r["name"] == method]

    def summary(self) -> list[dict]:
        """Per method: mean and 95 % t-interval half-width over seeds of each headline number."""
        rows = []
        for method in self.methods:
            row: dict = {"method": method, "seeds": len(self.of(method))}
            for name in SUMMARY_FIELDS:
                values = [r[name] for r in self.of(method) if r.get(name) is not None]
                if values:
                    ci = mean_ci(values, omit_nan=True)
                    row[name], row[f"{name}_ci"] = ci.mean, ci.half_width
                else:
                    row[name], row[f"{name}_ci"] = None, None
            rows.append(row)
        return rows

    def mean(self, method: str, name: str) -> float:
        """The mean of `name` over the seeds of `method`."""
        return next(row[name] for row in self.summary() if row["method"] == method)


def run_forgetting(config: ExperimentConfig, methods: Sequence[str] = tuple(METHODS), *, world=None,
                   progress: bool = True) -> ForgettingStudy:
    """Train every method on every seed of `config` from the same base model and measure forgetting and drift."""
    methods = tuple(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        bad = unknown[0] if unknown else None
        raise InterferenceError(f"unknown method {bad!r} (choose from {', '.join(METHODS)})")
    order = sorted(methods, key=lambda m: m != "sft")  # SFT first: its length sets the others'
    world = world if world is not None else load_base(config, progress=progress)
    study: ForgettingStudy | None = None
    bar = tqdm(total=len(methods) * len(config.seeds), desc="forgetting", unit="run", disable=not progress)
    for seed in config.seeds:
        setup = make_setup(config, seed, world=world, progress=progress)
        if study is None:
            layer = middle_layer(setup.model) if config.layer is None else config.layer
            study = ForgettingStudy(config, methods, layer)
        base = held_states(setup, setup.model, [study.layer])
        sft_epochs = None
        for method in order:
            overrides = dict(METHODS[method])
            if method in SFT_LENGTH:
                overrides.update(epochs=sft_epochs or config.epochs, target_new_acc=None)
            bar.set_postfix_str(f"seed {seed} {method}")
            condition = run_condition(setup, method, config.train_config(seed, **overrides))
            if method == "sft":
                sft_epochs = max(1, condition.result.epochs)
            drift = held_drift(setup, condition.model, [study.layer], base)[0].item()
            curves = {split: condition.result.curve(split) for split in ("known", "unknown", "held")}
            study.records.append(condition.record(drift=drift, curves=curves,
                                                  forgotten=[setup.held[i].key for i in condition.result.forgotten]))
            bar.update(1)
    bar.close()
    study.records.sort(key=lambda r: (methods.index(r["name"]), r["seed"]))
    return study


def forgetting_report(study: ForgettingStudy) -> Report:
    """The forgetting report: the method table with intervals, per-epoch curves, and the drift per method."""
    import plotly.graph_objects as go

    config = study.config
    report = Report(
        "Forgetting under fine-tuning methods",
        config=config,
        seeds=config.seeds,
        description=(
            f"{len(study.methods)} methods x {len(config.seeds)} seeds on {config.model}"
            f"{' (quick)' if config.quick else ''}: D_known {config.n_known}, D_unknown {config.n_unknown} new facts, "
            f"D_held {config.n_held}. Forgetting = (peak - final) / peak of held-out accuracy (SPEC §2); intervals "
            f"are 95 % t-intervals over seeds. Drift = mean 1 - cos of held-out subject states, base vs trained, at "
            f"layer {study.layer}."
        ),
    )
    report.add_conditions(study.records)
    summary = study.summary()
    report.results["summary"] = summary
    report.results["layer"] = study.layer
    section = report.section("Table 1: task, new and held-out accuracy, forgetting")
    section.table(summary, columns=["method", "seeds", "task_acc", "new_acc", "held_acc_peak", "held_acc_final",
                                    "forgetting", "forgetting_ci", "drift", "drift_ci"])
    bars = go.Figure(go.Bar(
        x=[r["method"] for r in summary], y=[r["forgetting"] for r in summary],
        error_y={"type": "data", "array": [r["forgetting_ci"] or 0 for r in summary]}, name="forgetting",
    ))
    bars.update_layout(title="Held-out forgetting (mean over seeds, 95 % CI)", yaxis_title="relative drop from peak")
    section.figure(bars)
    curves = report.section("Per-epoch accuracy", "Mean over seeds of task (D_known), new (D_unknown) and held-out "
                                                  "(D_held) accuracy after each epoch; epoch 0 is the start.")
    for split, label in (("held", "held-out"), ("unknown", "new facts"), ("known", "task")):
        figure = go.Figure()
        for method in study.methods:
            runs = [r["curves"][split] for r in study.of(method)]
            length = max(len(c) for c in runs)
            mean = [sum(c[i] for c in runs if i < len(c)) / sum(1 for c in runs if i < len(c)) for i in range(length)]
            figure.add_trace(go.Scatter(x=list(range(length)), y=mean, mode="lines+markers", name=method))
        figure.update_layout(title=f"{label} accuracy", xaxis_title="epoch", yaxis_title="accuracy")
        curves.figure(figure)
    return report
