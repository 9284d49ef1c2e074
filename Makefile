# Two commands on a fresh machine: `make test` and `make bench`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The torch tests get a venv of their own: transformers imports torch whenever it is installed,
# which would cost every worker's `import mlx_lm` in .venv about 2 s.
TORCH_VENV ?= .venv-torch
TORCH_STAMP := $(TORCH_VENV)/.installed
# The 15 slowest tests in every run's output, so a slow one is seen.
PYTEST_ARGS ?= --durations=15
# auto: the suites' quick profile where MLX runs on the CPU, the full suite on a GPU.
PROFILE ?= auto
BENCH_SUITES ?= suites/training-memory.yaml suites/generation.yaml

.PHONY: setup test test-main test-torch bench report clean

setup: $(STAMP) $(TORCH_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

$(TORCH_STAMP): pyproject.toml
	$(PYTHON) -m venv $(TORCH_VENV)
	$(TORCH_VENV)/bin/python -m pip install --upgrade --quiet pip
	$(TORCH_VENV)/bin/python -m pip install --quiet -e '.[test,torch]'
	touch $(TORCH_STAMP)

# Both steps run even when the first fails; the status says whether either did.
test:
	@status=0; $(MAKE) --no-print-directory test-main || status=$$?; \
	$(MAKE) --no-print-directory test-torch || status=$$?; exit $$status

test-main: $(STAMP)
	$(PY) -m pytest -m "not torch" $(PYTEST_ARGS)

test-torch: $(TORCH_STAMP)
	$(TORCH_VENV)/bin/python -m pytest -m torch $(PYTEST_ARGS)

# Every suite runs and gets its report even when a case of another failed; the status says so.
bench: $(STAMP)
	@status=0; for suite in $(BENCH_SUITES); do \
		$(VENV)/bin/mlxbench run $$suite --profile $(PROFILE) --report || status=$$?; \
	done; exit $$status

# Re-render the reports of the latest run of each suite (RUN=results/<suite>/<run id> for one).
report: $(STAMP)
	@for run in $(or $(RUN),$(shell ls -d results/*/* 2>/dev/null | sort -t/ -k3 | awk -F/ '{last[$$2]=$$0} END {for (s in last) print last[s]}')); do \
		$(VENV)/bin/mlxbench report $$run; \
	done

clean:
	rm -rf $(VENV) $(TORCH_VENV) build *.egg-info .pytest_cache .benchmarks
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
