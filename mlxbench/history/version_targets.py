"""A suite at several sets of released package versions: one cached environment per pin set (history.envs)."""

from __future__ import annotations

from dataclasses import replace

from mlxbench.history import envs
from mlxbench.history.sweep import Target


def targets(pin_sets: list[dict[str, str]]) -> list[Target]:
    """A target per pin set, in the order given."""
    return [Target(label=envs.label(pins), order=i, kind="versions", ref=envs.label(pins))
            for i, pins in enumerate(pin_sets)]


def prepare(target: Target) -> Target:
    """The target with its environment built (or found in the cache) and what it really holds."""
    pins = dict(item.split("==", 1) for item in target.ref.split())
    built = envs.build(pins)
    return replace(target, python=built["python"], versions=built)
