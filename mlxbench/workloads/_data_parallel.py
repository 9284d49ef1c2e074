"""Data parallelism for a training step, as mlx-lm's trainer does it: every rank takes its shard of the
global batch, and the gradients are averaged across the ranks (``all_sum`` / N) before the update.

Each rank's loss is divided by its own shard's token count, so the average of the ranks' gradients is
the gradient of the whole global batch: N ranks × batch B compute what one process computes with
batch N × B (the equivalence check holds them to it). On one process every function here is the
identity.

Generation splits the model instead (``shard_model``): tensor parallelism with mlx-lm's own
``Model.shard``, every rank holding its part of each layer.
"""

from __future__ import annotations

import time
from typing import Any

import mlx.core as mx
from mlx.nn.utils import average_gradients
from mlx.utils import tree_map

from mlxbench import stats
from mlxbench.results.metrics import Metric
from mlxbench.workloads import distributed

COMMUNICATION_METRICS = (
    Metric("communication_time_s", "Gradient All-Reduce (s)", "s", "lower", "diagnostic", column=False,
           note="the all-reduce of one step's gradients, timed alone after the timed steps (inside the "
                "step it overlaps with compute and cannot be told apart)"),
    Metric("communication_share", "Communication Share", "", "lower", "diagnostic", column=False,
           note="communication_time_s over the median step time"),
)


def group(params: dict) -> mx.distributed.Group:
    """The group of this case's ranks; RuntimeError if it is not the size the case asks for."""
    world = mx.distributed.init()
    expected = distributed.processes(params)
    if world.size() != expected:
        raise RuntimeError(f"distributed: expected a group of {expected} processes, got {world.size()} "
                           f"(a case of several processes runs under `mlxbench run`, not --inline)")
    return world


def shard(batches: mx.array, world: mx.distributed.Group) -> mx.array:
    """This rank's slice of every global batch (batches: [batch index, sample, token])."""
    size = batches.shape[1] // world.size()
    return batches[:, world.rank() * size:(world.rank() + 1) * size]


def average(grads: Any, world: mx.distributed.Group) -> Any:
    """The gradients averaged across the ranks (mlx.nn's average_gradients, which mlx-lm's trainer uses)."""
    return average_gradients(grads, group=world)


def mean(value: mx.array, world: mx.distributed.Group) -> mx.array:
    """``value`` averaged across the ranks: the global batch's loss from the ranks' shard losses."""
    return value if world.size() == 1 else mx.distributed.all_sum(value, group=world) / world.size()


def communication_figures(params_tree: Any, world: mx.distributed.Group, repeat: int,
                          step_time_s: float) -> dict:
    """The gradient all-reduce alone, timed ``repeat`` times on gradients shaped like ``params_tree``."""
    if world.size() == 1:
        return {}
    grads = tree_map(mx.zeros_like, params_tree)
    mx.eval(grads)
    samples = []
    for _ in range(max(repeat, 1)):
        start = time.perf_counter()
        mx.eval(average(grads, world))
        samples.append(time.perf_counter() - start)
    summary = stats.summarize(samples)
    return {"communication_time_s": summary, "communication_share": summary["median"] / step_time_s}


def shard_model(net, world: mx.distributed.Group) -> None:
    """Tensor parallelism: mlx-lm's ``Model.shard`` splits each layer's weights across the ranks."""
    if world.size() == 1:
        return
    if not hasattr(net, "shard"):
        raise ValueError(f"mlx-lm's {type(net).__module__.rsplit('.', 1)[-1]} model has no shard(): "
                         f"it cannot generate tensor parallel")
    net.shard(world)
