"""Seeds that accumulate: a later run of an analysis into the same output folder adds its seeds to the earlier run's.

Every report records its run fingerprint (`results.json` → `results.run_fingerprint`): the analysis, the study's
own settings (methods, counts, …) and every setting of the `ExperimentConfig` that decides the numbers — model,
facts (a data file by its SHA-256, so a copy elsewhere is the same facts), sizes, layer, dtype, world seed and the
whole training config — but not the seeds, which are what accumulates, nor the device. Two runs with the same
fingerprint are samples of the same experiment, so their per-seed records may be pooled:

    earlier = earlier_run(folder, fingerprint)         # None, or the records and seeds already there
    config = config_for_new_seeds(config, earlier)      # only the seeds not run yet

and the study's records become the earlier ones plus the new ones; every report statistic is then recomputed over
all seeds. A folder whose run has another fingerprint is refused with one line naming the first differing setting.
Each record carries the `machine` it ran on, so a pooled report shows where its seeds came from.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .errors import InterferenceError
from .report_files import RESULTS_FILE, load_results

#: Config settings that do not enter the fingerprint: what accumulates, and where it ran.
NOT_FINGERPRINTED = ("seeds", "device")
#: Record fields that hold NaN when undefined (JSON stores null): read back as NaN, as the studies computed them.
NAN_FIELDS = ("task_acc", "held_acc_peak", "held_acc_final", "forgetting", "held_acc_start", "absolute_drop", "drift")


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint_settings(config, command: str, **study: Any) -> dict:
    """The settings that decide a run's numbers (see the module's docstring), as plain JSON."""
    from .report_files import to_jsonable

    settings = {k: v for k, v in config.to_dict().items() if k not in NOT_FINGERPRINTED}
    data = settings.get("data")
    if data is not None and Path(data).is_file():
        settings["data"] = f"{Path(data).name} sha256:{file_digest(data)}"
    return to_jsonable({"command": command, **{k: study[k] for k in sorted(study)}, **settings}, "fingerprint")


def run_fingerprint(config, command: str, **study: Any) -> dict:
    """{"digest": a short hash of `fingerprint_settings`, "settings": those settings} for results.json."""
    settings = fingerprint_settings(config, command, **study)
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return {"digest": hashlib.sha256(text.encode()).hexdigest()[:16], "settings": settings}


@dataclass(frozen=True)
class Earlier:
    """The records of an earlier run in an output folder with the same fingerprint, and its seeds."""

    records: list[dict]
    seeds: tuple[int, ...]


def _first_difference(ours: dict, theirs: dict, prefix: str = "") -> str:
    for key in sorted(set(ours) | set(theirs)):
        a, b = ours.get(key), theirs.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            inner = _first_difference(a, b, f"{prefix}{key}.")
            if inner:
                return inner
        elif a != b:
            return f"{prefix}{key}: {b!r} there, {a!r} now"
    return ""


def earlier_run(folder: str | Path, fingerprint: dict) -> Earlier | None:
    """The earlier run in `folder` to add seeds to: None when the folder holds no results; a one-line error when it
    holds results of other settings (or written before fingerprints were recorded)."""
    path = Path(folder) / RESULTS_FILE
    if not path.is_file():
        return None
    data = load_results(path)
    theirs = data.get("results", {}).get("run_fingerprint")
    if not isinstance(theirs, dict) or "digest" not in theirs:
        raise InterferenceError(f"{path} has no run fingerprint (written by an older version): its seeds cannot be "
                                "added to; use another --out")
    if theirs["digest"] != fingerprint["digest"]:
        difference = _first_difference(fingerprint["settings"], theirs.get("settings", {})) or "the settings differ"
        raise InterferenceError(f"{folder} holds a run with other settings ({difference}): seeds accumulate only "
                                "over the same experiment; use another --out")
    records = [{k: math.nan if k in NAN_FIELDS and v is None else v for k, v in r.items()}
               for r in data["conditions"]]
    return Earlier(records, tuple(sorted({r["seed"] for r in records})))


def config_for_new_seeds(config, earlier: Earlier | None):
    """`config` with only the seeds `earlier` lacks; a one-line error when it has them all."""
    if earlier is None:
        return config
    new = tuple(s for s in config.seeds if s not in earlier.seeds)
    if not new:
        raise InterferenceError(f"seeds {' '.join(map(str, config.seeds))} are all in the earlier run already (it "
                                f"has {' '.join(map(str, earlier.seeds))}): give new --seeds to add")
    return replace(config, seeds=new)


def pool(study, earlier: Earlier | None, order: list[str] | None = None):
    """`study` with `earlier`'s records before its own (sorted by condition `order`, then seed) and its config's
    seeds the union of both; returned as is without an earlier run."""
    if earlier is None:
        return study
    records = earlier.records + study.records
    rank = {name: i for i, name in enumerate(order or [])}
    records.sort(key=lambda r: (rank.get(r["name"], len(rank)), r["seed"]))
    study.records = records
    study.config = replace(study.config, seeds=tuple(sorted({r["seed"] for r in records})))
    return study
