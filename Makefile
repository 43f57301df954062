# cutover: one virtual environment (.venv), the same install steps for people and CI.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STACK  ?= staging
OUT    ?= out

.PHONY: setup demo test render bench bench-gateway bench-migration bench-judge clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

# The main job on the embedded defaults: render the stack for every phase, print what each changes.
demo: setup
	$(BIN)/cutover render --stack $(STACK) --all-phases --out $(OUT)/$(STACK)

render: setup
	$(BIN)/cutover render --stack $(STACK) --out $(OUT)/$(STACK)/current

test: setup
	$(BIN)/python -m pytest -q

# Benchmarks print figures; they are not tests. wrk (Debian) is the gateway's load generator.
bench: bench-gateway bench-migration bench-judge

bench-gateway: setup
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python benchmarks/gateway_bench.py

bench-migration: setup
	$(BIN)/python benchmarks/migration_bench.py

bench-judge: setup
	$(BIN)/python benchmarks/judge_simulation.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
