# tsforge: `make demo` and `make test` each set up .venv themselves (pinned by settings.ini + constraints.txt).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export TSFORGE_DATA_DIR ?= $(abspath ../shared/data/ett)
export OMP_NUM_THREADS ?= 1
PORT   ?= 8765

.PHONY: venv test demo bench lint-nbs clean

$(STAMP): settings.ini setup.py constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $@

venv: $(STAMP)

# notebooks and package in sync, notebooks clean, notebook tests, then pytest
test: venv lint-nbs
	$(BIN)/nbdev_test
	$(BIN)/python -m pytest -q tests

lint-nbs: venv
	@rm -rf .cache/sync && mkdir -p .cache/sync && cp -r tsforge nbs .cache/sync/
	$(BIN)/nbdev_export
	$(BIN)/nbdev_clean
	@diff -r -x __pycache__ .cache/sync/tsforge tsforge || { echo "nbdev_export changed tsforge/: notebooks and package were out of sync"; exit 1; }
	@diff -r -x .ipynb_checkpoints .cache/sync/nbs nbs || { echo "nbdev_clean changed nbs/: notebooks were not clean"; exit 1; }
	@echo "notebooks and package in sync, notebooks clean"

# train the etth1 experiment with papermill, serve the champion, send one request, stop the server
demo: venv
	mkdir -p demo
	$(BIN)/papermill nbs/train.ipynb demo/train-etth1.ipynb -p config etth1
	$(BIN)/python serve/demo_client.py --config etth1 --port $(PORT)

bench: venv
	$(BIN)/python bench/ett.py

clean:
	rm -rf $(VENV) .cache demo mlruns
