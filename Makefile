# Two entry points for a fresh machine: `make demo` and `make test`.
# Each builds its own virtual environment from pyproject.toml; nothing is installed by hand.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_DIR ?= demo
PATIENTS ?= 40000

.PHONY: demo test bench docs-tables clean venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	PYSPARK_PYTHON=$(abspath $(BIN))/python $(BIN)/cohort-engine demo --patients $(PATIENTS) --dir $(DEMO_DIR)

test: $(STAMP)
	PYSPARK_PYTHON=$(abspath $(BIN))/python $(BIN)/python -m pytest -q

# Scale benchmark (not a test): prints per-stage time, peak memory, rows/s (bench-out/bench.json), then the
# lines stage against the DuckDB peer on the same exposures and cores (bench-out/lines-peer/results.json).
BENCH_SIZES ?= 250000 500000 1000000
bench: $(STAMP)
	PYSPARK_PYTHON=$(abspath $(BIN))/python $(BIN)/python benchmarks/pipeline_bench.py --patients $(BENCH_SIZES) --dir bench-out
	PYSPARK_PYTHON=$(abspath $(BIN))/python $(BIN)/python benchmarks/lines_peer_bench.py --patients 1000000 --profile local \
		--dir bench-out/lines-peer

# docs/tables.md from the lake tables' declarations (lib/cohort_engine/lake_tables.py); this
# tree's code, whichever checkout the environment was installed from.
docs-tables: $(STAMP)
	PYTHONPATH=lib $(BIN)/python -m cohort_engine.lake_tables docs/tables.md

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
