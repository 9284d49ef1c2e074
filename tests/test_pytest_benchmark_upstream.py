"""pytest-benchmark's own extra_info test (from its 5.2.3 sdist, tests/test_benchmark.py::test_save_extra_info,
written out here) passes with mlxbench's plugin loaded: a benchmark that never touches MLX keeps exactly
the extra_info its test wrote. It failed while the plugin added memory figures to every benchmark."""

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

UPSTREAM_TEST = '''
import json

pytest_plugins = ("pytester",)


def test_save_extra_info(testdir):
    test = testdir.makepyfile(
        """
    def test_extra(benchmark):
        benchmark.extra_info['foo'] = 'bar'
        benchmark(lambda: None)
    """
    )
    result = testdir.runpytest_subprocess('--doctest-modules', '--benchmark-save=foobar', '--benchmark-max-time=0.0000001', test)
    result.stderr.fnmatch_lines(
        [
            'Saved benchmark data in: *',
        ]
    )
    info = json.loads(testdir.tmpdir.join('.benchmarks').listdir()[0].join('0001_foobar.json').read())
    bench_info = info['benchmarks'][0]
    assert bench_info['name'] == 'test_extra'
    assert bench_info['extra_info'] == {'foo': 'bar'}
'''


def test_pytest_benchmarks_own_extra_info_test_passes_with_the_plugin(tmp_path):
    (tmp_path / "test_upstream.py").write_text(UPSTREAM_TEST)
    registered = any(ep.value == "mlxbench_pytest" for ep in metadata.entry_points(group="pytest11"))
    done = subprocess.run([sys.executable, "-m", "pytest", *([] if registered else ["-p", "mlxbench_pytest"]),
                           "-p", "no:cacheprovider", "-q", "test_upstream.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout and "mlxbench" not in done.stdout
