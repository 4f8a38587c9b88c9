"""The toolkit's error type: bad user input, reported as one line naming the problem."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps


class InterferenceError(Exception):
    """A problem with the user's input (model name, file, split, hyper-parameter); the message is one line."""


def cli_errors(main: Callable[..., int | None]) -> Callable[..., int]:
    """Decorate a CLI `main`: an InterferenceError (or KeyboardInterrupt) becomes `error: <message>` and exit 2."""

    @wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs) or 0
        except InterferenceError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            return 130

    return wrapper
