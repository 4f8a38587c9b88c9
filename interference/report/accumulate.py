"""Seeds that accumulate: a later run of an analysis into the same output folder adds its seeds to the earlier run's.

Every report records its run fingerprint (`results.json` → `results.run_fingerprint`): the analysis, the study's
own settings (methods, counts, …) and every setting of the `ExperimentConfig` that decides the numbers — model,
facts (a data file or folder by the SHA-256 of its contents, so a copy elsewhere is the same facts, and files
rewritten in place are not), sizes, layer, dtype, world seed and the
whole training config — but not the seeds, which are what accumulates, nor the device, nor whether the training
step was compiled. Two runs with the same fingerprint are samples of the same experiment, so their per-seed records
may be pooled:

    earlier = earlier_run(folder, fingerprint)   # None, or the records, seeds and results already there
    study = pool(run_study(config_with_only_new_seeds), earlier)

and the study's records become the earlier ones plus the new ones; every report statistic is then recomputed over
all seeds. A folder whose run has another fingerprint is refused with one line naming the first differing setting,
with one exception a study may declare (`Part`): where its conditions (methods) are each trained apart from the
seed's start, a run of some of them pools with an earlier run of more, taking the earlier run's records of those.
Each record carries the `machine` it ran on, so a pooled report shows where its seeds came from.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..io.errors import InterferenceError
from .files import RESULTS_FILE, load_results, sha256

#: Config settings that do not enter the fingerprint: what accumulates, and where it ran.
NOT_FINGERPRINTED = ("seeds", "device")
#: Training settings that do not enter it either: how the step ran (a compiled step changes the floats, as another
#: device does, not the experiment).
NOT_FINGERPRINTED_TRAINING = ("torch_compile",)
#: Training settings added after runs were committed, each with the value at which it does nothing and the options
#: that act only with it: where off they are left out of the comparison (`comparable`), so those runs still pool.
ADDED_OFF = {"ewc_lambda": (0.0, ()), "replay_fraction": (0.0, ()),
             "lora_rank": (None, ("lora_alpha", "lora_targets", "lora_lr")), "order_shift": (0, ())}
#: Experiment settings added after runs were committed, with the value at which they change nothing: left out of the
#: fingerprint where so, so that earlier runs keep their digest.
ADDED_OFF_CONFIG = {"new_relation": None}
#: Study settings added after runs were committed, with the value at which they change nothing: left out where so.
ADDED_OFF_STUDY = {"remedies": {"lora_lr": None}}
#: Study settings that only set how finely a measure is taken, not what is trained or scored, wherever a study keeps
#: them (among its settings or in its own section, as the remedies do): never compared, so runs with and without them
#: pool (their records say what they measured).
MEASURE_ONLY_STUDY = ("attribution_steps", "swaps", "part_groups")
#: Record fields that hold NaN when undefined (JSON stores null): read back as NaN, as the studies computed them.
NAN_FIELDS = ("task_acc", "held_acc_peak", "held_acc_final", "forgetting", "held_acc_start", "absolute_drop", "drift")


def fingerprint_settings(config, command: str, **study: Any) -> dict:
    """The settings that decide a run's numbers (see the module's docstring), as plain JSON."""
    from .files import to_jsonable

    settings = {k: v for k, v in config.to_dict().items()
                if k not in NOT_FINGERPRINTED and not (k in ADDED_OFF_CONFIG and v == ADDED_OFF_CONFIG[k])}
    if isinstance(settings.get("train"), dict):
        settings["train"] = {k: v for k, v in settings["train"].items() if k not in NOT_FINGERPRINTED_TRAINING}
    data = settings.get("data")
    if data is not None and Path(data).exists():
        settings["data"] = data_identity(Path(data))
    return to_jsonable({"command": command, **{k: study[k] for k in sorted(study)}, **settings}, "fingerprint")


def data_identity(path: Path) -> str:
    """A data file as its name and SHA-256; a folder (EntityQuestions, or splits) as its name and the SHA-256 of its
    files' relative paths and contents (hidden files aside), so the path it was given by does not matter."""
    if path.is_file():
        return f"{path.name} sha256:{sha256(path)}"
    files = sorted(f for f in path.rglob("*") if f.is_file() and not any(
        part.startswith(".") for part in f.relative_to(path).parts))
    listing = "\n".join(f"{f.relative_to(path).as_posix()} {sha256(f)}" for f in files)
    return f"{path.resolve().name}/ sha256:{hashlib.sha256(listing.encode()).hexdigest()}"


def run_fingerprint(config, command: str, **study: Any) -> dict:
    """{"digest": a short hash of `fingerprint_settings`, "settings": those settings} for results.json."""
    settings = fingerprint_settings(config, command, **study)
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return {"digest": hashlib.sha256(text.encode()).hexdigest()[:16], "settings": settings}


@dataclass(frozen=True)
class Earlier:
    """The records of earlier runs with the same fingerprint, their seeds, the left-hand run's `results` (settings
    its study resolved, e.g. the layer: the same for every run of one fingerprint), the folder each seed came from
    (`origin`) and each run that trained seeds (`sources`: its folder, seeds, device and library versions — a pooled
    report's own `versions` are those of the process that pooled)."""

    records: list[dict]
    seeds: tuple[int, ...]
    results: dict
    origin: dict = field(default_factory=dict)
    sources: list[dict] = field(default_factory=list)

    def __add__(self, other: Earlier | None) -> Earlier:
        """Both runs' records; a one-line error naming both folders when they share a seed (the same seed twice is
        not two samples)."""
        if other is None:
            return self
        shared = sorted(set(self.seeds) & set(other.seeds))
        if shared:
            seed = shared[0]
            where = [str(e.origin.get(seed, "one run")) for e in (self, other)]
            raise InterferenceError(f"seed {seed} is in two of the runs to pool ({where[0]} and {where[1]}): each "
                                    "seed may count once")
        return Earlier(self.records + other.records, tuple(sorted(self.seeds + other.seeds)), self.results,
                       {**other.origin, **self.origin}, self.sources + other.sources)


def comparable(settings: dict) -> dict:
    """Fingerprint `settings` as two runs are compared: without the training settings of `ADDED_OFF` that are off
    (and their options), nor the study settings of `ADDED_OFF_STUDY` at their off value, nor `MEASURE_ONLY_STUDY`'s."""
    train, settings = dict(settings.get("train") or {}), dict(settings)
    for name, (off, options) in ADDED_OFF.items():
        if train.get(name, off) == off:
            for key in (name, *options):
                train.pop(key, None)
    for section, added in ADDED_OFF_STUDY.items():
        if isinstance(settings.get(section), dict):
            settings[section] = {k: v for k, v in settings[section].items() if k not in added or v != added[k]}
    settings = {k: {key: v for key, v in value.items() if key not in MEASURE_ONLY_STUDY}
                if isinstance(value, dict) and k != "train" else value
                for k, value in settings.items() if k not in MEASURE_ONLY_STUDY}
    return {**settings, "train": train} if "train" in settings else settings


def first_difference(ours: dict, theirs: dict, prefix: str = "") -> str:
    """The first setting (in key order, nested as `a.b`) where two fingerprint settings differ, as "key: theirs
    there, ours now"; "" when they are the same."""
    for key in sorted(set(ours) | set(theirs)):
        a, b = ours.get(key), theirs.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            inner = first_difference(a, b, f"{prefix}{key}.")
            if inner:
                return inner
        elif a != b:
            return f"{prefix}{key}: {b!r} there, {a!r} now"
    return ""


@dataclass(frozen=True)
class Part:
    """A study setting whose values are conditions trained apart from each seed's start (`key`, e.g. "methods"), so
    that a run of some of them is the same experiment, on those, as an earlier run of more. `anchors` are values
    whose presence changes the other conditions' records (forgetting's sft sets the others' length): they must be in
    both runs or in neither."""

    key: str
    anchors: tuple[str, ...] = ()

    def taken(self, ours: dict, theirs: dict) -> tuple[str, ...] | None:
        """Our values of `key` when `theirs` (an earlier run's `comparable` settings) differs from `ours` only
        there, holds every one of ours, and holds each anchor exactly where ours does; None otherwise."""
        mine, recorded = ours.get(self.key), theirs.get(self.key)
        if not (isinstance(mine, list) and isinstance(recorded, list)) or not set(mine) <= set(recorded):
            return None
        if self.beside(ours, theirs) or any((a in mine) != (a in recorded) for a in self.anchors):
            return None
        return tuple(mine)

    def beside(self, ours: dict, theirs: dict) -> str:
        """The first setting other than `key` where the two differ (`first_difference`); "" where none does."""
        return first_difference({**ours, self.key: None}, {**theirs, self.key: None})


def earlier_run(folder: str | Path, fingerprint: dict, *, required: bool = False,
                part: Part | None = None) -> Earlier | None:
    """The earlier run in `folder` to add seeds to: None when the folder holds no results (an error if `required`);
    a one-line error when it holds results of other settings (or written before fingerprints were recorded). With
    `part`, a run whose settings differ only in holding more of its conditions gives its records of ours."""
    path = Path(folder) / RESULTS_FILE
    if not path.is_file():
        if required:
            raise InterferenceError(f"{folder} holds no {RESULTS_FILE} to pool")
        return None
    data = load_results(path)
    theirs = data.get("results", {}).get("run_fingerprint")
    if not isinstance(theirs, dict) or "digest" not in theirs:
        raise InterferenceError(f"{path} has no run fingerprint (written by an older version): its seeds cannot be "
                                "added to; use another --out")
    ours, recorded = comparable(fingerprint["settings"]), comparable(theirs.get("settings", {}))
    taken = None
    if theirs["digest"] != fingerprint["digest"] and ours != recorded:
        taken = part.taken(ours, recorded) if part is not None else None
        if taken is None:
            beside = part.beside(ours, recorded) if part is not None else ""  # what stops it, the part aside
            difference = beside or first_difference(ours, recorded) or "the settings differ"
            raise InterferenceError(f"{folder} holds a run with other settings ({difference}): seeds accumulate "
                                    "only over the same experiment; use another --out")
    results = data.get("results", {})
    records = [{k: math.nan if k in NAN_FIELDS and v is None else v for k, v in r.items()} for r in data["conditions"]
               if taken is None or r["name"] in taken]
    if not any(r.get("machine") for r in records) and results.get("device"):  # from before records kept their
        records = [r | {"machine": results["device"]} for r in records]    # machine: the run's own device
    seeds = tuple(sorted({r["seed"] for r in records}))
    sources = results.get("pooled_from") or [
        {"folder": str(folder), "seeds": list(seeds), "device": results.get("device"), "versions": data["versions"],
         **({"world": results["world"]} if results.get("world") else {})}]
    if taken is not None:  # which of the run's conditions this pool took
        sources = [{**source, part.key: list(taken)} for source in sources]
    return Earlier(records, seeds, results, dict.fromkeys(seeds, str(folder)), sources)


def in_order(records: list[dict], order: list[str] | None = None) -> list[dict]:
    """Records sorted by condition name (in `order`; others after, in their order) and then by seed."""
    rank = {name: i for i, name in enumerate(order or [])}
    return sorted(records, key=lambda r: (rank.get(r["name"], len(rank)), r["seed"]))


def pool(study, earlier: Earlier | None, order: list[str] | None = None):
    """`study` with `earlier`'s records added to its own (`in_order`) and its config's seeds the union of both;
    returned as is without an earlier run."""
    if earlier is None:
        return study
    study.records = in_order(earlier.records + study.records, order)
    study.config = replace(study.config, seeds=tuple(sorted({r["seed"] for r in study.records})))
    return study
