"""Find the workload class a suite names: a shipped one by name, or a user's ``module:Class``."""

from __future__ import annotations

from mlxbench import workloads
from mlxbench.suite.source import did_you_mean
from mlxbench.workloads.base import Workload


def workload_class(spec: str, search_path: tuple[str, ...] = ()) -> type[Workload]:
    """The workload a suite names: a shipped one (``train``) or ``module:Class`` from the user.

    ``module`` is imported from sys.path, then from the ``search_path`` directories
    (the suite's own directory). LookupError says why it could not be found.
    """
    try:
        return workloads.resolve(spec, search_path)
    except LookupError as err:
        hint = "" if ":" in spec else did_you_mean(spec, workloads.names())
        raise LookupError(f"{err}{hint}") from None
