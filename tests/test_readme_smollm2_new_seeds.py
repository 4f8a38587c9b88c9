"""The README's numbers from the EWC study's stages 11 and 12 on SmolLM2 (self-distillation against SFT on new seeds,
and which held-out facts carry SFT's change) are measured, not remembered: recomputed here from the committed
results files."""

from __future__ import annotations

from test_readme_remedies import assert_same_runs
from test_readme_where_smollm2 import EWC, _texts

from interference.report.files import load_results
from interference.report.paired import interval_text, paired_difference

BANDS = ("layers 0-9", "layers 10-19", "layers 20-29")


def _rows(folder: str) -> list[dict]:
    """One row per record of a stage folder: the held-out loss's change, its shares per band of depth and per
    group, and the accuracies."""
    from interference.report.attribution import DEPTH, by_depth
    from interference.report.fisher import loss_rise

    return [{"name": r["name"], "seed": r["seed"], "change": loss_rise(r), **r[DEPTH], **r["held_loss_by_group"],
             "held": r["held_acc_final"]} for r in by_depth(load_results(EWC / folder)["conditions"])]


def _lower(rows: list[dict], field: str) -> tuple:
    """Self-distillation minus SFT on `field`, paired by seed, and on how many seeds it is below 0."""
    d = paired_difference(rows, "self_distill", "sft", field)
    return d, sum(x < 0 for x in d.differences)


def _plain(interval: str) -> str:
    """An interval's text as the README writes a lowering: the mean without its sign, the bounds in brackets."""
    mean, bounds = interval.split(" ", 1)
    return f"{mean.lstrip('-')} ({bounds})"


def test_the_readmes_state_that_self_distillation_lowers_the_change_on_new_seeds(readme):
    own, text = _texts(readme)
    data = load_results(EWC / "stage-11")
    assert data["seeds"] == list(range(9, 15))
    sft = [r for r in data["conditions"] if r["name"] == "sft"]
    reference = load_results(EWC / "stage-10")["conditions"]  # the check: the same SFT trainings
    assert_same_runs(sft, reference, tuple(k for k in reference[0] if k != "seconds"))

    new = _rows("stage-11")
    total, lower = _lower(new, "change")
    assert lower >= 5  # prediction 1
    assert f"below SFT's on **{lower} of 6** new seeds" in own
    assert f"by {-total.t.mean:.4f} on average ([{total.t.low:+.4f}, {total.t.high:+.4f}] over six seeds)" in own
    counts = []
    for band in BANDS:
        d, n = _lower(new, band)
        assert n >= 4 and d.t.mean < 0  # prediction 2
        counts.append(n)
    assert f"layers 0-9 on {counts[0]} of 6, in layers 10-19 on {counts[1]} and in layers 20-29 on {counts[2]}" in own
    for seed in range(9, 15):
        a, b = (next(r for r in new if r["seed"] == seed and r["name"] == m) for m in ("sft", "self_distill"))
        cells = " | ".join(f"{b[k] - a[k]:+.4f}" for k in BANDS)
        assert (f"| {seed} | {a['change']:+.3f} | {b['change']:+.3f} | {b['change'] - a['change']:+.3f} | {cells} |"
                in own)
    assert f"on the six new seeds alone {interval_text(_lower(new, 'held')[0].t, 3)}" in own


def test_the_readmes_state_self_distillation_against_sft_over_fourteen_seeds(readme):
    own, text = _texts(readme)
    data = load_results(EWC / "stage-11-all")
    assert data["seeds"] == list(range(1, 15)) and {r["name"] for r in data["conditions"]} == {"sft", "self_distill"}
    assert [s.get("methods") for s in data["results"]["pooled_from"]][:8] == [["sft", "self_distill"]] * 8
    earlier = load_results(EWC / "stage-9")["conditions"]  # taken from stage 9 as they were
    assert_same_runs([r for r in data["conditions"] if r["seed"] <= 8],
                     [r for r in earlier if r["name"] in ("sft", "self_distill")], ("held_loss_by_layer", "new_acc"))

    rows = _rows("stage-11-all")
    total, lower = _lower(rows, "change")
    assert total.t.high < 0
    assert f"below SFT's by {_plain(interval_text(total.t, 3))[:-1]}, on {lower} of 14 seeds)" in own
    assert f"lower by {interval_text(total.t, 3).lstrip('-')} (on {lower} of 14)" in text
    for band in BANDS:
        d, _ = _lower(rows, band)
        assert d.t.high < 0 and f"{band} by {_plain(interval_text(d.t, 4))}" in own
    for group, name in (("attention", "attention"), ("ffn", "the FFN")):
        d, _ = _lower(rows, group)
        assert d.t.high < 0 and f"in {name} by {_plain(interval_text(d.t, 4))}" in own
    embeddings, _ = _lower(rows, "embeddings")
    assert embeddings.t.low > 0 and f"raises, by {interval_text(embeddings.t, 4)}" in own

    from interference.report.attribution import attribution_differences

    layers = attribution_differences(data["conditions"], ("sft", "self_distill"), field="held_loss_by_layer")
    assert [row["method"] for row in layers] == ["self_distill"]
    bounds = {slot: [float(x) for x in cell.split("[")[1].split("]")[0].split(", ")]
              for slot, cell in layers[0].items() if slot != "method"}
    below = sorted(int(slot.split()[1]) for slot, (low, high) in bounds.items() if high < 0)
    above = [slot for slot, (low, high) in bounds.items() if low > 0]
    runs = [[below[0], below[0]]]
    for layer in below[1:]:
        if layer == runs[-1][1] + 1:
            runs[-1][1] = layer
        else:
            runs.append([layer, layer])
    assert above == ["other"] and len(runs) == 2
    assert (f"Per layer, {len(below) + len(above)} of {len(bounds)} intervals do not span 0 (chance gives "
            f"{round(0.05 * len(bounds))}): layers {runs[0][0]} to {runs[0][1]} and {runs[1][0]} to {runs[1][1]} are "
            "lower under self-distillation, and the other slot (the embeddings) is the one share") in own
    assert (f"with {len(below)} of {len(bounds)} per-layer intervals below 0 and one above, the embeddings' share"
            in text)

    held, _ = _lower(rows, "held")
    above_seeds, level = sum(x > 0 for x in held.differences), sum(x == 0 for x in held.differences)
    assert held.t.low > 0 and above_seeds + level == 14 and level == 1
    observed = data["headline"]["verdict"]["checks"][0]["observed"]
    assert observed.startswith(interval_text(held.t, 3)) and data["headline"]["verdict"]["verdict"] == "reproduces"
    kept = observed.split("acquisition ")[1].split()[0]
    assert f"held-out accuracy +{interval_text(held.t, 3)[1:]} above SFT's (above on {above_seeds} of 14 seeds" in own
    assert f"keeping {kept}\n" not in own and f"keeping {kept} of its acquisition" in own
    assert (f"ends {interval_text(held.t, 3)} above SFT's (above on {above_seeds} of 14 seeds, level on the other) "
            f"at {kept}"
            in text)
    facts = data["results"]["held_fact_losses"]["methods"]
    sd, sft = facts["self_distill"], facts["sft"]
    assert (f"loses a median {sd['lost']:g} held-out facts the snapshot answered right where SFT loses "
            f"{sft['lost']:g}, and regains about as many it answered wrong ({sd['regained']:g} and "
            f"{sft['regained']:g}") in own
    assert (f"loses a median {sd['lost']:g} held-out facts the snapshot knew where SFT loses {sft['lost']:g}, and "
            f"regains as many it did not ({sd['regained']:g} and {sft['regained']:g})") in text


def test_the_readmes_state_that_most_held_out_facts_rise_where_sfts_mean_falls(readme):
    from interference.report.fact_losses import fact_flips, fact_loss_measures, fact_loss_summary

    own, text = _texts(readme)
    data = load_results(EWC / "stage-12")
    records = sorted(data["conditions"], key=lambda r: r["seed"])
    earlier = [r for f in ("stage-9", "stage-10") for r in load_results(EWC / f)["conditions"] if r["name"] == "sft"]
    fell = sorted(r["seed"] for r in earlier if r["held_loss_final"] < r["held_loss_start"])
    assert data["seeds"] == fell and {r["name"] for r in records} == {"sft"}  # the five seeds whose mean fell
    assert_same_runs(records, earlier, ("held_loss_start", "held_loss_final", "held_correct_start",
                                        "held_correct_final", "new_acc", "epochs"))  # the check

    measures = [fact_loss_measures(r) for r in records]
    flips = [fact_flips(r) for r in records]
    risen = [m["median_change"] > 0 for m in measures]
    rhos = [m["start_rank_correlation"] for m in measures]
    assert sum(risen) >= 4 and all(rho < 0 for rho in rhos)  # both predictions
    assert data["results"]["held_fact_losses"] == fact_loss_summary(records, ["sft"])
    for r, m, f in zip(records, measures, flips, strict=True):
        assert (f"| {r['seed']} | {m['mean_change']:+.3f} | {m['median_change']:+.4f} | {m['rose']} of "
                f"{m['facts']} | {m['rest_mean_change']:+.4f} | {m['start_rank_correlation']:+.2f} | "
                f"{f['lost']} | {f['regained']} |") in own
    rose = [m["rose"] for m, up in zip(measures, risen, strict=True) if up]
    exception = next(r["seed"] for r, up in zip(records, risen, strict=True) if not up)
    exception_rose = next(m["rose"] for m, up in zip(measures, risen, strict=True) if not up)
    span = f"{max(rhos):+.2f} to {min(rhos):+.2f}"
    assert (f"On {sum(risen)} of the 5 seeds where SFT's mean held-out loss fell, the median fact's loss rose "
            f"({min(rose)} to {max(rose)} of the 100 facts rose); on seed {exception} it fell ({exception_rose} rose). "
            f"On all 5 a fact's snapshot loss ranks against its change (ρ {span})") in own
    lost = [f["lost"] for f in flips]
    assert (f"the median fact's loss rose on {sum(risen)} of the 5 ({min(rose)} to {max(rose)} of 100 facts rose; on "
            f"seed {exception}, {exception_rose}), and on all 5 a fact's snapshot loss ranks against its change (ρ "
            f"{span})") in text
    assert f"SFT still loses {min(lost)} to {max(lost)} facts the snapshot knew" in text
    assert f"SFT lost facts the snapshot knew on every one of these seeds ({min(lost)} to {max(lost)})" in own
    carried = sorted(r["seed"] for r, m in zip(records, measures, strict=True) if m["rest_mean_change"] > 0)
    assert f"on seeds {carried[0]} and {carried[1]} the ten facts that moved most carry all of it" in own
