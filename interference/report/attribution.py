"""Where in the network the held-out facts' loss changed, as a report reads it: per method the path-integrated
shares of L − L⁰ per slot (decoder layer, or parameter group; `interference.measures.attribution`), their paired
differences from SFT, the slot that carries each record's change, and the midpoint rule's residual. Pure functions
of the records a study wrote."""

from __future__ import annotations

from collections.abc import Sequence

from .fisher import add_sentence, loss_rise, median
from .paired import interval_text, paired_difference

#: The record fields that hold the shares, and what their slots are.
FIELDS = {"held_loss_by_layer": "layer", "held_loss_by_group": "parameter group"}
#: The per-layer shares summed over bands of consecutive layers (`by_depth`), a view the report derives for deep models.
DEPTH = "held_loss_by_depth"
#: What a field's slots are, the derived depth view's too.
KINDS = {**FIELDS, DEPTH: "depth band"}
#: Bands of the depth view, and the fewest decoder layers for which the report adds it (a shallower model's per-layer
#: table is read at a glance).
DEPTH_BANDS, DEPTH_FROM = 3, 7


def depth_bands(slots: Sequence[str], bands: int = DEPTH_BANDS) -> dict[str, list[str]]:
    """The decoder layers among a per-layer split's `slots` ("layer 0" … "layer N−1", in order) in `bands`
    consecutive bands as equal as they can be, the earlier ones the larger ({"layers 0-9": […], …}); the other slots
    (embeddings, final norm, unembedding: "other") each stay a band of their own."""
    layers = [s for s in slots if s.startswith("layer ")]
    bands, out, first = min(bands, len(layers)), {}, 0
    for k in range(bands):
        size = len(layers) // bands + (k < len(layers) % bands)
        band = layers[first:first + size]
        first += size
        ends = [slot.split()[1] for slot in (band[0], band[-1])]
        out[f"layer {ends[0]}" if len(band) == 1 else f"layers {ends[0]}-{ends[1]}"] = band
    return {**out, **{s: [s] for s in slots if s not in layers}}


def by_depth(records: list[dict], bands: int = DEPTH_BANDS) -> list[dict]:
    """`records` with their per-layer shares also summed per band of consecutive layers (`DEPTH`, `depth_bands`);
    records without per-layer shares are left as they are."""
    out = []
    for r in records:
        if r.get("held_loss_by_layer"):
            split = depth_bands(list(r["held_loss_by_layer"]), bands)
            r = {**r, DEPTH: {band: sum(r["held_loss_by_layer"][s] for s in slots) for band, slots in split.items()}}
        out.append(r)
    return out


def _residual(record: dict, field: str) -> float:
    return abs(loss_rise(record) - sum(record[field].values()))


def attribution_rows(records: list[dict], methods: Sequence[str], field: str = "held_loss_by_layer") -> list[dict]:
    """Per method, medians over seeds of each slot's share of the held-out loss's change L − L⁰, beside the change
    and the midpoint rule's residual |L − L⁰ − Σ shares|; [] for runs before the shares were recorded (2026-12-06)."""
    rows = []
    for m in methods:
        rs = [r for r in records if r["name"] == m and r.get(field)]
        if rs:
            rows.append({"method": m, "seeds": len(rs),
                         **{slot: median([r[field][slot] for r in rs]) for slot in rs[0][field]},
                         "L − L⁰": median([loss_rise(r) for r in rs]),
                         "residual": median([_residual(r, field) for r in rs])})
    return rows


def attribution_differences(records: list[dict], methods: Sequence[str], reference: str = "sft",
                            field: str = "held_loss_by_layer") -> list[dict]:
    """Per method but `reference`, per slot: its share of the held-out loss's change minus the reference's, paired by
    seed ("+0.0012 [−0.0003, +0.0027], 7 of 10 above 0"); [] where the reference has no shares."""
    flat = [{"name": r["name"], "seed": r["seed"], **r[field]} for r in records if r.get(field)]
    ref = next((r for r in flat if r["name"] == reference), None)
    if ref is None:
        return []
    slots, rows = [k for k in ref if k not in ("name", "seed")], []
    for m in methods:
        if m != reference and any(r["name"] == m for r in flat):
            differences = {slot: paired_difference(flat, m, reference, slot) for slot in slots}
            rows.append({"method": m, **{slot: f"{interval_text(d.t, 4)}, {d.n_positive} of {len(d.seeds)} above 0"
                                         for slot, d in differences.items()}})
    return rows


def attribution_summary(records: list[dict], field: str = "held_loss_by_layer") -> dict | None:
    """Where the held-out loss changed, over every record with the shares: per slot, the records whose change it
    carries most (the largest share in the change's direction); for layers, the records where that slot is also the
    one whose weights moved most (the largest relative update norm); and the median and largest residual as a
    fraction of the shares' total Σ |share| (a fraction of the change itself blows up where the change is near 0),
    and the fewest and most midpoints the splits spent where the records say (and on how many, where not all do:
    records before 2026-12-06's adaptive rule spent 8 even ones, or `--attribution-steps`). None without the
    shares."""
    rs = [r for r in records if r.get(field) and loss_rise(r) != 0]
    if not rs:
        return None
    leading = [max(r[field], key=lambda slot, r=r: r[field][slot] * loss_rise(r)) for r in rs]
    counts = {slot: leading.count(slot) for slot in rs[0][field] if slot in leading}
    relative = [_residual(r, field) / max(sum(abs(v) for v in r[field].values()), 1e-30) for r in rs]
    summary = {"records": len(rs), "leading": dict(sorted(counts.items(), key=lambda kv: -kv[1])),
               "residual": median(relative), "residual_max": max(relative)}
    if spent := [r["held_loss_midpoints"] for r in rs if "held_loss_midpoints" in r]:
        summary["midpoints"] = [min(spent), max(spent)]
        if len(spent) < len(rs):  # pooled with records from before the rule adapted
            summary["midpoints_records"] = len(spent)
    if field == "held_loss_by_layer":
        moved = [max(r["update_norms"], key=r["update_norms"].get) if r.get("update_norms") else None for r in rs]
        summary["most_moved"] = sum(a == b for a, b in zip(leading, moved, strict=True))
    return summary


def sign_counts(records: list[dict], field: str = "held_loss_by_layer") -> dict | None:
    """Per slot, how often its share goes with the change it is part of, over every record with the shares: on how
    many of the records where the held-out loss rose it is above 0 (`with_rise`), and on how many where it fell below
    0 (`with_fall`). A count of signs, unlike a median, is not swayed by one large record. Shares move with the change
    they add up to, so a slot's count is read against the other slots', not against a coin. None without the
    shares."""
    changes = [(r, loss_rise(r)) for r in records if r.get(field)]
    rose, fell = [r for r, change in changes if change > 0], [r for r, change in changes if change < 0]
    if not rose and not fell:
        return None
    slots = list((rose or fell)[0][field])
    return {"rose": len(rose), "fell": len(fell),
            "with_rise": {slot: sum(r[field][slot] > 0 for r in rose) for slot in slots},
            "with_fall": {slot: sum(r[field][slot] < 0 for r in fell) for slot in slots}}


def sign_rows(counts: dict, field: str = "held_loss_by_layer") -> list[dict]:
    """`sign_counts`' result as a table, one row per slot."""
    return [{KINDS[field]: slot, f"above 0 where the loss rose (of {counts['rose']})": counts["with_rise"][slot],
             f"below 0 where it fell (of {counts['fell']})": counts["with_fall"][slot]} for slot in counts["with_rise"]]


def sign_text(counts: dict, field: str = "held_loss_by_layer") -> str:
    """One sentence on `sign_counts`' result: per direction of the change, the slots whose share goes with it most
    often, and the fewest times any slot does."""
    parts = []
    for direction, key, sign in (("rose", "with_rise", "above"), ("fell", "with_fall", "below")):
        if n := counts[direction]:
            most, least = max(counts[key].values()), min(counts[key].values())
            named = [slot for slot, k in counts[key].items() if k == most]
            parts.append(f"where the held-out loss {direction} ({n} record{'s' * (n != 1)}), {', '.join(named)} "
                         f"{'is' if len(named) == 1 else 'are'} {sign} 0 on {most} (the fewest: {least})")
    return (f"Signs, not sizes: {'; '.join(parts)}. A slot's share moves with the change it is part of, so these "
            "counts are read against each other, not against a coin.")


def attribution_text(summary: dict, field: str = "held_loss_by_layer") -> str:
    """One sentence on `attribution_summary`'s result."""
    leading = ", ".join(f"{slot} on {n}" for slot, n in summary["leading"].items())
    moved = ("" if "most_moved" not in summary else
             f"; on {summary['most_moved']} of them it is the slot whose weights moved most")
    return (f"The {KINDS[field]} that carries most of the held-out loss's change (the largest share in its "
            f"direction): {leading} of {summary['records']} records{moved}. The shares miss the measured change by "
            f"a median {100 * summary['residual']:.1f} % of their total (at most "
            f"{100 * summary['residual_max']:.1f} %), the midpoint rule's error{_spent(summary)}.")


def _spent(summary: dict) -> str:
    if "midpoints" not in summary:  # records before the rule adapted (2026-12-06): 8 even midpoints, or the option's
        return ""
    low, high = summary["midpoints"]
    spent = f"{low} midpoints" if low == high else f"{low} to {high} midpoints"
    if "midpoints_records" in summary:
        return f", with {spent} on the {summary['midpoints_records']} of {summary['records']} records that name them"
    return f", with {spent}"


def add_attribution_views(section, results: dict, records: list[dict], methods: Sequence[str]) -> None:
    """Per slot kind (layers, parameter groups) that the records carry: the shares' table, its sentence (into
    `results[field]` too) and the paired differences from sft; for a model of `DEPTH_FROM` layers or more, the same
    for the layers summed in `DEPTH_BANDS` bands of depth first (`results["held_loss_by_depth"]`)."""
    layered = next((r["held_loss_by_layer"] for r in records if r.get("held_loss_by_layer")), {})
    deep = sum(slot.startswith("layer ") for slot in layered) >= DEPTH_FROM
    records = by_depth(records) if deep else records
    for field in ([DEPTH] if deep else []) + list(FIELDS):
        kind = KINDS[field]
        if rows := attribution_rows(records, methods, field):
            section.table(rows, title=f"Where in the network the held-out facts' loss changed, per {kind}: L − L⁰ "
                                      "split by path-integrated gradients, Σ_i Δθ_i ∫ ∂_i L(θ⁰ + tΔθ) dt along the "
                                      "straight line from the snapshot (midpoint rule, intervals halved where it "
                                      "misses, at most `--attribution-steps` midpoints; the shares add up to L − L⁰ "
                                      "but for the residual); medians over seeds")
            add_sentence(section, results, field, attribution_summary(records, field),
                         lambda summary, field=field: attribution_text(summary, field))
            if counts := sign_counts(records, field):
                section.table(sign_rows(counts, field), title=f"Per {kind}: on how many records its share has the "
                                                              "sign of the held-out loss's change")
            add_sentence(section, results, f"{field}_signs", counts, lambda c, field=field: sign_text(c, field))
            if rows := attribution_differences(records, methods, field=field):
                section.table(rows, title=f"Each {kind}'s share of the held-out loss's change minus sft's, paired by "
                                          "seed (mean, 95 % t-interval)")
