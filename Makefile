# specfmt: the two commands a new user needs are `make demo` and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.installed-docs
NODE_STAMP := node_modules/.installed

INTEROP := .venv-interop
INTEROP_STAMP := $(INTEROP)/.installed

.PHONY: demo test test-slow check lint generate bench interop conformance docs docs-serve docs-test clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

# Ajv for the second-language schema test, installed locally from the lock file.
$(NODE_STAMP): package.json package-lock.json
	npm ci --silent --no-audit --no-fund
	touch $(NODE_STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

test: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m pytest -q -m slow

# Drift checks (generated files must match their sources) and lint.
check: $(STAMP)
	$(BIN)/python scripts/generate.py --check
	$(BIN)/python -m conformance.generators --check
	$(BIN)/ruff check reference tests scripts benchmarks conformance

lint: $(STAMP)
	$(BIN)/ruff check reference tests scripts benchmarks conformance

# The conformance suite against the reference adapter, with reports under test-output/conformance.
conformance: $(STAMP)
	$(BIN)/specfmt-conformance run --adapter "$(BIN)/python conformance/adapters/reference/adapter.py" \
	  --report test-output/conformance

generate: $(STAMP)
	$(BIN)/python scripts/generate.py

bench: $(STAMP)
	$(BIN)/python benchmarks/validate.py
	$(BIN)/python benchmarks/generate.py
	$(BIN)/python benchmarks/conformance.py

# The speculators library (0.9.0) beside specfmt, torch pinned through the constraints file. speculators
# is installed without its dependencies and those it imports are added by name, so pip never pulls the
# CUDA torchvision/torchaudio it lists (the draft models do not use them).
$(INTEROP_STAMP): pyproject.toml constraints.txt
	test -x $(INTEROP)/bin/python || $(PY) -m venv $(INTEROP)
	$(INTEROP)/bin/python -m pip install --quiet --upgrade pip
	$(INTEROP)/bin/python -m pip install --quiet -c constraints.txt -e '.[test]'
	$(INTEROP)/bin/python -m pip install --quiet -c constraints.txt --no-deps speculators==0.9.0 hs-connectors==0.9.0
	$(INTEROP)/bin/python -m pip install --quiet -c constraints.txt 'transformers>=5,<=5.19.0' 'datasets>=4,<=5.1.0' \
	  openai loguru pydantic-settings 'tqdm<=4.70.1' rich click typer psutil httpx aiohttp protobuf
	touch $(INTEROP_STAMP)

interop: $(INTEROP_STAMP)
	$(INTEROP)/bin/python -m pytest -q -m interop tests/interop

# The docs tool chain (the `docs` extra) on top of the test environment.
$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,docs]'
	touch $(DOCS_STAMP)

# The docs site (mkdocs.yml): built into site/ with --strict, so any warning fails; or served with live reload.
# NO_MKDOCS_2_WARNING silences mkdocs-material's banner about its end of life (May 2027; successor: Zensical).
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# The docs site's tests over the built site: internal links and anchors, schema $ids served at their
# paths, and Debian's chromium (headless, driven by playwright-core) rendering pages and the search box,
# with screenshots under test-output/docs.
docs-test: $(STAMP) $(NODE_STAMP)
	$(MAKE) docs
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	$(BIN)/python -m pytest -q -m docs tests/docs

clean:
	rm -rf $(VENV) $(INTEROP) node_modules .pytest_cache
