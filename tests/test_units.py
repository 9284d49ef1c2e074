"""The one unit policy: MB = 10⁶ bytes and GB = 10⁹ bytes in every label, setting and message."""

import mlx.core as mx

from mlxbench.results import units
from mlxbench.results.metrics import LOOP_METRICS, MB
from mlxbench.workloads import memory_settings


def test_a_megabyte_is_a_million_bytes_in_settings_and_labels():
    assert units.MB == MB == 10**6 and units.GB == 10**9
    assert units.mb_to_bytes(512) == 512_000_000 and units.mb_to_bytes(1.5) == 1_500_000
    assert all(m.scale == MB for m in LOOP_METRICS if m.unit == "MB")


def test_one_helper_formats_bytes_for_tables_and_messages():
    assert units.mb(None) == "—"
    assert units.mb(1_234_567_890) == "1\u2009234.6" and units.mb(0) == "0.0"
    assert units.size(512_000_000) == "512 MB" and units.size(3_210_000_000) == "3.2 GB"
    assert units.size(-2_000_000_000) == "-2.0 GB"  # a shrinking figure keeps its unit


class _Holder:
    def __init__(self, **p):
        self.p = p


def test_an_mlx_memory_setting_in_mb_is_applied_as_millions_of_bytes():
    holder = _Holder(mlx_cache_limit_mb=3)
    memory_settings.apply(holder)
    try:
        assert mx.set_cache_limit(3 * 10**6) == 3 * 10**6  # what was in force: 3 MB, not 3 MiB
    finally:
        memory_settings.restore(holder)
