"""Collective communication between the ranks of a group: all_sum, all_gather, and send/recv between
neighbours, at one message size and dtype per case (sweep ``message_bytes`` and ``dtype`` for a curve).

Figures follow nccl-tests (doc/PERFORMANCE.md there): for an operation of S bytes taking t seconds,
algorithm bandwidth algbw = S / t, and bus bandwidth busbw = algbw × a factor that makes it comparable
to the links' own speed whatever the number of ranks n:

- all_sum (all-reduce): S = the buffer each rank holds; busbw = algbw × 2(n − 1)/n
- all_gather: S = the gathered output, n × each rank's part; busbw = algbw × (n − 1)/n
- send_recv (every rank sends to the next and receives from the previous): S = the bytes sent; busbw = algbw

``message_bytes`` is what each rank contributes. Every result is checked against the value it must
have (small integers, exact in every dtype), and a wrong one fails the case.
"""

from __future__ import annotations

import time
from typing import Any

import mlx.core as mx

from mlxbench.results.metrics import Metric, rate, timing
from mlxbench.workloads import _data_parallel as dp
from mlxbench.workloads.distributed import DISTRIBUTED_PARAM, RANK_METRICS
from mlxbench.workloads.base import Param, Workload, register

OPS = ("all_sum", "all_gather", "send_recv")
DTYPES = {"float32": mx.float32, "float16": mx.float16, "bfloat16": mx.bfloat16, "int32": mx.int32}
BYTES_PER_STEP = 1 << 20  # with iterations null, each step moves about this much per operation
MAX_ITERATIONS = 64


def _ops_problem(ops: list) -> str | None:
    if not ops or any(op not in OPS for op in ops) or len(set(ops)) != len(ops):
        return f"expected a non-empty list of distinct operations from {', '.join(OPS)}, got {ops!r}"
    return None


def bus_factor(op: str, n: int) -> float:
    """busbw / algbw of ``op`` on ``n`` ranks (nccl-tests)."""
    return {"all_sum": 2 * (n - 1) / n, "all_gather": (n - 1) / n, "send_recv": 1.0}[op]


def _declares() -> tuple[Metric, ...]:
    out: list[Metric] = []
    words = {"all_sum": "All-Sum", "all_gather": "All-Gather", "send_recv": "Send/Recv"}
    for op in OPS:
        latency = f"{op}_latency_s"
        # Columns: every bus bandwidth, one latency; the report's charts draw every latency.
        out += [timing(latency, f"{words[op]} Latency (s)", column=op == "all_sum"),
                rate(f"{op}_algbw_bytes_per_s", f"{words[op]} Alg. Bandwidth (GB/s)", of=latency, unit="GB/s",
                     scale=1e9, column=False),
                rate(f"{op}_busbw_bytes_per_s", f"{words[op]} Bus Bandwidth (GB/s)", of=latency, unit="GB/s",
                     scale=1e9)]
    return (*out, Metric("results_checked", "Results Checked", column=False,
                         note="results compared with their expected value, every one equal"), *RANK_METRICS)


@register
class Collective(Workload):
    name = "collective"
    description = "all_sum, all_gather, send/recv across the ranks: latency, algorithm and bus bandwidth"
    params = (
        Param("message_bytes", int, 1 << 20, minimum=1, help="bytes each rank contributes to one operation"),
        Param("dtype", str, "float32", choices=tuple(DTYPES), help="element type of the messages"),
        Param("ops", list, list(OPS), validate=_ops_problem,
              help="the operations, each timed on its own (send_recv needs 2 ranks or more)"),
        Param("iterations", int, None, nullable=True, minimum=1,
              help=f"operations of each kind per step; null: enough to move ~{BYTES_PER_STEP >> 20} MiB, "
                   f"at most {MAX_ITERATIONS}"),
        DISTRIBUTED_PARAM,
    )
    declares = _declares()
    headline = ("all_sum_latency_s", "all_sum_busbw_bytes_per_s")
    timed_phase = "collectives"

    @classmethod
    def check(cls, params: dict) -> list[tuple[str, str]]:
        size = DTYPES[params["dtype"]].size
        if params["message_bytes"] % size:
            return [("message_bytes", f"expected a multiple of {size} (one {params['dtype']} element), "
                                      f"got {params['message_bytes']}")]
        return []

    def setup(self) -> None:
        self.group = dp.group(self.p)
        n, rank = self.group.size(), self.group.rank()
        count, dtype = self.p["message_bytes"] // DTYPES[self.p["dtype"]].size, DTYPES[self.p["dtype"]]
        pattern = mx.arange(count) % 7  # small integers: exact sums in every dtype

        def part(r: int) -> mx.array:
            return (pattern + r).astype(dtype)

        self.x = part(rank)
        self.expected = {"all_sum": (n * pattern + n * (n - 1) // 2).astype(dtype),
                         "all_gather": mx.concatenate([part(r) for r in range(n)]),
                         "send_recv": part((rank - 1) % n)}
        self.ops = [op for op in self.p["ops"] if op != "send_recv" or n > 1]
        if len(self.ops) < len(self.p["ops"]):
            print("collective: send_recv needs 2 ranks or more; not measured in a group of one", flush=True)
        self.iterations = self.p["iterations"] or max(1, min(MAX_ITERATIONS, BYTES_PER_STEP // self.p["message_bytes"]))
        self.checked = 0
        mx.eval(self.x, self.expected)

    def _once(self, op: str) -> mx.array:
        """One operation, evaluated; its result on this rank."""
        g = self.group
        if op == "all_sum":
            out = mx.distributed.all_sum(self.x, group=g)
        elif op == "all_gather":
            out = mx.distributed.all_gather(self.x, group=g)
        else:  # even ranks send first, odd ranks receive first: no two neighbours both block sending
            n, rank = g.size(), g.rank()
            send = lambda: mx.eval(mx.distributed.send(self.x, (rank + 1) % n, group=g))  # noqa: E731
            out = mx.distributed.recv_like(self.x, (rank - 1) % n, group=g)
            if rank % 2 == 0:
                send()
                mx.eval(out)
            else:
                mx.eval(out)
                send()
        mx.eval(out)
        return out

    def step(self) -> dict[str, float]:
        figures = {}
        for op in self.ops:
            results = []
            start = time.perf_counter()
            for _ in range(self.iterations):
                results.append(self._once(op))
            figures[f"{op}_latency_s"] = (time.perf_counter() - start) / self.iterations
            for result in results:  # after the clock: checking is not the operation's time
                self._check(op, result)
        return figures

    def _check(self, op: str, result: mx.array) -> None:
        expected = self.expected[op]
        if result.shape != expected.shape or not mx.array_equal(result, expected).item():
            wrong = (int(mx.sum(result != expected).item()) if result.shape == expected.shape
                     else f"shape {result.shape} for {expected.shape}")
            raise ValueError(f"{op} on rank {self.group.rank()} of {self.group.size()}: wrong result "
                             f"({wrong} of {expected.size} elements differ from the expected value)")
        self.checked += 1

    def metrics(self, timed: dict[str, dict]) -> dict[str, Any]:
        n = self.group.size()
        figures: dict[str, Any] = {"results_checked": self.checked}
        for op in self.ops:
            size = self.p["message_bytes"] * (n if op == "all_gather" else 1)
            algbw = size / timed[f"{op}_latency_s"]["median"]
            figures[f"{op}_algbw_bytes_per_s"] = algbw
            figures[f"{op}_busbw_bytes_per_s"] = algbw * bus_factor(op, n)
        return figures
