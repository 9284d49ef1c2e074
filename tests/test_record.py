"""The record type and the metric declarations: what every reader relies on."""

from __future__ import annotations

import json

import pytest

from mlxbench.results.metrics import LOOP_METRICS, Metric, declarations, guess, rate
from mlxbench.results.record import SCHEMA_VERSION, Record, RecordError, blank_outcome

V1 = {"suite": "s", "run_id": "r", "case_id": "c", "variant": "v", "workload": "train", "sweep": {},
      "params": {}, "seed": 0, "warmup": 1, "repeat": 3, "status": "error", "error": {"message": "boom"},
      "metrics": None, "memory_timeline": None, "leak": None, "equivalence_values": None, "equivalence": None,
      "is_baseline": False, "inline": False, "env_id": "e", "started_at": "", "duration_s": 1.0}


def test_a_version_1_record_loads_as_the_current_version():
    record = Record.from_dict(V1)
    assert record.schema == SCHEMA_VERSION and record.metrics == {} and record.reason == "boom"


def test_a_record_round_trips_through_its_json_line():
    record = Record("s", "c", "v", "w", metrics={"step_time_s": {"median": 1.0, "samples": [1.0]}})
    assert Record.from_dict(json.loads(record.to_json())) == record


def test_non_finite_figures_are_written_as_null_and_named():
    record = Record("s", "c", "v", "w", metrics={"a": float("nan"), "b": {"samples": [1.0, float("inf")]}})
    data = json.loads(record.to_json(), parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))
    assert data["metrics"]["a"] is None and data["metrics"]["b"]["samples"] == [1.0, None]
    assert data["non_finite"] == ["a", "b.samples"]


@pytest.mark.parametrize("bad", [[1, 2], {"suite": "s"}, {**V1, "status": "fine"}, {**V1, "schema": 99},
                                 {**V1, "metrics": [1]}])
def test_what_is_no_record_is_refused_with_the_reason(bad):
    with pytest.raises(RecordError):
        Record.from_dict(bad)


def test_a_blank_outcome_holds_exactly_the_outcome_fields():
    outcome = blank_outcome("t0")
    assert outcome["status"] == "ok" and outcome["metrics"] == {} and outcome["started_at"] == "t0"


def test_a_metric_declaration_that_makes_no_sense_is_refused():
    with pytest.raises(ValueError, match="kind"):
        Metric("x", "X", kind="speed")
    with pytest.raises(ValueError, match="of="):
        Metric("x", "X", kind="rate")


def test_declarations_keep_the_stored_order_then_the_loops_and_guess_the_rest():
    stored = [rate("tokens_per_s", "Tokens/s", of="step_time_s").to_dict(), {"name": "broken", "kind": "?"}]
    record = Record("s", "c", "v", "w", metrics={"gflop_per_s": 3.0, "broken": 1.0})
    declared = declarations(stored, [record])
    assert list(declared)[:1 + len(LOOP_METRICS)] == ["tokens_per_s", *(m.name for m in LOOP_METRICS)]
    assert declared["broken"].note == "undeclared" and declared["gflop_per_s"] == guess("gflop_per_s")
