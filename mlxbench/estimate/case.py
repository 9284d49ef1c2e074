"""The estimate a case carries: in its record, in ``run --dry-run`` and in ``list``."""

from __future__ import annotations

import traceback

from mlxbench.estimate.calibrate import calibrated_estimate
from mlxbench.estimate.model import Estimate, supports


def for_case(workload: str, params: dict, env_id: str | None = None) -> dict:
    """The record's ``estimate``: the Estimate's fields, or a null peak with the reason there is none."""
    result = estimate_or_reason(workload, params, env_id)
    if isinstance(result, str):
        return {"peak_bytes": None, "reason": result}
    return result.to_dict()


def estimate_or_reason(workload: str, params: dict, env_id: str | None = None) -> Estimate | str:
    """The estimate of a case, or why there is none (never raises: a run must not fail on it)."""
    if not supports(workload):
        return f"no memory model for the {workload} workload"
    try:
        return calibrated_estimate(workload, params, env_id)
    except Exception as err:  # an architecture the model does not know: say so, run anyway
        last = " ".join(traceback.format_exception_only(type(err), err)[-1].split())  # one line, whatever it said
        return f"the model's shapes could not be read ({last[:300]})"


def line(workload: str, params: dict, env_id: str | None = None) -> str:
    """'estimated peak ~1.23 GB (…) · not calibrated', or why there is no estimate."""
    result = estimate_or_reason(workload, params, env_id)
    return f"estimated peak: {result}" if isinstance(result, str) else f"estimated peak {result.summary()}"


def current_env_id() -> str | None:
    """This machine's environment id (the one its runs record), for its calibration; None if unknown."""
    from mlxbench.machine.env import capture

    try:
        return capture(calibrate=False)["env_id"]
    except Exception:  # no calibration then: the estimate says it is not calibrated
        return None


def with_estimates(description: str, cases: list, env_id: str | None) -> str:
    """``suite.schema.describe``'s text with each case's estimated peak under its line (cases come last)."""
    lines = description.splitlines()
    head, tail = lines[: len(lines) - len(cases)], lines[len(lines) - len(cases):]
    out = list(head)
    for text, case in zip(tail, cases):
        out += [text, f"        {line(case.workload, case.params, env_id)}"]
    return "\n".join(out)
