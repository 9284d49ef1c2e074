"""Workloads: each is one module here whose name is the workload's name.

A suite's ``workload: train`` loads ``mlxbench.workloads.train`` and the
:class:`~mlxbench.workloads.base.Workload` subclass it registers.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

from mlxbench.workloads._user_module import import_user_module
from mlxbench.workloads.base import REGISTRY, Param, Workload, register

__all__ = ["Param", "Workload", "register", "get", "names", "resolve"]

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


def resolve(spec: str, search_path: tuple[str, ...] = ()) -> type[Workload]:
    """The workload a suite names: a shipped one (``train``) or ``module:Class`` from the user.

    ``module`` is imported from sys.path, then from the ``search_path`` directories
    (the suite's own directory). LookupError says why it could not be found.
    """
    if ":" not in spec:
        try:
            return get(spec)
        except KeyError:
            raise LookupError(f"expected one of {', '.join(names())} or 'module:Class', got {spec!r}") from None
    module_name, _, class_name = spec.partition(":")
    if not module_name.strip() or not class_name.strip():
        raise LookupError(f"expected 'module:Class' with both named, got {spec!r}")
    for directory in search_path:
        if directory not in sys.path:
            sys.path.append(directory)
    module = import_user_module(module_name, spec)
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Workload)):
        raise LookupError(f"expected a Workload subclass {class_name!r} in module {module_name!r}, got "
                          f"{'nothing' if cls is None else type(cls).__name__}")
    return cls
