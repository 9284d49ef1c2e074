# Two commands on a fresh machine: `make test` and `make bench`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# auto: the suites' quick profile where MLX runs on the CPU, the full suite on a GPU.
PROFILE ?= auto
BENCH_SUITES ?= suites/training-memory.yaml suites/generation.yaml

.PHONY: setup test bench report clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

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
	rm -rf $(VENV) build *.egg-info .pytest_cache .benchmarks
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
