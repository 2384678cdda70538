# Two entry points for a fresh machine (Python 3.11 with pip and venv; nothing else needed):
#   make search   installs into .venv, then runs `cpnas search` on the embedded Fashion-MNIST sample
#   make test     installs into .venv, then runs the test suite
#   make test-fast  the same without the slow end-to-end tests (marked e2e)
#   make lint     installs into .venv, then checks formatting, lint rules and types (ruff, mypy)
# torch is pinned to the CPU-usable build this machine's pip serves from disk.
VENV  ?= .venv
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP)

.PHONY: install search test test-fast lint
install: $(STAMP)

search: $(STAMP)
	$(VENV)/bin/cpnas search

test: $(STAMP)
	OMP_NUM_THREADS=1 $(VENV)/bin/python -m pytest  # tiny tensors; one thread keeps runs comparable (16.6 min measured, fresh clone)

test-fast: $(STAMP)
	OMP_NUM_THREADS=1 $(VENV)/bin/python -m pytest -m "not e2e"  # no CLI subprocesses, no real runs

lint: $(STAMP)
	$(VENV)/bin/ruff format --check . && $(VENV)/bin/ruff check . && $(VENV)/bin/mypy  # settings in pyproject.toml
