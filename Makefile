# clfeval developer commands. Every target creates what it needs from scratch:
# the virtualenv from PyPI, Delta's jars from Maven Central (via delta-spark's
# configure_spark_with_delta_pip, cached by Ivy under ~/.ivy2.5.2).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo_output
DEMO_ROWS ?= 1000000

CHROMIUM ?= /usr/bin/chromium

.PHONY: demo test lint format bench dist clean browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

## demo: generate a demo predictions table, evaluate it, print a summary
demo: $(STAMP)
	$(PY) jobs/generate_demo.py --output $(DEMO_DIR)/predictions --rows $(DEMO_ROWS) \
		--multiclass-output $(DEMO_DIR)/predictions_multiclass
	$(PY) jobs/evaluate.py --config conf/demo.toml --set output.path=$(DEMO_DIR)/metrics \
		--set input.path=$(DEMO_DIR)/predictions
	$(PY) jobs/evaluate.py --config conf/demo_multiclass.toml \
		--set output.path=$(DEMO_DIR)/metrics --set input.path=$(DEMO_DIR)/predictions_multiclass

## browser: Debian's Chromium for the HTML report test (headless; needs root for apt)
browser:
	@test -x $(CHROMIUM) || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

## test: the whole test suite (CI runs exactly this)
test: $(STAMP) browser
	$(VENV)/bin/ruff check lib jobs tests benchmarks
	$(VENV)/bin/ruff format --check lib jobs tests benchmarks
	$(PY) -m pytest -q tests

## bench: clfeval vs scan floor vs MLlib vs scikit-learn (20M rows; not part of `make test`)
BENCH_ARGS ?= --rows 20000000 --reps 3
bench: $(STAMP)
	$(PY) benchmarks/bench.py $(BENCH_ARGS)

## dist: a wheel of clfeval and a zip of the package for spark-submit --py-files
dist: $(STAMP)
	rm -rf dist && mkdir -p dist
	$(PY) -m pip wheel --quiet --no-deps --wheel-dir dist .
	$(PY) -m zipfile -c dist/clfeval.zip lib/clfeval
	@ls -l dist

lint: $(STAMP)
	$(VENV)/bin/ruff check lib jobs tests benchmarks
	$(VENV)/bin/ruff format --check lib jobs tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff format lib jobs tests benchmarks
	$(VENV)/bin/ruff check --fix lib jobs tests benchmarks

clean:
	rm -rf $(DEMO_DIR) dist build spark-warehouse metastore_db derby.log
