"""The set-up of a study: a base model with its three fact sets, and named training conditions run on copies of it.

Every analysis is a set of conditions (a method, a freezing spec, a choice of new facts, a seed) trained from the
same base model and measured the same way, so they share this module. The config flows down once:

    config = ExperimentConfig.quick_preset()
    base = load_base(config)                        # built once: the embedded world, or a real model and its facts
    setup = make_setup(config, seed=0, base=base)   # one seed: model, D_known / D_unknown / D_held, snapshots
    sft = run_condition(setup, "sft", config.train_config(0, method="sft"))
    sft.record()  # name, seed, task_acc, new_acc, held_acc_peak, held_acc_final, forgetting

A base is the embedded world (`interference.world.World`) or a real model with its facts
(`interference.facts.realdata.RealData`). The base model is never trained: each condition trains a deep copy, and
every condition of a setup shares its snapshot.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace

import torch

from ..facts.examples import Examples
from ..facts.fact import Fact, qa_prompt, qa_target
from ..facts.realdata import RealData, check_data, check_data_relation, load_real_data
from ..facts.splits import check_disjoint
from ..io.errors import InterferenceError, check_seed, check_seeds
from ..measures.history import EpochRecord
from ..models.readable import check_readable
from ..train import Snapshot, TrainConfig, TrainResult, make_snapshot, train
from ..world import World, WorldConfig

#: The model name that means "the embedded world" (its default or quick preset).
WORLD = "world"


def _default_training() -> TrainConfig:
    """How every condition trains unless a study says otherwise: tiny models need a high lr; matched acquisition."""
    return TrainConfig(lr=1e-3, batch_size=16, epochs=40, target_new_acc=0.9)


@dataclass
class ExperimentConfig:
    """Where an analysis gets its base model and facts, and how its conditions are trained.

    Attributes:
        model: "world" (the embedded world's pretrained model) or any name/folder `interference.models.load_model`
            accepts (e.g. "smollm2-135m"); a real model needs `data`.
        data: with a real model, a splits folder, a SLiCK table or an EntityQuestions folder
            (`interference.facts.realdata.load_real_data`).
        quick: use the small test world and small sizes (seconds per condition), for tests and smoke runs.
        n_known, n_unknown, n_held: sizes of D_known, D_unknown (new facts) and D_held.
        train: how every condition trains (`TrainConfig`: method defaults, lr, batch, epochs, matched acquisition);
            a study sets the method and its own overrides per condition (`train_config`).
        seeds: one run per seed (the seed draws the splits and the new facts, and seeds training).
        world_seed: seed of the embedded world.
        layer: the layer whose subject representations drift and overlap are read at; None: the middle layer.
        min_known_fraction: with real data categorised by SLiCK, keep a relation only if at least this fraction of
            its facts is HighlyKnown (paper 0.3; reports list every relation's fraction).
        device: where the base model lives and conditions train ("auto": cuda when available).
        dtype: the base model's weights, "float32" or "bfloat16".
        new_relation: with the embedded world, the relation of the new facts it generates (D_unknown, and the UUID
            and overlap controls drawn beside it); None: the world's first relation ("country"), which naming it
            also gives (it is stored as None). With a real model, a relation of its data (e.g. "P17"): D_unknown
            is drawn from that relation's Unknown facts alone, D_known and D_held as without it (checked against the
            data before the model loads); None: every kept relation's.
    """

    model: str = WORLD
    data: str | None = None
    quick: bool = False
    n_known: int = 100
    n_unknown: int = 200
    n_held: int = 100
    train: TrainConfig = field(default_factory=_default_training)
    seeds: tuple[int, ...] = (0, 1, 2)
    world_seed: int = 0
    layer: int | None = None
    min_known_fraction: float = 0.3
    device: str = "auto"
    dtype: str = "float32"
    new_relation: str | None = None

    def __post_init__(self) -> None:
        from ..models.devices import resolve_device, resolve_dtype

        self.seeds = tuple(self.seeds)
        if isinstance(self.train, dict):
            self.train = TrainConfig.from_dict(self.train)
        if self.model != WORLD and self.data is None:
            raise InterferenceError(f"model {self.model!r} needs --data (a splits or EntityQuestions folder)")
        if self.model == WORLD and self.data is not None:
            raise InterferenceError(f"--data {self.data} needs a --model: the embedded world brings its own facts")
        if self.data is not None:
            check_data(self.data)  # a path that is not there fails here, before any work
        for name in ("n_known", "n_unknown", "n_held"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InterferenceError(f"{name} must be an integer >= 1, got {value!r}")
        check_seeds(self.seeds)
        check_seed(self.world_seed, "world_seed")
        if self.layer is not None and self.layer < 0:
            raise InterferenceError(f"layer must be >= 0, got {self.layer}")
        if not (isinstance(self.min_known_fraction, int | float) and 0 <= self.min_known_fraction <= 1):
            raise InterferenceError(f"min_known_fraction must be in [0, 1], got {self.min_known_fraction!r}")
        resolve_device(self.device), resolve_dtype(self.dtype)  # one-line errors before any work
        check_new_relation(self)
        if self.model == WORLD and self.new_relation == world_config(self).relations[0]:
            self.new_relation = None  # the default's facts, drawn as the default draws them: one experiment
        check_layer(self)  # read from the world's or the model's config, before any weights load

    @classmethod
    def build(cls, **settings) -> ExperimentConfig:
        """A config from flat settings: those named like `TrainConfig` fields (lr, epochs, batch_size,
        target_new_acc, …) go into `train`, on top of its defaults."""
        names = {f.name for f in fields(TrainConfig)}
        training = {k: settings.pop(k) for k in list(settings) if k in names}
        train = replace(settings.pop("train", None) or _default_training(), **training)
        return cls(**settings, train=train)

    @classmethod
    def quick_preset(cls, **overrides) -> ExperimentConfig:
        """Small sizes on the quick world: an analysis finishes in about a minute (tests, notebooks). Flat settings
        as in `build`."""
        return cls.build(**{**dict(quick=True, n_known=40, n_unknown=80, n_held=40, epochs=12, seeds=(0, 1)),
                            **overrides})

    def train_config(self, seed: int, **overrides) -> TrainConfig:
        """The TrainConfig of one condition: `train` with this seed, `overrides` on top."""
        return replace(self.train, seed=seed, **overrides)

    def to_dict(self) -> dict:
        return {**asdict(self), "seeds": list(self.seeds), "train": self.train.to_dict()}


def world_config(config: ExperimentConfig):
    """The `WorldConfig` of `config`'s embedded world (the quick one with `config.quick`)."""
    return (WorldConfig.quick if config.quick else WorldConfig)(seed=config.world_seed)


def check_new_relation(config: ExperimentConfig) -> None:
    """A one-line error when `config.new_relation` is no name, or names no relation of the embedded world or of a
    real model's data (`check_data_relation`; whether the relation passes the known-fraction filter is checked when
    the splits are drawn, `interference.facts.splits.build_splits`)."""
    if config.new_relation is None:
        return
    if not isinstance(config.new_relation, str) or not config.new_relation:
        raise InterferenceError(f"new_relation must be a relation's name, got {config.new_relation!r}")
    if config.model != WORLD:
        return check_data_relation(config.data, config.new_relation)
    relations = world_config(config).relations
    if config.new_relation not in relations:
        raise InterferenceError(f"new_relation {config.new_relation!r} is not a relation of the "
                                f"{'quick ' if config.quick else ''}world (it has {', '.join(relations)})")


def check_layer(config: ExperimentConfig, model: torch.nn.Module | None = None) -> None:
    """A one-line error when `config.layer` is not a decoder layer of the base model: of `model` when given, else of
    what the config of `config.model` declares, read before any weights load (the world's `WorldConfig`, a model's
    config.json, see `interference.models.declared_layers`); unchecked where neither can tell."""
    if config.layer is None:
        return
    if model is not None:
        from ..models.architectures import n_layers

        layers = n_layers(model)
    elif config.model == WORLD:
        layers = world_config(config).n_layers
    else:
        from ..models.loading import declared_layers

        layers = declared_layers(config.model)
    if layers is not None and config.layer >= layers:
        raise InterferenceError(f"layer {config.layer} out of range: {config.model} has layers 0-{layers - 1}")


def load_base(config: ExperimentConfig, *, progress: bool = True) -> World | RealData:
    """What every seed of `config` is drawn from, built once per study: the embedded world (built on first use) or
    `config.model` loaded with its categorised facts (`config.data`), on `config.device` in `config.dtype`."""
    from ..models.devices import resolve_device, resolve_dtype

    device, dtype = resolve_device(config.device), resolve_dtype(config.dtype)
    if config.model != WORLD:
        return load_real_data(config.model, config.data, device=device, dtype=dtype, progress=progress)
    from ..world import load_world

    world = load_world(world_config(config), progress=progress)
    world.model.to(device, dtype)
    return world


def make_setup(config: ExperimentConfig, seed: int, *, base: World | RealData | None = None, key_kind: str = "name",
               overlap: float = 1.0, n_unknown: int | None = None, progress: bool = True) -> Setup:
    """The setup of one seed, drawn from `base` (`load_base(config)` when not given); `config.layer` is checked
    against its model. `key_kind` and `overlap` choose the world's new facts."""
    n_unknown = config.n_unknown if n_unknown is None else n_unknown
    base = load_base(config, progress=progress) if base is None else base
    if isinstance(base, RealData):
        if key_kind != "name" or overlap != 1.0:
            raise InterferenceError("key kinds and overlap levels need the embedded world (new facts are generated)")
        setup = real_setup(base, n_known=config.n_known, n_unknown=n_unknown, n_held=config.n_held, seed=seed,
                           min_known_fraction=config.min_known_fraction, new_relation=config.new_relation)
    else:
        setup = world_setup(base, n_known=config.n_known, n_unknown=n_unknown, n_held=config.n_held,
                            key_kind=key_kind, overlap=overlap, seed=seed, new_relation=config.new_relation)
    check_layer(config, setup.model)  # where the config could not tell (a Hub model offline, a world passed in)
    return setup


def uuid_new_facts(base: World | RealData, setup: Setup, seed: int, relation: str | None = None) -> list[Fact]:
    """The new facts of a seed's UUID-keyed control condition. On the embedded world: as many generated facts as
    `setup`'s D_unknown, with UUID keys, of `relation` (pass the config's `new_relation`; None: the first). On a
    real model, where no facts are generated: `setup`'s own D_unknown with each subject replaced by a fresh hex key
    (`uuid_keyed`), so that only the key differs (relations, templates and answers are kept), and no key is a
    subject of D_known or D_held."""
    from ..facts.new_facts import uuid_keyed

    if isinstance(base, World):
        return base.new_facts(len(setup.unknown), key_kind="uuid", relation=relation, seed=seed)
    return uuid_keyed(setup.unknown, seed=seed, taken=[f.subject for f in setup.known + setup.held])


def middle_layer(model) -> int:
    """The middle decoder layer (the paper reads drift at layer 14 of 28)."""
    from ..models.architectures import n_layers

    return n_layers(model) // 2


def drift_layer(config: ExperimentConfig, model) -> int:
    """The layer a study reads drift at: `config.layer`, else the model's middle layer."""
    return middle_layer(model) if config.layer is None else config.layer


@dataclass
class Setup:
    """A base model and the facts every condition is trained and measured on.

    Attributes:
        name: where the model and facts come from (e.g. "world 3f2a…" or a model name).
        model: the base model (never trained; conditions train copies).
        tokenizer: its tokenizer.
        known: D_known, facts the model knows that are trained on (they teach the QA format).
        unknown: D_unknown, the new facts.
        held: D_held, facts the model knows that are never trained on (forgetting is measured on them).
        seed: the seed the facts were drawn with.
        world: the embedded world, when the setup comes from one (it can make further new facts).
        knowledge: with facts categorised by SLiCK, the relation filter
            (`interference.facts.splits.Splits.knowledge_summary`: every relation's HighlyKnown fraction, the
            threshold, the relations kept); every condition record carries it as `relation_filter`.
    """

    name: str
    model: torch.nn.Module
    tokenizer: object
    known: list[Fact]
    unknown: list[Fact]
    held: list[Fact]
    seed: int = 0
    world: object | None = None
    knowledge: dict | None = None
    _snapshots: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for split in ("known", "unknown", "held"):
            if not getattr(self, split):
                raise InterferenceError(f"the {split} split of setup {self.name!r} is empty")
        check_disjoint({split: getattr(self, split) for split in ("known", "unknown", "held")})
        eos = getattr(self.tokenizer, "eos_token", None) or ""
        texts = [qa_prompt(f) + qa_target(f) + eos for f in (*self.known, *self.unknown, *self.held)]
        check_readable(self.model, self.tokenizer, texts, "fact")

    def fresh_model(self) -> torch.nn.Module:
        """A trainable deep copy of the base model."""
        return copy.deepcopy(self.model)

    def with_unknown(self, unknown: Sequence[Fact]) -> Setup:
        """The same base model, D_known and D_held with other new facts (snapshots are shared: they only see
        D_known)."""
        return replace(self, unknown=list(unknown), _snapshots=self._snapshots)

    def relations(self) -> dict[str, list[str]]:
        """The relation of every fact of D_held and D_unknown in split order, as records list them
        (`held_relations`, `new_relations`; read by `interference.report.relations`)."""
        return {"held_relations": [f.relation for f in self.held], "new_relations": [f.relation for f in self.unknown]}

    def snapshot(self, config: TrainConfig, progress: bool = False) -> Snapshot:
        """θ_snapshot (the base after `config.snapshot_epochs` of SFT on D_known), computed once per setting."""
        key = (
            config.snapshot_epochs,
            config.lr,
            config.batch_size,
            config.seed,
            config.weight_decay,
            config.max_grad_norm,
            config.mixed_precision,
            config.torch_compile,
        )
        if key not in self._snapshots:
            self._snapshots[key] = make_snapshot(
                self.fresh_model(), self.tokenizer, self.known, config, progress=progress
            )
        return self._snapshots[key]


@dataclass
class Condition:
    """One trained condition.

    Attributes:
        name: the condition's label (e.g. "sft", "attention-only", "uuid x1000").
        result: the training run (per-epoch accuracies, per-fact outcomes, losses).
        model: the trained model.
        seconds: wall time of the run, evaluation included.
        relation_filter: the setup's relation filter (`Setup.knowledge`), listed in the record; None for the world.
    """

    name: str
    result: TrainResult
    model: torch.nn.Module
    seconds: float
    relation_filter: dict | None = None

    @property
    def seed(self) -> int:
        return self.result.config.seed

    def record(self, **extra) -> dict:
        """The condition's record for a report: the fields every `results.json` condition carries, the per-epoch
        accuracy `curves` (per split, with `curve_epochs`), the per-fact outcomes the paired bootstrap reads
        (`held_correct_start`, `held_correct_final`, `new_correct_final`), plus `extra`."""
        summary = self.result.summary()
        known_only = tuple(self.result.config.train_splits) == ("known",)
        history = self.result.history
        return {
            "name": self.name,
            "seed": self.seed,
            "task_acc": summary["task_acc"],
            "new_acc": None if known_only else summary["new_acc"],
            "held_acc_peak": summary["held_acc_peak"],
            "held_acc_final": summary["held_acc_final"],
            "forgetting": summary["forgetting"],
            "held_acc_start": summary["held_acc_start"],
            "absolute_drop": summary["absolute_drop"],
            "epochs": summary["epochs"],
            "stopped": summary["stopped"],
            "seconds": round(self.seconds, 2),
            **({"relation_filter": self.relation_filter} if self.relation_filter else {}),
            "curves": {split: self.result.curve(split) for split in ("known", "unknown", "held")},
            "curve_epochs": [r.epoch for r in history],
            "held_correct_start": list(history[0].correct["held"]),
            "held_correct_final": list(history[-1].correct["held"]),
            "new_correct_final": list(history[-1].correct["unknown"]),
            **extra,
        }


def run_condition(setup: Setup, name: str, config: TrainConfig, *, progress: bool = False, bar=None) -> Condition:
    """Train a copy of `setup`'s base model under `config` and return it with its measurements.

    The snapshot (teacher of self-distillation, anchor of l2, start of runs that start from it) is shared by all
    conditions of the setup that use the same optimiser settings, so it is trained once. A study's progress `bar`
    (tqdm) names the condition and, after every epoch, its accuracies, so that a long run on a real model shows
    where it is.
    """
    start = time.perf_counter()
    model = setup.fresh_model()
    on_epoch_end = None
    if bar is not None:
        label = f"seed {config.seed} {name}"
        bar.set_postfix_str(label)

        def on_epoch_end(record: EpochRecord) -> None:
            accuracies = " ".join(f"{k} {v:.2f}" for k, v in record.accuracy.items())
            bar.set_postfix_str(f"{label} · epoch {record.epoch}: {accuracies}")

    snapshot = setup.snapshot(config, progress) if config.needs_snapshot else None
    result = train(
        model,
        setup.tokenizer,
        config,
        known=setup.known,
        unknown=setup.unknown,
        held=setup.held,
        snapshot=snapshot,
        progress=progress,
        on_epoch_end=on_epoch_end,
    )
    return Condition(name, result, model, time.perf_counter() - start, setup.knowledge)


def world_setup(
    world,
    *,
    n_known: int,
    n_unknown: int,
    n_held: int,
    key_kind: str = "name",
    overlap: float = 1.0,
    seed: int = 0,
    relations: Sequence[str] | None = None,
    new_relation: str | None = None,
) -> Setup:
    """D_known and D_held drawn from the facts the world's model knows (disjoint subjects), and D_unknown as
    `n_unknown` new facts about fresh subjects (`key_kind` "name" or "uuid", `overlap` of their syllables with
    stored names) of `new_relation` (None: the world's first relation)."""
    known, held = world.split(n_known, n_held, seed=seed, relations=relations)
    unknown = world.new_facts(n_unknown, key_kind=key_kind, overlap=overlap, relation=new_relation, seed=seed)
    return Setup(f"world {world.config.digest()}", world.model, world.tokenizer, known, unknown, held, seed, world)


def real_setup(data: RealData, *, n_known: int | None = None, n_unknown: int | None = None,
               n_held: int | None = None, seed: int = 0, min_known_fraction: float = 0.3,
               new_relation: str | None = None) -> Setup:
    """The splits of one seed drawn from a real model's facts (`RealData.draw`), with its relation filter (and D_unknown
    of `new_relation` alone where given)."""
    known, unknown, held, knowledge = data.draw(n_known, n_unknown, n_held, seed=seed,
                                                min_known_fraction=min_known_fraction, new_relation=new_relation)
    return Setup(data.name, data.model, data.tokenizer, known, unknown, held, seed, knowledge=knowledge)


def data_setup(model_name: str, data: str, *, n_known: int | None = None, n_unknown: int | None = None,
               n_held: int | None = None, seed: int = 0, min_known_fraction: float = 0.3, **loading) -> Setup:
    """A setup from any causal LM and its facts in one call: `load_real_data(model_name, data, **loading)` (a
    splits folder, a SLiCK table or an EntityQuestions folder), then `real_setup`.

        setup = data_setup("smollm2-135m", "data/entityquestions", n_known=100, n_unknown=200, n_held=100, seed=0)
    """
    return real_setup(load_real_data(model_name, data, **loading), n_known=n_known, n_unknown=n_unknown,
                      n_held=n_held, seed=seed, min_known_fraction=min_known_fraction)


def held_states(setup: Setup, model: torch.nn.Module, layers: Sequence[int]) -> torch.Tensor:
    """Residual states of D_held's subjects (last subject token of the QA prompt) at `layers`: [layers, n, d]."""
    from ..measures.representations import subject_states

    return subject_states(model, setup.tokenizer, setup.held, list(layers), desc=None)


def held_drift(setup: Setup, model: torch.nn.Module, layers: Sequence[int], base: torch.Tensor | None = None
               ) -> torch.Tensor:
    """Per layer, the mean cosine drift 1 − cos(h_after, h_base) of D_held's subjects (SPEC Eq. 3–4): [layers].

    `base` (from `held_states(setup, setup.model, layers)`) may be passed to share it between conditions.
    """
    from ..measures.representations import cosine_drift

    base = held_states(setup, setup.model, layers) if base is None else base
    return cosine_drift(base, held_states(setup, model, layers)).mean(dim=1)


def held_loss_change(start: Snapshot, model: torch.nn.Module, examples: Examples, start_losses: torch.Tensor,
                     steps: int) -> dict:
    """D_held's answer loss (`examples`) at the snapshot `start` (`start_losses`, each fact's, measured once per
    seed) and at `model`: the mean ("held_loss_start", "held_loss_final") and each fact's, in D_held's order, to
    `FACT_LOSS_DECIMALS` ("held_losses_start", "held_losses_final"); and the mean's change split by path-integrated
    gradients over at most `steps` midpoints per decoder layer and per parameter group ("held_loss_by_layer",
    "held_loss_by_group", and the midpoints spent, "held_loss_midpoints"; `interference.measures.attribution`; left
    out for no steps): the record fields remedies and freezing share."""
    from ..measures.attribution import by_group, by_layer, split_loss_change

    fields = held_losses(model, examples, start_losses)
    if steps:
        split = split_loss_change(start, model, examples, steps=steps,
                                  ends=(fields["held_loss_start"], fields["held_loss_final"]))
        fields.update(held_loss_by_layer=by_layer(model, split.shares),
                      held_loss_by_group=by_group(model, split.shares), held_loss_midpoints=split.midpoints)
    return fields


def held_losses(model: torch.nn.Module, examples: Examples, start_losses: torch.Tensor) -> dict:
    """D_held's answer loss (`examples`) at the start (`start_losses`) and at `model`: the mean ("held_loss_start",
    "held_loss_final") and each fact's to `FACT_LOSS_DECIMALS` ("held_losses_start", "held_losses_final")."""
    from ..measures.fisher import answer_losses, mean_loss

    final = answer_losses(model, examples)
    return {"held_loss_start": mean_loss(start_losses), "held_loss_final": mean_loss(final),
            "held_losses_start": rounded_losses(start_losses), "held_losses_final": rounded_losses(final)}


def held_at_start(setup: Setup, train_config: TrainConfig) -> tuple[Examples, torch.Tensor]:
    """D_held's examples and each fact's answer loss at `start_model`: what `held_losses` reads a condition against."""
    from ..measures.fisher import answer_losses

    held = Examples(setup.tokenizer, setup.held)
    return held, answer_losses(start_model(setup, train_config), held)


def start_model(setup: Setup, train_config: TrainConfig) -> torch.nn.Module:
    """The model every condition of `train_config` starts from, in eval mode: a copy of the base model with the
    setup's snapshot (SFT on D_known) loaded, or the base model itself where `train_config.start` is "base"."""
    model = setup.fresh_model()
    if train_config.start == "snapshot":
        setup.snapshot(train_config).load_into(model)
    return model.eval()


#: Decimals each fact's loss keeps in a record (a mean's own digits are kept in full).
FACT_LOSS_DECIMALS = 5


def rounded_losses(losses: torch.Tensor) -> list[float]:
    """Each fact's loss to `FACT_LOSS_DECIMALS`, as records keep them."""
    return [round(value, FACT_LOSS_DECIMALS) for value in losses.tolist()]
