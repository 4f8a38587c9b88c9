"""The files of a report on disk: the schema of `results.json` and its validation, the manifest that ties a
report's files to one run, and `load_results`, which reads a results.json back only after checking both.

results.json holds: `title`, `description`, `config`, `seeds`, `versions` (python, torch, transformers,
interference, ...), `wall_time_s`, `headline`, `conditions`, `results`, and the data of every table and figure
(`tables`, `figures`). A condition record has at least `name`, `seed`, `task_acc`, `new_acc`, `held_acc_peak`,
`held_acc_final`, `forgetting` (numbers, or null where not measured) and, where measured, `drift`. The manifest
names the other files with their SHA-256, so `load_results` can tell files of two different runs apart (e.g. a run
killed between two writes).

A committed results.json may be in the shared layout (`share_repeated_lists`, written by `interference.report.slim`):
a record's list that repeats, field for field, an earlier record's (each seed's relation lists, the snapshot's
per-fact answers, repeated by every method of the seed) is stored once and referenced as {"$same_as": that record's
index}. `load_results` gives the records back whole.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..io.errors import InterferenceError

REQUIRED_FIELDS = ("title", "config", "seeds", "versions", "conditions")
VERSION_FIELDS = ("python", "torch", "transformers", "interference")
CONDITION_FIELDS = ("name", "seed", "task_acc", "new_acc", "held_acc_peak", "held_acc_final", "forgetting")
ACCURACY_FIELDS = ("task_acc", "new_acc", "held_acc_peak", "held_acc_final")
RESULTS_FILE, HTML_FILE, CSV_FILE, MANIFEST_FILE = "results.json", "report.html", "conditions.csv", "manifest.json"


def versions() -> dict[str, str]:
    """Versions of python, torch, transformers, interference and the other libraries a report depends on, and the
    CPU numerics in effect (`interference.numerics.mode`: "portable", "strict" or "native (<capability>)"), the
    branch MKL ran (`mkl_branch`: on a non-Intel CPU "portable" runs MKL's AUTO branch) and the CPU
    (`interference.numerics.cpu`: its model and the features that decide kernels)."""
    import numpy
    import plotly
    import torch
    import transformers

    from .. import numerics
    from ..version import __version__

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "interference": __version__,
        "numpy": numpy.__version__,
        "plotly": plotly.__version__,
        "numerics": numerics.mode(),
        "mkl": numerics.mkl_branch(),
        "cpu": numerics.cpu(),
    }


def to_jsonable(value: Any, where: str = "value") -> Any:
    """`value` as plain JSON types: tensors, arrays and dataclasses become lists and dicts, NaN and ±inf null."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name), f"{where}.{f.name}") for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [to_jsonable(v, f"{where}[{i}]") for i, v in enumerate(items)]
    if hasattr(value, "detach") and hasattr(value, "tolist"):  # torch tensors
        return to_jsonable(value.detach().cpu().tolist(), where)
    if hasattr(value, "tolist") and type(value).__module__ == "numpy":  # numpy arrays and scalars
        return to_jsonable(value.tolist(), where)
    raise InterferenceError(f"{where} of type {type(value).__name__} cannot be written to {RESULTS_FILE}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_condition(record: Any, where: str) -> None:
    if not isinstance(record, Mapping):
        raise InterferenceError(f"{where} must be an object, got {type(record).__name__}")
    for field in CONDITION_FIELDS:
        if field not in record:
            raise InterferenceError(f"{where} is missing {field!r}")
    if not isinstance(record["name"], str) or not record["name"].strip():
        raise InterferenceError(f"{where}.name must be a non-empty string, got {record['name']!r}")
    if not isinstance(record["seed"], int) or isinstance(record["seed"], bool):
        raise InterferenceError(f"{where}.seed must be an integer, got {record['seed']!r}")
    for field in CONDITION_FIELDS[2:]:
        value = record[field]
        if value is not None and not _is_number(value):
            raise InterferenceError(f"{where}.{field} must be a number or null, got {value!r}")
        if field in ACCURACY_FIELDS and _is_number(value) and not 0 <= value <= 1:
            raise InterferenceError(f"{where}.{field} must be an accuracy in [0, 1], got {value!r}")
    drift = record.get("drift")
    if drift is not None and not _is_number(drift) and not isinstance(drift, Mapping | list | tuple):
        raise InterferenceError(f"{where}.drift must be a number, a per-layer list or mapping, or null, got {drift!r}")


def validate_results(data: Any) -> None:
    """Raise `InterferenceError` naming the first missing or malformed field of a results.json object."""
    if not isinstance(data, Mapping):
        raise InterferenceError(f"{RESULTS_FILE} must hold a JSON object, got {type(data).__name__}")
    for field in REQUIRED_FIELDS:
        if field not in data:
            raise InterferenceError(f"{RESULTS_FILE} is missing {field!r}")
    if not isinstance(data["title"], str) or not data["title"].strip():
        raise InterferenceError(f"{RESULTS_FILE}: title must be a non-empty string")
    if not isinstance(data["config"], Mapping):
        raise InterferenceError(f"{RESULTS_FILE}: config must be an object, got {type(data['config']).__name__}")
    seeds = data["seeds"]
    if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise InterferenceError(f"{RESULTS_FILE}: seeds must be a list of integers, got {seeds!r}")
    if not isinstance(data["versions"], Mapping):
        raise InterferenceError(f"{RESULTS_FILE}: versions must be an object")
    for field in VERSION_FIELDS:
        if field not in data["versions"]:
            raise InterferenceError(f"{RESULTS_FILE}: versions is missing {field!r}")
    if not isinstance(data["conditions"], list):
        raise InterferenceError(f"{RESULTS_FILE}: conditions must be a list")
    for i, record in enumerate(data["conditions"]):
        check_condition(record, f"{RESULTS_FILE}: conditions[{i}]")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_manifest(folder: str | os.PathLike) -> dict | None:
    """Check that the report files in `folder` are the ones its manifest names (one run's files, complete).

    Returns the manifest, or None for a lone results.json (no manifest and no report.html beside it). Raises
    `InterferenceError` when a named file is missing or differs from its hash (the files come from two runs), or
    when a report.html has no manifest (the run that wrote it did not finish writing).
    """
    folder = Path(folder)
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.is_file():
        if (folder / HTML_FILE).exists():
            raise InterferenceError(f"{folder} has no {MANIFEST_FILE}: the report was not written completely "
                                    f"(interrupted run?); run the analysis again")
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files = manifest["files"]
        hashes = {str(name): str(entry["sha256"]) for name, entry in files.items()}
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as err:
        raise InterferenceError(f"{manifest_path} is not a valid manifest ({type(err).__name__})") from err
    for name, digest in hashes.items():
        path = folder / name
        if not path.is_file():
            raise InterferenceError(f"{path} is named in {MANIFEST_FILE} but missing: the report is incomplete")
        if sha256(path) != digest:
            raise InterferenceError(f"{path} does not match {MANIFEST_FILE}: the report's files come from different "
                                    f"runs (interrupted run?); run the analysis again")
    return manifest


def load_results(path: str | os.PathLike) -> dict:
    """Read and validate a results.json (or the one inside a report folder), checking the folder's manifest."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.is_file():
        raise InterferenceError(f"results file {path} not found")
    manifest = check_manifest(path.parent)
    if manifest is not None and path.name not in manifest["files"]:
        raise InterferenceError(f"{path} is not named in {path.parent / MANIFEST_FILE}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse_non_finite)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InterferenceError(f"{path} is not valid JSON ({str(err).splitlines()[0]})") from err
    except ValueError as err:  # from _refuse_non_finite
        raise InterferenceError(f"{path}: {err}") from err
    validate_results(data)  # a shared list's reference stands where a valid list stood, so expanding keeps it valid
    return expand_shared_lists(data, str(path))


#: The reference a shared-layout record holds in place of a list that repeats an earlier record's.
SAME_AS = "$same_as"
#: Lists shorter than this stay where they are (a reference would save little).
SHARED_MIN_ITEMS = 8


def share_repeated_lists(data: Mapping) -> dict:
    """`data` (a results.json object) with every record list of at least `SHARED_MIN_ITEMS` items that equals the same
    field of an earlier record replaced by {"$same_as": the index of the first record holding it}; the records are
    copies, `data` is unchanged. `expand_shared_lists` undoes it."""
    first: dict[tuple[str, str], int] = {}
    conditions = []
    for i, record in enumerate(data["conditions"]):
        record = dict(record)
        for field, value in record.items():
            if isinstance(value, list) and len(value) >= SHARED_MIN_ITEMS:
                key = (field, json.dumps(value, sort_keys=True))
                if key in first:
                    record[field] = {SAME_AS: first[key]}
                else:
                    first[key] = i
        conditions.append(record)
    return {**data, "conditions": conditions}


def expand_shared_lists(data: Mapping, where: str = RESULTS_FILE) -> Mapping:
    """`data` with every {"$same_as": j} record field replaced by record j's list of that field (`data` itself when it
    holds none); a one-line error naming the first reference that points at no earlier record's list."""
    conditions = data["conditions"]
    if not any(isinstance(v, dict) and SAME_AS in v for r in conditions for v in r.values()):
        return data
    expanded = []
    for i, record in enumerate(conditions):
        record = dict(record)
        for field, value in record.items():
            if isinstance(value, dict) and set(value) == {SAME_AS}:
                j = value[SAME_AS]
                if not (isinstance(j, int) and 0 <= j < i and isinstance(expanded[j].get(field), list)):
                    raise InterferenceError(f"{where}: conditions[{i}].{field} refers to {value!r}, not an earlier "
                                            "record's list")
                record[field] = expanded[j][field]
        expanded.append(record)
    return {**data, "conditions": expanded}


def _refuse_non_finite(name: str):
    """JSON has no NaN or Infinity (the toolkit writes null); a file holding them was not written by it."""
    raise ValueError(f"holds {name}, which is not a JSON number (unmeasured values are written as null)")


def records(rows: Any, where: str) -> list[dict]:
    rows = to_jsonable(rows, where)
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise InterferenceError(f"{where} must be a list of records (dicts or dataclasses)")
    return rows
