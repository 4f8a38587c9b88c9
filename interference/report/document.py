"""Analysis reports: a self-contained `report.html`, a `results.json` holding every number in it, a
`conditions.csv` of the per-condition records, and a `manifest.json` that ties the three together.

Every analysis builds a `Report`: a title, a headline (`Report.headline`: the claim tested, a verdict, the paired
comparison and the paper's numbers, one chart), the run's config and seeds, a list of per-condition records (the
same fields in every analysis, so scripts read any report the same way), free-form `results`, and sections of text,
tables and plotly figures. The page reads top-down: headline, set-up, sections, then the per-seed records (in a
collapsible block) and the config as a two-column table. Table cells hold numbers (3 significant digits) and short
text, never lists or JSON: list-valued columns stay in results.json and the CSV leaves them out.

`Report.write(out)` renders everything fully, validates the JSON, and only then writes the files, each atomically,
the manifest last: it names the other files with their SHA-256, so `load_results` can tell files of two different
runs apart (e.g. a run killed between two writes). The HTML embeds plotly's JavaScript once and loads nothing from
the network.

The schema of results.json, the manifest and `load_results` live in `interference.report.files`; both modules'
names import from `interference.report`.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..io import atomic
from ..io.errors import InterferenceError
from .files import (
    CSV_FILE,
    HTML_FILE,
    MANIFEST_FILE,
    RESULTS_FILE,
    check_condition,
    to_jsonable,
    validate_results,
    versions,
)
from .files import records as _rows
from .tables import flatten, is_scalar, paragraphs, table_block, table_html
from .tables import table as table  # notebooks display tables in the report's format

#: Columns of the per-seed table shown first (other scalar fields go to its collapsible part).
SEED_COLUMNS = ("name", "seed", "held_acc_start", "held_acc_final", "absolute_drop", "forgetting", "new_acc",
                "task_acc", "held_acc_peak", "epochs", "stopped", "drift")


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

    def table(self, rows: Sequence[Any], *, title: str | None = None, columns: Sequence[str] | None = None,
              details: Sequence[str] = (), collapsed: bool = False) -> Section:
        """A table of records (dicts or dataclasses); columns default to every key, in order of first appearance.

        Columns that hold lists or mappings are not shown (their data stays in results.json); `details` columns go
        to a collapsible table below (with the first column repeated); `collapsed` folds the whole table.
        """
        records = _rows(rows, f"table {title or self.title!r}")
        if columns is None:
            columns = [k for k in dict.fromkeys(key for record in records for key in record) if k not in details]
        self.blocks.append(("table", {"section": self.title, "title": title, "columns": list(columns),
                                      "details": list(details), "collapsed": bool(collapsed), "rows": records}))
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
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1180px;margin:1.2em auto;padding:0 1em;
color:#222;line-height:1.4}
h1{border-bottom:2px solid #ddd;padding-bottom:.2em;margin:.2em 0 .4em;font-size:1.7em}
h2{margin-top:1.6em;border-bottom:1px solid #eee}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.2em .55em;
text-align:right;vertical-align:top}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
caption{font-weight:600;text-align:left;padding:.3em 0}
details{margin:.6em 0}summary{cursor:pointer;color:#335;font-weight:600}
.figure{margin:.6em 0}.figure h3{font-size:1em;margin:.2em 0}
.headline{border:1px solid #ccd;border-radius:6px;padding:.2em 1em .6em;background:#fbfbfe}
.headline h2{margin-top:.4em}.claim{font-size:1.08em}
.verdict{font-size:1.25em;font-weight:700;padding:.35em .7em;border-radius:5px;display:inline-block;margin:.2em 0}
.v-reproduces{background:#dff3e4;color:#14532d}.v-partly{background:#fff3cd;color:#6b4e00}
.v-does-not{background:#fde2e1;color:#7f1d1d}.v-none{background:#eee;color:#333}.rules td{text-align:left}
.note{color:#555;font-size:.9em}
"""
_VERDICT_CLASS = {"reproduces": "v-reproduces", "partly reproduces": "v-partly", "does not reproduce": "v-does-not"}


class Headline(Section):
    """The report's opening section: the claim tested in one sentence and the verdict with the rules it rests on,
    then (added like any section's) the paired comparison, the paper's numbers beside ours and one chart."""

    def __init__(self, report: Report, claim: str, verdict: Any = None, untested: str | None = None):
        super().__init__(report, "Headline")
        if not isinstance(claim, str) or not claim.strip():
            raise InterferenceError("a headline needs the claim it tests, in one sentence")
        self.claim = claim
        self.verdict = verdict
        self.untested = untested or "the run holds no condition the verdict's rules compare"

    def to_dict(self) -> dict:
        verdict = None if self.verdict is None else to_jsonable(self.verdict, "headline.verdict")
        return {"claim": self.claim, "verdict": verdict, "untested": None if verdict else self.untested}

    def opening_html(self) -> list[str]:
        parts = [f'<p class="claim"><b>Claim tested.</b> {html.escape(self.claim)}</p>']
        if self.verdict is None:
            parts.append(f'<div class="verdict v-none">Verdict: not tested <span style="font-weight:400;'
                         f'font-size:.8em">({html.escape(self.untested)})</span></div>')
        else:
            verdict = self.verdict
            css = _VERDICT_CLASS.get(verdict.verdict, "v-partly")
            held = sum(c.passed for c in verdict.checks)
            parts.append(f'<div class="verdict {css}">Verdict: {html.escape(verdict.verdict)} '
                         f'<span style="font-weight:400;font-size:.8em">({held} of {len(verdict.checks)} rules '
                         f'hold)</span></div>')
            rows = [{"rule": ("★ " if c.primary else "") + c.rule, "observed": c.observed,
                     "holds": "yes" if c.passed else "no"} for c in verdict.checks]
            parts.append(table_html(["rule", "observed", "holds"], rows, None, css="rules"))
            parts.append('<p class="note">★ the claim\'s direction: if it fails, the verdict is "does not reproduce"; '
                         'all rules hold: "reproduces"; otherwise "partly reproduces".</p>')
        return parts


class Report:
    """Builder of an analysis report (see the module docstring for what the files hold).

    Attributes:
        title: the report's title.
        description: an optional introductory paragraph (shown after the headline, as the set-up).
        config: the analysis configuration (a dataclass or a mapping).
        seeds: the seeds the numbers come from.
        results: free-form numbers (anything `to_jsonable` accepts), written under `results`.
        conditions: per-condition records, added with `add_condition`.
        head: the headline section (see `headline`), or None.
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
        self.head: Headline | None = None
        self._figures = 0
        self.started = time.monotonic()  # wall_time_s counts from here; set it earlier to include the study

    def headline(self, claim: str, verdict: Any = None, untested: str | None = None) -> Headline:
        """Open the headline (rendered first, whatever the order of calls): the claim tested in one sentence and a
        verdict (an `interference.report.paired.Verdict`; without one, `untested` says why); add the paired comparison,
        the paper's numbers and the comparison chart to the section it returns."""
        self.head = Headline(self, claim, verdict, untested)
        return self.head

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
        check_condition(record, f"condition {name!r}")
        self.conditions.append(record)
        if record["seed"] not in self.seeds:
            self.seeds.append(record["seed"])
        return record

    def add_conditions(self, records: Sequence[Mapping]) -> None:
        """`add_condition` for each record (a mapping with `name`, `seed` and the required fields)."""
        for record in records:
            fields = {k: v for k, v in record.items() if k not in ("name", "seed")}
            self.add_condition(record["name"], record["seed"], **fields)

    def _all_sections(self) -> list[Section]:
        return ([self.head] if self.head is not None else []) + self.sections

    def to_dict(self) -> dict:
        """The results.json object (plain JSON types)."""
        tables, figures = [], []
        for section in self._all_sections():
            for kind, block in section.blocks:
                if kind == "table":
                    tables.append({k: v for k, v in block.items() if k not in ("details", "collapsed")})
                elif kind == "figure":
                    figures.append(_figure_data(block[2], section.title, block[1], block[0]))
        data = {
            "title": self.title,
            "description": self.description,
            "config": to_jsonable(self.config, "config"),
            "seeds": self.seeds,
            "versions": versions(),
            "wall_time_s": round(time.monotonic() - self.started, 3),
            "headline": None if self.head is None else self.head.to_dict(),
            "conditions": self.conditions,
            "results": to_jsonable(self.results, "results"),
            "tables": tables,
            "figures": figures,
        }
        if not isinstance(data["config"], dict):
            raise InterferenceError(f"report config must be a dataclass or a mapping, got {type(self.config).__name__}")
        return data

    def to_csv(self) -> str:
        """conditions.csv: one row per condition record, its scalar fields as columns (lists stay in the JSON)."""
        columns = [k for k in dict.fromkeys(k for record in self.conditions for k in record)
                   if all(is_scalar(record.get(k)) for record in self.conditions)]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for record in self.conditions:
            writer.writerow({k: "" if record.get(k) is None else record.get(k) for k in columns})
        return buffer.getvalue()

    def to_html(self, data: dict | None = None, plotly_js: str = "inline") -> str:
        """The HTML page: self-contained with plotly's JavaScript inlined once (`plotly_js="inline"`, opens offline),
        or loading it from plotly's CDN (`"cdn"`, 4.6 MB smaller; the charts then need the network)."""
        data = self.to_dict() if data is None else data
        parts = [f"<h1>{html.escape(self.title)}</h1>"]
        if self.head is not None:
            parts.append('<section class="headline" id="headline">')
            parts += self.head.opening_html() + _blocks_html(self.head)
            parts.append("</section>")
        if self.description:
            parts += ["<h2>Set-up</h2>", *paragraphs(self.description)]
        for section in self.sections:
            parts.append(f"<h2>{html.escape(section.title)}</h2>")
            parts += _blocks_html(section)
        parts += _relation_filter_html(self.conditions)
        if self.conditions:
            columns = list(dict.fromkeys(k for record in self.conditions for k in record))
            shown = [c for c in SEED_COLUMNS if c in columns]
            details = [c for c in columns if c not in shown]
            parts += ["<h2>Per-seed records</h2>",
                      f"<p>One row per condition and seed ({len(self.conditions)} rows; also in "
                      f"<code>{CSV_FILE}</code>).</p>",
                      table_block(shown, details, self.conditions, None)]
        config = [{"setting": k, "value": v} for k, v in flatten(data["config"]).items()]
        config += [{"setting": "seeds", "value": ", ".join(map(str, data["seeds"]))},
                   {"setting": "wall time (s)", "value": data["wall_time_s"]}]
        config += [{"setting": f"version of {k}", "value": v} for k, v in data["versions"].items()]
        parts += ["<h2>Configuration</h2>", table_html(["setting", "value"], config, None, css="rules")]
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(self.title)}</title>\n<style>{_STYLE}</style>\n"
            f"{plotly_script(plotly_js)}\n</head>\n<body>\n"
            + "\n".join(parts)
            + "\n</body>\n</html>\n"
        )

    def write(self, out: str | os.PathLike | Any, plotly_js: str = "inline") -> Path:
        """Write results.json, conditions.csv, report.html (see `to_html` for `plotly_js`) and, last, manifest.json
        into `out` (a folder path, or an `interference.io.outputs.OutputFolder`); nothing is written unless
        everything renders and validates."""
        data = self.to_dict()
        validate_results(data)
        files = {RESULTS_FILE: atomic.json_text(data, allow_nan=False), CSV_FILE: self.to_csv(),
                 HTML_FILE: self.to_html(data, plotly_js)}
        files[MANIFEST_FILE] = manifest_text(self.title, files)
        if isinstance(out, str | os.PathLike):
            folder = Path(out)
            for name, text in files.items():
                atomic.write_text(folder / name, text)
            return folder
        for name, text in files.items():
            out.write_text(name, text)
        return Path(out.path)


def manifest_text(title: str, files: Mapping[str, str]) -> str:
    """manifest.json of a report folder: each file's SHA-256 and size in bytes (of its UTF-8 text)."""
    return atomic.json_text({"title": title, "files": {
        name: {"sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), "bytes": len(text.encode("utf-8"))}
        for name, text in files.items()}})


#: Where a slim page loads plotly.js from (the version it was written with).
PLOTLY_CDN = "https://cdn.plot.ly/plotly-{version}.min.js"


def plotly_script(plotly_js: str = "inline", version: str | None = None) -> str:
    """The page's <script> for plotly.js: inlined (`"inline"`) or from `PLOTLY_CDN` (`"cdn"`) at `version` (default:
    the installed plotly's)."""
    if plotly_js == "inline":
        from plotly.offline import get_plotlyjs

        return f'<script type="text/javascript">{get_plotlyjs()}</script>'
    if plotly_js == "cdn":
        if version is None:
            from plotly.offline import get_plotlyjs_version

            version = get_plotlyjs_version()
        return f'<script src="{PLOTLY_CDN.format(version=version)}" charset="utf-8"></script>'
    raise InterferenceError(f"plotly_js must be 'inline' or 'cdn', got {plotly_js!r}")


def _relation_filter_html(conditions: Sequence[Mapping]) -> list[str]:
    """The SLiCK relation filter of a real-data report (every relation's HighlyKnown fraction and whether it was
    kept), once per distinct filter among the condition records; nothing for the embedded world."""
    filters = list({json.dumps(r["relation_filter"], sort_keys=True): r["relation_filter"]
                    for r in conditions if r.get("relation_filter")}.values())
    parts = []
    for summary in filters:
        kept, threshold = set(summary.get("relations", ())), summary.get("min_known_fraction")
        rows = [{"relation": name, "HighlyKnown fraction": fraction, "kept": "yes" if name in kept else "no"}
                for name, fraction in sorted(summary.get("known_fractions", {}).items())]
        parts += ["<h2>Relations</h2>",
                  f"<p>SLiCK relation filter: relations with a HighlyKnown fraction of at least {threshold} are kept "
                  "(<code>--min-known-fraction</code>).</p>",
                  table_html(["relation", "HighlyKnown fraction", "kept"], rows, None, css="rules")]
    return parts


def _blocks_html(section: Section) -> list[str]:
    parts = []
    for kind, block in section.blocks:
        if kind == "text":
            parts += paragraphs(block)
        elif kind == "table":
            parts.append(table_block(block["columns"], block["details"], block["rows"], block["title"],
                                      collapsed=block["collapsed"]))
        else:
            div_id, title, figure = block
            heading = f"<h3>{html.escape(title)}</h3>" if title else ""
            body = figure.to_html(full_html=False, include_plotlyjs=False, div_id=div_id)
            parts.append(f'<div class="figure">{heading}{body}</div>')
    return parts
