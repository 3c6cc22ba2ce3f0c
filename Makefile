# clfeval developer commands. Every target creates what it needs from scratch:
# the virtualenv from PyPI, Delta's jars from Maven Central (via delta-spark's
# configure_spark_with_delta_pip, cached by Ivy under ~/.ivy2.5.2), and
# clfeval's JVM scan (jvm/, compiled by the JDK's javac against the jars of
# the pinned pyspark, so it always matches the Spark it runs in).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo_output
DEMO_ROWS ?= 1000000

CHROMIUM ?= /usr/bin/chromium

JVM_SOURCES := $(wildcard jvm/src/main/java/io/clfeval/*.java)
JAR := lib/clfeval/jars/clfeval-aggregators.jar

.PHONY: demo test test-compat lint format bench bench-multiclass dist clean browser jar docs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,spark]"
	touch $(STAMP)

## jar: clfeval's JVM scan (lib/clfeval/jars/clfeval-aggregators.jar)
jar: $(JAR)
# The jar records the Spark line it was compiled against (META-INF/clfeval-build.properties):
# a session of another line runs the scan in Spark SQL and says so.
$(JAR): $(STAMP) $(JVM_SOURCES) Makefile
	rm -rf build/jvm && mkdir -p build/jvm/META-INF $(dir $(JAR))
	javac --release 17 -Xlint:all,-path -Werror -d build/jvm \
		-cp "$$($(PY) -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')/jars/*" \
		$(JVM_SOURCES)
	$(PY) -c 'import pyspark; print("spark.line=" + ".".join(pyspark.__version__.split(".")[:2]))' \
		> build/jvm/META-INF/clfeval-build.properties
	jar cf $@ -C build/jvm .

## demo: generate a demo predictions table, evaluate it, print a summary
demo: $(STAMP) $(JAR)
	$(PY) jobs/generate_demo.py --output $(DEMO_DIR)/predictions --rows $(DEMO_ROWS) \
		--multiclass-output $(DEMO_DIR)/predictions_multiclass \
		--multilabel-output $(DEMO_DIR)/predictions_multilabel
	$(PY) jobs/evaluate.py --config conf/demo.toml --set output.path=$(DEMO_DIR)/metrics \
		--set input.path=$(DEMO_DIR)/predictions
	$(PY) jobs/evaluate.py --config conf/demo_multiclass.toml \
		--set output.path=$(DEMO_DIR)/metrics --set input.path=$(DEMO_DIR)/predictions_multiclass
	$(PY) jobs/evaluate.py --config conf/demo_multilabel.toml \
		--set output.path=$(DEMO_DIR)/metrics --set input.path=$(DEMO_DIR)/predictions_multilabel

## docs: the monitoring notebook executed on the demo output (stored with its outputs) and
## rendered to docs/monitoring.html
docs: $(STAMP) $(JAR)
	test -d $(DEMO_DIR)/metrics/metrics || $(MAKE) demo DEMO_DIR=$(DEMO_DIR) DEMO_ROWS=$(DEMO_ROWS)
	CLFEVAL_DEMO_OUTPUT=$(abspath $(DEMO_DIR)) $(PY) -m nbconvert --to notebook --execute \
		--inplace notebooks/monitoring.ipynb
	$(PY) -m nbconvert --to html --output-dir docs --output monitoring notebooks/monitoring.ipynb \
		--HTMLExporter.mathjax_url= --HTMLExporter.require_js_url=  # no script from the network

## browser: Debian's Chromium for the HTML report test (headless; needs root for apt)
browser:
	@test -x $(CHROMIUM) || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

## test: the whole test suite (CI runs exactly this)
test: $(STAMP) $(JAR) browser
	$(VENV)/bin/ruff check lib jobs tests benchmarks
	$(VENV)/bin/ruff format --check lib jobs tests benchmarks
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q tests

## test-compat: the supported Spark matrix (3.5 + Delta 3.3, 4.0 + Delta 4.0; 4.2 is `make test`):
## a virtualenv per line, the wheel installed into it (keeping its pyspark), the end-to-end,
## multiclass, incremental and bad-input tests against it. CI runs it after `make test`.
COMPAT_LINES ?= 3.5 4.0
test-compat: dist
	PYTHON=$(PYTHON) tests/compat/run_matrix.sh "$$(ls dist/clfeval-*.whl)" $(COMPAT_LINES)

## bench: clfeval vs scan floor vs MLlib vs scikit-learn (20M rows; not part of `make test`)
BENCH_ARGS ?= --rows 20000000 --reps 3
bench: $(STAMP) $(JAR)
	CLFEVAL_PROFILE=fast-local $(PY) benchmarks/bench.py $(BENCH_ARGS)

## bench-multiclass: the multiclass sweep (2M rows; K = 5, 20, 50, 200), after a short binary run
bench-multiclass: $(STAMP) $(JAR)
	CLFEVAL_PROFILE=fast-local $(PY) benchmarks/bench.py --rows 200000 --reps 2 --skip-baselines \
		--multiclass-k 5,20,50,200 --multiclass-rows 2000000 --driver-memory 8g

## dist: a wheel of clfeval and a zip of the package for spark-submit --py-files
dist: $(STAMP) $(JAR)
	rm -rf dist && mkdir -p dist
	cp $(JAR) dist/
	$(PY) -m pip wheel --quiet --no-deps --wheel-dir dist .
	$(PY) -m zipfile -c dist/clfeval.zip lib/clfeval
	@ls -l dist

lint: $(STAMP)
	$(VENV)/bin/ruff check lib jobs tests benchmarks
	$(VENV)/bin/ruff format --check lib jobs tests benchmarks
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(VENV)/bin/ruff format lib jobs tests benchmarks
	$(VENV)/bin/ruff check --fix lib jobs tests benchmarks

clean:
	rm -rf $(DEMO_DIR) dist build $(JAR) spark-warehouse metastore_db derby.log .venv-spark*
