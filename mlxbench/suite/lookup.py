"""Find the workload class a suite names: a shipped one by name, or a user's ``module:Class``."""

from __future__ import annotations

import importlib
import sys

from mlxbench import workloads
from mlxbench.suite.source import did_you_mean
from mlxbench.workloads.base import Workload


def workload_class(spec: str, search_path: tuple[str, ...] = ()) -> type[Workload]:
    """The workload a suite names: a shipped one (``train``) or ``module:Class`` from the user.

    ``module`` is imported from sys.path, then from the ``search_path`` directories
    (the suite's own directory). LookupError says why it could not be found.
    """
    if ":" not in spec:
        try:
            return workloads.get(spec)
        except KeyError:
            raise LookupError(f"expected one of {', '.join(workloads.names())} or 'module:Class', "
                              f"got {spec!r}{did_you_mean(spec, workloads.names())}") from None
    module_name, _, class_name = spec.partition(":")
    for directory in search_path:
        if directory not in sys.path:
            sys.path.append(directory)
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise LookupError(f"expected an importable module, got {spec!r} ({err})") from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Workload)):
        raise LookupError(f"expected a Workload subclass {class_name!r} in module {module_name!r}, got "
                          f"{'nothing' if cls is None else type(cls).__name__}")
    return cls
