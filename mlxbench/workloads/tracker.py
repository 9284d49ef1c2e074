"""What a tracker is: one job of the measurement loop (time, a memory counter, contention, progress),
after optimum-benchmark's latency and memory trackers.

A tracker declares the metric names it produces (``produces``) and is told when the timed steps
begin and end and when each step starts and ends. The loop composes the loop's own trackers with a
workload's (``Workload.trackers``: a framework's own counters, as PyTorch's) in :class:`Trackers`,
which refuses a name two of them produce before anything runs: no figure is overwritten.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator


class Tracker:
    """Base class: declare ``produces``, override the moments it needs, give ``figures``."""

    produces: tuple[str, ...] = ()

    def start(self) -> None:
        """Just before the first timed step."""

    def step_started(self) -> None:
        """Just before each timed step."""

    def step_ended(self) -> None:
        """Just after each timed step (its work evaluated)."""

    def stop(self) -> None:
        """Just after the last timed step."""

    def figures(self) -> dict[str, Any]:
        """The figures it produced, by name: only names in ``produces``."""
        return {}

    def __enter__(self) -> "Tracker":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class Trackers:
    """Trackers composed by the loop; a metric name produced twice is refused here, at declaration."""

    def __init__(self, trackers: list[Tracker], reserved: dict[str, str] | None = None):
        self.trackers = list(trackers)
        self.owners: dict[str, str] = dict(reserved or {})
        for tracker in self.trackers:
            for name in tracker.produces:
                claim(self.owners, name, type(tracker).__name__)

    def __enter__(self) -> "Trackers":
        for tracker in self.trackers:
            tracker.start()
        return self

    def __exit__(self, *exc) -> None:
        for tracker in reversed(self.trackers):
            tracker.stop()

    @contextmanager
    def step(self) -> Iterator[None]:
        """Around one timed step: each tracker told it starts, then that it ended (in reverse)."""
        for tracker in self.trackers:
            tracker.step_started()
        yield
        for tracker in reversed(self.trackers):
            tracker.step_ended()

    def figures(self) -> dict[str, Any]:
        """Every tracker's figures; a name a tracker did not declare is an error, not a silent extra."""
        out: dict[str, Any] = {}
        for tracker in self.trackers:
            for name, value in tracker.figures().items():
                if name not in tracker.produces:
                    raise ValueError(f"tracker {type(tracker).__name__} gave {name!r}, which it does not declare")
                out[name] = value
        return out


def claim(owners: dict[str, str], name: str, owner: str) -> None:
    """Record that ``owner`` produces ``name``; a second producer of it is an error naming both."""
    if name in owners and owners[name] != owner:
        raise ValueError(f"metric {name!r} is produced by both {owners[name]} and {owner}: "
                         f"one figure per name, give one of them another name")
    owners[name] = owner
