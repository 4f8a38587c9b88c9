"""Analysis reports: a self-contained `report.html` and a `results.json` holding every number in it.

Every analysis builds a `Report`: a title, the run's config and seeds, a list of per-condition records (the same
fields in every analysis, so scripts read any report the same way), free-form `results`, and sections of text,
tables and plotly figures. `Report.write(out)` renders both files fully, validates the JSON, and only then writes
them, each atomically. The HTML embeds plotly's JavaScript once and loads nothing from the network.

results.json holds: `title`, `description`, `config`, `seeds`, `versions` (python, torch, transformers,
interference, ...), `wall_time_s`, `conditions`, `results`, and the data of every table and figure (`tables`,
`figures`). A condition record has at least `name`, `seed`, `task_acc`, `new_acc`, `held_acc_peak`,
`held_acc_final`, `forgetting` (numbers, or null where not measured) and, where measured, `drift`.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
import os
import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import atomic
from .errors import InterferenceError

REQUIRED_FIELDS = ("title", "config", "seeds", "versions", "conditions")
VERSION_FIELDS = ("python", "torch", "transformers", "interference")
CONDITION_FIELDS = ("name", "seed", "task_acc", "new_acc", "held_acc_peak", "held_acc_final", "forgetting")
ACCURACY_FIELDS = ("task_acc", "new_acc", "held_acc_peak", "held_acc_final")
RESULTS_FILE, HTML_FILE = "results.json", "report.html"


def versions() -> dict[str, str]:
    """Versions of python, torch, transformers, interference and the other libraries a report depends on."""
    import numpy
    import plotly
    import torch
    import transformers

    import interference

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "interference": interference.__version__,
        "numpy": numpy.__version__,
        "plotly": plotly.__version__,
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


def _check_condition(record: Any, where: str) -> None:
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
        _check_condition(record, f"{RESULTS_FILE}: conditions[{i}]")


def load_results(path: str | os.PathLike) -> dict:
    """Read and validate a results.json (or the one inside a report folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.is_file():
        raise InterferenceError(f"results file {path} not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InterferenceError(f"{path} is not valid JSON ({str(err).splitlines()[0]})") from err
    validate_results(data)
    return data


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | dict):
        return html.escape(json.dumps(value))
    return html.escape(str(value))


def _rows(rows: Any, where: str) -> list[dict]:
    rows = to_jsonable(rows, where)
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise InterferenceError(f"{where} must be a list of records (dicts or dataclasses)")
    return rows


class Section:
    """A titled part of a report, holding text paragraphs, tables and figures in order (add with its methods)."""

    def __init__(self, report: Report, title: str):
        self._report = report
        self.title = title
        self.blocks: list[tuple[str, Any]] = []

    def text(self, text: str) -> Section:
        """A paragraph (blank lines start new paragraphs; the text is escaped, not interpreted as HTML)."""
        self.blocks.append(("text", str(text)))
        return self

    def table(self, rows: Sequence[Any], *, title: str | None = None, columns: Sequence[str] | None = None) -> Section:
        """A table of records (dicts or dataclasses); columns default to every key, in order of first appearance."""
        records = _rows(rows, f"table {title or self.title!r}")
        if columns is None:
            columns = list(dict.fromkeys(key for record in records for key in record))
        self.blocks.append(
            ("table", {"section": self.title, "title": title, "columns": list(columns), "rows": records})
        )
        return self

    def figure(self, figure: Any, *, title: str | None = None) -> Section:
        """A plotly figure (rendered with the JavaScript embedded once in the page)."""
        from plotly.basedatatypes import BaseFigure

        if not isinstance(figure, BaseFigure):
            raise InterferenceError(
                f"figure in section {self.title!r} must be a plotly figure, got {type(figure).__name__}"
            )
        self._report._figures += 1
        self.blocks.append(("figure", (f"figure-{self._report._figures}", title, figure)))
        return self


_TRACE_DATA = ("name", "type", "x", "y", "z", "text")


def _figure_data(figure, section: str, title: str | None, div_id: str) -> dict:
    traces = []
    for trace in figure.to_dict().get("data", []):
        kept = {k: trace[k] for k in _TRACE_DATA if k in trace}
        for axis in ("error_x", "error_y"):
            if isinstance(trace.get(axis), Mapping) and "array" in trace[axis]:
                kept[axis] = trace[axis]["array"]
        traces.append(kept)
    layout_title = figure.layout.title.text if figure.layout.title else None
    return {"id": div_id, "section": section, "title": title or layout_title, "traces": to_jsonable(traces, div_id)}


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{border-bottom:2px solid #ddd;padding-bottom:.3em}h2{margin-top:2em;border-bottom:1px solid #eee}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}th,td{border:1px solid #ccc;padding:.25em .6em;
text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
caption{font-weight:600;text-align:left;padding:.3em 0}pre{background:#f7f7f7;padding:1em;overflow:auto}
.figure{margin:1em 0}.figure h3{font-size:1em;margin:.2em 0}
"""


class Report:
    """Builder of an analysis report (see the module docstring for what the files hold).

    Attributes:
        title: the report's title.
        description: an optional introductory paragraph.
        config: the analysis configuration (a dataclass or a mapping).
        seeds: the seeds the numbers come from.
        results: free-form numbers (anything `to_jsonable` accepts), written under `results`.
        conditions: per-condition records, added with `add_condition`.
    """

    def __init__(self, title: str, *, config: Any = None, seeds: Sequence[int] = (), description: str = ""):
        if not isinstance(title, str) or not title.strip():
            raise InterferenceError("a report needs a non-empty title")
        self.title = title
        self.description = description
        self.config = {} if config is None else config
        self.seeds = [int(s) for s in seeds]
        self.results: dict[str, Any] = {}
        self.conditions: list[dict] = []
        self.sections: list[Section] = []
        self._figures = 0
        self.started = time.monotonic()  # wall_time_s counts from here; set it earlier to include the study

    def section(self, title: str, text: str | None = None) -> Section:
        """Open a new section (optionally with a first paragraph) and return it."""
        section = Section(self, title)
        if text:
            section.text(text)
        self.sections.append(section)
        return section

    def add_condition(
        self,
        name: str,
        seed: int,
        *,
        task_acc: float | None,
        new_acc: float | None,
        held_acc_peak: float | None,
        held_acc_final: float | None,
        forgetting: float | None,
        drift: Any = None,
        **extra: Any,
    ) -> dict:
        """Record one condition (e.g. a method at one seed); `extra` fields are kept as given. Validated now."""
        record = {
            "name": name,
            "seed": seed,
            "task_acc": task_acc,
            "new_acc": new_acc,
            "held_acc_peak": held_acc_peak,
            "held_acc_final": held_acc_final,
            "forgetting": forgetting,
        }
        if drift is not None:
            record["drift"] = drift
        record.update(extra)
        record = to_jsonable(record, f"condition {name!r}")
        _check_condition(record, f"condition {name!r}")
        self.conditions.append(record)
        if record["seed"] not in self.seeds:
            self.seeds.append(record["seed"])
        return record

    def add_conditions(self, records: Sequence[Mapping]) -> None:
        """`add_condition` for each record (a mapping with `name`, `seed` and the required fields)."""
        for record in records:
            fields = {k: v for k, v in record.items() if k not in ("name", "seed")}
            self.add_condition(record["name"], record["seed"], **fields)

    def to_dict(self) -> dict:
        """The results.json object (plain JSON types)."""
        tables, figures = [], []
        for section in self.sections:
            for kind, block in section.blocks:
                if kind == "table":
                    tables.append(block)
                elif kind == "figure":
                    figures.append(_figure_data(block[2], section.title, block[1], block[0]))
        data = {
            "title": self.title,
            "description": self.description,
            "config": to_jsonable(self.config, "config"),
            "seeds": self.seeds,
            "versions": versions(),
            "wall_time_s": round(time.monotonic() - self.started, 3),
            "conditions": self.conditions,
            "results": to_jsonable(self.results, "results"),
            "tables": tables,
            "figures": figures,
        }
        if not isinstance(data["config"], dict):
            raise InterferenceError(f"report config must be a dataclass or a mapping, got {type(self.config).__name__}")
        return data

    def to_html(self, data: dict | None = None) -> str:
        """The self-contained HTML page (plotly's JavaScript inlined once)."""
        from plotly.offline import get_plotlyjs

        data = self.to_dict() if data is None else data
        parts = [f"<h1>{html.escape(self.title)}</h1>"]
        if self.description:
            parts += _paragraphs(self.description)
        if self.conditions:
            columns = list(dict.fromkeys(k for record in self.conditions for k in record))
            parts += ["<h2>Conditions</h2>", _table_html(columns, self.conditions, None)]
        for section in self.sections:
            parts.append(f"<h2>{html.escape(section.title)}</h2>")
            for kind, block in section.blocks:
                if kind == "text":
                    parts += _paragraphs(block)
                elif kind == "table":
                    parts.append(_table_html(block["columns"], block["rows"], block["title"]))
                else:
                    div_id, title, figure = block
                    heading = f"<h3>{html.escape(title)}</h3>" if title else ""
                    body = figure.to_html(full_html=False, include_plotlyjs=False, div_id=div_id)
                    parts.append(f'<div class="figure">{heading}{body}</div>')
        setup = {k: data[k] for k in ("seeds", "versions", "wall_time_s")}
        setup["config"] = data["config"]
        parts += ["<h2>Set-up</h2>", f"<pre>{html.escape(json.dumps(setup, indent=2))}</pre>"]
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(self.title)}</title>\n<style>{_STYLE}</style>\n"
            f'<script type="text/javascript">{get_plotlyjs()}</script>\n</head>\n<body>\n'
            + "\n".join(parts)
            + "\n</body>\n</html>\n"
        )

    def write(self, out: str | os.PathLike) -> Path:
        """Write `<out>/results.json` and `<out>/report.html`; nothing is written unless both render and validate."""
        data = self.to_dict()
        validate_results(data)
        text = json.dumps(data, indent=2, allow_nan=False) + "\n"
        page = self.to_html(data)
        out = Path(out)
        atomic.write_text(out / RESULTS_FILE, text)
        atomic.write_text(out / HTML_FILE, page)
        return out


def _paragraphs(text: str) -> list[str]:
    return [f"<p>{html.escape(p.strip())}</p>" for p in str(text).split("\n\n") if p.strip()]


def _table_html(columns: Sequence[str], rows: Sequence[Mapping], title: str | None) -> str:
    caption = f"<caption>{html.escape(title)}</caption>" if title else ""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(row.get(c))}</td>" for c in columns) + "</tr>" for row in rows)
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
