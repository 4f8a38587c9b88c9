"""Where the damage is: causal tracing of the held-out facts fine-tuning forgot (restoration by activation patching).

Per seed, from one setup, every condition starting from the same snapshot (the fair protocol):
1. conditions: SFT and self-distillation on the new facts (name-like on the embedded world, the data's Unknown facts
   on a real model), and SFT on UUID-keyed new facts (`setup.uuid_new_facts`: on a real model, the same facts with
   each subject replaced by a hex key);
2. per condition, its forgotten facts: held-out facts the start model (the snapshot) answers correctly and the
   fine-tuned model does not (greedy, teacher-forced check, `interference.measures.tracing`);
3. restoration: for every position mode (subject tokens, last prompt token) × layer × site, the start model's state
   patched into the fine-tuned model; recovery of the first answer token's probability, and whether the greedy
   answer becomes correct;
4. controls: SFT's *retained* facts (correct before and after; no recovery expected, and little to recover), SFT's
   forgotten facts restored with a random *other* fact's state, and the UUID condition's forgotten facts;
5. ROME's causal trace on the start model for SFT's forgotten facts: where those facts live.
Per cell, the mean recovery over a group's facts is taken per seed (`SeedCells`, kept in that seed's condition
record), then averaged over seeds with a 95 % t-interval. The records are all a report needs, so the seeds of runs
with the same settings pool (`interference.report.accumulate`): `python -m analyses.tracing --accumulate`/`--merge`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ..io.errors import InterferenceError
from ..measures.tracing import MODES, PatchEffects, causal_trace, random_donors, restore, score_facts
from ..models.views import SITES
from ..report.document import Report
from ..report.paired import finite_number
from ..report.stats import mean_ci
from ..report.tables import count_text
from .setup import ExperimentConfig, load_base, make_setup, run_condition, start_model, uuid_new_facts

#: The groups of facts traced, in report order: (name, what it is).
GROUPS = {
    "sft forgotten": "held-out facts SFT forgot, start-model state restored",
    "self_distill forgotten": "held-out facts self-distillation forgot, start-model state restored",
    "uuid-sft forgotten": "control: held-out facts SFT on UUID-keyed new facts forgot",
    "sft retained": "control: held-out facts SFT kept (little to recover)",
    "sft forgotten, other fact's state": "control: SFT's forgotten facts, a random other fact's start state patched in",
    "causal trace (start model)": "SFT's forgotten facts in the start model: subject embeddings noised, one clean "
                                  "state restored (ROME)",
}
#: The conditions a seed trains, in report order.
CONDITIONS = ("sft", "self_distill", "uuid-sft")
HEADLINE_GROUP = "sft forgotten"
TRACE_GROUP = "causal trace (start model)"
OTHER_GROUP = "sft forgotten, other fact's state"
#: The causal trace's noise draws, and its noise in standard deviations of the subject embeddings (ROME's).
SAMPLES, NOISE = 10, 3.0
#: Recovery is defined for facts whose start-model gold probability exceeds the unpatched one by at least this.
MIN_GAP = 0.05
#: A cell "brings the fact back" when its mean recovery reaches this.
SUPPORT_THRESHOLD = 0.5


#: Decimals kept of a seed's per-cell values (what results.json holds, and what every statistic is computed from).
DECIMALS = 6


@dataclass(frozen=True)
class SeedCells:
    """One group's patching at one seed, per position mode × layer × site: all a report needs of it.

    Attributes:
        recovery: [modes, layers, sites] mean recovery over the facts where it is defined (NaN where none is).
        facts: [modes, layers, sites] how many facts that was.
        restored: [modes, layers, sites] fraction of the facts whose greedy answer the patch makes correct (None for
            the causal trace, which has no greedy answer).
    """

    recovery: torch.Tensor
    facts: torch.Tensor
    restored: torch.Tensor | None = None

    @classmethod
    def of(cls, effects: PatchEffects, min_gap: float = MIN_GAP) -> SeedCells:
        """The summary of `effects`, rounded to `DECIMALS` (so that a run and its pooled rebuild agree exactly)."""
        restored = effects.restored()
        return cls(effects.mean_recovery(min_gap).double().round(decimals=DECIMALS),
                   (~effects.recovery(min_gap).isnan()).sum(-1),
                   None if restored is None else restored.double().round(decimals=DECIMALS))

    def to_json(self) -> dict:
        """Nested lists ([modes][layers][sites]), NaN as None."""
        def plain(values: torch.Tensor):
            return [[[None if math.isnan(v) else v for v in row] for row in mode] for mode in values.tolist()]

        return {"recovery": plain(self.recovery), "facts": self.facts.tolist(),
                "restored": None if self.restored is None else plain(self.restored)}

    @classmethod
    def from_json(cls, data: dict) -> SeedCells:
        def tensor(values) -> torch.Tensor:
            return torch.tensor([[[math.nan if v is None else v for v in row] for row in mode] for mode in values],
                                dtype=torch.float64)

        return cls(tensor(data["recovery"]), torch.tensor(data["facts"]),
                   None if data.get("restored") is None else tensor(data["restored"]))


@dataclass
class TracingStudy:
    """Result of `run_tracing`, or of pooling the records of several runs.

    Attributes:
        config: the experiment settings.
        n_layers: decoder layers of the model.
        min_gap: see `MIN_GAP`.
        records: condition records (one per condition and seed), with the number of facts traced, the `SeedCells`
            of each group the condition traced (`traced`: group → `SeedCells.to_json()`, None where the group had no
            facts at that seed) and, for SFT, its forgotten facts (`traced_facts`: seed, subject, relation, answer,
            gold probabilities before and after, the cell that restores each most).
    """

    config: ExperimentConfig
    n_layers: int
    min_gap: float = MIN_GAP
    records: list[dict] = field(default_factory=list)

    @classmethod
    def from_effects(cls, config: ExperimentConfig, effects: dict[str, dict[int, PatchEffects | None]], *,
                     min_gap: float = MIN_GAP) -> TracingStudy:
        """A study of patching done by hand (e.g. `restore` of one fact): `effects` per group, per seed, kept as one
        record per seed (named "traced")."""
        seeds = sorted({seed for by_seed in effects.values() for seed in by_seed})
        n_layers = next(e.n_layers for by_seed in effects.values() for e in by_seed.values() if e is not None)
        records = [{"name": "traced", "seed": seed, "traced": {
            group: None if by_seed[seed] is None else SeedCells.of(by_seed[seed], min_gap).to_json()
            for group, by_seed in effects.items() if seed in by_seed}} for seed in seeds]
        return cls(config, n_layers, min_gap, records)

    @property
    def effects(self) -> dict[str, dict[int, SeedCells | None]]:
        """Per group, per seed, its `SeedCells` (None where the group had no facts at that seed)."""
        effects: dict[str, dict[int, SeedCells | None]] = {}
        for record in self.records:
            for group, cells in (record.get("traced") or {}).items():
                effects.setdefault(group, {})[record["seed"]] = None if cells is None else SeedCells.from_json(cells)
        return effects

    @property
    def facts(self) -> list[dict]:
        """Per forgotten fact SFT traced: seed, subject, relation, answer, gold probabilities, best cell."""
        return [fact for record in self.records for fact in record.get("traced_facts", ())]

    def cells(self, group: str) -> list[dict]:
        """Per mode × layer × site: mean recovery over seeds with its 95 % interval, the fraction of facts whose
        greedy answer the patch makes correct, and how many seeds and facts entered."""
        runs = [e for e in self.effects.get(group, {}).values() if e is not None]
        if not runs:
            return []
        means = torch.stack([e.recovery for e in runs])  # [seeds, modes, layers, sites]
        restored = [e.restored for e in runs]
        defined = torch.stack([e.facts for e in runs]).sum(0)
        rows = []
        for m, mode in enumerate(MODES):
            for layer in range(self.n_layers):
                for s, site in enumerate(SITES):
                    interval = mean_ci(means[:, m, layer, s].tolist(), omit_nan=True)
                    row = {"group": group, "mode": mode, "layer": layer, "site": site,
                           "recovery": interval.mean, "low": interval.low, "high": interval.high,
                           "seeds": interval.n, "facts": int(defined[m, layer, s])}
                    if restored[0] is not None:
                        row["restored"] = sum(float(r[m, layer, s]) for r in restored) / len(restored)
                    rows.append(row)
        return rows

    def best(self, group: str, mode: str | None = None) -> dict | None:
        """The cell of `group` (optionally of one position mode) with the highest mean recovery (for the causal
        trace, not the corrupted embeddings themselves, whose restoration undoes the corruption)."""
        rows = [r for r in self.cells(group) if (mode is None or r["mode"] == mode) and finite_number(r["recovery"])
                and not (group == TRACE_GROUP and (r["mode"], r["layer"], r["site"]) == ("subject", 0, "resid_pre"))]
        return max(rows, key=lambda r: r["recovery"]) if rows else None

    def at(self, group: str, cell: dict) -> dict | None:
        """`group`'s row at the same mode, layer and site as `cell`."""
        for row in self.cells(group):
            if (row["mode"], row["layer"], row["site"]) == (cell["mode"], cell["layer"], cell["site"]):
                return row
        return None

    def paired(self, group: str, other: str, cell: dict) -> dict | None:
        """Per seed, `group`'s mean recovery minus `other`'s at `cell` (the same mode, layer and site), over the seeds
        both have: the mean difference with its 95 % t-interval (None where no seed has both)."""
        m, s = MODES.index(cell["mode"]), SITES.index(cell["site"])
        ours, theirs = self.effects.get(group, {}), self.effects.get(other, {})
        differences = [float(ours[seed].recovery[m, cell["layer"], s] - theirs[seed].recovery[m, cell["layer"], s])
                       for seed in ours if ours[seed] is not None and theirs.get(seed) is not None]
        differences = [d for d in differences if math.isfinite(d)]
        if not differences:
            return None
        interval = mean_ci(differences)
        return {"difference": interval.mean, "low": interval.low, "high": interval.high, "seeds": interval.n}

    def verdict(self) -> tuple[str, str]:
        """Whether restoration supports localized interference, and why.

        "supports": restoring the subject tokens' start state at some layer and site recovers at least
        `SUPPORT_THRESHOLD` of SFT's forgotten facts' lost probability on average, and more than a random other
        fact's state at the same cell (the per-seed paired difference's 95 % interval lies above 0); "partly": it
        beats the control on average but misses the threshold or the interval; "does not": otherwise. Last-token
        cells are left out: restoring the last token's late state overrides the whole computation and says nothing
        about where the fact was damaged.
        """
        best = self.best(HEADLINE_GROUP, "subject")
        if best is None:
            return "not tested", "no forgotten facts with a recovery to measure"
        paired = self.paired(HEADLINE_GROUP, OTHER_GROUP, best)
        where = f"subject tokens, layer {best['layer']} {best['site']}"
        if paired is None:
            return "not tested", f"the {where} recovers {best['recovery']:.2f}, but the other-fact control is missing"
        interval = finite_number(paired["low"])  # one seed has none
        seeds = f"{paired['seeds']} seed{'' if paired['seeds'] == 1 else 's'}"
        versus = (f"the {where} recovers {best['recovery']:.2f}, {paired['difference']:+.2f} "
                  + (f"[{paired['low']:+.2f}, {paired['high']:+.2f}] " if interval else "")
                  + f"against a random other fact's state (paired over {seeds})")
        separated = interval and paired["low"] > 0
        if best["recovery"] >= SUPPORT_THRESHOLD and separated:
            return "supports", versus
        if paired["difference"] > 0:
            missed = [] if separated else ["the interval of the difference reaches 0" if interval
                                           else f"{seeds} give{'s' if paired['seeds'] == 1 else ''} no interval"]
            if best["recovery"] < SUPPORT_THRESHOLD:
                missed.insert(0, f"the recovery is below {SUPPORT_THRESHOLD}")
            return "partly", f"{versus}; but {' and '.join(missed)}"
        return "does not", f"{versus}: no more than the control"


def run_tracing(config: ExperimentConfig, *, base=None, samples: int = SAMPLES, noise: float = NOISE,
                min_gap: float = MIN_GAP, max_retained: int | None = None, progress: bool = True) -> TracingStudy:
    """Run the tracing study on every seed of `config` (see the module docstring). `samples` and `noise` are the
    causal trace's noise draws and scale (× the subject embeddings' standard deviation); `max_retained` caps the
    retained-fact control at that many of SFT's retained facts, drawn by the seed (None: all of them). Restoring a
    fact patches it once per mode × layer × site, so on a CPU a real model's control costs more than the rest."""
    if max_retained is not None and max_retained < 1:
        raise InterferenceError(f"max_retained must be >= 1 (or None: all), got {max_retained}")
    from ..models.architectures import n_layers

    base = base if base is not None else load_base(config, progress=progress)
    study: TracingStudy | None = None
    bar = tqdm(total=len(CONDITIONS) * len(config.seeds), desc="tracing", unit="run", disable=not progress)
    for seed in config.seeds:
        setup = make_setup(config, seed, base=base, progress=progress)
        suffix = f", seed {seed}"  # of each patching progress bar's name

        def named(group: str, suffix: str = suffix) -> str | None:
            return group + suffix if progress else None

        if study is None:
            study = TracingStudy(config, n_layers(setup.model), min_gap)
        configs = {name: config.train_config(seed, method="self_distill" if name == "self_distill" else "sft",
                                             start="snapshot") for name in CONDITIONS}
        start = start_model(setup, configs["sft"])
        tokenizer = setup.tokenizer
        _, start_ok = score_facts(start, tokenizer, setup.held)
        uuid_facts = uuid_new_facts(base, setup, seed, config.new_relation)
        uuid_setup = setup.with_unknown(uuid_facts)  # a fact it cannot key: before training
        for name in CONDITIONS:
            run_setup = uuid_setup if name == "uuid-sft" else setup
            condition = run_condition(run_setup, name, configs[name], bar=bar)
            _, ft_ok = score_facts(condition.model, tokenizer, setup.held)
            forgotten = [f for f, a, b in zip(setup.held, start_ok, ft_ok, strict=True) if a and not b]
            retained = [f for f, a, b in zip(setup.held, start_ok, ft_ok, strict=True) if a and b]
            record = condition.record(traced_forgotten=len(forgotten), retained=len(retained))
            retained = _at_most(retained, max_retained, seed)
            record["traced_retained"] = len(retained)
            effects = {f"{name} forgotten": (restore(condition.model, start, tokenizer, forgotten,
                                                     desc=named(f"{name} forgotten")) if forgotten else None)}
            if name == "sft":
                other = len({f.subject for f in forgotten}) > 1
                effects |= {
                    "sft retained": (restore(condition.model, start, tokenizer, retained, desc=named("sft retained"))
                                     if retained else None),
                    OTHER_GROUP: (restore(condition.model, start, tokenizer, forgotten, desc=named(OTHER_GROUP),
                                          donors=random_donors(forgotten, seed=seed)) if other else None),
                    TRACE_GROUP: (causal_trace(start, tokenizer, forgotten, noise=noise, samples=samples, seed=seed,
                                               desc=named("causal trace")) if forgotten else None),
                }
                record["traced_facts"] = _fact_rows(study, seed, forgotten, effects["sft forgotten"])
            record["traced"] = {group: None if e is None else SeedCells.of(e, min_gap).to_json()
                                for group, e in effects.items()}
            study.records.append(record)
            bar.update(1)
    bar.close()
    return study


def _at_most(facts: list, n: int | None, seed: int) -> list:
    """`n` of `facts` drawn by `seed`, in their order (all of them when `n` is None or not smaller)."""
    if n is None or n >= len(facts):
        return facts
    return [facts[i] for i in sorted(random.Random(seed).sample(range(len(facts)), n))]


def _fact_rows(study: TracingStudy, seed: int, facts, effects: PatchEffects | None) -> list[dict]:
    """Per forgotten fact: its gold probabilities before and after, and the cell that restores it most."""
    if effects is None:
        return []
    best = effects.recovery(study.min_gap).flatten(0, 2)  # [cells, n]
    rows = []
    for i, fact in enumerate(facts):
        column = best[:, i]
        top = int(torch.nan_to_num(column, nan=-math.inf).argmax())
        mode, rest = divmod(top, study.n_layers * len(SITES))
        layer, site = divmod(rest, len(SITES))
        rows.append({
            "seed": seed, "subject": fact.subject, "relation": fact.relation, "answer": fact.object,
            "p_start": float(effects.p_to[i]), "p_sft": float(effects.p_from[i]),
            "best_cell": f"{MODES[mode]} L{layer} {SITES[site]}" if not column.isnan().all() else None,
            "best_recovery": float(column[top]) if not column.isnan().all() else None,
        })
    return rows


# --- the report ------------------------------------------------------------------------------------------------------

def recovery_heatmaps(study: TracingStudy, group: str, value: str = "recovery"):
    """One heat-map per position mode of `group`'s mean `value` (layer × site), intervals in the cell text."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows = study.cells(group)
    figure = make_subplots(rows=1, cols=len(MODES), subplot_titles=[f"{m} token{'s' if m == 'subject' else ''}"
                                                                    for m in MODES], horizontal_spacing=0.12)
    for col, mode in enumerate(MODES, 1):
        z = [[None] * len(SITES) for _ in range(study.n_layers)]
        text = [[""] * len(SITES) for _ in range(study.n_layers)]
        for r in rows:
            if r["mode"] != mode:
                continue
            v = r[value]
            z[r["layer"]][SITES.index(r["site"])] = v if finite_number(v) else None
            if finite_number(v):
                half = (r["high"] - r["low"]) / 2 if value == "recovery" and finite_number(r["high"]) else None
                text[r["layer"]][SITES.index(r["site"])] = f"{v:.2f}" + (f"±{half:.2f}" if half is not None else "")
        figure.add_trace(go.Heatmap(z=z, x=list(SITES), y=list(range(study.n_layers)), text=text,
                                    texttemplate="%{text}", colorscale="RdBu", zmid=0, zmin=-1, zmax=1,
                                    showscale=col == len(MODES), name=mode,
                                    colorbar={"title": value}), row=1, col=col)
        figure.update_yaxes(title_text="layer", dtick=1, row=1, col=col)
        figure.update_xaxes(title_text="site", row=1, col=col)
    figure.update_layout(title=f"{group}: mean {value} per layer and site (± 95 % interval over seeds)",
                         height=260 + 40 * study.n_layers)
    return figure


def _cell_text(row: dict | None) -> str:
    if row is None or not finite_number(row["recovery"]):
        return "—"
    interval = f" [{row['low']:.2f}, {row['high']:.2f}]" if finite_number(row["low"]) else " (one seed: no interval)"
    return f"{row['mode']} L{row['layer']} {row['site']}: {row['recovery']:.2f}{interval}"


def tracing_report(study: TracingStudy) -> Report:
    """The tracing report: the headline (best layer and site, controls, verdict), heat-maps, per-fact detail."""
    config = study.config
    source = "Embedded world" if config.model == "world" else config.model
    report = Report(
        "Where the damage is: causal tracing of forgotten facts",
        config={**config.to_dict(), "min_gap": study.min_gap, "start": "snapshot"},
        seeds=config.seeds,
        description=(
            f"{source}{' (quick)' if config.quick else ''}: D_known {config.n_known}, D_unknown {config.n_unknown}, "
            f"D_held {config.n_held}; {count_text(len(config.seeds), 'seed')}"
            f"; every condition starts from the same snapshot and "
            f"trains until acc(new) >= {config.train.target_new_acc} or {config.train.epochs} epochs. "
            "For each held-out fact a "
            f"condition forgot, the start model's activation at one layer and site (at the subject's tokens, or at "
            f"the prompt's last token) is patched into the fine-tuned model. Recovery = (p_patched − p_ft) / "
            f"(p_start − p_ft) of the first answer token, over facts where p_start − p_ft >= {study.min_gap}."
        ),
    )
    verdict, why = study.verdict()
    best_all, best_subject = study.best(HEADLINE_GROUP), study.best(HEADLINE_GROUP, "subject")
    retained_best = study.best("sft retained")
    rows = [
        {"what": "SFT forgotten: best cell", "cell": _cell_text(best_all),
         "restored": None if best_all is None else best_all.get("restored")},
        {"what": "SFT forgotten: best subject-token cell", "cell": _cell_text(best_subject),
         "restored": None if best_subject is None else best_subject.get("restored")},
    ]
    for group in ("sft forgotten, other fact's state", "sft retained", "self_distill forgotten",
                  "uuid-sft forgotten", "causal trace (start model)"):
        if best_subject is not None and study.cells(group):
            same = study.at(group, best_subject)
            rows.append({"what": f"{group}: at that cell", "cell": _cell_text(same),
                         "restored": None if same is None else same.get("restored")})
    rows.append({"what": "SFT retained: best cell", "cell": _cell_text(retained_best),
                 "restored": None if retained_best is None else retained_best.get("restored")})
    trace_best = study.best(TRACE_GROUP, "subject")
    rows.append({"what": "causal trace: where the fact lives (best subject-token cell)", "cell": _cell_text(trace_best),
                 "restored": None})
    paired = {}
    for other in (OTHER_GROUP, "sft retained"):
        difference = study.paired(HEADLINE_GROUP, other, best_subject) if best_subject else None
        paired[other] = difference
        if difference is not None:
            rows.append({"what": f"SFT forgotten − {other}, paired by seed, at the best subject-token cell",
                         "cell": f"{difference['difference']:+.2f} [{difference['low']:+.2f}, "
                                 f"{difference['high']:+.2f}]", "restored": None})
    section = report.section(
        "Headline",
        f"Claim tested: if fine-tuning forgot a fact by overwriting its subject's representation (localized "
        f"interference), restoring that representation from the start model at the right layer and site brings "
        f"the fact back, and a state that is not the fact's own does not. Verdict: {verdict} — {why}.",
    )
    section.table(rows, title="mean recovery [95 % interval over seeds]; restored = fraction of facts whose greedy "
                              "answer the patch makes correct")
    report.add_conditions(study.records)

    section = report.section("Restoration heat-maps",
                             "Mean recovery per layer and site, for SFT and for self-distillation (both from the "
                             "snapshot). Last-token cells at the last layer restore the output itself; subject-token "
                             "cells say where the fact was damaged.")
    for group in ("sft forgotten", "self_distill forgotten"):
        if study.cells(group):
            section.figure(recovery_heatmaps(study, group))
    section = report.section("Controls", "; ".join(f"{g}: {GROUPS[g]}" for g in
                                                   ("sft retained", "sft forgotten, other fact's state",
                                                    "uuid-sft forgotten")))
    for group in ("sft retained", "sft forgotten, other fact's state", "uuid-sft forgotten"):
        if study.cells(group):
            section.figure(recovery_heatmaps(study, group))
    section = report.section("Where the fact lives: causal trace of the start model", GROUPS[
        "causal trace (start model)"] + "; recovery = (p_restored − p_corrupt) / (p_clean − p_corrupt).")
    if study.cells("causal trace (start model)"):
        section.figure(recovery_heatmaps(study, "causal trace (start model)"))
    section = report.section("Forgotten facts (SFT)", "Per fact: the start model's and SFT's gold probability, and "
                                                      "the cell that restores it most.")
    section.table(study.facts, collapsed=True)

    report.results["tracing"] = {
        "modes": list(MODES), "sites": list(SITES), "n_layers": study.n_layers, "min_gap": study.min_gap,
        "groups": {group: GROUPS[group] for group in GROUPS if study.cells(group)},
        "cells": [row for group in GROUPS for row in study.cells(group)],
        "headline": {"best": best_all, "best_subject": best_subject, "retained_best": retained_best,
                     "retained_at_best_subject": study.at("sft retained", best_subject) if best_subject else None,
                     "other_fact_at_best_subject": (study.at(OTHER_GROUP, best_subject)
                                                    if best_subject else None),
                     "causal_trace_best_subject": trace_best, "verdict": verdict, "why": why,
                     "paired_minus_other_fact": paired[OTHER_GROUP], "paired_minus_retained": paired["sft retained"]},
        "facts": study.facts,
    }
    return report
