"""Plotly figures shared by the reports and the notebooks.

- `comparison_chart`: per condition, points with 95 % t-interval bars and every seed as a dot, one panel per measure
  (the headline chart of every report that trains conditions);
- `band_chart`: per condition, the mean over seeds of a series (per-epoch accuracy, drift per layer) with a band
  spanning the seeds' range;
- `logistic_chart`: a binary outcome against a covariate with binned rates and the fitted logistic curve with its
  95 % band (`logistic_band`);
- `layer_axis`: integer ticks on a layer axis.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats as scipy_stats

from .paired import finite_number, t_interval

#: Colours of the conditions, in order (plotly's default qualitative palette).
PALETTE = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692", "#b6e880", "#ff97ff",
           "#fecb52")
#: The headline measures: record field -> axis title.
HEADLINE_MEASURES = (("held_acc_final", "final held-out accuracy"), ("new_acc", "acquisition acc(D_unknown)"))


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def comparison_chart(records: Sequence[Mapping], conditions: Sequence[str],
                     measures: Sequence[tuple[str, str]] = HEADLINE_MEASURES, *, title: str | None = None):
    """One panel per (field, label) in `measures`: per condition the mean over seeds with its 95 % t-interval, and
    each seed's value as a small dot beside it. Conditions without a value in a panel are left out of it."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=len(measures), subplot_titles=[label for _, label in measures],
                           horizontal_spacing=0.08)
    for col, (field, label) in enumerate(measures, 1):
        for i, name in enumerate(conditions):
            runs = [r for r in records if r["name"] == name and finite_number(r.get(field))]
            if not runs:
                continue
            values = [float(r[field]) for r in runs]
            interval = t_interval(values)
            bar = ({"type": "data", "symmetric": False, "array": [interval.high - interval.mean],
                    "arrayminus": [interval.mean - interval.low], "thickness": 2, "width": 8}
                   if math.isfinite(interval.low) else None)
            figure.add_trace(go.Scatter(
                x=[i - 0.12], y=[interval.mean], mode="markers", error_y=bar, name=name, legendgroup=name,
                marker={"size": 12, "color": colour(i), "symbol": "diamond"}, showlegend=col == 1,
                hovertemplate=f"{name}<br>mean %{{y:.3f}} over {interval.n} seeds<extra>{label}</extra>"),
                row=1, col=col)
            spread = np.linspace(0.08, 0.2, len(values)) if len(values) > 1 else [0.14]
            figure.add_trace(go.Scatter(
                x=[i + d for d in spread], y=values, mode="markers", name=f"{name} seeds", legendgroup=name,
                showlegend=False, marker={"size": 6, "color": _rgba(colour(i), 0.55), "line": {"width": 0}},
                text=[f"{name} seed {r['seed']}" for r in runs], hovertemplate="%{text}: %{y:.3f}<extra></extra>"),
                row=1, col=col)
        figure.update_yaxes(title_text=label, row=1, col=col)
        figure.update_xaxes(tickmode="array", tickvals=list(range(len(conditions))), ticktext=list(conditions),
                            range=[-0.6, len(conditions) - 0.4], tickangle=-35 if len(conditions) > 5 else 0,
                            row=1, col=col)
    figure.update_layout(title=title or "Per condition: mean over seeds with 95 % t-interval; dots are seeds",
                         height=380, margin={"t": 70, "b": 40}, legend={"orientation": "h", "y": -0.15})
    return figure


def pareto_chart(records: Sequence[Mapping], conditions: Sequence[str], *, x: tuple[str, str], y: tuple[str, str],
                 paths: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[str]]] = (), title: str):
    """`y` against `x` ((field, label) each): every seed a small dot, every condition its mean with 95 % t-intervals
    on both axes; `paths` adds lines through (x, y) points with labels (a sweep, e.g. an interpolation)."""
    import plotly.graph_objects as go

    figure = go.Figure()
    for i, name in enumerate(conditions):
        runs = [r for r in records if r["name"] == name and finite_number(r.get(x[0])) and finite_number(r.get(y[0]))]
        if not runs:
            continue
        xs, ys = [float(r[x[0]]) for r in runs], [float(r[y[0]]) for r in runs]
        bars = []
        for values in (xs, ys):
            t = t_interval(values)
            bars.append({"type": "data", "symmetric": False, "array": [t.high - t.mean], "arrayminus": [t.mean - t.low],
                         "thickness": 1.5, "width": 5} if math.isfinite(t.low) else None)
        figure.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name=f"{name} seeds", legendgroup=name,
                                    showlegend=False, marker={"size": 6, "color": _rgba(colour(i), 0.5)},
                                    text=[f"{name} seed {r['seed']}" for r in runs],
                                    hovertemplate="%{text}: (%{x:.3f}, %{y:.3f})<extra></extra>"))
        figure.add_trace(go.Scatter(x=[float(np.mean(xs))], y=[float(np.mean(ys))], mode="markers", name=name,
                                    legendgroup=name, error_x=bars[0], error_y=bars[1],
                                    marker={"size": 13, "color": colour(i), "symbol": "diamond"},
                                    hovertemplate=f"{name}: mean (%{{x:.3f}}, %{{y:.3f}}) over {len(runs)} seeds"
                                                  f"<extra></extra>"))
    for j, (name, (px, py, labels)) in enumerate(dict(paths).items()):
        line = {"dash": "dot", "color": colour(len(conditions) + j)}
        figure.add_trace(go.Scatter(x=list(px), y=list(py), mode="lines+markers+text", name=name, text=list(labels),
                                    textposition="top center", line=line,
                                    hovertemplate=f"{name} %{{text}}: (%{{x:.3f}}, %{{y:.3f}})<extra></extra>"))
    figure.update_layout(title=title, xaxis_title=x[1], yaxis_title=y[1], height=460, margin={"t": 60},
                         legend={"orientation": "h", "y": -0.18})
    return figure


def band_chart(series: Mapping[str, Sequence[Sequence[float]]], *, title: str, x_title: str, y_title: str,
               x: Sequence[float] | None = None, layers: bool = False):
    """Per name in `series` (a list of per-seed sequences), the mean over seeds as a line with a band spanning the
    seeds' minimum to maximum. Sequences may differ in length (runs that stopped early): each point averages the
    seeds that reach it. `x` gives the positions (default 0, 1, ...); `layers` puts integer ticks on the x axis."""
    import plotly.graph_objects as go

    figure = go.Figure()
    for i, (name, runs) in enumerate(series.items()):
        runs = [[v if finite_number(v) else math.nan for v in run] for run in runs if run]
        if not runs:
            continue
        length = max(len(run) for run in runs)
        grid = np.full((len(runs), length), np.nan)
        for row, run in enumerate(runs):
            grid[row, : len(run)] = run
        with np.errstate(all="ignore"):
            mean, low, high = np.nanmean(grid, 0), np.nanmin(grid, 0), np.nanmax(grid, 0)
        xs = list(x[:length]) if x is not None else list(range(length))
        if len(runs) > 1:
            figure.add_trace(go.Scatter(x=xs + xs[::-1], y=high.tolist() + low.tolist()[::-1], fill="toself",
                                        fillcolor=_rgba(colour(i), 0.18), line={"width": 0}, hoverinfo="skip",
                                        name=f"{name} (seed range)", legendgroup=name, showlegend=False))
        figure.add_trace(go.Scatter(x=xs, y=mean.tolist(), mode="lines+markers", name=name, legendgroup=name,
                                    line={"color": colour(i)}, marker={"size": 5}))
    figure.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, height=380)
    if layers:
        layer_axis(figure)
    return figure


def layer_axis(figure, axis: str = "x"):
    """Integer ticks (every layer, or every few layers past 24) on a layer axis of `figure`."""
    values = [v for trace in figure.data for v in (getattr(trace, axis) or ()) if finite_number(v)]
    span = (max(values) - min(values)) if values else 0
    step = max(1, math.ceil(span / 24))
    update = figure.update_xaxes if axis == "x" else figure.update_yaxes
    update(tickmode="linear", tick0=0, dtick=step, tickformat="d")
    return figure


def logistic_band(x: Sequence[float], intercept: float, slope: float, grid: Sequence[float],
                  level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fitted P(y) = sigmoid(intercept + slope·g) on `grid` with its pointwise Wald band: (mean, low, high).

    The covariance of (intercept, slope) is the inverse observed information at the fit, computed from the data's
    x; the band is sigmoid(η ± z·se(η)) with se(η)² = [1, g] Σ [1, g]ᵀ.
    """
    xs, gs = np.asarray(x, dtype=np.float64), np.asarray(grid, dtype=np.float64)
    design = np.stack([np.ones_like(xs), xs], axis=1)
    p = 1 / (1 + np.exp(-(intercept + slope * xs)))
    information = design.T @ (design * (p * (1 - p))[:, None])
    covariance = np.linalg.pinv(information)
    eta = intercept + slope * gs
    points = np.stack([np.ones_like(gs), gs], axis=1)
    se = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", points, covariance, points), 0))
    z = float(scipy_stats.norm.ppf((1 + level) / 2))

    def sigmoid(v):
        return 1 / (1 + np.exp(-v))

    return sigmoid(eta), sigmoid(eta - z * se), sigmoid(eta + z * se)


def logistic_chart(x: Sequence[float], y: Sequence[bool], fit, bins: Sequence, *, title: str, x_title: str,
                   y_title: str = "fraction forgotten"):
    """Binary outcomes (jittered dots at 0 and 1), rates per bin with Wilson intervals, and the logistic fit with its
    95 % band (`fit` an `interference.report.stats.LogisticFit`; no curve where it is undefined)."""
    import plotly.graph_objects as go

    figure = go.Figure()
    n = len(y)
    jitter = np.linspace(-0.03, 0.03, n) if n else np.zeros(0)
    figure.add_trace(go.Scatter(x=list(x), y=(np.asarray(y, dtype=float) + jitter).tolist(), mode="markers",
                                name="facts (1 = forgotten)", marker={"size": 4, "color": "rgba(80,80,80,0.35)"}))
    figure.add_trace(go.Scatter(
        x=[b.x_mean for b in bins], y=[b.rate for b in bins], mode="markers", name="rate per bin (Wilson 95 %)",
        marker={"size": 9, "color": colour(1)},
        error_y={"type": "data", "symmetric": False, "array": [b.ci_high - b.rate for b in bins],
                 "arrayminus": [b.rate - b.ci_low for b in bins]}))
    if getattr(fit, "note", None) is None and n and finite_number(fit.slope) and finite_number(fit.intercept):
        grid = np.linspace(min(x), max(x), 60)
        mean, low, high = logistic_band(x, fit.intercept, fit.slope, grid)
        figure.add_trace(go.Scatter(x=grid.tolist() + grid.tolist()[::-1], y=high.tolist() + low.tolist()[::-1],
                                    fill="toself", fillcolor=_rgba(colour(0), 0.2), line={"width": 0},
                                    hoverinfo="skip", name="logistic fit, 95 % band"))
        figure.add_trace(go.Scatter(x=grid.tolist(), y=mean.tolist(), mode="lines", line={"color": colour(0)},
                                    name=f"logistic fit (slope {fit.slope:.2f})"))
    figure.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, yaxis_range=[-0.08, 1.08],
                         height=400)
    return figure


def notebook_setup(renderer: str = "plotly_mimetype") -> None:
    """Notebook display settings: plotly figures as their JSON mimetype (JupyterLab draws them with the extension
    plotly ships; the saved notebook stays small) and no model-loading progress bars from transformers."""
    import plotly.io as pio
    from transformers.utils import logging as hf_logging

    pio.renderers.default = renderer
    hf_logging.disable_progress_bar()
