from __future__ import annotations

import numpy as np
import pytest

from interference.report import charts


def test_logistic_band_contains_the_curve_and_narrows_with_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    grid = np.linspace(-2, 2, 9)
    mean, low, high = charts.logistic_band(x, -0.5, 1.5, grid)
    assert np.all(low <= mean) and np.all(mean <= high)
    assert mean == pytest.approx(1 / (1 + np.exp(-(-0.5 + 1.5 * grid))))
    _, low_big, high_big = charts.logistic_band(np.tile(x, 4), -0.5, 1.5, grid)
    assert np.all(high_big - low_big < high - low)  # 4x the data: about half the width


def test_comparison_chart_shows_means_with_intervals_and_every_seed():
    records = [{"name": n, "seed": s, "held_acc_final": v, "new_acc": 0.9}
               for n, vals in (("sft", (0.5, 0.6, 0.7)), ("sd", (0.8, 0.85, 0.9))) for s, v in enumerate(vals)]
    figure = charts.comparison_chart(records, ["sft", "sd", "absent"])
    means = [t for t in figure.data if t.marker.symbol == "diamond"]
    dots = [t for t in figure.data if t.marker.symbol != "diamond"]
    assert len(means) == 4 and len(dots) == 4  # 2 conditions x 2 panels; "absent" is left out
    assert means[0].y[0] == pytest.approx(0.6) and means[0].error_y.array[0] > 0
    assert sorted(dots[0].y) == pytest.approx([0.5, 0.6, 0.7])


def test_band_chart_averages_seeds_of_different_lengths_with_integer_layer_ticks():
    figure = charts.band_chart({"sft": [[1.0, 0.8, 0.6], [1.0, 0.6]]}, title="t", x_title="layer", y_title="y",
                               layers=True)
    line = figure.data[-1]
    assert list(line.y) == pytest.approx([1.0, 0.7, 0.6])
    assert figure.layout.xaxis.dtick == 1 and figure.layout.xaxis.tickformat == "d"
