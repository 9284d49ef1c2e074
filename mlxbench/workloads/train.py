"""The reference training step: full fine-tuning, LoRA or QLoRA, with optional gradient
checkpointing and micro-batching.

One ``step()`` is one optimizer update over ``batch_size`` samples. With micro-batching
the samples go through forward/backward ``micro_batch_size`` at a time and the gradients
are summed; every micro-batch's loss is divided by the token count of the *whole* batch,
so the summed gradient is exactly the full batch's gradient and the update is the one
the baseline makes. Gradient checkpointing recomputes each transformer block's
activations in the backward pass instead of keeping them. Neither changes the result:
``equivalence()`` gives the runner the first step's loss and gradient norm to check that.
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import partial
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_flatten, tree_map

from mlxbench.workloads import _data_parallel as dp
from mlxbench.workloads import data
from mlxbench.workloads import memory_settings
from mlxbench.workloads import models
from mlxbench.results.metrics import PEAK_MEMORY, STEP_TIME, Metric, rate
from mlxbench.workloads.base import Param, Workload, register
from mlxbench.workloads._model_params import LORA_KEYS, MODEL_PARAM, QUANTIZATION_PARAMS, quantization_errors
from mlxbench.workloads.distributed import DISTRIBUTED_PARAM, RANK_METRICS, batch_errors
from mlxbench.workloads import _lora, _train_memory

OPTIMIZERS = {"adam": optim.Adam, "adamw": optim.AdamW, "sgd": optim.SGD}
# Relative tolerance of the equivalence check. float32 differs only by summation order
# (~1e-6 relative on a loss, more on a norm over millions of values). bfloat16 keeps 8
# mantissa bits (2^-8 ≈ 4e-3) and float16 11 bits (2^-11 ≈ 5e-4); accumulating a few
# micro-batch gradients in that precision rounds a few times, so a few ulps of slack.
RTOL = {"float32": 1e-4, "bfloat16": 3e-2, "float16": 5e-3}


def _checkpointed_class(cls: type) -> type:
    """A subclass of ``cls`` whose call recomputes its activations in the backward pass.

    mlx-lm's ``grad_checkpoint`` patches ``cls.__call__`` for every instance in the process;
    giving only the wrapped instances this subclass keeps other models (and tests) unaffected.
    """

    def __call__(self, *args, **kwargs):
        def forward(params, *args, **kwargs):
            self.update(params)
            return cls.__call__(self, *args, **kwargs)

        return mx.checkpoint(forward)(self.trainable_parameters(), *args, **kwargs)

    return type(f"Checkpointed{cls.__name__}", (cls,), {"__call__": __call__})


def checkpoint_layers(net: nn.Module) -> None:
    """Gradient checkpointing on every transformer block of ``net``."""
    subclasses: dict[type, type] = {}
    for layer in net.layers:
        cls = type(layer)
        layer.__class__ = subclasses.setdefault(cls, _checkpointed_class(cls))


def token_loss(model: nn.Module, inputs: mx.array, targets: mx.array, batch_tokens: int) -> mx.array:
    """Cross-entropy summed over these tokens, divided by the token count of the whole batch."""
    logits = model(inputs)
    return nn.losses.cross_entropy(logits, targets).astype(mx.float32).sum() / batch_tokens


def global_norm(grads: Any) -> mx.array:
    """L2 norm of all gradients together, computed in float32."""
    return mx.sqrt(sum(mx.sum(g.astype(mx.float32) ** 2) for _, g in tree_flatten(grads)))


@register
class Train(Workload):
    name = "train"
    description = "One optimizer update of a transformer: full fine-tune, LoRA or QLoRA; GC and micro-batching"
    params = (
        MODEL_PARAM,
        Param("batch_size", int, 8, minimum=1, help="samples per optimizer update"),
        Param("seq_length", int, 512, minimum=1, help="tokens per sample"),
        Param("dtype", str, "float32", choices=tuple(models.DTYPES), help="dtype of the model's weights"),
        Param("optimizer", str, "adam", choices=tuple(OPTIMIZERS), help="optimizer of the update"),
        Param("learning_rate", float, 1e-5, minimum=0, help="optimizer learning rate"),
        Param("lora", dict, None, nullable=True,
              help="null: full fine-tuning; {rank: 8, layers: null (all), scale: 20.0}: LoRA "
                   "adapters on the last `layers` blocks, base frozen"),
        replace(QUANTIZATION_PARAMS[0], help="null: train the base as built; bits: quantize the frozen base "
                "with MLX's affine quantization (QLoRA; needs lora)"),
        QUANTIZATION_PARAMS[1],
        Param("gradient_checkpointing", bool, False,
              help="recompute each block's activations in the backward pass instead of keeping them"),
        Param("micro_batch_size", int, None, nullable=True, minimum=1,
              help="samples per forward/backward pass, gradients summed over batch_size / "
                   "micro_batch_size passes (null: the whole batch at once)"),
        Param("compile", bool, True, help="mx.compile the forward/backward and the update"),
        Param("eval_interval", int, 1, nullable=True, minimum=1,
              help="evaluate the summed gradients every N micro-batches (null: build the whole "
                   "step as one lazy graph, evaluated once at its end)"),
        Param("clear_cache", bool, True,
              help="give MLX's buffer cache back after every step, as mlx-lm's trainer does (its "
                   "clear_cache_threshold 0); false keeps the cached buffers for the next step"),
        Param("data", str, None, nullable=True,
              help="null: seeded random token ids; or a .txt / .jsonl (text or prompt+completion) "
                   "file, tokenized once (presets: UTF-8 bytes modulo the vocabulary)"),
        Param("seq_length_jitter", int, 0, minimum=0,
              help="vary each step's length as real data does: a seeded draw from seq_length − jitter to "
                   "seq_length tokens (the loss keeps the full length's divisor); 0: every step full length"),
        *memory_settings.PARAMS,
        DISTRIBUTED_PARAM,  # data parallel: each rank its shard of batch_size, gradients averaged
    )
    equivalent_params = frozenset({"gradient_checkpointing", "micro_batch_size", "compile", "eval_interval",
                                   "clear_cache", "distributed"}) | memory_settings.NAMES
    declares = (
        PEAK_MEMORY,
        STEP_TIME,
        rate("tokens_per_s", "Tokens/s", of="step_time_s", unit="tok/s"),
        rate("samples_per_s", "Samples/s", of="step_time_s", column=False),
        Metric("loss", "Loss", column=False),
        Metric("grad_norm", "Grad Norm", column=False),
        Metric("trainable_params", "Trainable Params", column=False),
        Metric("total_params", "Total Params", column=False),
        Metric("flops_per_step", "GFLOP/step", "GFLOP", scale=1e9, column=False),
        *dp.COMMUNICATION_METRICS,
        *RANK_METRICS,
        rate("train_flop_per_s", "Achieved GFLOP/s", of="step_time_s", unit="GFLOP/s", scale=1e9, column=False),
    )
    headline = ("step_time_s", "tokens_per_s", "peak_memory_bytes")
    memory_model = _train_memory.MEMORY
    search_space = _train_memory.SPACE

    @classmethod
    def check(cls, params: dict) -> list[tuple[str, str]]:
        errors = []
        batch, micro = params["batch_size"], params.get("micro_batch_size")
        if micro is not None and batch % micro:
            errors.append(("micro_batch_size", f"expected a divisor of batch_size {batch}, got {micro}"))
        if params.get("lora") is not None:
            errors += _check_lora(params["lora"], models.config_of(params["model"]))
        bits = params.get("quantization")
        if bits is not None and params.get("lora") is None:
            errors.append(("quantization", "expected null with full fine-tuning (a quantized base "
                           f"trains only through LoRA adapters: set lora), got {bits}"))
        errors += quantization_errors(params["model"], bits, params["group_size"])
        errors += batch_errors(params)
        if params.get("data") is not None and (problem := data.check_data(params["data"])):
            errors.append(("data", problem))
        if params.get("seq_length_jitter", 0) >= params["seq_length"]:
            errors.append(("seq_length_jitter", f"expected less than seq_length {params['seq_length']}, "
                                                f"got {params['seq_length_jitter']}"))
        return errors

    def setup(self) -> None:
        p = self.p
        memory_settings.apply(self)
        self.lengths = data.step_lengths(p["seq_length"], p.get("seq_length_jitter", 0), self.seed)
        self.tokens_per_step: list[int] = []
        self.net, self.config = models.build(p["model"], self.seed, p["dtype"])
        if p["lora"] is not None:
            if p["quantization"] is not None:
                models.quantize(self.net, p["quantization"], p["group_size"])
            self.net.freeze()
            lora = {**LORA_KEYS, **p["lora"]}
            layers = lora["layers"] or len(self.net.layers)
            _lora.add_lora(self.net, layers, lora["rank"], lora["scale"])
        self.flops_per_token = models.training_flops_per_token(self.net, self.config, p["seq_length"])
        if p["gradient_checkpointing"]:
            checkpoint_layers(self.net)
        self.net.train()
        self.optimizer = OPTIMIZERS[p["optimizer"]](learning_rate=p["learning_rate"])

        if p["data"] is None:
            self.batches = data.random_batches(self.config["vocab_size"], p["batch_size"],
                                               p["seq_length"], self.seed)
        else:
            self.batches = data.file_batches(p["data"], p["model"], self.config["vocab_size"],
                                             p["batch_size"], p["seq_length"])
        self.group = dp.group(p)
        self.batches = dp.shard(self.batches, self.group)  # this rank's samples of each global batch
        mx.eval(self.batches)
        self.micro_batch_size = p["micro_batch_size"] or p["batch_size"]
        self.steps_done = 0
        self.first_step: dict[str, float] | None = None
        self._build_step_functions()

    def _build_step_functions(self) -> None:
        net, optimizer = self.net, self.optimizer
        batch_tokens = self.batches.shape[1] * self.p["seq_length"]  # this rank's share of the batch
        loss_and_grad = nn.value_and_grad(net, partial(token_loss, batch_tokens=batch_tokens))

        def accumulate(samples, grads):
            # Slicing inside the (compiled) graph, as mlx-lm's loss does: one input array.
            loss, new = loss_and_grad(net, samples[:, :-1], samples[:, 1:])
            return loss, new if grads is None else tree_map(mx.add, grads, new)

        def accumulate_and_update(samples, grads):
            # The last micro-batch and the update are one graph, as in mlx-lm's trainer,
            # so gradients can be consumed by the update as they are produced.
            loss, grads = accumulate(samples, grads)
            grads = dp.average(grads, self.group)
            norm = global_norm(grads)
            optimizer.update(net, grads)
            return loss, norm

        if self.p["compile"]:
            # Parameters and optimizer state are graph inputs and outputs, not constants baked
            # into the graph: as in mlx-lm's trainer. value_and_grad swaps the model's parameters
            # for traced ones, so even the forward/backward must name them as outputs.
            # Two separate graphs: the update's graph inlines the plain accumulate, not a compiled one.
            state = [net.state, optimizer.state]
            self._accumulate = mx.compile(accumulate, inputs=state, outputs=state)
            self._accumulate_and_update = mx.compile(accumulate_and_update, inputs=state, outputs=state)
        else:
            self._accumulate, self._accumulate_and_update = accumulate, accumulate_and_update

    def step(self) -> dict[str, float]:
        batch = self.batches[self.steps_done % self.batches.shape[0]]
        length = next(self.lengths)
        batch = batch if length == self.p["seq_length"] else batch[:, :length + 1]
        self.tokens_per_step.append(batch.shape[0] * length * self.group.size())  # global: every rank's shard
        micro, interval = self.micro_batch_size, self.p["eval_interval"]
        loss, grads = mx.array(0.0), None
        starts = range(0, batch.shape[0], micro)
        for index, start in enumerate(starts[:-1]):
            part, grads = self._accumulate(batch[start:start + micro], grads)
            loss = loss + part
            if interval is not None and (index + 1) % interval == 0:
                # Without this, every micro-batch's activations can be alive in one graph.
                mx.eval(loss, grads)
        part, grad_norm = self._accumulate_and_update(batch[starts[-1]:], grads)
        loss = dp.mean(loss + part, self.group)
        mx.eval(loss, grad_norm, self.net.state, self.optimizer.state)
        # clear_cache: measured on the CPU, 2-6% faster steps than reusing the cached buffers (README).
        memory_settings.clear_cache(self.p, otherwise=0 if self.p["clear_cache"] else None)
        self.steps_done += 1
        figures = {"loss": loss.item(), "grad_norm": grad_norm.item()}
        if not math.isfinite(figures["loss"]):
            # Timings of NaN arithmetic are not a training step anyone runs: fail the case, say why.
            hint = (" (float16 weights and optimizer state overflow without loss scaling, which this step "
                    "does not do; bfloat16 has float32's range)" if self.p["dtype"] == "float16" else "")
            raise FloatingPointError(f"training diverged: the loss is {figures['loss']} at step "
                                     f"{self.steps_done}{hint}")
        if self.first_step is None:
            self.first_step = figures
        return figures

    def equivalence(self) -> dict[str, float] | None:
        if self.first_step is None:
            return None
        return {**self.first_step, "rtol": RTOL[self.p["dtype"]]}

    def metrics(self, timed: dict[str, dict]) -> dict[str, Any]:
        p = self.p
        timed_steps = self.tokens_per_step[-timed["step_time_s"].get("n", 0):]  # jittered lengths: their mean
        tokens = sum(timed_steps) / len(timed_steps) if timed_steps else p["batch_size"] * p["seq_length"]
        median = timed["step_time_s"]["median"]
        return {
            "tokens_per_s": tokens / median,
            "samples_per_s": p["batch_size"] / median,
            "trainable_params": sum(v.size for _, v in tree_flatten(self.net.trainable_parameters())),
            "total_params": models.logical_parameter_count(self.net),
            "flops_per_step": self.flops_per_token * tokens,
            **dp.communication_figures(self.net.trainable_parameters(), self.group, 3, median),
            "train_flop_per_s": self.flops_per_token * tokens / median,  # its MFU: results.roofline
        }

    def teardown(self) -> None:
        memory_settings.restore(self)


def _check_lora(lora: dict, config: dict) -> list[tuple[str, str]]:
    errors = [(f"lora.{k}", f"expected one of the keys {', '.join(LORA_KEYS)}, got unknown key {k!r}")
              for k in lora if k not in LORA_KEYS]
    for key, rule in (("rank", Param("rank", int, minimum=1)), ("scale", Param("scale", float))):
        if (problem := rule.check(lora.get(key, LORA_KEYS[key]))) is not None:
            errors.append((f"lora.{key}", problem))
    rank, width = lora.get("rank", LORA_KEYS["rank"]), config.get("hidden_size")
    if isinstance(rank, int) and isinstance(width, int) and not errors and rank > width:
        errors.append(("lora.rank", f"expected at most the model's hidden size {width}, got {rank}"))
    layers = lora.get("layers")
    depth = config["num_hidden_layers"]
    if layers is not None and (not isinstance(layers, int) or isinstance(layers, bool)
                               or not 1 <= layers <= depth):
        errors.append(("lora.layers", f"expected an integer from 1 to {depth} (the model's "
                       f"layers) or null for all, got {layers!r}"))
    return errors
