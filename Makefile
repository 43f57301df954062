# cutover: one virtual environment (.venv), the same install steps for people and CI.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STACK  ?= staging
OUT    ?= out

.PHONY: engines engines-bundle engines-clean test-fast setup rehearse rehearse-repeat demo test lint format docs render golden lock bench bench-gateway bench-migration bench-judge clean

setup: $(VENV)/.installed

# The locked dependencies (hashes checked), then cutover itself, editable, without resolving again.
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

# Regenerate the lock files from pyproject.toml's ranges (existing pins are kept where they still fit):
# everything for this machine's Python, and the image's extras for Debian bookworm's (3.11.2).
lock: setup
	$(BIN)/uv pip compile pyproject.toml --extra test --generate-hashes --python-version 3.11.7 \
	  --custom-compile-command "make lock" -q -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra image --generate-hashes --python-version 3.11.2 \
	  --custom-compile-command "make lock" -q -o requirements-image.lock

# The main job on the embedded defaults: the whole campaign on this machine, on loopback.
rehearse: setup
	sh .ci/install --runtime
	$(BIN)/cutover rehearse --out $(OUT)/rehearsal; status=$$?; \
	  echo "rehearsal report: $(OUT)/rehearsal/report.md (evidence, plots and logs beside it)"; exit $$status

# The rehearsal RUNS times in a row: the pass count, each run's duration, each failure's first failed check.
RUNS ?= 10
rehearse-repeat: setup
	$(BIN)/python -m benchmarks.rehearse_repeat --runs $(RUNS) --out $(OUT)/repeat

# Render the stack for every phase and print what each changes.
demo: setup
	$(BIN)/cutover render --stack $(STACK) --all-phases --out $(OUT)/$(STACK)

render: setup
	$(BIN)/cutover render --stack $(STACK) --out $(OUT)/$(STACK)/current

# Regenerate the committed artifacts: dashboards/*.json and the golden files under tests/golden/.
golden: setup
	$(BIN)/cutover dashboards export
	$(BIN)/python -m tests.golden

docs: setup
	$(BIN)/mkdocs build --strict

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The real engines, built from source through the Go module proxy into ~/.cache/cutover/engines
# (30-70 minutes the first time on 2 cores, seconds after): Pulumi CLI, the Kubernetes provider,
# kube-apiserver, flagd. With CUTOVER_ENGINES_BUNDLE=DIR (a bundle made by `make engines-bundle`),
# each engine the bundle holds at the pinned version is installed from it in seconds instead.
# engines/README.md says what each is and why.
engines:
	bash engines/build.sh

# Write a bundle of the engines in the cache into DIR: NAME-VERSION.tar.xz, SHA256SUMS, engines.json.
engines-bundle:
	@test -n "$(DIR)" || { echo "usage: make engines-bundle DIR=path/to/bundle" >&2; exit 2; }
	bash engines/build.sh --bundle "$(DIR)"

# Remove everything the engines left: the binaries, the env file, the builds' Go caches and scratch.
engines-clean:
	bash engines/build.sh --clean

# The tests run the real things: Prometheus, Alertmanager, Chromium, buildah (.ci/install adds what is
# missing) and the engines (the e2e tests under tests/e2e/). This is the full suite CI runs.
test: setup lint engines
	sh .ci/install
	$(BIN)/python -m pytest -q

# The suite to iterate with: everything but the real-engine e2e, the image build, the browser test and
# the long rehearsal drills (pytest markers e2e, image, browser, slow; pyproject.toml lists them), on
# both cores (pytest-xdist). It needs no engines.
test-fast: setup
	sh .ci/install --runtime
	$(BIN)/python -m pytest -q -n 2 -m "not e2e and not image and not browser and not slow"

# Benchmarks print figures; they are not tests. They run as modules from the repository root (the gateway
# bench imports tests.gatewayproc). wrk (Debian) is the gateway's load generator.
bench: bench-gateway bench-migration bench-judge

bench-gateway: setup
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m benchmarks.gateway_bench

bench-migration: setup
	$(BIN)/python -m benchmarks.migration_bench

bench-judge: setup
	$(BIN)/python -m benchmarks.judge_simulation

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .mypy_cache .ruff_cache
