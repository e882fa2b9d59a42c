# specfmt: the two commands a new user needs are `make demo` and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: demo test test-slow check lint generate bench clean

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
	$(BIN)/ruff check reference tests scripts benchmarks

lint: $(STAMP)
	$(BIN)/ruff check reference tests scripts benchmarks

generate: $(STAMP)
	$(BIN)/python scripts/generate.py

bench: $(STAMP)
	$(BIN)/python benchmarks/validate.py

clean:
	rm -rf $(VENV) node_modules .pytest_cache
