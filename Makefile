# cutover: one virtual environment (.venv), the same install steps for people and CI.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STACK  ?= staging
OUT    ?= out

.PHONY: setup rehearse demo test docs render bench bench-gateway bench-migration bench-judge clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

# The main job on the embedded defaults: the whole campaign on this machine, on loopback.
rehearse: setup
	sh .ci/install --runtime
	$(BIN)/cutover rehearse --out $(OUT)/rehearsal; status=$$?; \
	  echo "rehearsal report: $(OUT)/rehearsal/report.md (evidence, plots and logs beside it)"; exit $$status

# Render the stack for every phase and print what each changes.
demo: setup
	$(BIN)/cutover render --stack $(STACK) --all-phases --out $(OUT)/$(STACK)

render: setup
	$(BIN)/cutover render --stack $(STACK) --out $(OUT)/$(STACK)/current

docs: setup
	$(BIN)/mkdocs build --strict

# The tests run the real things: Prometheus, Alertmanager, Chromium, buildah (.ci/install adds what is missing).
test: setup
	sh .ci/install
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
