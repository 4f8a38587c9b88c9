"""Dataclass fields that carry their help, choices and bounds (`option`), checked on construction (`check_options`)
and turned into command-line options (`add_dataclass_options`): one `--field-name` per field; `DictFields` reads and
writes such a dataclass as plain JSON values."""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from collections.abc import Collection

from .errors import InterferenceError


class DictFields:
    """`to_dict` and `from_dict` for a dataclass of plain values (tuples become lists); an unknown key is a one-line
    error naming it."""

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict):
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise InterferenceError(f"unknown {cls.__name__} field(s): {', '.join(unknown)}")
        return cls(**data)


def option(default, help: str, **rules):
    """A field with its help; rules: `choices`, or `low` (with `above`: strictly) and `high` bounds."""
    return dataclasses.field(default=default, metadata={"help": help, **rules})


def check_options(instance) -> None:
    """Raise a one-line InterferenceError for the first field outside its `choices` (every item of a tuple) or its
    bounds; None passes where the field's type allows it."""
    for f in dataclasses.fields(instance):
        value, rule, optional = getattr(instance, f.name), f.metadata, "None" in str(f.type)
        if value is None and optional:
            continue
        values = value if isinstance(value, tuple) else (value,)
        if "choices" in rule and any(v not in rule["choices"] for v in values):
            raise InterferenceError(f"{f.name} must be one of {', '.join(rule['choices'])}, got {value!r}")
        if "low" in rule:
            _check_bounds(f.name, value, rule, integer=str(f.type).startswith("int"), optional=optional)


def _check_bounds(name: str, value, rule: dict, *, integer: bool, optional: bool) -> None:
    low, high, above = rule["low"], rule.get("high", 2**32 - 1 if integer else math.inf), rule.get("above", False)
    if integer:
        kind = isinstance(value, int) and not isinstance(value, bool)
    else:
        kind = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if kind and low <= value <= high and not (above and value == low):
        return
    bound = f"{'>' if above else '>='} {low}"
    if "high" in rule or (kind and value > high):
        bound += f" and <= {high}"
    raise InterferenceError(f"{name} must be {'an integer' if integer else 'a finite number'} {bound}"
                            f"{' or None' if optional else ''}, got {value!r}")


def _optional(kind: type) -> typing.Callable[[str], object]:
    convert = lambda text: None if text.lower() == "none" else kind(text)
    convert.__name__ = kind.__name__  # argparse names the type in its errors
    return convert


def add_dataclass_options(parser: argparse.ArgumentParser, cls: type, *, exclude: Collection[str] = (),
                          shown_defaults: object | None = None) -> None:
    """Add one option per field of `cls` (but `exclude`), with the help and choices of `field.metadata`.

    `int`, `float`, `str` as themselves; `X | None` as X or "none"; `tuple[X, ...]` as one or more X; other unions
    as text (the dataclass converts). With `shown_defaults` (an instance of `cls`) an option left out sets nothing,
    so that the caller's own defaults apply, and the help shows that instance's value. Read the values back with
    `dataclass_values(args, cls)`.
    """
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        kind, args = hints[f.name], typing.get_args(hints[f.name])
        shown = "%(default)s" if shown_defaults is None else str(getattr(shown_defaults, f.name)).replace("%", "%%")
        options = {"default": f.default if shown_defaults is None else argparse.SUPPRESS,
                   "help": f"{f.metadata.get('help', '')} (default: {shown})"}
        if typing.get_origin(kind) is tuple:
            options.update(nargs="+", type=args[0])
        elif kind in (int, float, str):
            options["type"] = kind
        else:
            options["type"] = _optional(args[0]) if type(None) in args else str
        if "choices" in f.metadata:
            options["choices"] = f.metadata["choices"]
        parser.add_argument("--" + f.name.replace("_", "-"), **options)


def dataclass_values(args: argparse.Namespace, cls: type) -> dict:
    """The parsed values of `cls`'s fields, by field name (only those given, with `shown_defaults`)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
