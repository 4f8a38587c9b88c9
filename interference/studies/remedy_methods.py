"""How a remedy is named and what it is made of: the methods the remedies study knows, their parts joined by "+"
(`self_distill+ewc`), and the strength a part may set after a colon (`ewc:1e6`, `replay:0.5`, `self_distill:4`), with
one spelling per method and one-line errors for a name that means nothing."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from ..io.errors import InterferenceError

#: The trained methods, and the interpolation; combinations name their parts with "+".
METHODS = ("sft", "self_distill", "lora", "replay", "ewc", "self_distill+lora", "self_distill+replay",
           "self_distill+ewc", "wise-ft")
#: Controls a run may add (not run by default): `reshuffled` is SFT from the same start with another batch order
#: (`TrainConfig.order_shift` = `RESHUFFLE_SHIFT`), how far SFT's own update and held-out accuracy move for nothing but
#: the order of its batches; `frozen-unembedding` is SFT with the unembedding frozen (on a model that ties it, the
#: embeddings with it), what SFT keeps when it cannot move the output matrix.
CONTROLS = ("reshuffled", "frozen-unembedding")
#: The order of the study's methods: each control right after sft, the method it controls.
ORDER = (METHODS[0], *CONTROLS, *METHODS[1:])
#: The batch-order shift of `reshuffled`.
RESHUFFLE_SHIFT = 1000
#: The parts a method is made of.
PARTS = tuple(dict.fromkeys(part for method in ORDER for part in method.split("+")))
#: A part may set its remedy's strength, "part:value" (`ewc:1e6`, `replay:0.5`, `self_distill:4`), so that one run
#: sweeps it: the `TrainConfig` field each sets. Without one, a part takes the study's setting.
STRENGTHS = {"self_distill": "kd_lambda", "ewc": "ewc_lambda", "replay": "replay_fraction"}


def strength_text(value: float, digits: int = 6) -> str:
    """One spelling per number, so that a method has one name: 1e6 → '1e6', 0.5 → '0.5', 2e-05 → '2e-5'."""
    mantissa, _, exponent = f"{value:.{digits}g}".partition("e")
    return f"{mantissa}e{int(exponent)}" if exponent else mantissa


def method_parts(method: str) -> list[tuple[str, float | None]]:
    """'self_distill+ewc:1e6' → [('self_distill', None), ('ewc', 1000000.0)]; one-line errors for an unknown part,
    a strength on a part that has none, and a strength that is not a number above 0."""
    if re.search(r"\de\+", method, re.IGNORECASE):
        raise InterferenceError(f"write {method!r}'s exponent without '+' (ewc:1e6, not ewc:1e+06): '+' joins a "
                                "method's parts")
    parts = []
    for part in method.split("+"):
        name, colon, value = part.partition(":")
        if name not in PARTS:
            raise InterferenceError(f"unknown remedy {method!r} (choose from {', '.join(ORDER)}; a part may set its "
                                    f"strength, e.g. ewc:1e6)")
        strength = None
        if colon:
            if name not in STRENGTHS:
                raise InterferenceError(f"{name} in {method!r} takes no strength (these do: "
                                        f"{', '.join(f'{k}:<{v}>' for k, v in STRENGTHS.items())})")
            try:
                strength = float(value)
            except ValueError:
                strength = math.nan
            if not (math.isfinite(strength) and strength > 0):
                raise InterferenceError(f"the strength of {name} in {method!r} must be a number above 0, got "
                                        f"{value!r}")
        parts.append((name, strength))
    return parts


def family(method: str) -> str:
    """The method without its strengths: 'self_distill+ewc:1e6' → 'self_distill+ewc'."""
    return "+".join(name for name, _ in method_parts(method))


def method_name(method: str) -> str:
    """The one name of a method: its parts with their strengths spelt one way ('ewc:1000000' → 'ewc:1e6')."""
    return "+".join(name if s is None else f"{name}:{strength_text(s)}" for name, s in method_parts(method))


def check_methods(methods: Sequence[str]) -> tuple[str, ...]:
    """`methods` named one way, in the study's order (each method with its strengths after it, weakest first);
    one-line errors for an unknown one, and for wise-ft without sft."""
    if not methods:
        raise InterferenceError(f"no remedy given (choose from {', '.join(METHODS)})")
    names = list(dict.fromkeys(method_name(m) for m in methods))
    unknown = [m for m in names if family(m) not in ORDER]
    if unknown:
        raise InterferenceError(f"unknown remedy {unknown[0]!r} (choose from {', '.join(ORDER)}; a part may set "
                                f"its strength, e.g. ewc:1e6)")
    if "wise-ft" in names and "sft" not in names:
        raise InterferenceError("wise-ft interpolates the SFT model: add sft to the methods")
    return tuple(sorted(names, key=lambda m: (ORDER.index(family(m)),
                                              [(s is not None, s or 0.0) for _, s in method_parts(m)])))
