"""Tables as a reader sees them, in reports and notebooks: numbers to 3 significant digits, no lists or JSON in a
cell (list-valued columns are left out with a note), optional columns in a collapsible block, nested configs as one
level of dotted keys."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from .files import RESULTS_FILE, records


def number_text(value: Any) -> str:
    """A table cell's text: floats to 3 significant digits (thousands and more as integers), None/NaN as a dash."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.3g}" if value else "0"
    if isinstance(value, list | tuple | dict):
        return f"({len(value)} values)"
    return str(value)


def count_text(n: int, noun: str) -> str:
    """'1 seed', '3 seeds': a count with its noun in the right number."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def cell_html(value: Any) -> str:
    return html.escape(number_text(value)).replace("\n", "<br>")


def is_scalar(value: Any) -> bool:
    return not isinstance(value, list | tuple | dict)


def flatten(config: Mapping, prefix: str = "") -> dict[str, Any]:
    """A nested config as one level: {"train": {"lr": 1e-3}} -> {"train.lr": 1e-3}; lists as comma-joined text."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, list | tuple):
            flat[name] = ", ".join(number_text(v) if isinstance(v, float) else str(v) for v in value) or "—"
        else:
            flat[name] = value
    return flat


class Table:
    """Rows shown as an HTML table in a notebook (the report's cell format: 3 significant digits, no lists)."""

    def __init__(self, rows: Sequence[Any], columns: Sequence[str] | None = None, title: str | None = None):
        self.rows = records(rows, f"table {title or ''}".strip())
        self.columns = list(columns) if columns is not None else list(
            dict.fromkeys(key for record in self.rows for key in record))
        self.title = title

    def _repr_html_(self) -> str:
        return table_block(self.columns, [], self.rows, self.title)

    def __repr__(self) -> str:
        lines = [" | ".join(self.columns)]
        lines += [" | ".join(number_text(row.get(c)) for c in self.columns) for row in self.rows]
        return "\n".join(lines)


def table(rows: Sequence[Any], columns: Sequence[str] | None = None, title: str | None = None) -> Table:
    """A list of records (dicts or dataclasses) as a table that notebooks display (`display(table(rows))`)."""
    return Table(rows, columns, title)


def paragraphs(text: str) -> list[str]:
    return [f"<p>{html.escape(p.strip())}</p>" for p in str(text).split("\n\n") if p.strip()]


def table_block(columns: Sequence[str], details: Sequence[str], rows: Sequence[Mapping], title: str | None, *,
                 collapsed: bool = False) -> str:
    """A table of the scalar `columns`, the scalar `details` in a collapsible table below, and a note naming the
    list-valued columns left out."""
    def scalar(cols):
        return [c for c in cols if all(is_scalar(row.get(c)) for row in rows)]

    shown, extra = scalar(columns), scalar(c for c in details if c not in columns)
    left_out = [c for c in list(columns) + list(details) if c not in shown and c not in extra]
    parts = [table_html(shown, rows, title)]
    if extra and shown:
        parts.append(f"<details><summary>more columns ({', '.join(html.escape(c) for c in extra)})</summary>"
                     f"{table_html([shown[0], *extra], rows, None)}</details>")
    if left_out:
        parts.append(f'<p class="note">Per-item values of {", ".join(html.escape(c) for c in left_out)} are in '
                     f"{RESULTS_FILE}.</p>")
    body = "".join(parts)
    if collapsed:
        label = html.escape(title) if title else f"{len(rows)} rows"
        return f"<details><summary>show the table ({label})</summary>{body}</details>"
    return body


def table_html(columns: Sequence[str], rows: Sequence[Mapping], title: str | None, css: str | None = None) -> str:
    caption = f"<caption>{html.escape(title)}</caption>" if title else ""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell_html(row.get(c))}</td>" for c in columns) + "</tr>" for row in rows)
    klass = f' class="{css}"' if css else ""
    return f"<table{klass}>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
