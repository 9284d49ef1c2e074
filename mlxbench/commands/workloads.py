"""``mlxbench workloads [NAME]``: what a suite's ``workload:`` can name, and the parameters it takes."""

from __future__ import annotations

import json
import os
import textwrap

from mlxbench import workloads
from mlxbench.errors import UserError
from mlxbench.suite.schema import workload_class
from mlxbench.workloads.base import Param, Workload


def add_arguments(parser) -> None:
    parser.add_argument("name", nargs="?", help="a workload (train, generate, …) or module:Class; "
                                                "without it, every shipped workload")


def main(args) -> int:
    if args.name is None:
        classes = [workloads.get(name) for name in workloads.names()]
        width = max(len(cls.name) for cls in classes)
        for cls in classes:
            print(f"{cls.name:<{width}}  {cls.description}")
        print("\n`mlxbench workloads NAME` lists a workload's parameters.")
        return 0
    try:
        cls = workload_class(args.name, (os.getcwd(),))
    except LookupError as err:
        raise UserError(f"workloads: {err}") from None
    print(describe(cls))
    return 0


def describe(cls: type[Workload]) -> str:
    """The workload's parameters as a suite author needs them: key, default, what it accepts, help."""
    lines = [f"{cls.name}: {cls.description}", "", "parameters (suite `defaults:`, variants and sweeps):"]
    for param in cls.params:
        lines.append(f"  {param.name} = {_default(param)}    ({param.describe()})")
        lines += textwrap.wrap(param.help, width=88, initial_indent="      ", subsequent_indent="      ")
    if cls.equivalent_params:
        lines += ["", "must not change the result (variants differing only in these are checked against "
                      "the baseline):", "  " + ", ".join(sorted(cls.equivalent_params))]
    return "\n".join(lines)


def _default(param: Param) -> str:
    if param.required:
        return "(required)"
    return "null" if param.default is None else json.dumps(param.default)
