"""Command-line options derived from a dataclass: one `--field-name` per field, with its type, default and help."""

from __future__ import annotations

import argparse
import dataclasses
import typing


def _optional(kind: type) -> typing.Callable[[str], object]:
    convert = lambda text: None if text.lower() == "none" else kind(text)
    convert.__name__ = kind.__name__  # argparse names the type in its errors
    return convert


def add_dataclass_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one option per field of `cls`, with the help and choices of `field.metadata` ("help", "choices").

    `int`, `float`, `str` as themselves; `X | None` as X or "none"; `tuple[X, ...]` as one or more X; other unions
    as text (the dataclass converts). Read the values back with `dataclass_values(args, cls)`.
    """
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind, args = hints[f.name], typing.get_args(hints[f.name])
        options = {"default": f.default, "help": f"{f.metadata.get('help', '')} (default: %(default)s)"}
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
    """The parsed values of `cls`'s fields, by field name."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)}
