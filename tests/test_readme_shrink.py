"""The README's "Is self-distillation SFT, shrunk?" table and the world README's reading of `shrink-40-59` are
measured, not remembered: every number is recomputed here from the committed results by the report's shrink view."""

from __future__ import annotations

import pytest
from conftest import ROOT, results_folder

from interference.report.files import load_results
from interference.report.paired import interval_text, paired_difference
from interference.report.shrink import alignment_rows, control_counts, frontier_gaps, frontier_summary, swap_rows

#: The results folders of the README's table, in its order (a folder not yet committed is skipped).
FOLDERS = ("world-default/shrink-40-59", "smollm2-135m-shrink-cpu")
METHODS = ("sft", "reshuffled", "self_distill", "wise-ft")
#: The table's slots: all parameters, outside the layers, attention, FFN.
SLOTS = ("all", "other", "attention", "ffn")


def _views(folder: str) -> tuple[dict, dict, dict, list[dict]]:
    """Self-distillation's and the control's median alignments, self-distillation's counts against the control by
    (measure, slot), and the per-method gap summaries, from one committed folder."""
    records = load_results(results_folder(folder))["conditions"]
    medians = {row["method"]: row["median"] for row in alignment_rows(records, METHODS)}
    counts = {(c["measure"], c["slot"]): c for c in control_counts(records, METHODS) if c["method"] == "self_distill"}
    return medians["self_distill"], medians["reshuffled"], counts, frontier_summary(frontier_gaps(records, METHODS),
                                                                                   METHODS)


def _minus(text: str) -> str:
    """A number as the READMEs print it, with a true minus sign."""
    return text.replace("-", "−")


def _gain(records: list[dict], method: str, reference: str = "sft"):
    """`method`'s held-out accuracy at the end minus `reference`'s, paired by seed: the t-interval."""
    return paired_difference(records, method, reference, "held_acc_final").t


def _assert_all_in(sentences: list[str], text: str) -> None:
    for sentence in sentences:
        assert sentence in text, sentence


def table_row(folder: str) -> str:
    """One row: seeds; per slot self-distillation's median scale / the control's (seeds where it is shorter); the
    gap above WiSE-FT's curve (seeds on the curve)."""
    mine, theirs, counts, summary = _views(folder)
    gap = next(row for row in summary if row["method"] == "self_distill")
    cells = [f"{mine['scale'][s]:.2f} / {theirs['scale'][s]:.2f} ({counts['scale', s]['below']} of "
             f"{counts['scale', s]['seeds']})" for s in SLOTS]
    return f"| `{folder}` | {gap['seeds']} | {' | '.join(cells)} | {gap['gap_text']} ({gap['gap']['n']}) |"


@pytest.mark.parametrize("folder", FOLDERS)
def test_the_readme_table_row_is_the_records(readme, folder):
    if not (ROOT / "results" / folder / "results.json").is_file():
        pytest.skip(f"results/{folder} is not committed yet")
    assert table_row(folder) in readme.splitlines(), table_row(folder)


def test_the_world_readmes_reading_of_shrink_40_59_is_the_records():
    text = " ".join((ROOT / "results" / "world-default" / "README.md").read_text(encoding="utf-8").split())
    mine, theirs, counts, summary = _views("world-default/shrink-40-59")
    sd, control = (next(r for r in summary if r["method"] == m) for m in ("self_distill", "reshuffled"))

    def pair(measure, slot):
        return f"{mine[measure][slot]:.2f} against {theirs[measure][slot]:.2f}"

    expected = [
        f"on {counts['scale', 'all']['below']} of 20 seeds (median scale {pair('scale', 'all')}; cosine "
        f"{pair('cosine', 'all')}, lower on {counts['cosine', 'all']['below']} of 20)",
        f"longer than reshuffled's on {20 - counts['sideways', 'other']['below']} of 20 (median sideways "
        f"{pair('sideways', 'other')})",
        f"shorter than reshuffled's on {counts['sideways', 'attention']['below']} of 20 (≥ 14 predicted; medians "
        f"{mine['sideways']['attention']:.2f} and {theirs['sideways']['attention']:.2f})",
        f"On the {sd['gap']['n']} seeds where", f"is **{_minus(sd['gap_text'])}** (above on {sd['above']},",
        f"On the other {sd['off_curve']} it learned", f"Reshuffled's gap is {_minus(control['gap_text'])} "
        f"({control['gap']['n']} seeds on the curve, {control['off_curve']} off)",
        f"self-distillation's scale is {mine['scale']['other']:.2f} against the control's "
        f"{theirs['scale']['other']:.2f} (below on {counts['scale', 'other']['below']} of 20)",
        f"scale {pair('scale', 'unembedding')}, norm ratio {pair('norm_ratio', 'unembedding')} (the embeddings: "
        f"{mine['scale']['embeddings']:.2f} and {theirs['scale']['embeddings']:.2f})",
        f"attention {pair('scale', 'attention')} (shorter on {counts['scale', 'attention']['below']} of 20), FFN "
        f"{pair('scale', 'ffn')} (shorter on {counts['scale', 'ffn']['below']} of 20; cosine "
        f"{mine['cosine']['ffn']:.2f} and {theirs['cosine']['ffn']:.2f})",
    ]
    _assert_all_in(expected, text)


def test_the_readmes_reading_of_the_world_row_is_the_records(readme):
    text = " ".join(readme.split())
    records = load_results(results_folder("world-default/shrink-40-59"))["conditions"]
    mine, theirs, _, summary = _views("world-default/shrink-40-59")
    sd, control = (next(r for r in summary if r["method"] == m) for m in ("self_distill", "reshuffled"))
    same = interval_text(_gain(records, "reshuffled"))
    for sentence in (f"scale {mine['scale']['unembedding']:.2f} against the control's "
                     f"{theirs['scale']['unembedding']:.2f}",
                     f"On {sd['off_curve']} of the 20 seeds", f"read on the other {sd['gap']['n']}",
                     f"not above the curve ({_minus(control['gap_text'])})",
                     f"ends where SFT does ({_minus(same)})"):
        assert sentence in text, sentence


def test_the_world_readmes_reading_of_frozen_unembedding_60_79_is_the_records():
    from interference.report.headline import mean_of
    text = " ".join((ROOT / "results" / "world-default" / "README.md").read_text(encoding="utf-8").split())
    records = load_results(results_folder("world-default/frozen-unembedding-60-79"))["conditions"]
    medians = {row["method"]: row["median"] for row in alignment_rows(records, METHODS + ("frozen-unembedding",))}
    frozen, sd = medians["frozen-unembedding"], medians["self_distill"]

    def gain(method, reference="sft"):
        return _gain(records, method, reference)

    def shown(interval):
        return _minus(interval_text(interval))

    acquisition = mean_of(records, "frozen-unembedding", "new_acc") / mean_of(records, "sft", "new_acc")
    expected = [
        f"keeps {acquisition:.2f} of SFT's acquisition ({mean_of(records, 'frozen-unembedding', 'new_acc'):.3f} "
        f"against {mean_of(records, 'sft', 'new_acc'):.3f}), in {mean_of(records, 'frozen-unembedding', 'epochs'):.1f} "
        f"epochs against SFT's {mean_of(records, 'sft', 'epochs'):.1f}",
        f"Its gain over SFT is {shown(gain('frozen-unembedding'))}, "
        f"{gain('frozen-unembedding').mean / gain('self_distill').mean:.2f} of self-distillation's "
        f"{shown(gain('self_distill'))}",
        f"Self-distillation ends above it by {shown(gain('self_distill', 'frozen-unembedding'))}",
        f"median scale {frozen['scale']['attention']:.2f} in attention and {frozen['scale']['ffn']:.2f} in FFN, "
        f"sideways {frozen['sideways']['attention']:.2f} and {frozen['sideways']['ffn']:.2f} (self-distillation's: "
        f"{sd['scale']['attention']:.2f} and {sd['scale']['ffn']:.2f}, sideways {sd['sideways']['attention']:.2f} and "
        f"{sd['sideways']['ffn']:.2f})",
    ]
    _assert_all_in(expected, text)


def test_the_readmes_frozen_unembedding_bullet_is_the_records(readme):
    text = " ".join(readme.split())
    records = load_results(results_folder("world-default/frozen-unembedding-60-79"))["conditions"]
    frozen, sd = (_minus(interval_text(_gain(records, m)))
                  for m in ("frozen-unembedding", "self_distill"))
    sentence = f"keeps {frozen} more held-out facts than SFT, against self-distillation's {sd}"
    assert sentence in text, sentence


def test_the_readmes_reading_of_swaps_80_99_is_the_records(readme):

    world = " ".join((ROOT / "results" / "world-default" / "README.md").read_text(encoding="utf-8").split())
    main = " ".join(readme.split())
    records = load_results(results_folder("world-default/swaps-80-99"))["conditions"]
    rows = {row["swapped"]: row for row in swap_rows(records, METHODS)}
    own = _minus(interval_text(_gain(records, "self_distill")))
    layers, unembedding = rows["attention+ffn+norms"], rows["unembedding"]
    shown = _minus
    assert f"gain over SFT is {own}" in world and f"against self-distillation's own {own}" in main
    assert (f"gains +{layers['gain']['mean']:.3f}, {layers['share_of_gain']:.2f} of self-distillation's gain"
            in world)
    assert f"That gain's interval is {shown(layers['gain_text'])}" in world
    assert f"layers swapped in gains {shown(layers['gain_text'])}" in main
    assert (f"Its unembedding gains {shown(unembedding['gain_text'])} ({unembedding['share_of_gain']:.2f})"
            in world)
    low, high = min(r["new_acc"] for r in rows.values()), max(r["new_acc"] for r in rows.values())
    assert f"(acquisition {low:.2f} to {high:.2f} against {layers['sft_new_acc']:.2f})" in world
    for spec, label in (("attention+ffn+norms", "layers"), ("embeddings", "embeddings"), ("attention", "attention"),
                        ("ffn", "FFN"), ("unembedding", "unembedding")):
        row = rows[spec]
        assert f"{label} {shown(row['curve_gap_text'])} ({row['curve_gap']['n']}" in world, spec
        assert row["curve_gap"]["mean"] <= 0  # "none sits above WiSE-FT's curve"
    sd = next(r for r in frontier_summary(frontier_gaps(records, METHODS), METHODS) if r["method"] == "self_distill")
    assert f"sits {shown(sd['gap_text'])} above the curve ({sd['gap']['n']} seeds on it)" in world


def test_the_readmes_smollm2_bullet_is_the_records(readme):
    from interference.report.headline import mean_of

    text = " ".join(readme.split())
    records = load_results(results_folder("smollm2-135m-shrink-cpu"))["conditions"]
    mine, theirs, _, summary = _views("smollm2-135m-shrink-cpu")
    sd = next(r for r in summary if r["method"] == "self_distill")
    epochs = sorted({r["epochs"] for r in records if r["name"] == "sft"})
    _assert_all_in([
        f"(4 against {epochs[0]}–{epochs[-1]})" if mean_of(records, "self_distill", "epochs") == 4 else "never",
        f"scale {mine['scale']['all']:.2f} and cosine {mine['cosine']['all']:.2f}, closer than another batch "
        f"order's ({theirs['scale']['all']:.2f} and {theirs['cosine']['all']:.2f})",
        f"above WiSE-FT's curve on the {sd['above']} seeds on it" if sd["above"] == sd["gap"]["n"] else "never",
    ], text)
