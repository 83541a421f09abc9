# Two entry points, both idempotent: `make run` (main job on the embedded default) and `make test`.
# Set-up is shared: a .venv with the package and its dev tools at the locked versions, then the Delta jars
# in the local cache.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NATIVE := $(VENV)/.native
export LAKEHOUSE_HOME ?= $(CURDIR)/lakehouse-data
export LAKEHOUSE_CACHE ?= $(LAKEHOUSE_HOME)/cache
export GX_ANALYTICS_ENABLED ?= false
export MLFLOW_DISABLE_TELEMETRY ?= true
PYTEST_ARGS ?=
# The suite's test files are shared between this many pytest-xdist workers (each its own Spark session and
# home): on 2 cores the suite took 16 min 10 s so, against 19 min 17 s in one process.
TEST_WORKERS ?= 2

# Exact versions (with hashes) of every dependency, for Python 3.11 and 3.12 on any platform: the runtime lock
# ships in the wheel (runs record its hash), the dev lock adds the test tools. uv installs them (from PyPI,
# pinned here); `make lock` re-resolves them after pyproject.toml changes, keeping every pin it can.
UV_VERSION := 0.13.9
LOCK := lakehouse/conf/requirements.lock
DEV_LOCK := lakehouse/conf/requirements-dev.lock
UV := $(BIN)/uv
COMPILE := $(UV) pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes --quiet

.PHONY: setup run test bench lint lock clean browser postgres

setup: $(STAMP) $(NATIVE)
	@$(BIN)/lakehouse jars

$(STAMP): pyproject.toml $(DEV_LOCK)
	@$(PYTHON) -c 'import sys; v = sys.version_info; sys.exit(0 if v[:2] in ((3, 11), (3, 12)) else "Python 3.11 or 3.12 is required (found %d.%d): set PYTHON=python3.11" % v[:2])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(UV) pip install --quiet --python $(BIN)/python -r $(DEV_LOCK)
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)

lock: $(STAMP)
	$(COMPILE) -o $(LOCK)
	$(COMPILE) --extra dev -o $(DEV_LOCK)

# The gnomAD parser's compiled tokeniser (native/: Rust, PyO3, built by maturin from PyPI and crates.io).
# Optional: without cargo the parser runs its pure-Python tokeniser, which gives the same output.
$(NATIVE): $(STAMP) native/Cargo.toml native/Cargo.lock native/pyproject.toml native/src/lib.rs
	@if ! command -v cargo >/dev/null 2>&1; then \
	  echo "cargo not found: the gnomAD parser uses its pure-Python tokeniser (install Rust for the compiled one)"; \
	elif $(BIN)/python -m pip install --quiet ./native; then touch $(NATIVE); \
	else echo "native/ did not build (see above): the gnomAD parser uses its pure-Python tokeniser"; fi

run: setup
	$(BIN)/lakehouse run

test: setup browser postgres
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# Reports and Data Docs are checked in a real headless browser: Debian's Chromium, installed when missing
# and we may (root); otherwise those tests skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium not installed: the browser test will skip"; }

# The MLflow-on-PostgreSQL script (infra/mlflow-postgres.sh) is tested against Debian's PostgreSQL, installed
# the same way; without it that test skips and says why.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
	  || echo "postgresql not installed: the MLflow-on-PostgreSQL test will skip"; }

# oxbow and polars-bio pin an older pyarrow than the lake's: the gnomAD peers get a venv of their own.
PEERS := .venv-peers
bench: setup
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@test -x $(PEERS)/bin/python || $(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/python -m pip install --quiet oxbow polars-bio
	BENCH_PEER_PYTHON=$(CURDIR)/$(PEERS)/bin/python $(BIN)/python -m pytest tests/benchmarks -p no:cacheprovider -s $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check lakehouse ml jobs tests

clean:
	rm -rf $(VENV) lakehouse-data
