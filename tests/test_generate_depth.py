"""The generate workload's llama-bench tests (pp, tg, pg) at a depth, the prompt cache, and the
FLOPs and bytes each phase is credited with, on tiny models."""

import pytest

from validation import validation_errors
from mlxbench.run import measure as loop
from mlxbench.workloads import models
from mlxbench.workloads.generate import Generate, generate, make_prompts
from mlxbench.workloads._generation_costs import model_costs
from mlxbench.workloads._generation_plan import Plan

SHORT = {"model": "tiny", "prompt_tokens": 12, "generation_tokens": 6}


def params(**overrides) -> dict:
    return {**Generate.defaults(), **SHORT, **overrides}


def measure(steps: int = 2, warmup: int = 0, **overrides) -> dict:
    wl = Generate(params(**overrides), seed=0)
    try:
        return loop.measure(wl, warmup=warmup, repeat=steps).metrics
    finally:
        wl.teardown()


def test_each_test_records_llama_bench_counts_and_only_its_own_timings():
    pp, tg, pg = (measure(test=t, depth=5) for t in ("pp", "tg", "pg"))
    assert (pp["n_prompt"], pp["n_gen"], pp["n_depth"]) == (12, 0, 5)
    assert (tg["n_prompt"], tg["n_gen"], tg["n_depth"]) == (0, 6, 5)
    assert (pg["n_prompt"], pg["n_gen"], pg["n_depth"]) == (12, 6, 5)
    assert "decode_s" not in pp and "decode_tokens_per_s" not in pp
    assert "ttft_s" not in tg and "prefill_tokens_per_s" not in tg
    # The test's own span: pp is the time to the first token, pg prefill and decode together.
    assert pp["test_s"]["samples"] == pp["ttft_s"]["samples"]
    assert all(t >= f + d * 0.999 for t, f, d in zip(pg["test_s"]["samples"], pg["ttft_s"]["samples"],
                                                     pg["decode_s"]["samples"]))


def test_decode_at_a_depth_continues_the_context_as_one_long_prompt_would():
    net = models.build("tiny", seed=0)[0]
    tokens = make_prompts(256, 1, 40, seed=0)
    from mlx_lm.models.cache import make_prompt_cache

    from mlxbench.workloads.generate import _kv_quantizer, _prefill
    cache = make_prompt_cache(net)
    _prefill(net, cache, tokens[:, :30], 8, _kv_quantizer(None, 64))
    continued = generate(net, tokens[:, 30:], 5, cache=cache).tokens
    assert continued.tolist() == generate(net, tokens, 5).tokens.tolist()


def test_a_prompt_cache_hit_reuses_the_prefix_and_gives_the_tokens_a_miss_gives():
    hit = Generate(params(depth=20, prompt_cache="hit", test="pg"), seed=0)
    miss = Generate(params(depth=20, prompt_cache="miss", test="pg"), seed=0)
    hit.setup(), miss.setup()
    shared = hit.shared
    assert hit._context_cache() is shared and shared[0].offset == 20
    run_hit = generate(hit.net, hit.prompts, 6, cache=hit._context_cache()).tokens
    assert shared[0].offset == 20 + 12 + 5  # grown by the step, trimmed back before the next
    assert hit._context_cache()[0].offset == 20
    assert miss.prompts.shape[1] == 32 and miss.plan.depth == 0
    assert run_hit.tolist() == generate(miss.net, miss.prompts, 6).tokens.tolist()


def test_a_prompt_cache_hit_reaches_the_first_token_sooner_than_a_miss_on_a_long_prefix():
    # 2048 shared tokens against a 4-token suffix: the miss prefills ~500x the tokens, so no
    # load on the machine can turn the order round.
    ttft = {pc: measure(steps=3, warmup=1, test="pp", depth=2048, prompt_tokens=4, prompt_cache=pc)["ttft_s"]
            for pc in ("hit", "miss")}
    assert ttft["hit"]["p90"] < ttft["miss"]["p10"]
    assert ttft["hit"]["median"] * 3 < ttft["miss"]["median"]


def test_rates_name_per_sequence_or_all_sequences_in_their_labels():
    declared = Generate.declared_metrics()
    for name, metric in declared.items():
        if metric.kind == "rate" and "tok" in metric.unit:
            assert "(per sequence)" in metric.label or "(all sequences)" in metric.label, name


def test_prompt_cache_on_a_decode_only_test_is_rejected():
    assert validation_errors(Generate, params(test="tg", prompt_cache="hit")) == {
        "prompt_cache": "expected test pp or pg with a prompt cache (it saves prefill), got tg"}


@pytest.mark.parametrize("key, value, expected", [
    ("test", "ppg", "expected one of 'pp', 'tg', 'pg', got 'ppg'"),
    ("depth", -1, "expected an integer ≥ 0, got -1"),
    ("prompt_cache", "warm", "expected one of 'hit', 'miss' or null, got 'warm'"),
])
def test_out_of_range_test_parameters_are_rejected(key, value, expected):
    assert validation_errors(Generate, params(**{key: value})) == {key: expected}


# What each phase is credited with


def test_decode_bytes_are_the_weights_plus_the_cache_read_quantized_sizes_included():
    net, config = models.build("tiny", seed=0)
    full = model_costs(net, config, "float32", None, 64)
    eight = model_costs(net, config, "float32", 8, 32)
    weights = sum(v.nbytes for _, v in __import__("mlx.utils").utils.tree_flatten(net.parameters()))
    assert full.weight_bytes == weights  # tied embedding: read whole as the output projection
    # K and V, 2 layers × 2 KV heads × head_dim 16, 4 bytes each.
    assert full.kv_bytes_per_token == 2 * 2 * 2 * 16 * 4
    assert eight.kv_bytes_per_token == 2 * 2 * 2 * 16 * (1 + 2 * 4 / 32)
    assert full.decode_step_bytes(99, batch=3) == weights + 3 * 100 * full.kv_bytes_per_token
    models.quantize(net, 4, 32)
    assert model_costs(net, config, "float32", None, 64).weight_bytes < weights / 4


def test_prefill_flops_count_every_weight_twice_per_token_and_attention_over_the_context():
    net, config = models.build("tiny", seed=0)
    c = model_costs(net, config, "float32", None, 64)
    assert c.head_weights == 256 * 64 and c.attention_width == 2 * 4 * 16
    # One token with nothing cached: all weights once, attending to itself.
    assert c.prefill_flops(1, 0) == 2 * (c.body_weights + c.head_weights) + 4 * c.attention_width
    assert c.prefill_flops(10, 100) > c.prefill_flops(10, 0)


def test_plan_of_a_miss_is_a_deeper_prompt_at_depth_zero():
    plan = Plan.of(params(depth=100, prompt_cache="miss"))
    assert (plan.depth, plan.prompt, plan.generated) == (0, 112, 6)
    assert Plan.of(params(depth=100, prompt_cache="hit")).depth == 100
