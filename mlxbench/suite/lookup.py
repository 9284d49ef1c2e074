"""Find the workload class a suite names: a shipped one by name, or a user's ``module:Class``."""

from __future__ import annotations

import sys

from mlxbench import workloads
from mlxbench.suite import import_probe
from mlxbench.suite.source import did_you_mean
from mlxbench.workloads.base import Workload


def workload_class(spec: str, search_path: tuple[str, ...] = (), probe: bool = False) -> type[Workload]:
    """The workload a suite names: a shipped one (``train``) or ``module:Class`` from the user.

    ``module`` is imported from sys.path, then from the ``search_path`` directories
    (the suite's own directory). LookupError says why it could not be found. ``probe``: import a user's
    module in a child process first (``import_probe``), where reading a suite rather than in a worker.
    """
    module = spec.partition(":")[0]
    if probe and ":" in spec and module.strip() and module not in sys.modules:
        import_probe.probe(module, spec, search_path)
    try:
        return workloads.resolve(spec, search_path)
    except LookupError as err:
        hint = "" if ":" in spec else did_you_mean(spec, workloads.names())
        raise LookupError(f"{err}{hint}") from None
