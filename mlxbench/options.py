"""Checks of command-line values, one set for every command: argparse ``type=`` functions.

A value that fails is argparse's usage error: one line naming the option, exit status 2,
before any work starts. Every number is finite and in a range with an upper bound too, so
a 400-digit value is refused here rather than overflowing somewhere later.
"""

from __future__ import annotations

import argparse
import math
import re
from typing import Callable

# Upper bounds: far above any sane use, low enough that nothing downstream overflows.
MAX_STEPS = 1_000_000  # warm-up or timed steps
MAX_SECONDS = 7 * 24 * 3600.0  # a week
MAX_PERCENT = 1e6
MAX_BYTES = 2.0**60  # an exbibyte
MAX_ROUNDS = 1000  # interleaved rounds of a case
SIZE_UNITS = {"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "kib": 2**10, "mib": 2**20,
              "gib": 2**30, "tib": 2**40}


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def whole_number(minimum: int, maximum: int, what: str = "a whole number") -> Callable[[str], int]:
    """A ``type=`` for an int from ``minimum`` to ``maximum``; anything else is a one-line refusal."""
    def parse(text: str) -> int:
        try:
            value = int(text.strip()) if len(text) <= 30 else None
        except ValueError:
            value = None
        if value is None or not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"expected {what} from {minimum} to {maximum}, got {_shown(text)}")
        return value
    parse.__name__ = what  # argparse names the type in its own messages
    parse.reads_number = True
    return parse


def number(minimum: float, maximum: float, what: str = "a number", above: bool = False) -> Callable[[str], float]:
    """A ``type=`` for a finite float from ``minimum`` (excluded if ``above``) to ``maximum``."""
    low = f"> {minimum:g}" if above else f"≥ {minimum:g}"
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        in_range = (value > minimum if above else value >= minimum) and value <= maximum
        if not (math.isfinite(value) and in_range):
            raise argparse.ArgumentTypeError(f"expected {what} {low} and ≤ {maximum:g}, got {_shown(text)}")
        return value
    parse.__name__ = what
    parse.reads_number = True
    return parse


def size_bytes(text: str) -> float:
    """A ``type=`` for a memory size: '16GB', '800 MB', '1.5GiB' (no unit: GB), in bytes, > 0 and ≤ 1 EiB."""
    found = re.fullmatch(r"\s*([0-9]{1,20}(?:\.[0-9]{1,20})?|\.[0-9]{1,20})\s*([kmgt]i?b?|b)?\s*", text.lower())
    unit = (found.group(2) or "gb") if found else ""
    unit = unit if unit.endswith("b") else unit + "b"
    value = float(found.group(1)) * SIZE_UNITS[unit] if found and unit in SIZE_UNITS else math.nan
    if not 0 < value <= MAX_BYTES:
        raise argparse.ArgumentTypeError(f"expected a size such as 16GB or 800MB, > 0 and ≤ 1 EiB, "
                                         f"got {_shown(text)}")
    return value


size_bytes.reads_number = True


def non_empty(text: str) -> str:
    """A ``type=`` for a name or path that must not be empty."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a name or a path, got an empty string")
    return text


steps = whole_number(0, MAX_STEPS, "a number of steps")
timed_steps = whole_number(1, MAX_STEPS, "a number of steps")
seconds = number(0, MAX_SECONDS, "a number of seconds", above=True)
percentage = number(0, MAX_PERCENT, "a percentage")
fraction = number(0, 0.99, "a fraction")


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage error is one line on stderr (exit 2): the usage is what --help is for."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")
