# tsforge: `make demo` and `make test` each set up .venv themselves (pinned by settings.ini + constraints.txt).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export TSFORGE_DATA_DIR ?= $(abspath ../shared/data/ett)
export OMP_NUM_THREADS ?= 1
PORT   ?= 8765

.PHONY: venv test test-fast demo bench lint-nbs compiled style lint docs clean

# the `tsforge` kernel the job notebooks name (nbs/25_kernel.ipynb): pip installs it from setup.py's data_files,
# except in an editable install (as here), so it is installed into the venv explicitly
KERNELSPEC := share/jupyter/kernels/tsforge

$(STAMP): settings.ini setup.py constraints.txt $(KERNELSPEC)/kernel.json
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	@# torch through pip (pip finds a local CPU wheel where the machine keeps one, as pip.conf's find-links say; uv
	@# reads only the package index), then the rest with uv (pinned here too), which installs ~2x faster than pip
	$(BIN)/python -m pip install -q --no-compile -c constraints.txt uv torch
	$(BIN)/uv pip install -q --python $(BIN)/python -c constraints.txt -e ".[dev]"
	@# the bytecode of every installed module, on every core (pip would compile one file after another: ~25 s slower);
	@# a few third-party files that are not Python 3.11 (torch's py312 test helpers) fail to compile, as under pip
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null 2>&1 || true
	$(BIN)/jupyter kernelspec install --sys-prefix --name tsforge $(KERNELSPEC)
	touch $@

venv: $(STAMP)

# pytest-xdist workers: most slow tests wait on processes they started (servers, kernels, jobs), so two workers
# overlap those waits on 2 cores; tests that start Ray share one worker (tests/conftest.py). TEST_WORKERS=0: one process
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder --durations=10

# style (ruff), notebooks and package in sync, notebooks clean, then the notebook tests (with the cells flagged
# `#| slow`) beside every pytest test (with those marked slow: real servers, kernels, Ray, jobs killed): the notebooks
# run while pytest's workers start up and wait on their first processes; their output follows pytest's
test: venv lint lint-nbs compiled
	@mkdir -p .cache
	@$(BIN)/nbdev_test --flags slow > .cache/nbdev_test.log 2>&1 & nb=$$!; \
	$(PYTEST) tests; rc=$$?; \
	wait $$nb; nbrc=$$?; \
	echo "--- nbdev_test --flags slow (exit $$nbrc)"; cat .cache/nbdev_test.log; \
	test $$rc -eq 0 && test $$nbrc -eq 0

# the same without the slow notebook cells and slow tests: a developer's quick check
test-fast: venv lint lint-nbs compiled
	$(BIN)/nbdev_test
	$(PYTEST) -m "not slow" tests

# tsforge's bytecode, written once: where PYTHONDONTWRITEBYTECODE is set (as on CI machines), every process a test starts
# (kernels, servers, jobs) would otherwise compile the package again (~0.25 s each); pip did this for the rest of .venv
compiled: venv
	$(BIN)/python -m compileall -q tsforge

lint-nbs: venv
	@rm -rf .cache/sync && mkdir -p .cache/sync && cp -r tsforge nbs .cache/sync/
	$(BIN)/nbdev_export
	$(BIN)/nbdev_clean
	@diff -r -x __pycache__ .cache/sync/tsforge tsforge || { echo "nbdev_export changed tsforge/: notebooks and package were out of sync"; exit 1; }
	@diff -r -x .ipynb_checkpoints .cache/sync/nbs nbs || { echo "nbdev_clean changed nbs/: notebooks were not clean"; exit 1; }
	@$(BIN)/python -c "import glob, nbformat; [nbformat.validate(nbformat.read(p, 4)) for p in sorted(glob.glob('nbs/*.ipynb'))]" || { echo "a notebook is not valid nbformat"; exit 1; }
	@echo "notebooks and package in sync, notebooks clean and valid"

# ruff (ruff.toml): format + lint the notebooks, tests, benchmarks, serve/ and tools/; the package tsforge/ is
# re-exported from the formatted notebooks (and linted, not formatted: nbdev_export writes it)
STYLE_SRC   := nbs tests bench serve tools setup.py
STYLE_PATHS := $(STYLE_SRC) tsforge

style: venv
	$(BIN)/ruff check --fix --exit-zero --quiet $(STYLE_SRC)
	$(BIN)/ruff format $(STYLE_SRC)
	$(BIN)/nbdev_export
	$(BIN)/nbdev_clean
	$(BIN)/ruff check $(STYLE_PATHS)

lint: venv
	$(BIN)/ruff format --check $(STYLE_PATHS)
	$(BIN)/ruff check $(STYLE_PATHS)

# the documentation site: Getting started, guides (nbs/guides/*.md), an API page per module: _docs/index.html
docs: venv
	$(BIN)/python tools/docs.py --out _docs

# train the etth1 experiment with papermill, serve the champion, send one request, stop the server
demo: venv
	mkdir -p demo
	$(BIN)/papermill nbs/train.ipynb demo/train-etth1.ipynb -p config etth1
	$(BIN)/python serve/demo_client.py --config etth1 --port $(PORT)

bench: venv
	$(BIN)/python bench/ett.py

clean:
	rm -rf $(VENV) .cache demo mlruns _docs
