"""The per-layer freezing sweep (SPEC §3, ours): train only one layer, or freeze only one layer, at a time.

For every band of layers (one layer by default) and every parameter group (the whole layer by default, or its
attention and FFN parts separately), two conditions: `train_only` the band (everything else frozen) and `freeze`
the band (everything else trains); plus full SFT as the reference. Each is trained like forgetting's SFT and
measured the same way, so the sweep shows where in the depth of the model new facts are written (acquisition) and
where training them destroys held-out facts (forgetting).

How long a sweep condition trains is an option (`match`): "epochs" (default) trains each condition for as many
epochs as full SFT needed to reach the acquisition target on the same seed, so acquisition compares what each band
can learn with the same budget; "acquisition" trains each to the target itself (or the epoch limit), so forgetting
compares bands at matched acquisition where they can reach it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ..facts.examples import Examples
from ..io.errors import InterferenceError
from ..measures.attribution import STEPS
from ..measures.updates import layer_update_norms
from ..models.architectures import n_layers
from ..models.weights import Snapshot
from ..report.attribution import FIELDS as ATTRIBUTION_FIELDS
from ..report.attribution import add_attribution_views
from ..report.document import Report
from ..report.fact_losses import add_fact_loss_view
from ..report.fact_pairs import add_fact_pair_view
from ..report.headline import add_curves, add_headline, add_summary, ours
from ..report.paired import Check, paired_difference
from ..report.stats import mean_ci
from ..report.tables import count_text
from .setup import (
    Condition,
    ExperimentConfig,
    Setup,
    drift_layer,
    held_at_start,
    held_drift,
    held_loss_change,
    held_states,
    load_base,
    make_setup,
    run_condition,
)

#: Sweep modes: the TrainConfig field each sets, and its label in condition names.
MODES = {"train_only": "train-only", "freeze": "freeze-only"}
#: Parameter groups a band can be split into (see `interference.models.parameter_groups`): the attention's single
#: matrices too, so that a band of every layer answers which attention matrices can store new facts.
GROUPS = ("all", "attention", "ffn", "norms", "attention_q", "attention_k", "attention_v", "attention_o")
#: How long sweep conditions train: as many epochs as full SFT, or to the acquisition target.
MATCHES = ("epochs", "acquisition")
#: Name of the full-SFT reference condition.
REFERENCE = "sft"
SUMMARY_FIELDS = ("task_acc", "new_acc", "held_acc_final", "forgetting", "absolute_drop", "drift")


@dataclass(frozen=True)
class SweepCondition:
    """One cell of the sweep: `mode` ("train_only" or "freeze") applied to `group` in layers first..last."""

    mode: str
    group: str
    first: int
    last: int

    @property
    def band(self) -> str:
        """The layers as a label: "3" or "2-3"."""
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"

    @property
    def selection(self) -> str:
        """The parameter selection (`interference.models.parameter_groups` syntax), e.g. "all@2" or "ffn@0-1"."""
        return f"{self.group}@{self.band}"

    @property
    def row(self) -> str:
        """The heat-map row: the mode, and the group unless it is the whole layer."""
        return MODES[self.mode] if self.group == "all" else f"{MODES[self.mode]} {self.group}"

    @property
    def name(self) -> str:
        """The condition's name, e.g. "train-only layer 1" or "freeze-only ffn layers 0-1"."""
        layers = "layer" if self.first == self.last else "layers"
        return f"{self.row} {layers} {self.band}"


def check_options(*, groups: Sequence[str], band: int, modes: Sequence[str], match: str = "epochs",
                  layers: int | None = None, attribution_steps: int = STEPS) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Validate the sweep's options (`band` against `layers` when known); returns groups and modes as tuples."""
    groups = (groups,) if isinstance(groups, str) else tuple(groups)
    modes = (modes,) if isinstance(modes, str) else tuple(modes)
    if layers is not None and (isinstance(layers, bool) or not isinstance(layers, int) or layers < 1):
        raise InterferenceError(f"the model needs at least one layer, got {layers!r}")
    if isinstance(band, bool) or not isinstance(band, int) or band < 1:
        raise InterferenceError(f"band must be an integer >= 1, got {band!r}")
    if layers is not None and band > layers:
        raise InterferenceError(f"band {band} is wider than the model ({layers} layers)")
    bad = [g for g in groups if g not in GROUPS]
    if bad or not groups or len(set(groups)) != len(groups):
        raise InterferenceError(f"groups must be distinct names from {', '.join(GROUPS)}, got {list(groups)}")
    bad = [m for m in modes if m not in MODES]
    if bad or not modes or len(set(modes)) != len(modes):
        raise InterferenceError(f"modes must be distinct names from {', '.join(MODES)}, got {list(modes)}")
    if match not in MATCHES:
        raise InterferenceError(f"match must be one of {', '.join(MATCHES)}, got {match!r}")
    if isinstance(attribution_steps, bool) or not isinstance(attribution_steps, int) or attribution_steps < 0:
        raise InterferenceError(f"attribution steps must be an integer >= 0 (0: no split), got {attribution_steps!r}")
    return groups, modes


def sweep_conditions(layers: int, *, groups: Sequence[str] = ("all",), band: int = 1,
                     modes: Sequence[str] = tuple(MODES)) -> list[SweepCondition]:
    """The sweep's cells for a model with `layers` decoder layers: bands of `band` consecutive layers (the last band
    may be shorter), each split into `groups`, under each of `modes`."""
    groups, modes = check_options(groups=groups, band=band, modes=modes, layers=layers)
    cells = []
    for mode in modes:
        for group in groups:
            for first in range(0, layers, band):
                cells.append(SweepCondition(mode, group, first, min(first + band, layers) - 1))
    return cells


def train_cell(setup: Setup, config: ExperimentConfig, cell: SweepCondition, seed: int,
               epochs: int | None = None, bar=None) -> Condition:
    """Train one sweep cell with SFT: `epochs` exactly (no target), or to the config's target when None (`bar`: the
    study's progress bar, `run_condition`)."""
    overrides = {"method": "sft", cell.mode: cell.selection}
    if epochs is not None:
        overrides.update(epochs=epochs, target_new_acc=None, eval_every_steps=None)
    return run_condition(setup, cell.name, config.train_config(seed, **overrides), bar=bar)


@dataclass(frozen=True)
class _Start:
    """What a seed's conditions are measured against: the base model's held-out subject states at the drift layer,
    the snapshot every condition starts from, D_held as examples and each fact's answer loss at the snapshot, and the
    midpoints of the loss change's split."""

    states: torch.Tensor
    snapshot: Snapshot
    held: Examples
    held_losses: torch.Tensor
    attribution_steps: int


def _record(setup: Setup, condition: Condition, layer: int, start: _Start, **extra) -> dict:
    """The condition's record with its held-out drift at `layer`, its accuracy curves, how far each layer moved from
    the snapshot (`update_norms`), D_held's answer loss at the snapshot and at the end (`held_loss_start`,
    `held_loss_final`) and where it changed (`held_loss_by_layer`, `held_loss_by_group`;
    `interference.measures.attribution`; a frozen layer's share is 0)."""
    drift = held_drift(setup, condition.model, [layer], start.states)[0].item()
    curves = {split: condition.result.curve(split) for split in ("known", "unknown", "held")}
    return condition.record(drift=drift, curves=curves,
                            update_norms=layer_update_norms(start.snapshot, condition.model),
                            **held_loss_change(start.snapshot, condition.model, start.held, start.held_losses,
                                               start.attribution_steps),
                            **extra)


def _trained_fraction(condition: Condition) -> float:
    trainable = set(condition.result.trainable)
    sizes = {name: p.numel() for name, p in condition.model.named_parameters()}
    return sum(sizes[n] for n in trainable) / sum(sizes.values())


@dataclass
class FreezingStudy:
    """Result of `run_freezing`.

    Attributes:
        config: the experiment settings.
        cells: the sweep conditions, in order (the reference is not among them).
        layers: the model's number of decoder layers.
        layer: the layer drift was measured at.
        band: consecutive layers per band.
        match: "epochs" or "acquisition" (see the module docstring).
        records: one condition record per (condition, seed): the reference first on each seed, then the cells. Sweep
            records also carry `mode`, `group`, `first`, `last`, `selection` and `trained_fraction` (the share of
            parameters that trained).
    """

    config: ExperimentConfig
    cells: list[SweepCondition]
    layers: int
    layer: int
    band: int
    match: str
    records: list[dict] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        """Condition names: the reference, then the cells."""
        return [REFERENCE] + [c.name for c in self.cells]

    def of(self, name: str) -> list[dict]:
        """The records of condition `name`, one per seed."""
        return [r for r in self.records if r["name"] == name]

    def summary(self) -> list[dict]:
        """Per condition: mean and 95 % t-interval half-width over seeds of each headline number."""
        cells = {c.name: c for c in self.cells}
        rows = []
        for name in self.names:
            cell = cells.get(name)
            row: dict = {"condition": name, "mode": cell.mode if cell else "full",
                         "group": cell.group if cell else "all",
                         "layers": cell.band if cell else f"0-{self.layers - 1}", "seeds": len(self.of(name))}
            for key in SUMMARY_FIELDS:
                values = [r[key] for r in self.of(name) if r.get(key) is not None and not math.isnan(r[key])]
                if values:
                    ci = mean_ci(values)
                    row[key], row[f"{key}_ci"] = ci.mean, ci.half_width
                else:
                    row[key], row[f"{key}_ci"] = None, None
            rows.append(row)
        return rows

    def grid(self, key: str) -> tuple[list[str], list[str], list[list[float | None]]]:
        """A heat-map of the mean of `key` over seeds: (row labels, band labels, values[row][band])."""
        means = {row["condition"]: row[key] for row in self.summary()}
        rows = list(dict.fromkeys(c.row for c in self.cells))
        bands = list(dict.fromkeys(c.band for c in self.cells))
        values = [[None] * len(bands) for _ in rows]
        for cell in self.cells:
            values[rows.index(cell.row)][bands.index(cell.band)] = means[cell.name]
        return rows, bands, values


def run_freezing(config: ExperimentConfig, *, base=None, progress: bool = True,
                 mode: Sequence[str] = ("train_only", "freeze"), groups: Sequence[str] = ("all",), band: int = 1,
                 match: str = "epochs", attribution_steps: int = STEPS) -> FreezingStudy:
    """Run the sweep on every seed of `config`: full SFT, then each cell (see `sweep_conditions`), from the same base.

    `mode` picks the sweep modes, `groups` splits each band into parameter groups, `band` is the number of
    consecutive layers per band, and `match` sets how long cells train (see the module docstring).
    `attribution_steps` are the most midpoints of the path integral that splits each condition's held-out loss change
    over the layers and parameter groups (`interference.measures.attribution.split_loss_change`; 0: not measured).
    """
    groups, mode = check_options(groups=groups, band=band, modes=mode, match=match,
                                 attribution_steps=attribution_steps)
    base = base if base is not None else load_base(config, progress=progress)
    study: FreezingStudy | None = None
    bar = None
    for seed in config.seeds:
        setup = make_setup(config, seed, base=base, progress=progress)
        if study is None:
            layers = n_layers(setup.model)
            cells = sweep_conditions(layers, groups=groups, band=band, modes=mode)
            layer = drift_layer(config, setup.model)
            study = FreezingStudy(config, cells, layers, layer, band, match)
            bar = tqdm(total=(len(cells) + 1) * len(config.seeds), desc="freezing", unit="run", disable=not progress)
        sft = config.train_config(seed, method="sft")
        start = _Start(held_states(setup, setup.model, [study.layer]), setup.snapshot(sft),
                       *held_at_start(setup, sft), attribution_steps)
        reference = run_condition(setup, REFERENCE, sft, bar=bar)
        study.records.append(_record(setup, reference, study.layer, start, mode="full", group="all", first=0,
                                     last=study.layers - 1, selection=None, trained_fraction=1.0))
        bar.update(1)
        epochs = max(1, reference.result.epochs) if match == "epochs" else None
        for cell in study.cells:
            condition = train_cell(setup, config, cell, seed, epochs, bar)
            study.records.append(_record(setup, condition, study.layer, start, mode=cell.mode, group=cell.group,
                                         first=cell.first, last=cell.last, selection=cell.selection,
                                         trained_fraction=_trained_fraction(condition)))
            bar.update(1)
    bar.close()
    order = study.names
    study.records.sort(key=lambda r: (r["seed"], order.index(r["name"])))
    return study


def _heatmap(study: FreezingStudy, key: str, title: str, scale: str):
    import plotly.graph_objects as go

    rows, bands, values = study.grid(key)
    text = [["—" if v is None else f"{v:.2f}" for v in row] for row in values]
    figure = go.Figure(go.Heatmap(z=values, x=[f"layer {b}" for b in bands], y=rows, text=text,
                                  texttemplate="%{text}", colorscale=scale, zmin=0, zmax=1, name=key))
    figure.update_layout(title=title, xaxis_title="layer (band)", yaxis={"autorange": "reversed"},
                         height=160 + 60 * len(rows))
    return figure


#: The verdict's threshold: freezing one band "costs little" acquisition when it stays within this of full SFT's.
MAX_FREEZE_COST = 0.1


def freezing_checks(study: FreezingStudy, records: list[dict]) -> list[Check]:
    """The verdict's rules for "acquisition is spread over the layers": training any one band alone acquires less
    than full SFT with the same budget, while freezing any one band costs little acquisition."""
    def gaps(mode: str) -> list[tuple[str, float]]:
        out = []
        for cell in study.cells:
            if cell.mode == mode:
                diff = paired_difference(records, cell.name, REFERENCE, "new_acc")
                out.append((cell.name, diff.t.mean))
        return out

    train_only, frozen = gaps("train_only"), gaps("freeze")
    checks = []
    if train_only:
        mean_gap = sum(g for _, g in train_only) / len(train_only)
        checks += [Check("training one band alone acquires less than full SFT, on average over bands (paired)",
                         f"mean difference {mean_gap:+.3f}", mean_gap < 0, primary=True),
                   Check("every train-only band acquires less than full SFT",
                         f"{sum(g < 0 for _, g in train_only)} of {len(train_only)} bands",
                         all(g < 0 for _, g in train_only))]
    if frozen:
        worst = min(frozen, key=lambda item: item[1])
        checks.append(Check(f"freezing any one band costs at most {MAX_FREEZE_COST} acquisition",
                            f"largest cost {-worst[1]:+.3f} ({worst[0]})", -worst[1] <= MAX_FREEZE_COST,
                            primary=not train_only))
    return checks


def freezing_report(study: FreezingStudy) -> Report:
    """The freezing-sweep report: the headline (each cell − full SFT, paired, with Table 1 of the paper beside),
    heat-maps of acquisition and forgetting per layer, per-epoch curves and the condition table."""
    config = study.config
    summary = study.summary()
    reference = next(r for r in summary if r["condition"] == REFERENCE)
    length = ("as many epochs as full SFT took on the same seed" if study.match == "epochs"
              else f"until acc(D_unknown) >= {config.train.target_new_acc} or {config.train.epochs} epochs")
    report = Report(
        "Per-layer freezing sweep",
        config={**config.to_dict(), "match": study.match, "groups": list(dict.fromkeys(c.group for c in study.cells)),
                "band": study.band,
                "modes": list(dict.fromkeys(c.mode for c in study.cells))},
        seeds=config.seeds,
        description=(
            f"{len(study.cells)} sweep conditions + full SFT x {count_text(len(config.seeds), 'seed')}"
            f" on {config.model}"
            f"{' (quick)' if config.quick else ''} ({study.layers} layers): D_known {config.n_known}, D_unknown "
            f"{config.n_unknown} new facts, D_held {config.n_held}. Train-only trains just the named layers "
            f"(everything else, embeddings included, frozen); freeze-only freezes just them. Sweep conditions train "
            f"{length}. Forgetting = (peak - final) / peak of held-out accuracy; drift = mean 1 - cos of held-out "
            f"subject states, base vs trained, at layer {study.layer}. Values are means over seeds (95 % t-intervals "
            f"in the table)."
        ),
    )
    report.add_conditions(study.records)
    records, names = report.conditions, study.names
    report.results.update(summary=summary, layers=study.layers, layer=study.layer, match=study.match)
    for key in ("new_acc", "forgetting", "task_acc", "drift"):
        rows, bands, values = study.grid(key)
        report.results[f"grid_{key}"] = {"rows": rows, "layers": bands, "values": values}
    paper = [
        {"quantity": "acquisition, attention-only training in all layers (Table 1)", "paper": "1.0 %",
         "ours": "— (analyses.forgetting, attention-only)"},
        {"quantity": "acquisition, FFN-only / all parameters (Table 1)", "paper": "94.1 % / 94.6 %",
         "ours": f"— / {ours(records, REFERENCE, 'new_acc')} (full SFT here)"},
        {"quantity": "held-out accuracy after full SFT (Table 1)", "paper": "78.0 %",
         "ours": ours(records, REFERENCE, "held_acc_final")},
        {"quantity": "acquisition and forgetting per single layer", "paper": "not in the paper (ours)",
         "ours": "the heat-maps below"},
    ]
    add_headline(report, claim="Acquisition of new facts is spread over the layers: training any one band of layers "
                 "alone learns less than full SFT with the same budget, and freezing one band costs little (ours; "
                 "the paper's Table 1 restricts attention vs FFN in all layers).", records=records, conditions=names,
                 checks=freezing_checks(study, records), paper=paper, reference=REFERENCE,
                 acquired=(REFERENCE,))  # the rules compare acquisition with full SFT's, not at a target

    def fmt(value) -> str:
        return "—" if value is None else f"{value:.3f}"

    heat = report.section(
        "Acquisition and forgetting per layer",
        f"Full SFT (all layers): new-fact accuracy {fmt(reference['new_acc'])}, forgetting "
        f"{fmt(reference['forgetting'])}, task accuracy {fmt(reference['task_acc'])}. Rows: which parameters of the "
        f"column's layers were trained only (train-only) or frozen only (freeze-only).",
    )
    heat.figure(_heatmap(study, "new_acc", "New-fact acquisition acc(D_unknown)", "Blues"))
    heat.figure(_heatmap(study, "forgetting", "Held-out forgetting (relative drop from peak)", "Reds"))
    if any(r.get(field) for r in records for field in (*ATTRIBUTION_FIELDS, "held_correct_final")):
        where = report.section(
            "Where the held-out loss changed",
            "Each condition's change of D_held's answer loss from the snapshot, split over the layers and the "
            "parameter groups by path-integrated gradients (`interference.measures.attribution`): a frozen layer's "
            "share is 0, so these tables show where its part of full SFT's change went instead.")
        add_attribution_views(where, report.results, records, names)
        add_fact_loss_view(where, report.results, records, names)
        add_fact_pair_view(where, report.results, records, names, REFERENCE)
    add_summary(report, records, names)
    add_curves(report, records, names)
    return report
