"""Machines side by side: the llama.cpp community's columns (chip, cores, memory bandwidth, pp512,
tg128) beside a training case's step time and peak memory, one row per machine at its latest point.

pp512 is prefill tokens/s of a case whose timed prompt is 512 tokens, tg128 decode tokens/s of one
that generates 128, as llama-bench names its tests. A figure a machine did not measure is None
("not measured"), never a guess.
"""

from __future__ import annotations

from mlxbench.results.comparability import chip_of

TRAINING = ("step_time_s", "peak_memory_bytes")
GENERATION = ("n_prompt", "n_gen", "prefill_tokens_per_s", "decode_tokens_per_s")


def machine_rows(database, suite: str) -> tuple[list[dict], str]:
    """(one row per machine, the training case the rows show): the case every machine ran, first in order."""
    entries = database.record_figures(suite, TRAINING + GENERATION)
    latest: dict[str, str] = {}
    for e in entries:
        latest[e["machine"]] = max(latest.get(e["machine"], ""), e["order"])
    entries = [e for e in entries if e["order"] == latest[e["machine"]]]
    training = [e for e in entries if set(TRAINING) <= set(e["figures"]) and "n_prompt" not in e["figures"]]
    shared = [c for c in dict.fromkeys(e["case_label"] for e in training)
              if all(any(t["case_label"] == c and t["machine"] == m for t in training) for m in latest)]
    case = shared[0] if shared else ""
    rows = []
    for machine in latest:
        mine = [e for e in entries if e["machine"] == machine]
        env = mine[-1]["env"]
        trained = next((e["figures"] for e in mine if e["case_label"] == case and e in training), {})
        rows.append({
            "machine": machine, "chip": chip_of(env), "cores": (env.get("cpu") or {}).get("physical_cores"),
            "memory_total_bytes": env.get("memory_total_bytes"),
            "bandwidth_gbps": (env.get("calibration") or {}).get("memory_read_gbps"),
            "pp512": _rate(mine, "n_prompt", 512, "prefill_tokens_per_s"),
            "tg128": _rate(mine, "n_gen", 128, "decode_tokens_per_s"),
            "step_time_s": trained.get("step_time_s"), "peak_memory_bytes": trained.get("peak_memory_bytes"),
            "label": mine[-1]["label"]})
    return rows, case


def _rate(entries: list[dict], size: str, tokens: int, rate: str) -> float | None:
    """The best ``rate`` among cases whose ``size`` figure is ``tokens`` (llama-bench reports one test)."""
    found = [e["figures"][rate] for e in entries if e["figures"].get(size) == tokens and rate in e["figures"]]
    return max(found) if found else None
