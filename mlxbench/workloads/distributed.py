"""The ``distributed`` parameter: how many processes run a case, over which backend, on which hosts.

``distributed: {processes: 2, backend: ring, hostfile: null}`` is a workload parameter like any
other (defaults, a variant, a sweep axis). null, or one process without a hostfile, runs the case
in one worker as usual; otherwise the runner starts it with MLX's own launcher, ``mlx.launch``
(mlxbench.run.launch). ``batch_size`` stays the global batch, split across the ranks.

No MLX here: the runner reads these settings without loading MLX.
"""

from __future__ import annotations

import json

from mlxbench.bounded_yaml import read_text
from mlxbench.errors import UserError
from mlxbench.results.metrics import Metric
from mlxbench.workloads.base import Param

BACKENDS = ("ring", "mpi", "jaccl", "nccl", "any")
KEYS = {"processes": 1, "backend": "ring", "hostfile": None}
MAX_PROCESSES = 64  # ranks of one case: far past what one host or a rack of Macs runs
MAX_HOSTFILE_BYTES = 2**20


def _problem(value: dict) -> str | None:
    """What is wrong with a ``distributed`` mapping, or None."""
    unknown = [k for k in value if k not in KEYS]
    if unknown:
        return f"expected the keys {', '.join(KEYS)}, got unknown key {unknown[0]!r}"
    processes, backend, hostfile = (value.get(k, KEYS[k]) for k in KEYS)
    if not isinstance(processes, int) or isinstance(processes, bool) or not 1 <= processes <= MAX_PROCESSES:
        return f"processes: expected an integer from 1 to {MAX_PROCESSES}, got {str(processes)[:40]}"
    if backend not in BACKENDS:
        return f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}"
    if hostfile is None:
        return None
    if not isinstance(hostfile, str):
        return f"hostfile: expected a path or null, got {hostfile!r}"
    hosts = hostfile_hosts(hostfile)
    if isinstance(hosts, str):
        return f"hostfile: {hosts}"
    if "processes" in value and processes != len(hosts):
        return f"processes: expected {len(hosts)}, the hosts in {hostfile}, got {processes}"
    return None


DISTRIBUTED_PARAM = Param(
    "distributed", dict, None, nullable=True, validate=_problem,
    help="null: one process; {processes: N, backend: ring|mpi|jaccl|nccl|any, hostfile: PATH or null}: "
         "N ranks started by mlx.launch (N local processes, or one per host of an mlx.launch hostfile)")

# Every rank's own figures are kept in the record's ``distributed``; these sum them up.
RANK_METRICS = (
    Metric("rank_step_time_spread", "Rank Spread (%)", "%", "lower", "quality", scale=0.01,
           note="slowest rank's median step time over the fastest's, minus one: stragglers show; "
                "one figure per case, not judged"),
)


def hostfile_hosts(path: str) -> list | str:
    """The hosts of an mlx.launch hostfile (a list, or {"hosts": [...]}), or what is wrong with it."""
    try:
        data = json.loads(read_text(path, "a readable mlx.launch hostfile", MAX_HOSTFILE_BYTES))
    except UserError as err:  # a FIFO, a device, a symlink loop, too large, missing: said as the rest are
        return f"expected a readable mlx.launch hostfile, got {path!r} ({str(err).split(', got ', 1)[-1]})"
    except RecursionError:
        return f"expected JSON (an mlx.launch hostfile), got {path!r} (nested too deep)"
    except ValueError as err:
        return f"expected JSON (an mlx.launch hostfile), got {path!r} ({str(err)[:120]})"
    hosts = data.get("hosts") if isinstance(data, dict) else data
    if not isinstance(hosts, list) or not hosts or not all(isinstance(h, dict) and "ssh" in h for h in hosts):
        return f"expected a list of hosts, each with an 'ssh' name, in {path!r}"
    return hosts


def settings(params: dict) -> dict | None:
    """The case's ``distributed`` settings with every key filled in; None when it runs in one process."""
    value = params.get("distributed")
    if value is None:
        return None
    full = {**KEYS, **value}
    if full["hostfile"] is not None and "processes" not in value:
        hosts = hostfile_hosts(full["hostfile"])
        full["processes"] = len(hosts) if isinstance(hosts, list) else 1
    return full


def launched(params: dict) -> bool:
    """Whether the case runs as several ranks under mlx.launch."""
    found = settings(params)
    return found is not None and (found["processes"] > 1 or found["hostfile"] is not None)


def processes(params: dict) -> int:
    found = settings(params)
    return 1 if found is None else found["processes"]


def batch_errors(params: dict) -> list[tuple[str, str]]:
    """(key, message) pairs for a global batch that the ranks cannot share evenly."""
    n, batch, micro = processes(params), params["batch_size"], params.get("micro_batch_size")
    if n == 1:
        return []  # one process: the workload's own checks
    if batch % n:
        return [("batch_size", f"expected a multiple of distributed.processes {n} (the global batch is "
                               f"split evenly across the ranks), got {batch}")]
    if micro is not None and (batch // n) % micro:
        return [("micro_batch_size", f"expected a divisor of each rank's batch {batch // n} "
                                     f"(batch_size {batch} / {n} processes), got {micro}")]
    return []


def sharding_errors(params: dict) -> list[tuple[str, str]]:
    """(key, message) pairs for a tensor-parallel model that mlxbench does not shard (a quantized one)."""
    if processes(params) == 1:
        return []
    quantized = [k for k in ("quantization", "kv_bits") if params.get(k) is not None]
    return [(quantized[0], f"expected null with distributed.processes {processes(params)} (a model is "
                           f"sharded across ranks unquantized here), got {params[quantized[0]]}")] if quantized else []
