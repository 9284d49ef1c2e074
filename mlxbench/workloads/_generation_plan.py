"""What one generation test measures, and how its figures follow from its timed phases.

Written once for every implementation of the ``generate`` workload (MLX's, or a sibling
framework's): which tokens are context already in the cache (untimed), which are the
timed prompt, how many are generated, which span each timing covers and what each rate
divides. llama-bench's vocabulary throughout:

- ``pp``: prompt processing only. Timed: the start → the first generated token on the host
  (``ttft_s``; the prompt's last token's logits are part of it). Rate: prompt tokens / ttft.
- ``tg``: text generation only: ``generation_tokens`` one-token forward passes from one
  start token at the given depth. Timed: all of them (``decode_s``). Rate: generated / decode_s.
- ``pg``: both, as ``mlx_lm benchmark`` and ``stream_generate`` count them: prefill as in
  ``pp``; decode from the first token to the last, all ``generation_tokens`` over it (the
  first token's own step is in the prefill time, so this reads g/(g-1) higher than tokens
  per decode step). The test's own time (llama-bench's pg figure) is start → last token.

``depth``: tokens already in the KV cache before the timed span (llama-bench's ``-d``),
filled untimed before every step. ``prompt_cache``: ``hit``: the depth is a shared prefix
kept in one reused cache (trimmed back to it after every step, mlx-lm's prompt-cache API),
so only the prompt is prefilled; ``miss``: no cache holds it, the prefix is prefilled with
the prompt, timed. In llama-bench's terms a miss is a deeper prompt at depth 0.

Rates of a batch say so in their names: ``…_per_s`` is one sequence's, ``…_total`` or a
prefill rate is all sequences' together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlxbench.workloads._generation_costs import ModelCosts, forward_passes

TESTS = ("pp", "tg", "pg")
PROMPT_CACHE = ("hit", "miss")


@dataclass(frozen=True)
class Plan:
    test: str
    depth: int  # tokens in the cache before the timed span (n_depth)
    prompt: int  # tokens prefilled in the timed span (n_prompt): 0 for tg
    generated: int  # tokens generated (n_gen): 0 for pp
    batch: int
    prefill_step_size: int
    prompt_cache: str | None = None

    @classmethod
    def of(cls, p: dict) -> "Plan":
        test, depth, prompt = p["test"], p["depth"], p["prompt_tokens"]
        if p.get("prompt_cache") == "miss":
            depth, prompt = 0, depth + prompt
        return cls(test=test, depth=depth, prompt=0 if test == "tg" else prompt,
                   generated=0 if test == "pp" else p["generation_tokens"], batch=p["batch_size"],
                   prefill_step_size=p["prefill_step_size"], prompt_cache=p.get("prompt_cache"))

    @property
    def fed(self) -> int:
        """Tokens fed to the model in the timed span: the prompt, or tg's one start token."""
        return self.prompt or 1

    @property
    def steps_generated(self) -> int:
        """Tokens the timed loop produces: tg and pg their n_gen, pp its first token."""
        return max(self.generated, 1)

    def phases(self, ttft_s: float, prefill_s: float, decode_s: float, total_s: float) -> dict[str, float]:
        """The timings one step records, from one generation's phases."""
        if self.test == "pp":
            return {"ttft_s": ttft_s, "prefill_s": prefill_s, "test_s": ttft_s}
        if self.test == "tg":
            return {"decode_s": total_s, "test_s": total_s}
        return {"ttft_s": ttft_s, "prefill_s": prefill_s, "decode_s": decode_s, "test_s": total_s}

    def counts(self) -> dict[str, int]:
        """llama-bench's description of the test, and the sequences it ran together."""
        return {"n_prompt": self.prompt, "n_gen": self.generated, "n_depth": self.depth, "n_seq": self.batch}

    def figures(self, timed: dict[str, dict], costs: ModelCosts) -> dict[str, float]:
        """Rates from the timings' medians: tokens, FLOPs and bytes per second."""
        out: dict[str, float] = {}
        if self.prompt:
            ttft = timed["ttft_s"]["median"]
            passes = forward_passes(self.prompt, self.prefill_step_size)
            out["prefill_tokens_per_s"] = self.batch * self.prompt / ttft
            out["prefill_flop_per_s"] = self.batch * costs.prefill_flops(self.prompt, self.depth) / ttft
            out["prefill_bytes_per_s"] = costs.prefill_bytes(self.prompt, self.depth, passes, self.batch) / ttft
        if self.generated:
            decode = timed["decode_s"]["median"]
            out["decode_tokens_per_s"] = self.generated / decode
            out["decode_tokens_per_s_total"] = self.batch * self.generated / decode
            # The forward passes inside decode_s and the cache each one starts from, on average.
            if self.test == "tg":
                steps, cached = self.generated, self.depth + (self.generated - 1) / 2
            else:
                steps, cached = self.generated - 1, self.depth + self.prompt + (self.generated - 2) / 2
            out["decode_flop_per_s"] = steps * self.batch * costs.decode_step_flops(cached) / decode
            out["decode_bytes_per_s"] = steps * costs.decode_step_bytes(cached, self.batch) / decode
        return out


def prompt_token_ids(vocab_size: int, batch_size: int, prompt_tokens: int, seed: int) -> np.ndarray:
    """Random token ids (batch_size, prompt_tokens), the same for every framework; row i depends only
    on (seed, i), not on batch_size."""
    return np.stack([np.random.default_rng([seed, i]).integers(0, vocab_size, prompt_tokens)
                     for i in range(batch_size)])
