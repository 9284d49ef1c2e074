"""What suite validation says of a workload's parameters, in the loader's order.

Each parameter's own rule (Param.check) first; the workload's check() of their combination
only when every parameter passed its own, as mlxbench.suite.schema does.
"""

from __future__ import annotations

from mlxbench.workloads.base import Workload


def validation_errors(cls: type[Workload], params: dict) -> dict[str, str]:
    found = {param.name: msg for param in cls.params if (msg := param.check(params[param.name]))}
    return found or dict(cls.check(params))
