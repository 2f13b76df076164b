# Two commands a user needs: `make demo` (set up + run the default study) and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test lint fmt bench install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The exact versions of constraints.txt within pyproject.toml's ranges (README, "Dependencies").
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install -q -c constraints.txt -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: $(VENV)/.installed
	$(BIN)/dcsft study

# Two test files at a time (pytest-xdist), one per core: the tests' processes use one torch thread each;
# the end-to-end files go first (tests/conftest.py).
TEST_JOBS ?= 2
test: lint
	$(BIN)/python -m pytest -q -n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder

# The rules and line length are in pyproject.toml ([tool.ruff]); `make fmt` applies them.
lint: $(VENV)/.installed-test
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/ruff check src tests benchmarks examples

fmt: $(VENV)/.installed-test
	$(BIN)/ruff format src tests benchmarks examples
	$(BIN)/ruff check --fix src tests benchmarks examples

bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/profile_speed.py
	$(BIN)/python benchmarks/profile_loss.py
	$(BIN)/python benchmarks/study_speed.py

clean:
	rm -rf $(VENV) runs
