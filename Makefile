PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export JAX_PLATFORMS := cpu

.PHONY: install run lint test bench clean

# `make run` and `make test` share JAX's persistent compilation cache: the tests' programs that `make run` (or an
# earlier test process, or the other xdist worker) compiled are loaded instead of compiled again (measured: the
# mutation cases of ntk-forward-vs-autodiff / sgd-finite-size 14.0 / 10.7 s CPU cold, 6.4 / 3.6 s warm). Results
# are unchanged (same executables). Not for `make bench`: benchmarks time the first call, compilation included.
run test: export JAX_COMPILATION_CACHE_DIR := $(CURDIR)/.cache/jax
run test: export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS := 0.2

$(BIN)/deepeft: pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	touch $(BIN)/deepeft

install: $(BIN)/deepeft

# results/quick is make run's own folder: --overwrite replaces a run made with other quick presets (an older
# deepeft) instead of refusing it; a plain `deepeft reproduce` still refuses to mix configurations.
run: install
	$(BIN)/deepeft reproduce --preset quick --overwrite

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

bench: install
	$(BIN)/pip install -q -e ".[test,bench]"
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) results .cache .pytest_cache build *.egg-info src/*.egg-info
