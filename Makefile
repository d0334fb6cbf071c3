# culturecode: `make demo` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
WS     ?= workspace
LLM_SEGMENTS ?= 10

.PHONY: demo test test-fast bench venv browser clean

venv: $(STAMP)

# torch first and pinned: an unpinned resolve pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# Debian's chromium for the browser tests (Playwright drives it; no browser download).
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	  (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)) \
	  || echo "could not install chromium: browser tests will be skipped"; \
	else echo "chromium not found: install Debian's chromium to run the browser tests"; fi

# The main job on the bundled example data: ingest, Label Studio, first model, pre-labels, push,
# then the local LLM labels the first $(LLM_SEGMENTS) segments (codes, confidences, a reason each).
# Reruns reuse what is there (the model is trained once; pushes add no duplicates; LLM answers
# come from the workspace cache).
CC := $(BIN)/culturecode
demo: $(STAMP)
	$(CC) ingest examples/transcripts --workspace $(WS)
	$(CC) studio start --workspace $(WS)
	@if $(CC) models list --workspace $(WS) --json | grep -q '"version"'; then \
	  echo "Reusing the current model (delete $(WS)/models to retrain)."; \
	else $(CC) train --gold examples/gold/ --method head --workspace $(WS); fi
	$(CC) prelabel --workspace $(WS)
	$(CC) annotators add alice bob --workspace $(WS)
	$(CC) push --annotators alice,bob --workspace $(WS)
	$(CC) llm label --limit $(LLM_SEGMENTS) --show $(LLM_SEGMENTS) --workspace $(WS)
	$(CC) status --workspace $(WS)
	$(CC) studio status --workspace $(WS)

test: $(STAMP) browser
	$(BIN)/python -m pytest tests -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests were collected" >&2; exit 1; fi; exit $$rc

test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -q -m "not slow and not integration and not e2e"

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(WS) .pytest_cache
