"""The toolkit's error type and how commands end: bad user input is one line naming the problem (exit 2), an
interrupt is one line "interrupted" (exit 130), at any moment of a command, its imports included."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from functools import wraps

#: Seeds are unsigned 32-bit integers (numpy's limit; torch's and Python's accept these too).
MAX_SEED = 2**32 - 1


class InterferenceError(Exception):
    """A problem with the user's input (model name, file, split, hyper-parameter); the message is one line."""


class CommandParser(argparse.ArgumentParser):
    """The commands' argument parser: a bad or missing option is one line like every other bad input
    (an InterferenceError, which `cli_errors` prints as `error: ...` with exit 2), not the usage text."""

    def error(self, message: str):
        raise InterferenceError(f"{message} (see {self.prog} --help)")


def check_seed(value, name: str = "seed") -> int:
    """`value` if it is an integer in [0, 2**32 - 1]; else InterferenceError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise InterferenceError(f"{name} must be an integer in [0, {MAX_SEED}], got {value!r}")
    return value


def check_seeds(values: Iterable, name: str = "seeds") -> tuple[int, ...]:
    """At least one seed, each valid (`check_seed`) and all distinct."""
    values = tuple(values)
    if not values:
        raise InterferenceError(f"{name} needs at least one seed")
    for value in values:
        check_seed(value, name)
    if len(set(values)) != len(values):
        raise InterferenceError(f"{name} must be distinct, got {list(values)}")
    return values


def _exit_interrupted(signum, frame) -> None:  # pragma: no cover - runs in a child process in the tests
    os.write(2, b"interrupted\n")
    os._exit(130)


def exit_quietly_on_interrupt() -> None:
    """Until a command's `main` starts, make Ctrl-C print "interrupted" and exit 130 at once (no traceback from
    the middle of an import). `cli_errors` hands interrupts back to Python when `main` starts, so that `finally`
    blocks (temporary files, locks) run. Called by the packages' `__init__` when run as `python -m ...`."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _exit_interrupted)


def started_as_command(*packages: str) -> bool:
    """Whether this process is `python -m <one of packages>[.<command>]` and is still importing it (while Python
    looks the module up, sys.argv[0] is "-m")."""
    if sys.argv[:1] != ["-m"]:
        return False
    argv = list(getattr(sys, "orig_argv", []))
    for i, arg in enumerate(argv):
        if arg.startswith("-m"):
            module = arg[2:] or (argv[i + 1] if i + 1 < len(argv) else "")
            return module.split(".")[0] in packages
    return False


def cli_errors(main: Callable[..., int | None]) -> Callable[..., int]:
    """Decorate a CLI `main`: an InterferenceError becomes `error: <message>` and exit 2, an interrupt (Ctrl-C)
    becomes `interrupted` and exit 130."""

    @wraps(main)
    def wrapper(*args, **kwargs) -> int:
        in_main_thread = threading.current_thread() is threading.main_thread()
        if in_main_thread and signal.getsignal(signal.SIGINT) is _exit_interrupted:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            return main(*args, **kwargs) or 0
        except InterferenceError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    return wrapper
