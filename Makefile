PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export JAX_PLATFORMS := cpu

.PHONY: install run lint test bench clean

$(BIN)/deepeft: pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	touch $(BIN)/deepeft

install: $(BIN)/deepeft

run: install
	$(BIN)/deepeft reproduce --preset quick

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

bench: install
	$(BIN)/pip install -q -e ".[test,bench]"
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) results .pytest_cache build *.egg-info src/*.egg-info
