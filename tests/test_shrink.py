"""Is a remedy SFT, shrunk? WiSE-FT's curve read at a method's acquisition, and the alignment table, on hand-built
records."""

from __future__ import annotations

import math

import pytest

from interference.report.shrink import (
    add_shrink_view,
    alignment_rows,
    control_counts,
    frontier_gaps,
    frontier_summary,
    shrink_text,
    swap_rows,
    wise_held_at,
)

CURVE = [{"alpha": 0.0, "new_acc": 0.0, "held_acc": 0.8}, {"alpha": 0.5, "new_acc": 0.4, "held_acc": 0.7},
         {"alpha": 1.0, "new_acc": 0.9, "held_acc": 0.5}]


def test_the_curve_is_read_linearly_between_swept_alphas():
    assert wise_held_at(CURVE, 0.4) == (0.5, 0.7)  # a swept point
    alpha, held = wise_held_at(list(reversed(CURVE)), 0.65)  # order of the points does not matter
    assert alpha == pytest.approx(0.75) and held == pytest.approx(0.6)
    assert wise_held_at(CURVE, 0.95) is None  # learned more than SFT itself: off the curve
    assert wise_held_at(CURVE[:1], 0.0) == (0.0, 0.8) and wise_held_at(CURVE[:1], 0.1) is None


def test_the_first_segment_from_the_start_that_reaches_the_acquisition_is_read():
    bumpy = [{"alpha": 0.0, "new_acc": 0.0, "held_acc": 0.8}, {"alpha": 0.5, "new_acc": 0.6, "held_acc": 0.7},
             {"alpha": 0.75, "new_acc": 0.4, "held_acc": 0.6}, {"alpha": 1.0, "new_acc": 0.9, "held_acc": 0.5}]
    alpha, held = wise_held_at(bumpy, 0.5)
    assert alpha == pytest.approx(0.5 * 0.5 / 0.6) and held == pytest.approx(0.8 - 0.1 * 0.5 / 0.6)


def _record(name, seed, new, held, **extra):
    return {"name": name, "seed": seed, "new_acc": new, "held_acc_final": held, **extra}


def _alignment(cosine, scale, sideways=0.5):
    slots = {"layer 0": cosine, "layer 1": None, "attention": cosine, "ffn": cosine / 2, "other": cosine, "all": cosine}
    return {"cosine": slots, "scale": {**slots, "all": scale}, "norm_ratio": {**slots, "all": scale / cosine},
            "sideways": {**slots, "all": sideways}}


RECORDS = [_record("sft", 0, 0.9, 0.5), _record("sft", 1, 0.9, 0.5),
           _record("self_distill", 0, 0.65, 0.7, sft_alignment=_alignment(0.8, 0.6)),
           _record("self_distill", 1, 0.4, 0.6, sft_alignment=_alignment(0.9, 0.5)),
           _record("lora", 0, 0.95, 0.4), _record("lora", 1, 0.2, 0.8),
           _record("reshuffled", 0, 0.9, 0.5, sft_alignment=_alignment(0.85, 0.9, 0.4)),
           _record("reshuffled", 1, 0.9, 0.5, sft_alignment=_alignment(0.85, 0.4, 0.4)),
           _record("wise-ft", 0, 0.4, 0.7, sweep=CURVE, sft_alignment=_alignment(1.0, 0.5)),
           _record("wise-ft", 1, 0.4, 0.7, sweep=CURVE, sft_alignment=_alignment(1.0, 0.5))]
METHODS = ("sft", "self_distill", "lora", "wise-ft")
WITH_CONTROL = ("sft", "reshuffled", "self_distill", "lora", "wise-ft")


def test_a_methods_gap_is_its_held_out_accuracy_minus_the_curves_at_its_acquisition():
    gaps = frontier_gaps(RECORDS, METHODS)
    assert [(g["method"], g["seed"]) for g in gaps] == [("self_distill", 0), ("self_distill", 1), ("lora", 0),
                                                       ("lora", 1)]
    assert gaps[0]["gap"] == pytest.approx(0.1) and gaps[0]["alpha"] == pytest.approx(0.75)
    assert gaps[1]["gap"] == pytest.approx(-0.1)
    assert gaps[2]["gap"] is None and gaps[2]["alpha"] is None  # lora learned more than SFT: off the curve
    assert gaps[3]["gap"] == pytest.approx(0.8 - 0.75) and gaps[3]["alpha"] == pytest.approx(0.25)
    summary = frontier_summary(gaps, METHODS)
    assert [row["method"] for row in summary] == ["self_distill", "lora"]
    sd, lora = summary
    assert sd["gap"]["mean"] == pytest.approx(0.0, abs=1e-12) and sd["gap"]["n"] == 2 and sd["above"] == 1
    assert sd["alpha_median"] == pytest.approx(0.625) and sd["off_curve"] == 0
    assert lora["off_curve"] == 1 and lora["gap"]["n"] == 1 and math.isnan(lora["gap"]["low"])


def test_no_sweep_no_gaps():
    assert frontier_gaps([r for r in RECORDS if r["name"] != "wise-ft"], METHODS) == []


def test_the_alignment_table_takes_medians_over_seeds_and_skips_empty_slots():
    rows = alignment_rows(RECORDS, METHODS)
    assert [row["method"] for row in rows] == ["self_distill", "wise-ft"]
    sd = rows[0]["median"]
    assert rows[0]["seeds"] == 2 and set(sd) == {"cosine", "scale", "norm_ratio", "sideways"}
    assert sd["cosine"]["all"] == pytest.approx(0.85) and sd["scale"]["all"] == pytest.approx(0.55)
    assert sd["cosine"]["ffn"] == pytest.approx(0.425) and sd["cosine"]["layer 1"] is None


def test_each_method_is_counted_against_the_control_seed_by_seed():
    counts = {(c["method"], c["measure"], c["slot"]): (c["below"], c["seeds"])
              for c in control_counts(RECORDS, WITH_CONTROL)}
    assert {m for m, _, _ in counts} == {"self_distill"}  # lora has no alignment; wise-ft lies on the curve
    assert counts["self_distill", "scale", "all"] == (1, 2)  # 0.6 < 0.9 on seed 0; 0.5 > 0.4 on seed 1
    assert counts["self_distill", "cosine", "all"] == (1, 2)  # 0.8 < 0.85; 0.9 > 0.85
    assert counts["self_distill", "sideways", "all"] == (0, 2)
    assert control_counts(RECORDS, METHODS) == []  # no control in the run


class _Section:
    def __init__(self, texts, tables):
        self.texts, self.tables = texts, tables

    def text(self, value):
        self.texts.append(value)

    def table(self, rows, title=None):
        self.tables.append((title, rows))


class _Report:
    def __init__(self):
        self.results, self.texts, self.tables, self.titles = {}, [], [], []

    def section(self, title, description):
        self.titles.append(title)
        return _Section(self.texts, self.tables)


def test_the_view_writes_its_results_a_sentence_and_its_tables():
    report = _Report()
    add_shrink_view(report, RECORDS, WITH_CONTROL)
    assert report.titles == ["Is it SFT, shrunk?"]
    assert set(report.results["shrink"]) == {"frontier", "frontier_seeds", "alignment", "control", "swaps"}
    assert len(report.tables) == 4  # the gaps, the alignment over slots, per layer, and against the control
    text = report.texts[0]
    assert "self_distill ends +0.000 [" in text and "above on 1 of 2 seeds" in text and "median α 0.62" in text
    assert "median cosine 0.85 with SFT's, 0.55 of it along SFT's direction and 0.50 off it" in text
    assert "a shorter step along it than reshuffled's on 1 of 2 seeds" in text and "off the curve on 1" in text
    assert "wise-ft: its update has median cosine 1.00" in text
    empty = _Report()
    add_shrink_view(empty, [r for r in RECORDS if r["name"] == "sft"], METHODS)
    assert empty.results == {} and empty.titles == []
    assert shrink_text([], []) == ""


def test_a_swap_is_read_beside_sft_and_as_a_share_of_the_methods_own_gain():
    swaps = {0: {"ffn": {"held_acc": 0.6, "new_acc": 0.9}, "unembedding": {"held_acc": 0.5, "new_acc": 0.8}},
             1: {"ffn": {"held_acc": 0.56, "new_acc": 0.9}}}
    records = [_record("sft", 0, 0.9, 0.5), _record("sft", 1, 0.9, 0.5),
               _record("self_distill", 0, 0.9, 0.7, sft_swaps=swaps[0]),
               _record("self_distill", 1, 0.9, 0.6, sft_swaps=swaps[1])]
    rows = swap_rows(records, ("sft", "self_distill"))
    assert [(r["swapped"], r["seeds"]) for r in rows] == [("ffn", 2), ("unembedding", 1)]
    ffn, unembedding = rows
    assert ffn["gain"]["mean"] == pytest.approx(0.08) and ffn["share_of_gain"] == pytest.approx(0.08 / 0.15)
    assert unembedding["gain"]["mean"] == pytest.approx(0.0) and unembedding["share_of_gain"] == pytest.approx(0.0)
    assert unembedding["new_acc"] == pytest.approx(0.8) and unembedding["sft_new_acc"] == pytest.approx(0.9)
    assert swap_rows(RECORDS, METHODS) == []
    assert "curve_gap" not in ffn  # no WiSE-FT sweep in the run
    curved = swap_rows([*records, _record("wise-ft", 0, 0.4, 0.7, sweep=CURVE)], ("sft", "self_distill", "wise-ft"))
    ffn = curved[0]  # seed 0's hybrid: acquisition 0.9 is the curve's α 1 point (held 0.5); seed 1 has no sweep
    assert ffn["curve_gap"]["n"] == 1 and ffn["curve_gap"]["mean"] == pytest.approx(0.1) and ffn["curve_above"] == 1
    assert ffn["off_curve"] == 0  # seed 1, with no sweep, is not read against a curve
