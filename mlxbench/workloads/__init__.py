"""Workloads: each is one module here whose name is the workload's name.

A suite's ``workload: train`` loads ``mlxbench.workloads.train`` and the
:class:`~mlxbench.workloads.base.Workload` subclass it registers.
"""

from __future__ import annotations

import importlib
import pkgutil

from mlxbench.workloads.base import REGISTRY, Param, Workload, register

__all__ = ["Param", "Workload", "register", "get", "names"]

SHARED_MODULES = {"base", "models", "data", "tracker", "memory_settings", "distributed"}


def names() -> list[str]:
    """Names of the workloads that ship with mlxbench."""
    # These (public: run/ uses them too) and the _private modules hold what workloads share;
    # every other module is a workload.
    return sorted(m.name for m in pkgutil.iter_modules(__path__)
                  if m.name not in SHARED_MODULES and not m.name.startswith("_"))


def get(name: str) -> type[Workload]:
    """The workload class registered under ``name``; KeyError if there is none."""
    if name not in REGISTRY and name in names():
        importlib.import_module(f"mlxbench.workloads.{name}")
    return REGISTRY[name]
