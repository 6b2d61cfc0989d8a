# halo-lrg: `make run` (demo on a generated sample) and `make test` work on a fresh machine
# with only Python >= 3.9 and Java 17.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
OUT    ?= outputs
SAMPLE_FILES ?= 4
SAMPLE_ROWS  ?= 50000
SAMPLE_RANDOMS ?= 2
PYTEST_ARGS  ?=

# Spark's Python workers must use the venv's interpreter, not whatever python3 is on PATH.
export PYSPARK_PYTHON        := $(abspath $(BIN)/python)
export PYSPARK_DRIVER_PYTHON := $(abspath $(BIN)/python)

.PHONY: help install run test wheel lint bench emr-run clean check-python check-java

help:
	@echo "make run      create .venv, install, count LRGs in a generated sample under $(OUT)/"
	@echo "make test     run the test suite (one local SparkSession)"
	@echo "make wheel    build dist/halo_lrg-*.whl (what EMR gets through --py-files)"
	@echo "make lint     ruff"
	@echo "make bench    benchmarks -> docs/benchmarks.md"
	@echo "make emr-run BUCKET=... REGION=... INDEX=s3://...  run on a transient EMR cluster"

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' 2>/dev/null || \
	  { echo "halo-lrg needs Python >= 3.9 (found: $$($(PYTHON) --version 2>&1 || echo none)): install python3.11 and run 'make PYTHON=python3.11 ...'"; exit 1; }
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || \
	  { echo "$(PYTHON) lacks venv/ensurepip: install the python3-venv package"; exit 1; }

check-java:
	@if [ -n "$$JAVA_HOME" ]; then j="$$JAVA_HOME/bin/java"; else j=$$(command -v java); fi; \
	  [ -n "$$j" ] && [ -x "$$j" ] || { echo "Spark needs Java 17: install it (e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME"; exit 1; }

$(STAMP): pyproject.toml | check-python
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(STAMP)

# The demo: DR10-schema sweeps and randoms with a planted mask (a bright-star hole, a stripe
# without z data), the DESI-like LRG selection (its quality mask matches the randoms' mask),
# the effective area from the randoms, and the density map over it.
run: $(STAMP) check-java
	$(BIN)/halo-lrg synth $(OUT)/sample --files $(SAMPLE_FILES) --rows $(SAMPLE_ROWS) --randoms $(SAMPLE_RANDOMS)
	$(BIN)/halo-lrg run --index $(OUT)/sample/index.txt --output $(OUT)/run --selection desi-lrg --healpix-nside 64
	$(BIN)/halo-lrg area --randoms $(OUT)/sample/randoms.txt --output $(OUT)/run/area.csv --healpix-nside 64
	$(BIN)/halo-lrg density $(OUT)/run/lrg_counts_per_brick/part-00000.csv --area $(OUT)/run/area.csv --output $(OUT)/run/lrg_density.csv
	$(BIN)/halo-lrg plot --healpix $(OUT)/run/lrg_healpix.csv --area $(OUT)/run/area_healpix64.csv --output $(OUT)/run/lrg_healpix_map.png
	$(BIN)/halo-lrg plot $(OUT)/run/lrg_density.csv --output $(OUT)/run/lrg_density_map.png
	@echo
	@echo "LRG counts per brick: $(OUT)/run/lrg_counts_per_brick/part-00000.csv"
	@echo "manifest:             $(OUT)/run/manifest.json"
	@echo "effective area:       $(OUT)/run/area.csv, per pixel $(OUT)/run/area_healpix64.csv"
	@echo "HEALPix map (nside 64): $(OUT)/run/lrg_healpix.csv, .fits; $(OUT)/run/lrg_healpix_map.png"
	@echo "density table, map:   $(OUT)/run/lrg_density.csv, $(OUT)/run/lrg_density_map.png"

test: $(STAMP) check-java
	$(BIN)/python -m pytest $(PYTEST_ARGS)

wheel: $(STAMP)
	rm -rf build dist/halo_lrg-*.whl
	$(BIN)/python -m pip wheel --quiet --no-deps --no-build-isolation -w dist .
	@ls dist/halo_lrg-*.whl

# Ratios measured in one run -> docs/benchmarks.md. BENCH_ROWS=... BENCH_REPEAT=...;
# `make bench BENCH_ARGS=--quick` for a fast look.
bench: $(STAMP) check-java
	$(BIN)/python -m bench.bench $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests jobs bench

# A transient EMR cluster runs the job and the result comes back to $(OUT)/emr. submit checks
# the account first (preflight) and prints a time and cost estimate; MAX_COST=5 refuses to
# launch above $5. `halo-lrg status <cluster-id>` shows the progress from another terminal.
# make emr-run BUCKET=my-bucket REGION=us-east-1 INDEX=s3://my-bucket/sweeps.txt [MAX_COST=5] [ARGS='--core-count 4']
emr-run: $(STAMP)
	@[ -n "$(BUCKET)" ] && [ -n "$(REGION)" ] && [ -n "$(INDEX)" ] || \
	  { echo "usage: make emr-run BUCKET=my-bucket REGION=us-east-1 INDEX=s3://my-bucket/sweeps.txt [MAX_COST=5] [ARGS='--core-count 4 --task-count 4 --spot']"; exit 2; }
	$(BIN)/halo-lrg submit --wait --region $(REGION) --sweep-index-s3 $(INDEX) \
	  --code-prefix s3://$(BUCKET)/halo-lrg/code --log-uri s3://$(BUCKET)/halo-lrg/logs \
	  --output-prefix s3://$(BUCKET)/halo-lrg/runs/$$(date -u +%Y%m%dT%H%M%SZ) \
	  --dest $(OUT)/emr $(if $(MAX_COST),--max-cost $(MAX_COST)) $(ARGS)

clean:
	rm -rf build dist $(OUT) .pytest_cache .ruff_cache src/*.egg-info
