"""A remedies method's update set against SFT's from the same snapshot: the record fields of
`interference.measures.update_parts` (the step along SFT's update and the step off it, and a control's step off it set
in the same place), read by `interference.report.update_parts`."""

from __future__ import annotations

from ..measures.fisher import answer_losses, mean_loss
from ..measures.update_parts import group_losses, matched_losses, part_losses
from ..measures.updates import update_alignment
from ..models.weights import Snapshot
from .setup import rounded_losses


def sft_parts(start: Snapshot, model, sft_model, sft_new_loss: float, anchors, control=None,
              groups: dict | None = None) -> dict:
    """`model`'s update from the seed's snapshot `start` against SFT's (`sft_alignment`), and split into its step
    along SFT's update and its step off it (`interference.measures.update_parts`; `anchors`: the remedies study's
    D_held and D_unknown examples and D_unknown's losses at θ⁰): "sft_parts" holds the scale c, each held-out fact's
    loss at θ⁰ + c·R ("held_losses_along") and at θ⁰ + Δ − c·R ("held_losses_sideways"), and D_unknown's mean loss at
    θ⁰, at the two parts, at θ and at SFT's θ (`sft_new_loss`; "new_loss": start, along, sideways, final,
    reference). With `control` (the control's name and sideways step), "matched" holds that step set at `model`'s own
    c and length (`matched_losses`): its factor k and the held-out losses and D_unknown's mean loss alone and on
    top. With `groups` (label → parameter groups), "by_group" holds per label the held-out and D_unknown mean loss
    with the step added to the shrunk SFT in those groups alone (`group_losses`; "held", "new"), and the control's
    step set in its place likewise ("matched_held", "matched_new")."""
    alignment = update_alignment(start, model, sft_model)
    scale = alignment["scale"]["all"] or 0.0
    splits = {"held": anchors.held_examples, "new": anchors.new_examples}
    _, losses = part_losses(start, model, sft_model, splits, scale=scale)
    new = dict(zip(("start", "along", "sideways", "final"),
                   map(mean_loss, (anchors.new_losses, *losses["new"], answer_losses(model, anchors.new_examples))),
                   strict=True), reference=sft_new_loss)
    along, sideways = map(rounded_losses, losses["held"])
    parts = {"scale": scale, "held_losses_along": along, "held_losses_sideways": sideways, "new_loss": new}
    if control is not None:
        factor, matched = matched_losses(start, model, sft_model, scale, control[1], splits)
        alone, on_top = map(rounded_losses, matched["held"])
        parts["matched"] = {"method": control[0], "factor": factor, "held_losses_alone": alone,
                            "held_losses_on_top": on_top,
                            "new_loss": dict(zip(("alone", "on_top"), map(mean_loss, matched["new"]), strict=True))}
    if groups:
        parts["by_group"] = _by_group(start, model, sft_model, scale, groups, splits, control,
                                      parts.get("matched", {}).get("factor"))
    return {"sft_alignment": alignment, "sft_parts": parts}


def _by_group(start: Snapshot, model, sft_model, scale: float, groups: dict, splits: dict, control,
              factor: float | None) -> dict:
    """Per label of `groups`: the mean losses with `model`'s sideways step, and the control's (where kept), added to
    the shrunk SFT in those groups alone."""
    steps = {"": group_losses(start, model, sft_model, scale, groups, splits)}
    if control is not None:
        steps["matched_"] = group_losses(start, model, sft_model, scale, groups, splits, control[1], factor)
    return {label: {f"{prefix}{split}": mean_loss(losses[label][split]) for prefix, losses in steps.items()
                    for split in ("held", "new")} for label in groups}
